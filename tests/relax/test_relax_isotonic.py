"""Isotonic regression: the PAV backends against each other, an oracle, and scipy; derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import diffsys as ds
from diffsys.relax import isotonic_kl, isotonic_l2, isotonic_regression
from diffsys.relax._pav import isotonic_blocks, isotonic_l2_values
from diffsys.relax._prims import segment_logsumexp_p, segment_mean_p, segment_sum_p


def _random_rows(rng, shape):
    n = shape[-1]
    trend = -np.arange(n) * rng.uniform(0.0, 0.3)
    return np.cumsum(rng.standard_normal(shape), axis=-1) * 0.3 + trend + rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(1, 1), (4, 2), (6, 7), (50, 3), (3, 200)])
@pytest.mark.parametrize("kind", ["l2", "kl"])
def test_backends_agree_with_the_reference(rng, shape, kind):
    y = _random_rows(rng, shape)
    w = None if kind == "l2" else np.log(rng.uniform(0.5, 3.0, shape))
    want = isotonic_blocks(y, w, kind, backend="reference")
    for backend in ("numpy", "scipy", "auto"):
        np.testing.assert_array_equal(isotonic_blocks(y, w, kind, backend=backend), want)


def test_kl_backends_with_infinite_weights_and_huge_spreads(rng):
    y = _random_rows(rng, (5, 12)) * 400.0  # exp() spread far beyond float64
    with np.errstate(divide="ignore"):
        w = np.log(np.r_[np.ones(4), np.zeros(8)])[None].repeat(5, 0)  # -inf entries
    w[1] = rng.standard_normal(12)
    with np.errstate(divide="ignore"):
        want = isotonic_blocks(y, w, "kl", backend="reference")
        for backend in ("numpy", "scipy"):
            np.testing.assert_array_equal(isotonic_blocks(y, w, "kl", backend=backend), want)


def test_l2_values_match_scipy_isotonic_regression(rng):
    scipy_optimize = pytest.importorskip("scipy.optimize")
    if not hasattr(scipy_optimize, "isotonic_regression"):
        pytest.skip("scipy.optimize.isotonic_regression needs SciPy >= 1.12")
    scipy_iso = scipy_optimize.isotonic_regression

    y = _random_rows(rng, (30, 40))
    got = isotonic_l2(y)
    want = np.stack([scipy_iso(row, increasing=False).x for row in y])
    np.testing.assert_allclose(got, want, atol=1e-12)
    # the lockstep NumPy path (many short rows) gives the same values
    short = _random_rows(rng, (3000, 4))
    want = np.stack([scipy_iso(row, increasing=False).x for row in short[:50]])
    np.testing.assert_allclose(isotonic_l2_values(short)[:50], want, atol=1e-12)


def test_isotonic_regression_increasing_and_axis(rng):
    y = rng.standard_normal((5, 3))
    got = isotonic_regression(y, axis=0)
    assert np.all(np.diff(got, axis=0) >= -1e-12)
    np.testing.assert_allclose(got, -isotonic_l2(-y.T).T)
    np.testing.assert_allclose(isotonic_regression(y, increasing=False), isotonic_l2(y))


def test_kl_values_match_a_generic_solver(rng):
    y, w = rng.standard_normal(5), rng.standard_normal(5)

    def obj(v):
        return np.sum(np.exp(y - v) + np.exp(w) * v), np.exp(w) - np.exp(y - v)

    cons = {"type": "ineq", "fun": lambda v: v[:-1] - v[1:]}
    res = minimize(
        obj,
        np.zeros(5),
        jac=True,
        method="SLSQP",
        constraints=[cons],
        options={"ftol": 1e-13, "maxiter": 500},
    )
    np.testing.assert_allclose(isotonic_kl(y, w), res.x, atol=1e-5)


@pytest.mark.parametrize("kind", ["l2", "kl"])
def test_isotonic_derivatives(rng, kind):
    y = _random_rows(rng, (3, 8))
    w = rng.standard_normal((3, 8))
    if kind == "l2":
        ds.check_grads(isotonic_l2, (y,), order=2)
    else:
        ds.check_grads(isotonic_kl, (y, w), order=2)
    if kind == "l2":
        np.testing.assert_allclose(ds.vmap(isotonic_l2)(y), isotonic_l2(y))
    else:
        np.testing.assert_allclose(ds.vmap(isotonic_kl)(y, w), isotonic_kl(y, w))
        f = lambda y: isotonic_kl(y, w[0])  # an unbatched w, broadcast against the batch
        np.testing.assert_allclose(ds.vmap(f)(y), f(y))


def test_segment_primitives(rng):
    x = rng.standard_normal((2, 6))
    starts = np.array([[1, 0, 0, 1, 0, 1], [1, 1, 0, 0, 0, 0]], dtype=bool)
    np.testing.assert_allclose(
        segment_sum_p(x, starts)[0],
        np.repeat([x[0, :3].sum(), x[0, 3:5].sum(), x[0, 5]], [3, 2, 1]),
    )
    np.testing.assert_allclose(segment_mean_p(x, starts)[1, 2:], np.full(4, x[1, 1:].mean()))
    from scipy.special import logsumexp

    np.testing.assert_allclose(segment_logsumexp_p(x, starts)[1, 0], x[1, 0])
    np.testing.assert_allclose(segment_logsumexp_p(x, starts)[0, 0], logsumexp(x[0, :3]))
    for prim in (segment_sum_p, segment_mean_p, segment_logsumexp_p):
        ds.check_grads(lambda x, prim=prim: prim(x, starts), (x,), order=2)
        # a broadcast structure (one row of starts for a batch of values) under vmap and jacfwd
        J = ds.jacfwd(lambda v, prim=prim: prim(v, starts[0]))(x[0])
        np.testing.assert_allclose(J, ds.jacrev(lambda v, prim=prim: prim(v, starts[0]))(x[0]))


def test_zero_d_input_is_an_error():
    with pytest.raises(ValueError, match="isotonic_l2: expected an array with at least one axis"):
        isotonic_l2(np.float64(1.0))
    with pytest.raises(TypeError, match="isotonic_l2: expected a real floating-point array"):
        isotonic_l2(np.arange(3))
