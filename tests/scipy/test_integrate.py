"""diffsys.scipy.integrate.odeint: solutions against closed forms, adjoint gradients in the
initial state, the time points and the parameters against finite differences and closed
forms, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.scipy.integrate import odeint

TOL = {"rtol": 1e-10, "atol": 1e-10}


def lotka_volterra(y, t, a, b):
    # time-dependent forcing so that d/dt of the time points is not trivial
    return dnp.stack(
        [a * y[0] - b * y[0] * y[1] + 0.1 * dnp.sin(t), -y[1] + b * y[0] * y[1] - 0.05 * t]
    )


def central(fun, x, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        out[idx] = (fun(x + e) - fun(x - e)) / (2 * eps)
    return out


def test_solution_matches_closed_form():
    ts = np.linspace(0.0, 2.0, 5)
    k = 0.7
    ys = odeint(lambda y, t, k: -k * y, np.array([1.0, 2.0]), ts, k, **TOL)
    assert ys.shape == (5, 2)
    np.testing.assert_allclose(ys, np.exp(-k * ts)[:, None] * [1.0, 2.0], rtol=1e-9)
    # harmonic oscillator with a matrix state
    ys = odeint(lambda y, t: dnp.stack([y[1], -y[0]]), np.array([[1.0], [0.0]]), ts, **TOL)
    assert ys.shape == (5, 2, 1)
    np.testing.assert_allclose(ys[:, 0, 0], np.cos(ts), rtol=1e-9, atol=1e-10)


def test_gradients_against_finite_differences():
    y0 = np.array([1.0, 0.5])
    ts = np.array([0.0, 0.7, 1.5, 2.0])
    a, b = np.array(0.9), np.array(0.6)
    w = np.arange(8.0).reshape(4, 2)

    def loss(y0, ts, a, b):
        return dnp.sum(odeint(lotka_volterra, y0, ts, a, b, **TOL) ** 2 * w)

    grads = ds.grad(loss, argnums=(0, 1, 2, 3))(y0, ts, a, b)
    args = [y0, ts, a, b]
    for k, g in enumerate(grads):

        def partial(v, k=k):
            full = list(args)
            full[k] = v
            return loss(*full)

        np.testing.assert_allclose(g, central(partial, args[k]), rtol=1e-7, atol=1e-7)


def test_check_grads_both_modes():
    """Reverse mode by the adjoint, forward mode by the sensitivity equations."""
    fun = lambda y0, ts, a: odeint(lotka_volterra, y0, ts, a, 0.4, **TOL)  # noqa: E731
    args = (np.array([0.8, 1.1]), np.array([0.0, 0.5, 1.2]), np.array(0.5))
    ds.check_grads(fun, args, order=1, modes=("fwd", "rev"), eps=1e-5)


def test_jacfwd_equals_jacrev_and_vmap():
    ts = np.array([0.3, 0.9, 1.4])
    fun = lambda y0, ts, a: odeint(lotka_volterra, y0, ts, a, 0.4, **TOL)  # noqa: E731
    args = (np.array([0.8, 1.1]), ts, np.array(0.5))
    fwd = ds.jacfwd(fun, argnums=(0, 1, 2))(*args)
    rev = ds.jacrev(fun, argnums=(0, 1, 2))(*args)
    for jf, jr in zip(fwd, rev, strict=True):
        np.testing.assert_allclose(jf, jr, rtol=1e-7, atol=1e-9)
    y0s = np.array([[0.8, 1.1], [1.0, 0.3], [0.2, 0.2]])
    out = ds.vmap(lambda v: fun(v, ts, np.array(0.5)))(y0s)
    np.testing.assert_allclose(out, np.stack([fun(v, ts, np.array(0.5)) for v in y0s]))


def test_gradient_closed_forms():
    """y' = -k y: y(t) = y0 exp(-k (t - t0)); all partial derivatives are known."""
    ts = np.array([0.2, 1.0, 1.7])
    k, y0 = 0.8, 1.5

    def last(y0, ts, k):
        return odeint(lambda y, t, k: -k * y, y0, ts, k, **TOL)[-1]

    gy0, gts, gk = ds.grad(last, argnums=(0, 1, 2))(y0, ts, k)
    dt = ts[-1] - ts[0]
    yT = y0 * np.exp(-k * dt)
    np.testing.assert_allclose(gy0, np.exp(-k * dt), rtol=1e-9)
    np.testing.assert_allclose(gk, -dt * yT, rtol=1e-8)
    np.testing.assert_allclose(gts, [k * yT, 0.0, -k * yT], rtol=1e-8, atol=1e-12)
    # the full Jacobian in y0 through jacrev, against the closed form
    jac = ds.jacrev(lambda v: odeint(lambda y, t: -k * y, v, ts, **TOL))(np.array([1.0, 2.0]))
    expected = np.exp(-k * (ts - ts[0]))[:, None, None] * np.eye(2)
    np.testing.assert_allclose(jac, expected, rtol=1e-9, atol=1e-12)


