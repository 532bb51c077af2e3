"""NeuralSort and Sinkhorn sorting: values against the formulas, limits, derivatives."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys.relax import (
    neural_sort,
    neural_sort_values,
    neuralsort_reference,
    sinkhorn_plan,
    sinkhorn_rank,
    sinkhorn_sort,
)
from diffsys.relax.neuralsort import _vjp_raw, _vjp_traced


def test_neuralsort_matches_the_paper_formula(rng):
    s = rng.standard_normal((2, 3, 9))
    for tau in (0.1, 1.0, 5.0):
        np.testing.assert_allclose(neural_sort(s, tau), neuralsort_reference(s, tau), atol=1e-12)
    P = neural_sort(s, 0.5)
    np.testing.assert_allclose(P.sum(-1), 1.0)


def test_neuralsort_limit_is_the_sorting_permutation(rng):
    s = rng.permutation(12) + 0.5 * rng.uniform(size=12)  # gaps >= 0.5: exp(-gap / tau) = 0
    P = neural_sort(s, 1e-3)
    np.testing.assert_allclose(P, np.eye(12)[np.argsort(-s)], atol=1e-10)
    np.testing.assert_allclose(neural_sort_values(s, 1e-3), np.sort(s)[::-1], atol=1e-10)
    np.testing.assert_allclose(neural_sort_values(s, 1e-3, descending=False), np.sort(s))


def test_neuralsort_derivatives(rng):
    s = rng.standard_normal((2, 6))
    ds.check_grads(lambda s: neural_sort(s, 0.6), (s,), order=2)
    ds.check_grads(lambda s: neural_sort_values(s, 0.6), (s,), order=2)
    f = lambda s: neural_sort(s, 0.6)
    np.testing.assert_allclose(ds.vmap(f)(s), f(s))
    # the fast plain-array VJP (O(n log n) apart from one pass over P) and the traced one agree
    P = neural_sort(s, 0.6)
    g = rng.standard_normal(P.shape)
    np.testing.assert_allclose(_vjp_raw(g, P, s, 0.6), _vjp_traced(g, P, s, 0.6), atol=1e-12)


def test_neuralsort_float32_and_errors(rng):
    s = rng.standard_normal(5).astype(np.float32)
    assert neural_sort(s).dtype == np.float32
    with pytest.raises(ValueError, match="neural_sort: tau must be"):
        neural_sort(s, 0.0)
    with pytest.raises(ValueError, match="neural_sort: expected scores with at least one axis"):
        neural_sort(np.float64(1.0))


def test_sinkhorn_plan_marginals_and_limits(rng):
    x = rng.standard_normal((3, 7))
    P = sinkhorn_plan(x, 0.05, n_iter=300)
    np.testing.assert_allclose(P.sum(-2), 1.0 / 7, atol=1e-12)  # exact after the last g update
    np.testing.assert_allclose(P.sum(-1), 1.0 / 7, atol=1e-6)
    # well-separated values (after the squashing): the small-epsilon limit is the hard sort
    x = np.stack([rng.permutation(7) for _ in range(3)]) + 0.1 * rng.uniform(size=(3, 7))
    hard_rank = np.argsort(np.argsort(x, axis=-1), axis=-1) + 1.0
    np.testing.assert_allclose(sinkhorn_sort(x, 1e-3, n_iter=500), np.sort(x, -1), atol=0.02)
    np.testing.assert_allclose(sinkhorn_rank(x, 1e-3, n_iter=500), hard_rank, atol=0.05)


def test_sinkhorn_derivatives_and_batching(rng):
    x = rng.standard_normal((2, 5))
    ds.check_grads(lambda x: sinkhorn_sort(x, 0.1, n_iter=15), (x,), order=2)
    ds.check_grads(lambda x: sinkhorn_rank(x, 0.1, n_iter=15), (x,), order=1)
    f = lambda x: sinkhorn_rank(x, 0.1, n_iter=15)
    np.testing.assert_allclose(ds.vmap(f)(x), f(x), atol=1e-12)


def test_sinkhorn_errors():
    with pytest.raises(ValueError, match="sinkhorn_plan: epsilon must be"):
        sinkhorn_plan(np.ones(3), -1.0)
    with pytest.raises(ValueError, match="sinkhorn_plan: n_iter must be"):
        sinkhorn_plan(np.ones(3), n_iter=0)
