"""Pipelines holding diffsys.systems.db stages go through pl.save / pl.load: the query's
filters, placeholders and joins are registered values in the pipeline's JSON vocabulary
(closed, schema-checked, no pickle); a tampered file is refused with the field named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import diffsys as ds

pytest.importorskip("duckdb")
pytest.importorskip("safetensors")

import diffsys.pipeline as pl  # noqa: E402
from diffsys.pipeline import SerializationError  # noqa: E402
from diffsys.systems.db import (  # noqa: E402
    Database,
    Join,
    Param,
    Query,
    SoftTopK,
    query_stage,
    ranking_loss,
    relaxed_stage,
    sql_query_stage,
)
from diffsys.train.checkpoint import _checksum  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def db():
    rng = np.random.default_rng(1)
    d = Database()
    d.create_table(
        "products",
        {
            "id": np.arange(300),
            "price": rng.uniform(1, 100, 300),
            "rating": rng.uniform(0, 5, 300),
            "brand_id": rng.integers(0, 5, 300),
            "category": rng.integers(0, 3, 300),
        },
    )
    d.create_table(
        "brands",
        {"bid": np.arange(5), "trust": rng.uniform(0, 1, 5), "tier": np.arange(5) % 2},
    )
    return d


def _query(**kw):
    spec = dict(
        key="id",
        features=["rating", "trust", "price"],
        weights=[1.0, 2.0, -0.01],
        bias=0.5,
        filters=[("category", "=", Param("cat")), ("tier", "in", [0, 1]), ("price", ">", 2)],
        predicates=[("price", "<", 70.0)],
        joins=[Join("brands", [("brand_id", "bid")], how="inner")],
        k=7,
        temperature=0.5,
        regularization_strength=0.3,
    )
    return Query("products", **(spec | kw))


@pl.register("tests.systems.db_serialize.gain")
def gain(w, x):
    return -(w * x[:, 0]).sum()


def _resign(directory: Path, edit) -> None:
    path = directory / "checkpoint.json"
    doc = json.loads(path.read_text())
    doc.pop("checksum")
    edit(doc["config"]["stages"][0]["module"]["static"])
    doc["checksum"] = _checksum(doc)
    path.write_text(json.dumps(doc))


def test_query_stage_pipeline_round_trip(db, tmp_path):
    q = _query()
    cands = q.candidates(db, {"cat": 1})
    # train a little, so the saved values are not the constructor's
    g = ds.grad(lambda m: -(m.relaxed(cands.x) * cands.x[:, 0]).sum())(q)
    q = q.replace(weights=q.weights - 0.1 * g.weights, thresholds=q.thresholds - 0.1 * g.thresholds)
    pipe = pl.Pipeline([query_stage("select", q)], batch_keys=("x",))
    pipe.add_loss("gain", gain, inputs=("select", "x"))
    pipe.infer()
    pipe.save(tmp_path)
    again = pl.load(tmp_path)
    assert again.mode == "infer"
    lq = again.stages["select"].module
    assert isinstance(lq, Query) and lq is not q
    for field in ("filters", "joins", "features", "predicate_ops", "k", "temperature"):
        assert getattr(lq, field) == getattr(q, field), field
    assert lq.filters[0].value == Param("cat") and lq.filters[1].value == (0, 1)
    for field in ("weights", "bias", "thresholds"):
        np.testing.assert_array_equal(getattr(lq, field), getattr(q, field))
    batch = {"x": cands.x}
    np.testing.assert_array_equal(again(batch), pipe(batch))
    again.train()
    pipe.train()
    np.testing.assert_array_equal(again(batch), pipe(batch))
    np.testing.assert_array_equal(
        lq.execute(db, {"cat": 1}).keys, q.execute(db, {"cat": 1}).keys
    )
    config = json.loads((tmp_path / "checkpoint.json").read_text())["config"]
    static = config["stages"][0]["module"]["static"]
    assert static["filters"]["tuple"][0] == {
        "value": "systems.db.Filter",
        "config": {"list": ["category", "=", {"value": "systems.db.Param", "config": "cat"}]},
    }
    assert static["joins"]["tuple"][0]["value"] == "systems.db.Join"


def test_aggregate_query_and_module_stages_round_trip(db, tmp_path):
    agg = _query(
        features=["rating"], weights=[1.0], k=None, aggregate=("tier", "mean", "price"),
        groups=(0, 1), filters=[("category", "in", [0, 2])],
    )  # fmt: skip
    c = agg.candidates(db)
    pipe = pl.Pipeline(
        [
            query_stage("agg", agg),
            relaxed_stage("top", SoftTopK(1, regularization_strength=0.2), inputs="agg"),
        ],
        batch_keys=("x", "groups", "target"),
        losses=[ranking_loss("rank", "agg", "target", loss="listnet")],
    )
    batch = {"x": c.x, "groups": c.groups, "target": np.array([1.0, 0.0])}
    pipe.save(tmp_path)
    again = pl.load(tmp_path)
    np.testing.assert_array_equal(again(batch), pipe(batch))
    assert float(again.loss(again.params, batch)[0]) == float(pipe.loss(pipe.params, batch)[0])
    assert again.stages["agg"].module.aggregate == ("tier", "mean", "price")


def test_loads_in_a_fresh_process(db, tmp_path):
    q = _query()
    pl.Pipeline([query_stage("select", q)], batch_keys=("x",)).save(tmp_path)
    code = (
        "import sys; import diffsys.pipeline as pl\n"
        f"p = pl.load({str(tmp_path)!r})\n"
        "m = p.stages['select'].module\n"
        "print(type(m).__module__, m.filters[0], m.joins[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    ).stdout
    assert out.split() == [
        "diffsys.systems.db.query",
        "Filter('category',",
        "'=',",
        "Param('cat'))",
        "Join('brands',",
        "[('brand_id',",
        "'bid')],",
        "how='inner')",
    ]


def _set(path, value):
    def edit(static):
        node = static
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return edit


TAMPERED = [
    # an operator spliced into SQL text: refused by the query's own invariants
    (_set(["predicate_ops", "tuple", 0], "< 0 OR 1=1 --"), r"not a valid systems\.db\.Query.*"
     r"predicates: ops must be in"),
    (_set(["filters", "tuple", 0, "config", "list", 1], "LIKE"), r"not a valid systems\.db\."
     r"Filter.*op must be one of"),
    (_set(["joins", "tuple", 0, "config", "list", 2], "cross"), r"not a valid systems\.db\."
     r"Join.*how must be one of"),
    (_set(["filters", "tuple", 0, "value"], "builtins.eval"), r"'builtins\.eval' is not "
     r"registered"),
    (_set(["filters", "tuple", 0, "value"], "numpy.sin"), r"'numpy\.sin' is registered as .*"
     r"not a value class"),
    (_set(["filters", "tuple", 0, "config", "list", 2], {"value": "systems.db.Param",
                                                          "config": ""}), r"Param: name must"),
    (_set(["k"], 0), r"not a valid systems\.db\.Query.*k: expected a whole number"),
    (_set(["filters", "tuple", 0], {"value": "systems.db.Filter", "config": 1, "x": 2}),
     r"field 'config\.stages\[0\]\.module.*filters"),
]  # fmt: skip


@pytest.mark.parametrize("edit, message", TAMPERED, ids=range(len(TAMPERED)))
def test_tampered_files_are_refused_naming_the_field(db, tmp_path, edit, message):
    pl.Pipeline([query_stage("select", _query())], batch_keys=("x",)).save(tmp_path)
    _resign(tmp_path, edit)
    with pytest.raises(SerializationError, match=message):
        pl.load(tmp_path)


def test_sql_stage_refuses_to_save_its_connection(db, tmp_path):
    stage = sql_query_stage("select", _query(), db, {"cat": 1})
    pipe = pl.Pipeline([stage], batch_keys=("x", "keys"))
    with pytest.raises(SerializationError, match=r"stage 'select'.*db: Database\(':memory:'\): a "
                       r"database connection is not saved.*query_stage"):
        pipe.save(tmp_path)
