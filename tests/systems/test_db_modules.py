"""The thin modules and stage builders of diffsys.systems.db: relaxed/hard pairs whose gap
shrinks with the temperature, stage kinds, pipelines with ranking-loss terms."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds

pytest.importorskip("duckdb")

import diffsys.pipeline as pl  # noqa: E402
from diffsys import optim  # noqa: E402
from diffsys.systems.db import (  # noqa: E402
    LinearScorer,
    QueryError,
    SoftGroupBy,
    SoftPredicate,
    SoftTopK,
    ndcg,
    ranking_loss,
    relaxed_stage,
    scoring_stage,
)


def test_soft_predicate_module_gap_shrinks_and_grads(rng):
    x = rng.normal(size=40)
    gaps = [
        np.abs(SoftPredicate(0.1, ">=", temperature=t).relaxed(x) - (x >= 0.1)).max()
        for t in (1.0, 0.1, 0.001)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    p = SoftPredicate(0.1, "<", temperature=0.3)
    g = ds.grad(lambda p: p(x).sum())(p)
    expected = (lambda s: s * (1 - s) / 0.3)(1 / (1 + np.exp(-(0.1 - x) / 0.3))).sum()
    np.testing.assert_allclose(g.threshold, expected, rtol=1e-12)


def test_soft_topk_module_and_errors(rng):
    s = rng.normal(size=30)
    m = SoftTopK(4, regularization_strength=1e-4)
    np.testing.assert_allclose(m.relaxed(s), m.hard(s), atol=1e-9)
    assert m.hard(s).sum() == 4
    with pytest.raises(QueryError, match=r"SoftTopK\(k=40\): k is larger than the 30"):
        SoftTopK(40)(s)
    with pytest.raises(QueryError, match="k must be a whole number"):
        SoftTopK(0)


def test_soft_group_by_module(rng):
    v = rng.normal(size=12)
    m = np.eye(3)[rng.integers(0, 3, 12)]
    for how in ("sum", "count", "mean", "max"):
        g = SoftGroupBy(how, temperature=1e-4)
        np.testing.assert_allclose(g.relaxed(v, m), g.hard(v, m), atol=1e-3)
    with pytest.raises(QueryError, match="how must be one of"):
        SoftGroupBy("median")


def test_linear_scorer_checks_the_feature_count():
    with pytest.raises(QueryError, match=r"LinearScorer\(features=3\).*got shape \(5, 2\)"):
        LinearScorer(np.ones(3))(np.ones((5, 2)))


def test_stage_builders_set_the_kind():
    assert scoring_stage("score", LinearScorer(np.ones(2))).kind == "exact"
    assert relaxed_stage("keep", SoftPredicate(0.0)).kind == "relaxed"
    st = relaxed_stage("top", SoftTopK(2), straight_through=True)
    assert st.kind == "straight_through"
    with pytest.raises(ValueError, match="loss must be one of"):
        ranking_loss("r", "score", "rel", loss="hinge")


@pytest.mark.parametrize("loss", ["ndcg", "listnet", "listmle", "pairwise"])
def test_learning_to_rank_in_a_pipeline(loss, rng):
    w_true = np.array([1.0, -2.0, 0.5])
    x = rng.normal(size=(8, 40, 3))
    rel = np.clip(np.round((x @ w_true) / 1.2 + 1.0), 0, 3)
    pipe = pl.Pipeline(
        [scoring_stage("score", LinearScorer(np.array([0.1, 0.1, 0.1])))], batch_keys=("x", "rel")
    )
    pipe.add_loss(ranking_loss("rank", "score", "rel", loss=loss))
    batch = {"x": x, "rel": rel}
    before = ndcg(pipe(batch), rel, 10).mean()
    ts = pipe.init(optim.adam(0.1))
    for _ in range(100):
        ts, _ = pipe.step(ts, batch)
    pipe.params = ts.params
    after = ndcg(pipe(batch), rel, 10).mean()
    assert after > before + 0.1 and after > 0.9
