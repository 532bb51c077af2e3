"""diffsys.systems.db.ops: derivatives against finite differences (order 2 where the
function is smooth), hard forms against independent references, relaxed -> hard limits."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds

pytest.importorskip("duckdb")

from diffsys.relax import soft_topk_mask  # noqa: E402
from diffsys.systems.db import (  # noqa: E402
    hard_group_aggregate,
    hard_predicate,
    hard_select,
    linear_score,
    listmle_loss,
    listnet_loss,
    log_soft_predicate,
    ndcg,
    pairwise_logistic_loss,
    soft_group_aggregate,
    soft_ndcg,
    soft_ndcg_loss,
    soft_predicate,
    soft_select,
)


def test_linear_score_grads(rng):
    x, w = rng.normal(size=(7, 3)), rng.normal(size=3)
    ds.check_grads(lambda x, w, b: linear_score(x, w, b), (x, w, 0.3), order=2)
    np.testing.assert_allclose(linear_score(x, w, 0.3), x @ w + 0.3, rtol=1e-13)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_soft_predicate_grads_in_values_threshold_and_temperature(op, rng):
    x = rng.normal(size=6)
    ds.check_grads(lambda x, t, T: soft_predicate(x, t, op, T), (x, 0.2, 0.7), order=2)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_soft_predicate_tends_to_sql_comparison(op, rng):
    x = np.round(rng.normal(size=50), 2)
    x[:3] = 0.25  # equality: strict or not, as SQL
    hard = hard_predicate(x, 0.25, op)
    expected = {"<": x < 0.25, "<=": x <= 0.25, ">": x > 0.25, ">=": x >= 0.25}[op]
    np.testing.assert_array_equal(hard, expected.astype(float))
    off = x != 0.25
    gaps = [np.abs(soft_predicate(x, 0.25, op, T) - hard)[off].max() for T in (1.0, 0.1, 1e-3)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2


def test_soft_select_without_membership_is_soft_topk_mask(rng):
    s = rng.normal(size=20)
    np.testing.assert_array_equal(soft_select(s, 4, None, 0.3), soft_topk_mask(s, 4, "l2", 0.3))


def test_soft_select_grads_with_membership(rng):
    s, logm = rng.normal(size=12), -rng.random(12)
    # l2 soft top-k is piecewise linear: order 1 (its second derivative is 0 a.e.)
    ds.check_grads(lambda s, m: soft_select(s, 3, m, 0.5), (s, logm), order=1)


def test_soft_select_tends_to_hard_select_with_predicates(rng):
    s = rng.normal(size=40)
    x = rng.normal(size=40)
    keep = hard_predicate(x, 0.0, ">")
    hard = hard_select(s, 5, keep)
    assert hard.sum() == 5 and np.all(hard <= keep)
    assert set(np.flatnonzero(hard)) == set(np.argsort(-np.where(keep > 0, s, -np.inf))[:5])
    gaps = []
    for T in (1.0, 0.1, 1e-3):
        logm = log_soft_predicate(x, 0.0, ">", T)
        gaps.append(np.abs(soft_select(s, 5, logm, T) - hard).max())
    assert gaps[2] < gaps[0] and gaps[2] < 1e-2


def test_hard_select_fewer_kept_than_k():
    s = np.array([3.0, 2.0, 1.0, 0.0])
    np.testing.assert_array_equal(hard_select(s, 3, np.array([0, 1, 0, 1.0])), [0, 1, 0, 1])


@pytest.mark.parametrize("how", ["sum", "count", "mean", "max"])
def test_soft_group_aggregate_grads(how, rng):
    v = rng.normal(size=8)
    m = rng.uniform(0.1, 0.9, size=(8, 3))
    ds.check_grads(lambda v, m: soft_group_aggregate(v, m, how, 0.5), (v, m), order=2)


@pytest.mark.parametrize("how", ["sum", "count", "mean", "max"])
def test_group_aggregates_against_a_loop(how, rng):
    v = rng.normal(size=30)
    codes = rng.integers(0, 4, size=30)
    codes[codes == 3] = 2  # group 3 empty
    m = np.eye(4)[codes]
    expected = []
    for g in range(4):
        members = v[codes == g]
        if how == "count":
            expected.append(len(members))
        elif len(members) == 0:
            expected.append(np.nan)
        else:
            expected.append({"sum": np.sum, "mean": np.mean, "max": np.max}[how](members))
    np.testing.assert_allclose(hard_group_aggregate(v, m, how), expected, rtol=1e-12)
    soft = soft_group_aggregate(v, m[:, :3], how, 1e-4)
    np.testing.assert_allclose(soft, expected[:3], rtol=1e-3, atol=1e-3)


def test_ndcg_matches_scikit_learn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    s = rng.normal(size=(5, 30))
    rel = rng.integers(0, 4, size=(5, 30)).astype(float)
    for k in (None, 10):
        ours = ndcg(s, rel, k)
        theirs = [metrics.ndcg_score([2.0**r - 1], [x], k=k) for r, x in zip(rel, s, strict=True)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_soft_ndcg_tends_to_ndcg_and_has_gradients(rng):
    s = rng.normal(size=(3, 15))
    rel = rng.integers(0, 3, size=(3, 15)).astype(float)
    for k in (None, 5):
        np.testing.assert_allclose(soft_ndcg(s, rel, k, 1e-4), ndcg(s, rel, k), atol=1e-6)
    ds.check_grads(lambda s: soft_ndcg_loss(s, rel, 5, 0.5), (s,), order=1)


def test_listnet_grads_and_value(rng):
    s, rel = rng.normal(size=(2, 6)), rng.integers(0, 3, size=(2, 6)).astype(float)
    p = np.exp(rel) / np.exp(rel).sum(-1, keepdims=True)
    logq = s - np.log(np.exp(s).sum(-1, keepdims=True))
    np.testing.assert_allclose(listnet_loss(s, rel), -(p * logq).sum(-1).mean(), rtol=1e-12)
    ds.check_grads(lambda s: listnet_loss(s, rel), (s,), order=2)


def test_listmle_against_plackett_luce_loop(rng):
    s, rel = rng.normal(size=(2, 6)), rng.permutation(12).reshape(2, 6).astype(float)
    expected = 0.0
    for row_s, row_r in zip(s, rel, strict=True):
        order = np.argsort(-row_r)
        for i in range(6):
            rest = row_s[order[i:]]
            expected += np.log(np.exp(rest).sum()) - row_s[order[i]]
    np.testing.assert_allclose(listmle_loss(s, rel), expected / 2, rtol=1e-12)
    ds.check_grads(lambda s: listmle_loss(s, rel), (s,), order=2)


def test_pairwise_logistic_against_a_loop(rng):
    s, rel = rng.normal(size=7), rng.integers(0, 3, size=7).astype(float)
    terms = [
        np.log1p(np.exp(-(s[i] - s[j]))) for i in range(7) for j in range(7) if rel[i] > rel[j]
    ]
    np.testing.assert_allclose(pairwise_logistic_loss(s, rel), np.mean(terms), rtol=1e-12)
    ds.check_grads(lambda s: pairwise_logistic_loss(s, rel), (s,), order=2)


def test_ranking_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"listnet_loss: scores \(3,\) and relevance \(4,\)"):
        listnet_loss(np.zeros(3), np.zeros(4))


def test_soft_topk_gradient_matches_the_benchmarks_hand_written_numpy(rng):
    """The hand-written NumPy derivative of the db_soft_topk benchmark (sort, SciPy's
    isotonic regression, block averages) agrees with diffsys's VJP."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        from workloads.db import K, numpy_topk_vjp
    finally:
        sys.path.pop(0)
    x, w, gain = rng.normal(size=(300, 5)), rng.normal(size=5), rng.random(300)
    mask, pull = ds.vjp(lambda w: soft_topk_mask(x @ w, K, "l2", 1.0), w)
    ref_mask, ref_grad = numpy_topk_vjp(x, w, gain)
    np.testing.assert_allclose(mask, ref_mask, atol=1e-12)
    np.testing.assert_allclose(pull(gain)[0], ref_grad, rtol=1e-10, atol=1e-12)
