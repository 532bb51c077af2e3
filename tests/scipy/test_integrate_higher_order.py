"""diffsys.scipy.integrate.odeint differentiated to second order and beyond: every nesting of
forward and reverse mode against closed forms (linear decay) and finite differences of the
gradient (a damped pendulum), check_grads at order 2, perturbation confusion, and the odeint
primitive's own VJP rules (reverse mode over forward mode or vmap)."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.scipy.integrate import odeint

# The solver's tolerances bound the accuracy of every derivative below.
TOL = {"rtol": 1e-10, "atol": 1e-12}


def decay(y, t, k):
    return -k * y


def pendulum(y, t, p):
    """A damped, driven pendulum: theta' = omega, omega' = -b omega - c sin(theta) + drive."""
    theta, omega = y[0], y[1]
    return dnp.stack([omega, -p[0] * omega - p[1] * dnp.sin(theta) + 0.3 * dnp.cos(t)])


def decay_end(x):
    """y(T) for y' = -k y, y(t0) = y0, with x = [y0, t0, T, k] (an output at 0.9 between)."""
    ts = dnp.stack([x[1], dnp.asarray(0.9), x[2]])
    return odeint(decay, x[0], ts, x[3], **TOL)[-1]


def decay_end_hessian(x):
    """The Hessian of y(T) = y0 exp(-k (T - t0)) in [y0, t0, T, k], by hand."""
    y0, t0, t1, k = x
    tau = t1 - t0
    e = np.exp(-k * tau)
    y = y0 * e
    return np.array(
        [
            [0.0, k * e, -k * e, -tau * e],
            [k * e, k**2 * y, -(k**2) * y, y * (1 - k * tau)],
            [-k * e, -(k**2) * y, k**2 * y, -y * (1 - k * tau)],
            [-tau * e, y * (1 - k * tau), -y * (1 - k * tau), tau**2 * y],
        ]
    )


X_DECAY = np.array([1.5, 0.2, 1.7, 0.8])

SECOND_ORDER_ROUTES = {
    "hessian": ds.hessian,  # jacfwd of jacrev
    "jacrev-jacrev": lambda f: ds.jacrev(ds.jacrev(f)),
    "jacfwd-jacfwd": lambda f: ds.jacfwd(ds.jacfwd(f)),
    "jacrev-jacfwd": lambda f: ds.jacrev(ds.jacfwd(f)),
}


@pytest.mark.parametrize("route", sorted(SECOND_ORDER_ROUTES))
def test_hessian_of_linear_decay_matches_closed_form(route):
    """Second derivatives in the initial state, both time points and the rate at once."""
    hess = SECOND_ORDER_ROUTES[route](decay_end)(X_DECAY)
    np.testing.assert_allclose(hess, decay_end_hessian(X_DECAY), rtol=1e-8, atol=1e-10)


def test_grad_of_grad_and_jvp_of_grad_in_the_rate():
    """d^2/dk^2 y0 exp(-k T) = T^2 y(T), scalar nestings of reverse and forward mode."""
    ts = np.array([0.0, 0.5, 1.3])
    k, y0 = 0.7, 1.5

    def end(k):
        return odeint(decay, y0, ts, k, **TOL)[-1]

    expected = ts[-1] ** 2 * y0 * np.exp(-k * ts[-1])
    np.testing.assert_allclose(ds.grad(ds.grad(end))(k), expected, rtol=1e-9)
    _, jvp_of_grad = ds.jvp(ds.grad(end), (k,), (1.0,))
    np.testing.assert_allclose(jvp_of_grad, expected, rtol=1e-9)
    _, hvp = ds.jvp(lambda k: ds.jvp(end, (k,), (1.0,))[1], (k,), (1.0,))
    np.testing.assert_allclose(hvp, expected, rtol=1e-9)
    # any order: the third derivative is -T^3 y(T)
    third = -(ts[-1] ** 3) * y0 * np.exp(-k * ts[-1])
    np.testing.assert_allclose(ds.grad(ds.grad(ds.grad(end)))(k), third, rtol=1e-8)


def test_check_grads_second_order_in_y0_t_and_args():
    """Forward and reverse mode to order 2 against finite differences, all arguments."""
    fun = lambda y0, ts, p: odeint(pendulum, y0, ts, p, **TOL)  # noqa: E731
    args = (np.array([1.0, 0.2]), np.array([0.0, 0.6, 1.5]), np.array([0.3, 2.0]))
    ds.check_grads(fun, args, order=2, modes=("fwd", "rev"), eps=1e-5)


