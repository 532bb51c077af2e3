"""diffsys.systems.search: the marginal likelihood (value and derivatives), the DuckDB
index (round trip, SQL top-k equals NumPy's), and end-to-end training with a refreshed index
(staleness measured; retrieval learned beats untrained encoders)."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds

pytest.importorskip("duckdb")

from diffsys import optim  # noqa: E402
from diffsys.systems.db import Database, QueryError  # noqa: E402
from diffsys.systems.search import (  # noqa: E402
    EmbeddingIndex,
    RetrievalQA,
    marginal_nll,
    staleness,
    top_k,
    train_search,
)


def test_marginal_nll_value_and_grads(rng):
    s, r = rng.normal(size=(3, 5)), np.log(rng.uniform(0.05, 1.0, size=(3, 5)))
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    expected = -np.mean(np.log(np.sum(p * np.exp(r), axis=1)))
    np.testing.assert_allclose(marginal_nll(s, r), expected, rtol=1e-13)
    ds.check_grads(marginal_nll, (s, r), order=2)
    with pytest.raises(ValueError, match=r"marginal_nll: retrieval scores \(3, 5\)"):
        marginal_nll(s, r[:, :4])


def test_top_k_matches_argsort(rng):
    s = rng.normal(size=(4, 50))
    np.testing.assert_array_equal(top_k(s, 7), np.argsort(-s, axis=1)[:, :7])
    with pytest.raises(QueryError, match="1 <= k <= 50"):
        top_k(s, 51)


def test_index_round_trip_and_sql_topk(rng):
    db = Database()
    index = EmbeddingIndex(db, "emb")
    with pytest.raises(QueryError, match="the index is empty"):
        index.search(np.zeros((1, 3)), 2)
    e = rng.normal(size=(80, 6))
    index.write(np.arange(80), e)
    np.testing.assert_array_equal(index.matrix, e)
    assert db.tables() == ("emb",) and index.version == 1
    for q in rng.normal(size=(5, 6)):
        np.testing.assert_array_equal(index.search_sql(q, 9), np.argsort(-(e @ q))[:9])
    with pytest.raises(QueryError, match="finite embeddings"):
        index.write(np.arange(2), np.array([[np.nan], [1.0]]))


def _corpus(seed=0, docs=200, topic=8, qdim=12, answers=5, questions=600):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, answers, docs)
    t = rng.normal(size=(answers, topic))[labels] + 0.8 * rng.normal(size=(docs, topic))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    content = np.concatenate([t, np.eye(answers)[labels]], axis=1)
    gold = rng.integers(0, docs, questions)
    x = t[gold] @ rng.normal(size=(topic, qdim)) + 0.05 * rng.normal(size=(questions, qdim))
    return content, labels, x, labels[gold]


def test_refreshed_index_staleness_is_measured():
    content, labels, x, y = _corpus()
    db = Database()
    runs = {}
    for every in (1, 5):
        model = RetrievalQA(12, content.shape[1], 8, 5, text_dim=8, key=0)
        index = EmbeddingIndex(db, f"i{every}")
        _, hist = train_search(model, optim.adam(0.05), index, content, x, y, doc_labels=labels,
                               k=10, steps=12, batch=32, refresh_every=every)  # fmt: skip
        runs[every] = hist
        assert hist.refreshes == list(range(0, 12, every)) and index.version == len(hist.refreshes)
    fresh = runs[1]
    assert max(fresh.staleness) < 1e-12 and fresh.loss == pytest.approx(fresh.loss_fresh)
    stale = runs[5]
    at_refresh = [stale.staleness[i] for i in stale.refreshes]
    between = [s for i, s in enumerate(stale.staleness) if i not in stale.refreshes]
    assert max(at_refresh) < 1e-12 and min(between) > 1e-4
    assert len(stale.precision) == 12 and all(0 <= p <= 1 for p in stale.precision)


def test_end_to_end_training_beats_untrained_encoders():
    content, labels, x, y = _corpus(seed=1)
    db = Database()
    acc = {}
    for name, trainable in [
        ("reader", ("reader",)),
        ("all", ("query_encoder", "doc_encoder", "reader")),
    ]:
        model = RetrievalQA(12, content.shape[1], 8, 5, text_dim=8, key=3)
        start = model
        index = EmbeddingIndex(db, f"t_{name}")
        model, hist = train_search(model, optim.adam(0.05), index, content, x[:500], y[:500],
                                   k=10, steps=150, batch=32, refresh_every=10,
                                   trainable=trainable)  # fmt: skip
        if name == "reader":
            np.testing.assert_array_equal(model.query_encoder.weight, start.query_encoder.weight)
        index.write(np.arange(len(content)), np.asarray(model.embed_docs(content)))
        cand = index.search(np.asarray(model.query_encoder(x[500:])), 10)
        acc[name] = float(np.mean(model.predict(x[500:], content, cand) == y[500:]))
        assert hist.loss[-1] < hist.loss[0]
    assert acc["all"] > acc["reader"] + 0.1 and acc["all"] > 0.85


def test_staleness_is_the_relative_frobenius_distance():
    fresh = np.array([[3.0, 0.0], [0.0, 4.0]])
    assert staleness(fresh, fresh) == 0.0
    assert staleness(fresh + np.array([[0.0, 0.5], [0.0, 0.0]]), fresh) == pytest.approx(0.1)


def test_import_without_duckdb_names_the_extra():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['duckdb'] = None\n"
        "try:\n    import diffsys.systems.search\nexcept ImportError as e:\n    print(e)\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={"PYTHONPATH": str(src)}, check=True,
    ).stdout  # fmt: skip
    assert "'db' extra" in out and "diffsys[db]" in out
