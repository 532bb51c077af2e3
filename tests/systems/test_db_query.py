"""diffsys.systems.db.Query: DuckDB's compiled result equals the hard NumPy result row for
row; relaxed -> hard as the temperature falls; gradients; pipelines; JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffsys as ds

pytest.importorskip("duckdb")

import diffsys.pipeline as pl  # noqa: E402
from diffsys import optim  # noqa: E402
from diffsys.systems.db import (  # noqa: E402
    Database,
    Param,
    Query,
    QueryError,
    query_stage,
    sql_query_stage,
)

N = 3000


@pytest.fixture(scope="module")
def db():
    rng = np.random.default_rng(7)
    d = Database()
    d.create_table(
        "products",
        {
            "id": rng.permutation(N) + 1000,
            "price": np.round(rng.uniform(1, 100, N), 2),
            "rating": rng.uniform(0, 5, N),
            "stock": rng.integers(0, 50, N).astype(np.int32),
            "category": rng.integers(0, 6, N),
            "brand": np.array(["acme", "bolt", "core"])[rng.integers(0, 3, N)],
        },
    )
    return d


TOPK = [
    dict(features=["rating"], k=5),
    dict(features=["rating", "price", "stock"], weights=[1.0, -0.02, 0.01], bias=0.3, k=20),
    dict(
        features=["rating", "price"],
        weights=[0.7, -0.01],
        filters=[("category", "=", Param("cat")), ("brand", "in", ["acme", "core"])],
        predicates=[("price", "<", 60.0), ("stock", ">=", 10.0)],
        k=12,
    ),
    dict(features=["price"], predicates=[("rating", ">", 4.9)], k=40),  # fewer kept than k
]


@pytest.mark.parametrize("spec", TOPK, ids=range(len(TOPK)))
def test_sql_equals_hard_numpy_row_for_row_topk(db, spec):
    q = Query("products", key="id", **spec)
    params = {"cat": 2}
    cands = q.candidates(db, params)
    sql = q.execute(db, params)
    ref = q.hard_result(cands)
    np.testing.assert_array_equal(sql.keys, ref.keys)
    np.testing.assert_allclose(sql.scores, ref.scores, rtol=1e-14, atol=0)
    assert len(sql.keys) == min(q.k, int(q.hard_membership(cands.x).sum()))
    # and against an independent hand-written query
    hand = db.con.execute(
        "SELECT id FROM products WHERE (? = 0 OR true) ORDER BY id", [0]
    ).fetchnumpy()["id"]
    assert set(sql.keys) <= set(hand)


AGG = [
    dict(aggregate=("category", "sum", "price")),
    dict(aggregate=("category", "count", None), predicates=[("price", "<", 30.0)]),
    dict(aggregate=("brand", "mean", "rating"), predicates=[("stock", ">", 25.0)]),
    dict(aggregate=("brand", "max", "price"), predicates=[("rating", "<", 2.0)]),
    dict(features=["rating", "price"], weights=[2.0, 0.1], aggregate=("category", "sum", "score")),
    dict(features=["rating"], k=30, aggregate=("brand", "mean", "price")),
]


@pytest.mark.parametrize("spec", AGG, ids=range(len(AGG)))
def test_sql_equals_hard_numpy_row_for_row_aggregate(db, spec):
    q = Query("products", key="id", **spec)
    cands = q.candidates(db)
    sql, ref = q.execute(db), q.hard_result(cands)
    assert sql.groups == ref.groups and len(sql.groups) > 1
    np.testing.assert_allclose(sql.values, ref.values, rtol=1e-12)
    # independent check of one aggregate with hand SQL
    if spec["aggregate"] == ("category", "sum", "price"):
        hand = db.con.execute(
            "SELECT category, SUM(price) FROM products GROUP BY category ORDER BY 1"
        ).fetchall()
        np.testing.assert_allclose(sql.values, [v for _, v in hand], rtol=1e-12)


def test_relaxed_tends_to_hard_as_temperature_falls(db):
    gaps = []
    for t in (3.0, 0.3, 1e-7):
        q = Query(
            "products",
            key="id",
            features=["rating", "price"],
            weights=[1.0, -0.01],
            predicates=[("price", "<", 50.0)],
            k=10,
            temperature=t,
            regularization_strength=t,
        )
        c = q.candidates(db)
        gaps.append(np.abs(q.relaxed(c.x) - q.hard(c.x)).max())
    assert gaps[0] > gaps[2] and gaps[2] < 1e-6
    ga = []
    for t in (3.0, 1e-4):
        a = Query(
            "products",
            key="id",
            predicates=[("rating", ">", 2.5)],
            temperature=t,
            aggregate=("category", "mean", "price"),
        )
        c = a.candidates(db)
        ga.append(np.abs(a.relaxed(c.x, c.groups) - a.hard(c.x, c.groups)).max())
    assert ga[1] < ga[0] and ga[1] < 1e-6


def test_check_grads_through_the_query_parameters(db):
    q = Query(
        "products",
        key="id",
        features=["rating", "price"],
        weights=[1.0, -0.01],
        predicates=[("price", "<", 50.0)],
        k=10,
        temperature=5.0,
        regularization_strength=2.0,
        filters=[("category", "=", 1), ("stock", "<", 8)],
    )
    c = q.candidates(db)

    def topk_gain(w, b, t):
        return (q.replace(weights=w, bias=b, thresholds=t).relaxed(c.x) * c.x[:, 0]).sum()

    ds.check_grads(topk_gain, (q.weights, q.bias, q.thresholds), order=1, rtol=1e-4)
    a = Query(
        "products",
        key="id",
        features=["rating"],
        predicates=[("price", ">", 40.0)],
        temperature=10.0,
        aggregate=("brand", "sum", "score"),
        filters=[("category", "=", 3), ("stock", "<", 10)],
    )
    ca = a.candidates(db)

    def agg(w, t):
        return a.replace(weights=w, thresholds=t).relaxed(ca.x, ca.groups)

    ds.check_grads(agg, (a.weights, a.thresholds), order=2)


def test_pipeline_train_infer_and_mismatch(db):
    q = Query(
        "products",
        key="id",
        features=["rating", "price"],
        weights=[1.0, -0.01],
        predicates=[("price", "<", 70.0)],
        k=10,
        filters=[("category", "=", Param("c"))],
    )
    c = q.candidates(db, {"c": 4})
    batch = {"x": c.x, "keys": c.keys}
    for stage in (query_stage("select", q), sql_query_stage("select", q, db, {"c": 4})):
        pipe = pl.Pipeline([stage], batch_keys=("x", "keys"))
        pipe.add_loss("gain", lambda w, x: -(w * x[:, 0]).sum(), inputs=("select", "x"))
        pipe.train()
        np.testing.assert_allclose(pipe(batch), q.relaxed(c.x))
        pipe.infer()
        np.testing.assert_array_equal(pipe(batch), q.hard(c.x))
        report = pipe.mismatch(batch)
        assert report["select"].max_abs == pytest.approx(np.abs(q.relaxed(c.x) - q.hard(c.x)).max())
        pipe.train()
        ts = pipe.init(optim.adam(0.05))
        losses = []
        for _ in range(15):
            ts, rep = pipe.step(ts, batch)
            losses.append(float(rep.loss))
        assert losses[-1] < losses[0]
        learned = ts.params["select"]
        learned_query = learned.query if hasattr(learned, "query") else learned
        assert not np.allclose(learned_query.weights, q.weights)


def test_training_the_weights_raises_the_selected_rating(db):
    q = Query(
        "products",
        key="id",
        features=["rating", "price"],
        weights=[0.0, 0.01],
        k=20,
        regularization_strength=0.5,
    )
    c = q.candidates(db)
    rating = c.x[:, 0]

    def loss(q):
        return -(q.relaxed(c.x) * rating).sum() / q.k

    opt = optim.adam(0.05)
    state = opt.init(q)
    before = float(rating[q.hard(c.x) > 0].mean())
    for _ in range(60):
        g = ds.grad(loss)(q)
        upd, state = opt.update(g, state, q)
        q = optim.apply_updates(q, upd)
    after = q.execute(db)
    assert rating[np.isin(c.keys, after.keys)].mean() > before + 1.0


def test_json_round_trip_is_exact_and_plain(db, tmp_path):
    q = Query(
        "products",
        key="id",
        features=["rating", "price"],
        weights=[0.1 + 0.2, -1e-17],
        bias=1 / 3,
        filters=[("brand", "in", ["acme", "bolt"]), ("category", "=", Param("c"))],
        predicates=[("price", "<=", 42.125)],
        k=7,
        temperature=0.5,
        nulls="drop",
    )
    q.save(tmp_path / "q.json")
    text = (tmp_path / "q.json").read_text()
    assert json.loads(text)["format"] == "diffsys.systems.db.Query"
    again = Query.load(tmp_path / "q.json")
    assert again.to_dict() == q.to_dict()
    np.testing.assert_array_equal(again.weights, q.weights)
    a, b = again.execute(db, {"c": 0}), q.execute(db, {"c": 0})
    np.testing.assert_array_equal(a.keys, b.keys)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(extra=1), r"unknown fields \['extra'\]"),
        (lambda d: d.pop("k"), r"missing \['k'\]"),
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d.update(weights=["1"]), "weights"),
        (lambda d: d.update(filters=[["brand", "=", {"eval": "x"}]]), "placeholder"),
        (lambda d: d.update(filters=[["brand", "LIKE", "a%"]]), "op must be one of"),
        (lambda d: d.update(predicates=[["price", "<", "1; DROP"]]), "threshold"),
        (lambda d: d.update(nulls="ignore"), "nulls"),
        (lambda d: d.update(k=0), "k: expected"),
    ],
)
def test_json_load_refuses_bad_documents(change, message):
    q = Query("products", key="id", features=["rating"], k=3, predicates=[("price", "<", 5.0)])
    doc = q.to_dict()
    change(doc)
    with pytest.raises(QueryError, match=message):
        Query.from_json(json.dumps(doc))