def _hessian_by_differences(fun, x, eps=1e-5):
    """Central differences of the (adjoint) gradient, column by column."""
    grad = ds.grad(fun)
    cols = [(grad(x + e) - grad(x - e)) / (2 * eps) for e in np.eye(x.size) * eps]
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("wrt", ["p", "y0"])
def test_pendulum_hessian_against_differences_of_the_gradient(wrt):
    """A nonlinear 2-state system: the Hessian of a weighted sum of the trajectory in the
    parameter vector (damping, stiffness) or in the initial state, by every route."""
    ts = np.array([0.0, 0.6, 1.5])
    w = np.array([[0.3, -0.2], [1.0, 0.5], [0.7, -1.1]])
    p, y0 = np.array([0.3, 2.0]), np.array([1.0, 0.2])

    def loss(v):
        args = (y0, v) if wrt == "p" else (v, p)
        return dnp.sum(w * odeint(pendulum, args[0], ts, args[1], **TOL))

    x = p if wrt == "p" else y0
    # solver errors ~1e-10 divided by the step 1e-5 bound the differences' accuracy
    reference = _hessian_by_differences(loss, x)
    for route, transform in SECOND_ORDER_ROUTES.items():
        hess = transform(loss)(x)
        assert hess.shape == (2, 2), route
        np.testing.assert_allclose(hess, reference, rtol=1e-6, atol=1e-7, err_msg=route)
        np.testing.assert_allclose(hess, hess.T, rtol=1e-8, atol=1e-9, err_msg=route)


def test_perturbation_confusion_through_nested_odeint_gradients():
    """d/dx [x * d/dk y(T; k + x)] with y' = -(k + x) y: the inner and outer derivatives
    must not mix (the inner gradient's backward pass is itself differentiated in x)."""
    t1, k, x = 1.3, 0.4, 0.2
    ts = np.array([0.0, t1])

    def outer(x):
        inner = ds.grad(lambda k: odeint(decay, 1.0, ts, k + x, **TOL)[-1])(k)
        return x * inner

    e = np.exp(-(k + x) * t1)
    np.testing.assert_allclose(ds.grad(outer)(x), -t1 * e + x * t1**2 * e, rtol=1e-8)
    # the same with the inner derivative in the initial state: x * d/dy0 y(T) = x exp(-k T)
    # and y0 = x, so the outer derivative is exp(-k T) (a confused one would add more)
    inner_y0 = lambda x: x * ds.grad(lambda v: odeint(decay, v, ts, k, **TOL)[-1])(x)  # noqa: E731
    np.testing.assert_allclose(ds.grad(inner_y0)(x), np.exp(-k * t1), rtol=1e-8)


def test_reverse_mode_meets_the_primitive_under_vmap_and_jvp():
    """grad of a vmap over odeint and jacrev of jacfwd reach the odeint primitive from a
    reverse transform: its VJP rules run the adjoint."""
    ts = np.array([0.0, 1.0])
    starts = np.array([1.0, 2.0])

    def batch_loss(k):
        batch = ds.vmap(lambda v: odeint(decay, v, ts, k, **TOL))(starts)
        return dnp.sum(batch[:, -1])

    np.testing.assert_allclose(ds.grad(batch_loss)(0.5), -3.0 * np.exp(-0.5), rtol=1e-9)
    np.testing.assert_allclose(ds.grad(ds.grad(batch_loss))(0.5), 3.0 * np.exp(-0.5), rtol=1e-8)


def test_second_order_with_float32_state_integer_args_and_one_time_point():
    """y' = -y^2 from v: y(1) = v / (1 + v), whose second derivative is -2 / (1 + v)^3."""
    v = np.ones(2, np.float32)
    hess = ds.hessian(lambda v: dnp.sum(odeint(lambda y, t: -(y**2), v, np.array([0.0, 1.0]))))(v)
    assert hess.dtype == np.float32
    np.testing.assert_allclose(hess, -0.25 * np.eye(2), rtol=1e-6, atol=1e-7)
    power = lambda y, t, k, n: -k * y**n  # noqa: E731
    decreasing = np.array([2.0, 1.0, 0.0])
    loss = lambda y0, k: dnp.sum(odeint(power, y0, decreasing, k, 2, **TOL))  # noqa: E731
    ds.check_grads(loss, (np.array([[1.0], [0.3]]), 0.2), order=2, modes=("fwd", "rev"), eps=1e-5)
    # one time point: the output is y0 itself, so every second derivative is 0
    hess = ds.hessian(lambda v: odeint(power, v, np.array([0.0]), 0.5, 1)[0, 0])(np.array([1.0]))
    np.testing.assert_array_equal(hess, [[0.0]])


def test_func_closing_over_a_traced_value_is_a_clear_error():
    ts = np.array([0.0, 1.0])
    with pytest.raises(TypeError, match="closure.*args"):
        ds.grad(lambda x: odeint(lambda y, t: -x * y, 1.0, ts)[-1])(0.5)
