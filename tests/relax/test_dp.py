"""relax.dp: smoothed max operators and the dynamic programmes built on them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.relax import (
    dp,
    smoothed_max,
    smoothed_min,
    soft_bellman_ford,
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


# --- memory-light backward passes: the DP's reverse recursion on its table --------------------


def _traced_grad(fun, args, argnums):
    """The gradient through the recursion written in diffsys operations (a tape of every op)."""
    return ds.grad(fun, argnums)(*args)


def _dag(n, density=1.0, rng=RNG):
    W = np.triu(rng.uniform(0.1, 2.0, (n, n)), 1)
    W[(W == 0) | (rng.uniform(size=(n, n)) > density)] = np.inf
    return W


@pytest.mark.parametrize("reg", ["entropy", "l2"])
def test_fast_backward_equals_the_traced_recursion(reg):
    e, tr = RNG.standard_normal((7, 4)), RNG.standard_normal((4, 4))
    fast = ds.grad(lambda e, tr: soft_viterbi(e, tr, 0.5, reg), (0, 1))(e, tr)
    slow = _traced_grad(lambda e, tr: dp._viterbi(e, tr, 0.5, reg, False), (e, tr), (0, 1))
    for f, s in zip(fast, slow, strict=True):
        np.testing.assert_allclose(f, s, rtol=1e-10, atol=1e-12)
    C = RNG.uniform(0, 2, (6, 8))
    fast = ds.grad(lambda c, i, d: soft_edit_distance(c, i, d, 0.3, reg), (0, 1, 2))(C, 1.0, 1.5)
    slow = _traced_grad(lambda c, i, d: dp._edit(c, i, d, 0.3, reg, False), (C, 1.0, 1.5),
                        (0, 1, 2))
    for f, s in zip(fast, slow, strict=True):
        np.testing.assert_allclose(f, s, rtol=1e-10, atol=1e-12)
    W = _dag(9, density=0.6)
    fast = ds.grad(lambda w: soft_shortest_path(w, 0.4, reg))(W)
    slow = _traced_grad(lambda w: dp._shortest(w, 0.4, reg, False), (W,), 0)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    assert (fast[~np.isfinite(W)] == 0).all()
    G = _general_graph(7)
    reach = np.isfinite(soft_bellman_ford.hard(G))
    ct = RNG.standard_normal(7)
    fast = ds.grad(lambda w: dnp_where(reach, soft_bellman_ford(w, 0.4, reg), 0.0) @ ct)(G)
    slow = _traced_grad(lambda w: dnp_where(reach, dp._bf_traced(w, 0.4, reg, 0, 6), 0.0) @ ct,
                        (G,), 0)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)


def test_fast_backward_keeps_the_dtype_and_nests():
    e, tr = RNG.standard_normal((5, 3)).astype(np.float32), np.zeros((3, 3), np.float32)
    g = ds.grad(lambda e: soft_viterbi(e, tr, 1.0))(e)
    assert g.dtype == np.float32
    # hessian-vector products run the traced recursion through the same rule
    C = RNG.uniform(0, 2, (4, 5))
    ds.check_grads(lambda c: soft_edit_distance(c, 1.0, 1.0, 0.5, "entropy"), (C,), order=2,
                   modes=("rev",))


def _peak_mib(fun):
    import tracemalloc

    fun()
    tracemalloc.start()
    try:
        fun()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_backward_passes_keep_only_the_dp_table():
    """A tape of every operation held 3.9 MiB (Viterbi 200 x 32), 7.3 MiB (edit 150 x 150)
    and 13 MiB (DAG of 120 nodes); the reverse recursions hold the table and one step."""
    rng = np.random.default_rng(1)
    e, tr = rng.standard_normal((200, 32)), rng.standard_normal((32, 32))
    C = rng.uniform(0, 1, (150, 150))
    W = _dag(120, rng=rng)
    assert _peak_mib(lambda: ds.grad(lambda e, t: soft_viterbi(e, t, 0.5), (0, 1))(e, tr)) < 0.6
    assert _peak_mib(lambda: ds.grad(lambda c: soft_edit_distance(c, 1.0, 1.0, 0.5))(C)) < 1.5
    assert _peak_mib(lambda: ds.grad(lambda w: soft_shortest_path(w, 0.5))(W)) < 0.6


# --- Bellman-Ford on general graphs ------------------------------------------------------------


def _general_graph(n, p=0.4, rng=RNG, negative=True):
    """A random digraph with cycles; with ``negative``, negative edges but no negative cycle
    (lengths ``w + h[i] - h[j]`` from ``w >= 0.1``: every cycle keeps its positive length)."""
    W = rng.uniform(0.1, 2.0, (n, n))
    if negative:
        h = rng.uniform(0, 3, n)
        W = W + h[:, None] - h[None, :]
    W[rng.uniform(size=(n, n)) > p] = np.inf
    np.fill_diagonal(W, np.inf)
    W[W == 0] = 0.01
    return W


def _scipy_shortest(W, source):
    from scipy.sparse.csgraph import csgraph_from_dense, shortest_path

    return shortest_path(csgraph_from_dense(W, null_value=np.inf), method="BF",
                         indices=source)


@pytest.mark.parametrize("seed", range(6))
def test_bellman_ford_hard_equals_scipy_and_soft_tends_to_it(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    W = _general_graph(n, rng=rng, negative=seed % 2 == 0)
    source = int(rng.integers(n))
    want = _scipy_shortest(W, source)
    np.testing.assert_allclose(soft_bellman_ford.hard(W, source=source), want, rtol=1e-12)
    reach = np.isfinite(want)
    gaps = []
    for t in (1.0, 0.1, 0.01):
        soft = soft_bellman_ford(W, t, source=source)
        assert (np.isinf(soft) == ~reach).all()
        gap = np.max(want[reach] - soft[reach])
        assert 0 <= gap <= t * (n - 1) * np.log(n + 1) + 1e-9  # entropy: below the min
        gaps.append(gap)
    assert gaps[2] < gaps[0] or gaps[0] == 0
    l2 = soft_bellman_ford(W, 0.01, "l2", source=source)
    np.testing.assert_allclose(l2[reach], want[reach], atol=0.01 * (n - 1))


def test_bellman_ford_is_the_soft_min_over_walks_of_the_time_expanded_graph():
    n, rounds, T = 3, 3, 0.7
    W = _general_graph(n, p=0.8, rng=np.random.default_rng(3))
    W[0, 1] = -0.5
    want = np.full(n, np.inf)
    total = np.zeros(n)
    for walk in itertools.product(range(n), repeat=rounds):  # node at each round, from node 0
        length, at = 0.0, 0
        for v in walk:
            length += 0.0 if v == at else W[at, v]
            at = v
        total[at] += np.exp(-length / T)
    with np.errstate(divide="ignore"):
        want = -T * np.log(total)
    np.testing.assert_allclose(soft_bellman_ford(W, T, rounds=rounds), want, rtol=1e-12)


def test_bellman_ford_gradients():
    W = _general_graph(5, p=0.7, rng=np.random.default_rng(4))
    finite = np.isfinite(W)
    ct = np.array([0.0, 1.0, -0.5, 2.0, 0.3])
    ct[~np.isfinite(soft_bellman_ford.hard(W))] = 0.0

    def f(w, reg="entropy"):
        full = dnp_where(finite, w, np.inf)
        return soft_bellman_ford(full, 0.5, reg) @ ct

    w0 = np.where(finite, W, 0.0)
    ds.check_grads(f, (w0,), order=2)
    ds.check_grads(lambda w: f(w, "l2"), (w0,), order=1)
    g = ds.grad(f)(w0)
    assert (g[~finite] == 0).all() and np.abs(g[finite]).sum() > 0
    # a traced temperature takes the traced recursion
    ds.check_grads(lambda t: soft_bellman_ford(W, t)[1:].sum(), (0.6,), order=2)


def dnp_where(mask, a, b):
    import diffsys.numpy as dnp

    return dnp.where(mask, a, b)


def test_bellman_ford_bad_input():
    W = np.array([[np.inf, 1.0, np.inf], [np.inf, np.inf, -3.0], [1.0, np.inf, np.inf]])
    with pytest.raises(ValueError, match=r"negative cycle reachable from source 0.*rounds=k"):
        soft_bellman_ford(W, 0.5)
    with pytest.raises(ValueError, match="negative cycle"):
        soft_bellman_ford.hard(W)
    # a bounded number of edges is well defined with a negative cycle
    np.testing.assert_allclose(soft_bellman_ford.hard(W, rounds=2), [0.0, 1.0, -2.0])
    with pytest.raises(ValueError, match=r"square \(n, n\) matrix, got shape \(2, 3\)"):
        soft_bellman_ford(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"source must be a node index in \[0, 3\), got 5"):
        soft_bellman_ford(np.ones((3, 3)), source=5)
    with pytest.raises(ValueError, match="NaN or -inf"):
        soft_bellman_ford(np.full((2, 2), -np.inf))


@pytest.mark.parametrize("regularization", ["entropy", "l2"])
def test_smoothed_max_ignores_minus_inf_with_zero_not_nan_derivatives(regularization):
    """-inf entries (no edge, no path) take no part: value, gradient in x and in the
    temperature, and second derivatives equal those of the finite entries alone; a row of
    only -inf is -inf with zero derivatives (the old rule gave 0 * inf = NaN)."""
    from diffsys.relax import smoothed_max

    x = np.array([[-np.inf, 1.0, 2.0], [-np.inf, -np.inf, -np.inf]])
    finite = np.array([1.0, 2.0])

    def total(x, t):
        v = smoothed_max(x, t, regularization)
        return dnp.sum(dnp.where(dnp.isfinite(v), v, 0.0))

    def alone(x, t):
        return smoothed_max(x, t, regularization)

    value = smoothed_max(x, 0.7, regularization)
    assert value[1] == -np.inf and value[0] == pytest.approx(alone(finite, 0.7), rel=1e-15)
    gx, gt = ds.grad(total, argnums=(0, 1))(x, 0.7)
    ax, at = ds.grad(alone, argnums=(0, 1))(finite, 0.7)
    np.testing.assert_allclose(gx, [[0.0, *ax], [0.0, 0.0, 0.0]], rtol=1e-14)
    assert gt == pytest.approx(at, rel=1e-14)
    _, tangent = ds.jvp(lambda t: total(x, t), (0.7,), (1.0,))
    assert tangent == pytest.approx(at, rel=1e-14)
    h = ds.hessian(lambda t: total(x, t))(0.7)
    assert np.isfinite(h) and h == pytest.approx(ds.hessian(lambda t: alone(finite, t))(0.7))
