"""Temperature relaxations (convergence to the hard forms, derivatives) and straight-through."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.relax import (
    quantize,
    soft_abs,
    soft_argmax,
    soft_argmin,
    soft_clip,
    soft_gate,
    soft_max,
    soft_min,
    soft_sign,
    soft_step,
    softmax,
    ste_argmax_onehot,
    ste_binarize,
    ste_floor,
    ste_round,
    ste_sign,
    straight_through,
)

TEMPS = [1.0, 0.3, 0.1, 0.03, 0.01, 1e-3]


def _away_from(x, points, margin=0.05):
    """Nudge entries of x that are within ``margin`` of a discontinuity."""
    for p in points:
        close = np.abs(x - p) < margin
        x = np.where(close, p + np.sign(x - p + 1e-300) * margin, x)
    return x


# (relaxation, extra positional args, inputs builder, error bound as a function of T or None)
CASES = {
    "softmax": (softmax, (), None),
    "soft_argmax": (soft_argmax, (), None),
    "soft_argmin": (soft_argmin, (), None),
    "soft_max": (soft_max, (), lambda t, n: t * np.log(n)),
    "soft_min": (soft_min, (), lambda t, n: t * np.log(n)),
    "soft_step": (soft_step, (), None),
    "soft_sign": (soft_sign, (), None),
    "soft_gate": (soft_gate, (0.3,), None),
    "soft_clip": (soft_clip, (-0.5, 0.7), lambda t, n: t * np.log(2.0)),
    "soft_abs": (soft_abs, (), lambda t, n: t),
}


def _inputs(rng, name):
    x = rng.standard_normal((3, 8))
    if name in ("softmax", "soft_argmax", "soft_argmin", "soft_max", "soft_min"):
        # distinct maxima/minima per row: the argmax has a margin
        x = x + np.arange(8) * 0.3 * rng.permuted(np.tile(np.arange(8), (3, 1)), axis=1) / 8
        return x
    points = {"soft_gate": [0.3], "soft_clip": [-0.5, 0.7]}.get(name, [0.0])
    return _away_from(x, points)


@pytest.mark.parametrize("name", sorted(CASES))
def test_converges_to_the_hard_form(rng, name):
    relax, extra, bound = CASES[name]
    x = _inputs(rng, name)
    gaps = [relax.gap(x, *extra, temperature=t) for t in TEMPS]
    assert all(b <= a + 1e-12 for a, b in zip(gaps, gaps[1:])), gaps  # monotone in T
    assert gaps[-1] < 1e-2 * max(gaps[0], 1e-300) or gaps[-1] < 1e-12, gaps
    if bound is not None:
        for t, gap in zip(TEMPS, gaps):
            assert gap <= bound(t, x.shape[-1]) + 1e-12, (t, gap)
    else:  # exponentially fast away from the discontinuities
        assert gaps[-1] < 1e-12, gaps


@pytest.mark.parametrize("name", sorted(CASES))
def test_derivatives_in_input_and_temperature(rng, name):
    relax, extra, _ = CASES[name]
    x = _inputs(rng, name)[:2, :5]
    ds.check_grads(lambda x: relax(x, *extra, temperature=0.7), (x,), order=2)
    ds.check_grads(lambda t: relax(x, *extra, temperature=t), (0.7,), order=2)
    f = lambda x: relax(x, *extra, temperature=0.7)
    np.testing.assert_allclose(ds.vmap(f)(x), f(x), atol=1e-12)


def test_bounds_are_learnable_and_checked(rng):
    x = rng.standard_normal(6)
    ds.check_grads(lambda lo, hi: soft_clip(x, lo, hi, temperature=0.2), (-0.3, 0.4), order=2)
    ds.check_grads(lambda th: soft_gate(x, th, temperature=0.2), (0.1,), order=2)
    with pytest.raises(ValueError, match="soft_clip: low must be < high"):
        soft_clip(x, 1.0, 0.0)
    with pytest.raises(ValueError, match="soft_step: temperature must be finite and > 0"):
        soft_step(x, temperature=0.0)
    with pytest.raises(ValueError, match="soft_max: temperature must be finite and > 0"):
        soft_max(x, -1.0)  # positional temperature is checked too


def test_hard_forms_are_exact():
    x = np.array([[0.5, -2.0, 3.0, 0.0]])
    np.testing.assert_array_equal(softmax.hard(x), [[0, 0, 1, 0]])
    np.testing.assert_array_equal(soft_argmax.hard(x), [2.0])
    np.testing.assert_array_equal(soft_argmin.hard(x), [1.0])
    np.testing.assert_array_equal(soft_max.hard(x), [3.0])
    np.testing.assert_array_equal(soft_min.hard(x), [-2.0])
    np.testing.assert_array_equal(soft_step.hard(x), [[1.0, 0.0, 1.0, 0.5]])
    np.testing.assert_array_equal(soft_sign.hard(x), [[1.0, -1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(soft_gate.hard(x, 1.0), [[0.0, -0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(soft_clip.hard(x, -1.0, 1.0), [[0.5, -1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(soft_abs.hard(x), np.abs(x))
    assert softmax.hard(x, axis=0).shape == (1, 4)


def test_relaxation_straight_through_method(rng):
    x = rng.standard_normal(5)
    out = soft_step.straight_through(x, temperature=0.5)
    np.testing.assert_array_equal(out, soft_step.hard(x))
    g = ds.grad(lambda x: dnp.sum(soft_step.straight_through(x, temperature=0.5)))(x)
    np.testing.assert_allclose(g, ds.grad(lambda x: dnp.sum(soft_step(x, temperature=0.5)))(x))


# --- straight-through estimators ----------------------------------------------------------------


def test_straight_through_is_exact_in_value_and_surrogate_in_every_mode(rng):
    x = rng.standard_normal(6) * 3
    sur = lambda x: dnp.sin(x) + x
    st = straight_through(dnp.round, sur)
    np.testing.assert_array_equal(st(x), np.round(x))  # bit-exact
    u = rng.standard_normal(6)
    f, f_sur = (lambda x: dnp.sum(u * st(x))), (lambda x: dnp.sum(u * sur(x)))
    np.testing.assert_allclose(ds.grad(f)(x), ds.grad(f_sur)(x))
    # downstream of the estimator, the chain rule sees the hard value: d/dx st(x)^2
    g2 = ds.grad(lambda x: dnp.sum(u * st(x) ** 2))(x)
    np.testing.assert_allclose(g2, 2 * u * np.round(x) * (np.cos(x) + 1))
    v = rng.standard_normal(6)
    np.testing.assert_allclose(ds.jvp(st, (x,), (v,))[1], ds.jvp(sur, (x,), (v,))[1])
    np.testing.assert_allclose(ds.hessian(f)(x), ds.hessian(f_sur)(x), atol=1e-12)
    np.testing.assert_array_equal(ds.vmap(st)(x[:, None])[:, 0], np.round(x))


def test_ste_round_floor_sign_binarize(rng):
    x = rng.standard_normal(7) * 2
    for fn, hard in ((ste_round, np.rint), (ste_floor, np.floor)):
        np.testing.assert_array_equal(fn(x), hard(x))
        np.testing.assert_array_equal(ds.grad(lambda x, fn=fn: dnp.sum(fn(x)))(x), np.ones(7))
    np.testing.assert_array_equal(ste_sign(x), np.sign(x))
    g = ds.grad(lambda x: dnp.sum(ste_sign(x)))(x)
    np.testing.assert_array_equal(g, (np.abs(x) <= 1).astype(float))  # hardtanh surrogate
    g = ds.grad(lambda x: dnp.sum(ste_sign(x, "tanh")))(x)
    np.testing.assert_allclose(g, 1 - np.tanh(x) ** 2)
    p = rng.uniform(size=7)
    np.testing.assert_array_equal(ste_binarize(p), (p > 0.5).astype(float))
    np.testing.assert_array_equal(ds.grad(lambda p: dnp.sum(ste_binarize(p)))(p), np.ones(7))
    gt = ds.grad(lambda t: dnp.sum(ste_binarize(p, t, surrogate="sigmoid", temperature=0.1)))(0.5)
    s = 1 / (1 + np.exp(-(p - 0.5) / 0.1))
    np.testing.assert_allclose(gt, -np.sum(s * (1 - s)) / 0.1)
    with pytest.raises(ValueError, match="ste_sign: surrogate must be one of"):
        ste_sign(x, "relu")


def test_quantize_lsq_gradients(rng):
    x = np.array([0.26, -0.9, 3.0, 0.74, -2.0])
    step = 0.5
    q = quantize(x, step, low=-2, high=4)
    np.testing.assert_array_equal(q, [0.5, -1.0, 2.0, 0.5, -1.0])
    gx = ds.grad(lambda x: dnp.sum(quantize(x, step, low=-2, high=4)))(x)
    np.testing.assert_array_equal(gx, [1.0, 1.0, 0.0, 1.0, 0.0])  # clipped entries get none
    v = x / step
    inside = (v >= -2) & (v <= 4)
    want = np.where(inside, np.rint(np.clip(v, -2, 4)) - v, np.clip(v, -2, 4))
    for i in range(5):
        np.testing.assert_allclose(
            ds.grad(lambda s, i=i: quantize(x, s, low=-2, high=4)[i])(step), want[i]
        )
    with pytest.raises(ValueError, match="quantize: step must be > 0"):
        quantize(x, 0.0)
    with pytest.raises(ValueError, match=r"quantize: low \(3\) must not exceed high \(1\)"):
        quantize(x, 1.0, low=3, high=1)


def test_ste_argmax_onehot(rng):
    z = rng.standard_normal((2, 5))
    out = ste_argmax_onehot(z, temperature=0.5)
    np.testing.assert_array_equal(out, np.eye(5)[np.argmax(z, -1)])
    u = rng.standard_normal((2, 5))
    g = ds.grad(lambda z: dnp.sum(u * ste_argmax_onehot(z, 0.5)))(z)
    want = ds.grad(lambda z: dnp.sum(u * softmax(z, temperature=0.5)))(z)
    np.testing.assert_allclose(g, want)
    out0 = ste_argmax_onehot(z, 0.5, axis=0)
    np.testing.assert_array_equal(out0, np.eye(2)[np.argmax(z, 0)].T)
