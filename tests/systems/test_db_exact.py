"""diffsys.systems.db's exact layer and bad input: schema-checked identifiers, bound values
(injection through every user-provided string), NULL/NaN policy, clear errors naming the
query part, and the ImportError naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("duckdb")

from diffsys.systems.db import Database, Param, Query, QueryError  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def db():
    d = Database()
    d.create_table(
        "items",
        {
            "id": np.arange(6),
            "price": np.array([5.0, 1.0, 4.0, 2.0, 3.0, 6.0]),
            "rating": np.array([1.0, 2.0, 3.0, 4.0, 5.0, 0.5]),
            "name": np.array(["a", "b", "c", "d", "e", "f"], dtype=object),
            "cat": np.array([0, 0, 1, 1, 2, 2]),
        },
    )
    d.con.execute("CREATE TABLE secrets (s VARCHAR)")
    d.con.execute("INSERT INTO secrets VALUES ('x')")
    return d


def _intact(db) -> None:
    assert db.tables() == ("items", "secrets")
    assert db.con.execute("SELECT COUNT(*) FROM items").fetchone() == (6,)
    assert db.con.execute("SELECT COUNT(*) FROM secrets").fetchone() == (1,)


def test_fetch_returns_numpy_columns_including_text(db):
    out = db.fetch("items", ["id", "name", "price"], [("cat", "in", [0, 2])], order_by="id")
    np.testing.assert_array_equal(out["id"], [0, 1, 4, 5])
    assert list(out["name"]) == ["a", "b", "e", "f"]
    assert all(isinstance(v, np.ndarray) for v in out.values())


HOSTILE = [
    "items; DROP TABLE secrets; --",
    'price" FROM items; DROP TABLE secrets; --',
    "' OR '1'='1",
    "price) OR (1=1",
    "secrets",
]


@pytest.mark.parametrize("evil", HOSTILE)
@pytest.mark.parametrize(
    "part",
    ["table", "key", "feature", "filter column", "predicate column", "group_by", "value"],
)
def test_injection_through_identifiers_is_refused(db, evil, part):
    kw = dict(key="id", features=["price"], k=2)
    table = "items"
    if part == "table":
        table = evil
    elif part == "key":
        kw["key"] = evil
    elif part == "feature":
        kw["features"] = ["price", evil]
        kw["weights"] = [1.0, 1.0]
    elif part == "filter column":
        kw["filters"] = [(evil, "=", 1)]
    elif part == "predicate column":
        kw["predicates"] = [(evil, "<", 1.0)]
    else:
        kw = dict(key="id", aggregate=("cat", "sum", "price"))
        kw["aggregate"] = (evil, "sum", "price") if part == "group_by" else ("cat", "sum", evil)
    q = Query(table, **kw)
    for run in (lambda: q.execute(db), lambda: q.candidates(db), lambda: q.compile(db)):
        with pytest.raises(QueryError, match=r"no (table|column)"):
            run()
    _intact(db)


@pytest.mark.parametrize("evil", HOSTILE)
def test_injection_through_values_is_bound(db, evil):
    q = Query("items", key="id", features=["price"], k=3, filters=[("name", "=", Param("n"))])
    for value in (evil, "a"):
        result = q.execute(db, {"n": value})
        assert list(result.keys) == ([] if value == evil else [0])
    q2 = Query("items", key="id", features=["price"], k=1, filters=[("name", "in", [evil, "c"])])
    assert list(q2.execute(db).keys) == [2]
    with pytest.raises(QueryError, match=r"filters\[0\] \('price'\): type mismatch: a str"):
        Query("items", key="id", features=["price"], k=1, filters=[("price", "<", evil)]).execute(
            db
        )
    _intact(db)


@pytest.mark.parametrize("evil", ["= 1 OR 1=1 --", "LIKE", "<; DROP TABLE secrets"])
def test_injection_through_operators_and_options_is_refused(db, evil):
    with pytest.raises(QueryError, match=r"filters\[0\].*op must be one of"):
        Query("items", key="id", features=["price"], filters=[("cat", evil, 1)])
    with pytest.raises(QueryError, match=r"predicates\[0\]: op must be one of"):
        Query("items", key="id", features=["price"], predicates=[("price", evil, 1.0)])
    with pytest.raises(QueryError, match="aggregate: how must be one of"):
        Query("items", key="id", aggregate=("cat", evil, "price"))
    with pytest.raises(QueryError, match="nulls: expected one of"):
        Query("items", key="id", features=["price"], nulls=evil)
    with pytest.raises(QueryError, match="not a plain identifier"):
        db.create_table(evil + ";", {"a": np.arange(2)})
    with pytest.raises(QueryError, match="not a plain identifier"):
        db.create_table("t2", {evil + " ": np.arange(2)})
    _intact(db)


def test_missing_table_and_column_name_the_part(db):
    with pytest.raises(QueryError, match=r"^table: no table 'nope' .*tables: items, secrets"):
        Query("nope", key="id", features=["price"], k=1).execute(db)
    with pytest.raises(QueryError, match=r"^features\[1\]: no column 'cost' in table 'items'"):
        Query("items", key="id", features=["price", "cost"], k=1).candidates(db)
    with pytest.raises(QueryError, match=r"^features\[0\]: column 'name' .* type VARCHAR"):
        Query("items", key="id", features=["name"], k=1).candidates(db)
    with pytest.raises(QueryError, match=r"no value for Param\('c'\)"):
        Query("items", key="id", features=["price"], filters=[("cat", "=", Param("c"))]).execute(db)


def test_empty_candidates_and_k_too_large(db):
    q = Query("items", key="id", features=["price"], k=2, filters=[("cat", "=", 9)])
    with pytest.raises(QueryError, match="filters: no candidate rows in table 'items'"):
        q.candidates(db)
    big = Query("items", key="id", features=["price"], k=7)
    c = big.candidates(db)
    with pytest.raises(QueryError, match="k: k = 7 is larger than the 6 candidate rows"):
        big.relaxed(c.x)
    assert len(big.execute(db).keys) == 6  # SQL: LIMIT k returns what there is (documented)


def test_null_and_nan_policy(db):
    db.con.execute("UPDATE items SET price = NULL WHERE id = 1")
    db.con.execute("UPDATE items SET rating = 'nan'::DOUBLE WHERE id = 2")
    for spec in ({"features": ["price"]}, {"features": ["rating"]}):
        q = Query("items", key="id", k=2, **spec)
        with pytest.raises(QueryError, match=f"{spec['features'][0]!r}.*nulls='error'"):
            q.candidates(db)
        with pytest.raises(QueryError, match=f"{spec['features'][0]!r}.*nulls='error'"):
            q.execute(db)
    q = Query("items", key="id", features=["price", "rating"], k=3, nulls="drop")
    c = q.candidates(db)
    assert 1 not in c.keys and 2 not in c.keys and len(c.keys) == 4
    np.testing.assert_array_equal(q.execute(db).keys, q.hard_result(c).keys)


def test_import_without_duckdb_names_the_extra():
    code = (
        "import sys; sys.modules['duckdb'] = None\n"
        "try:\n    import diffsys.systems.db\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    ).stdout
    assert "'db' extra" in out and "diffsys[db]" in out
