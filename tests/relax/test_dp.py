"""relax.dp: smoothed max operators and the dynamic programmes built on them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import diffsys as ds
from diffsys.relax import (
    dp,
    smoothed_max,
    smoothed_min,
    soft_dtw,
    soft_dtw_cost,
    soft_edit_distance,
    soft_shortest_path,
    soft_viterbi,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("reg", ["entropy", "l2"])
def test_smoothed_max_gap_bounds_and_gradients(reg):
    x = RNG.standard_normal((4, 6))
    hard = smoothed_max.hard(x)
    np.testing.assert_array_equal(hard, x.max(-1))
    gaps = [np.abs(smoothed_max(x, t, reg) - hard).max() for t in (1.0, 0.1, 0.01)]
    bound = np.log(6) if reg == "entropy" else 0.5
    assert all(g <= bound * t + 1e-12 for g, t in zip(gaps, (1.0, 0.1, 0.01), strict=True))
    assert gaps[0] > gaps[2]
    ds.check_grads(lambda x: smoothed_max(x, 0.7, reg), (x,), order=2)
    # the gradient is a distribution (softmax / sparsemax), sparse for l2 at low temperature
    g = ds.grad(lambda x: smoothed_max(x, 0.05, reg).sum())(x)
    np.testing.assert_allclose(g.sum(-1), 1.0)
    assert (g >= 0).all()
    if reg == "l2":
        assert (g == 0).any()


def test_smoothed_min_is_minus_max():
    x = RNG.standard_normal(5)
    for reg in ("entropy", "l2"):
        want = -float(smoothed_max(-x, 0.3, reg))
        assert float(smoothed_min(x, 0.3, reg)) == pytest.approx(want)
    with pytest.raises(ValueError, match="regularization must be one of"):
        smoothed_max(x, 1.0, "kl")


def _sdtw_reference(D, gamma):
    """soft-DTW by the textbook double loop (Cuturi & Blondel 2017, Alg. 1)."""
    n, m = D.shape
    R = np.full((n + 1, m + 1), np.inf)
    R[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r = -np.array([R[i - 1, j - 1], R[i - 1, j], R[i, j - 1]]) / gamma
            mx = r.max()
            R[i, j] = D[i - 1, j - 1] - gamma * (mx + np.log(np.exp(r - mx).sum()))
    return R[n, m]


def _dtw_bruteforce(D):
    """min over all monotone alignment paths, enumerated."""
    n, m = D.shape
    best = np.inf

    def walk(i, j, acc):
        nonlocal best
        acc += D[i, j]
        if (i, j) == (n - 1, m - 1):
            best = min(best, acc)
            return
        for di, dj in ((1, 1), (1, 0), (0, 1)):
            if i + di < n and j + dj < m:
                walk(i + di, j + dj, acc)

    walk(0, 0, 0.0)
    return best


@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 4), (5, 3), (7, 7)])
def test_soft_dtw_matches_the_double_loop_and_hard_is_dtw(n, m):
    D = RNG.uniform(0, 2, (n, m))
    for gamma in (1.0, 0.1):
        want = _sdtw_reference(D, gamma)
        assert float(soft_dtw_cost(D, gamma)) == pytest.approx(want, rel=1e-12)
    assert float(soft_dtw_cost.hard(D)) == pytest.approx(_dtw_bruteforce(D))
    gaps = [abs(float(soft_dtw_cost(D, g)) - _dtw_bruteforce(D)) for g in (1.0, 0.1, 0.001)]
    if n > 1 and m > 1:  # several alignments: the soft value is below the best one
        assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01 * (n + m)
    else:  # a single alignment: soft and hard agree
        assert max(gaps) < 1e-12


def test_soft_dtw_gradients_fast_backward_equals_traced_and_finite_differences():
    x, y = RNG.standard_normal((6, 2)), RNG.standard_normal((5, 2))
    D = RNG.uniform(0, 2, (6, 5))
    fast = ds.grad(lambda d: soft_dtw_cost(d, 0.5))(D)
    traced = ds.grad(lambda d: dp._sdtw_traced(d, 0.5))(D)
    np.testing.assert_allclose(fast, traced, rtol=1e-12, atol=1e-14)
    ds.check_grads(lambda d: soft_dtw_cost(d, 0.5), (D,), order=2)
    ds.check_grads(lambda x, y: soft_dtw(x, y, 0.5), (x, y), order=2)
    # the gradient of soft-DTW wrt D is the expected alignment: rows and columns are covered
    assert fast[0, 0] == pytest.approx(1.0) and fast[-1, -1] == pytest.approx(1.0)


def test_soft_dtw_bad_shapes():
    with pytest.raises(ValueError, match="same feature size"):
        soft_dtw(np.zeros((3, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"2-D and non-empty, got shape \(0, 3\)"):
        soft_dtw_cost(np.zeros((0, 3)))


def _paths(T, S):
    return itertools.product(range(S), repeat=T)


def test_soft_viterbi_is_the_forward_algorithm_and_hard_is_viterbi():
    e, tr = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 3))
    scores = [sum(e[t, s[t]] for t in range(4)) + sum(tr[s[t], s[t + 1]] for t in range(3))
              for s in _paths(4, 3)]
    assert float(soft_viterbi(e, tr, 1.0)) == pytest.approx(np.log(np.exp(scores).sum()))
    assert float(soft_viterbi.hard(e, tr)) == pytest.approx(max(scores))
    for reg in ("entropy", "l2"):
        ds.check_grads(lambda e, tr: soft_viterbi(e, tr, 0.5, reg), (e, tr), order=2)
    # gradient of the log partition: posterior marginals, each step sums to one
    g = ds.grad(lambda e: soft_viterbi(e, tr, 1.0))(e)
    np.testing.assert_allclose(g.sum(-1), 1.0)


def test_soft_shortest_path_on_a_dag():
    n = 6
    W = np.full((n, n), np.inf)
    for i in range(n):
        for j in range(i + 1, min(n, i + 3)):
            W[i, j] = RNG.uniform(0.1, 2.0)

    def lengths(i=0):
        if i == n - 1:
            yield 0.0
        for j in range(i + 1, n):
            if np.isfinite(W[i, j]):
                yield from (W[i, j] + rest for rest in lengths(j))

    all_lengths = list(lengths())
    assert float(soft_shortest_path.hard(W)) == pytest.approx(min(all_lengths))
    assert float(soft_shortest_path(W, 1.0)) == pytest.approx(
        -np.log(np.exp(-np.array(all_lengths)).sum()))
    gaps = [abs(float(soft_shortest_path(W, t, "l2")) - min(all_lengths)) for t in (1.0, 0.01)]
    assert gaps[1] < gaps[0] or gaps[0] == 0
    ds.check_grads(lambda w: soft_shortest_path(w, 0.5), (np.where(np.isfinite(W), W, 0.0),),
                   order=2)


def _edit_reference(C, ins, dele, gamma):
    """Wagner-Fischer, cell by cell, with a soft minimum (gamma = 0: the hard one)."""
    n, m = C.shape
    R = np.zeros((n + 1, m + 1))
    R[:, 0] = np.arange(n + 1) * dele
    R[0, :] = np.arange(m + 1) * ins
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            z = np.array([R[i - 1, j] + dele, R[i, j - 1] + ins, R[i - 1, j - 1] + C[i - 1, j - 1]])
            R[i, j] = z.min() if gamma == 0 else -gamma * np.log(np.exp(-z / gamma).sum())
    return R[n, m]


@pytest.mark.parametrize(("n", "m"), [(1, 1), (3, 6), (6, 4)])
def test_soft_edit_distance_against_wagner_fischer(n, m):
    x, y = RNG.integers(0, 3, n), RNG.integers(0, 3, m)
    C = (x[:, None] != y[None, :]).astype(float)
    assert float(soft_edit_distance.hard(C, 1.0, 1.5)) == _edit_reference(C, 1.0, 1.5, 0)
    for gamma in (1.0, 0.2):
        want = _edit_reference(C, 1.0, 1.5, gamma)
        assert float(soft_edit_distance(C, 1.0, 1.5, gamma)) == pytest.approx(want, rel=1e-12)
    ds.check_grads(lambda c, i, d: soft_edit_distance(c, i, d, 0.5), (C + 0.1, 1.0, 1.5), order=2)