def test_decreasing_times_integer_args_and_single_point():
    ts = np.array([2.0, 1.0, 0.0])
    fun = lambda y, t, k, n: -k * y**n  # noqa: E731

    def loss(y0, k):
        return dnp.sum(odeint(fun, y0, ts, k, 1, **TOL))

    g = ds.grad(loss, argnums=(0, 1))(np.array([1.0, 3.0]), 0.5)
    np.testing.assert_allclose(
        g[0], central(lambda v: loss(v, 0.5), np.array([1.0, 3.0])), rtol=1e-7
    )
    gk = central(lambda v: loss(np.array([1.0, 3.0]), v), 0.5)
    np.testing.assert_allclose(g[1], gk, rtol=1e-7)
    ys = odeint(fun, np.array([1.0]), np.array([0.0]), 0.5, 1)
    np.testing.assert_array_equal(ys, [[1.0]])
    assert ds.grad(lambda v: odeint(fun, v, np.array([0.0]), 0.5, 1)[0, 0])(np.array([1.0])) == 1.0


def test_float32_state_and_errors():
    ys = odeint(lambda y, t: -y, np.ones(2, np.float32), np.array([0.0, 1.0]))
    assert ys.dtype == np.float32
    g = ds.grad(lambda v: dnp.sum(odeint(lambda y, t: -y, v, np.array([0.0, 1.0]))))(
        np.ones(2, np.float32)
    )
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [1 + np.exp(-1.0)] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="strictly increasing"):
        odeint(lambda y, t: -y, 1.0, np.array([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="1-d"):
        odeint(lambda y, t: -y, 1.0, np.ones((2, 2)))


def test_backward_memory_does_not_grow_with_the_number_of_steps():
    """A 4x longer horizon takes about 4x more solver steps; a backward pass that kept the
    steps (about 1.6 kB each here) would need hundreds of kB more. The adjoint does not."""
    import gc
    import tracemalloc

    rng = np.random.default_rng(0)
    m = rng.standard_normal((100, 100)) / 10.0
    skew = 3.0 * (m - m.T)  # rotations: many solver steps, norm-preserving
    y0 = rng.standard_normal(100)
    calls = []

    def f(y, t, s):
        calls.append(t)
        return dnp.matmul(s * skew, y)

    def peak_and_steps(horizon):
        calls.clear()
        ts = np.array([0.0, horizon])
        loss = lambda s: dnp.sum(odeint(f, y0, ts, s, rtol=1e-5, atol=1e-5, method="RK23")[-1] ** 2)  # noqa: E731
        gc.collect()
        tracemalloc.start()
        g = ds.grad(loss)(1.0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # |y(T)|^2 does not depend on the speed s of a rotation
        assert abs(g) < 1e-3 * np.sum(y0**2)
        return peak, len(calls)

    short, n_short = peak_and_steps(1.0)
    long, n_long = peak_and_steps(4.0)
    assert n_long > 3 * n_short
    assert long - short < 100_000, (short, long, n_short, n_long)
