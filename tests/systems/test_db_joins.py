"""Joins in the exact part of diffsys.systems.db: DuckDB joins, the compiled SQL equals the
hard NumPy result row for row (and an independent NumPy join), columns qualified by table,
clear errors (unknown table or column, ambiguous column, repeated keys, type mismatch), and
injection through every new user-provided string."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds

pytest.importorskip("duckdb")

from diffsys.systems.db import (  # noqa: E402
    CompiledQuery,
    Database,
    Join,
    Param,
    Query,
    QueryError,
)

N, B = 2000, 12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    products = {
        "id": rng.permutation(N) + 500,
        "price": np.round(rng.uniform(1, 100, N), 2),
        "rating": rng.uniform(0, 5, N),
        "brand_id": rng.integers(0, B + 3, N),  # ids B.. have no brand row (left joins)
        "stock": rng.integers(0, 50, N),
    }
    brands = {
        "id": np.arange(B),
        "trust": rng.uniform(0, 1, B),
        "region": np.array(["north", "south", "east"], dtype=object)[np.arange(B) % 3],
        "tier": np.arange(B) % 4,
    }
    reviews = {"product_id": np.repeat(products["id"][:50], 2), "stars": rng.uniform(1, 5, 100)}
    return products, brands, reviews


@pytest.fixture(scope="module")
def db(data):
    products, brands, reviews = data
    d = Database()
    d.create_table("products", products)
    d.create_table("brands", brands)
    d.create_table("reviews", reviews)
    d.con.execute("CREATE TABLE secrets (s VARCHAR)")
    d.con.execute("INSERT INTO secrets VALUES ('x')")
    return d


BRANDS = [Join("brands", [("brand_id", "id")])]

TOPK = [
    dict(features=["rating", "trust"], weights=[1.0, 2.0], k=10, joins=BRANDS),
    dict(
        features=["products.rating", "brands.trust", "price"],
        weights=[0.5, 3.0, -0.01],
        bias=0.2,
        filters=[("region", "=", Param("r")), ("brands.tier", "in", [0, 2])],
        predicates=[("trust", ">", 0.2), ("price", "<", 70.0)],
        k=15,
        joins=[("brands", [("products.brand_id", "brands.id")], "inner")],
    ),
    dict(
        features=["rating", "trust"],
        k=25,
        joins=[Join("brands", [("brand_id", "id")], how="left")],
        nulls="drop",
    ),
]


def _numpy_join(data):
    """An independent inner join of products and brands, in NumPy."""
    products, brands, _ = data
    pos = np.searchsorted(brands["id"], products["brand_id"])
    ok = products["brand_id"] < B
    out = {f"products.{c}": v[ok] for c, v in products.items()}
    out |= {f"brands.{c}": v[pos[ok]] for c, v in brands.items()}
    return out


@pytest.mark.parametrize("spec", TOPK, ids=range(len(TOPK)))
def test_join_sql_equals_hard_numpy_row_for_row(db, spec):
    q = Query("products", key="products.id", **spec)
    params = {"r": "south"}
    cands = q.candidates(db, params)
    sql, ref = q.execute(db, params), q.hard_result(cands)
    assert len(sql.keys) == q.k
    np.testing.assert_array_equal(sql.keys, ref.keys)
    np.testing.assert_allclose(sql.scores, ref.scores, rtol=1e-14, atol=0)
    # the compiled query as the hard form of a stage agrees with the NumPy hard form
    cq = CompiledQuery(q, db, params)
    np.testing.assert_array_equal(cq.hard(cands.x, cands.keys), q.hard(cands.x))


def test_join_matches_an_independent_numpy_join(db, data):
    q = Query("products", key="products.id", **TOPK[0])
    j = _numpy_join(data)
    score = 1.0 * j["products.rating"] + 2.0 * j["brands.trust"]
    order = np.lexsort((j["products.id"], -score))[:10]
    np.testing.assert_array_equal(q.execute(db).keys, j["products.id"][order])
    # left join + drop keeps exactly the matched rows: the inner join's candidates
    left = Query("products", key="products.id", **TOPK[2])
    np.testing.assert_array_equal(left.candidates(db).keys, np.sort(j["products.id"]))


def test_aggregate_grouped_by_a_joined_text_column(db, data):
    q = Query(
        "products",
        key="products.id",
        joins=BRANDS,
        predicates=[("price", "<", 40.0)],
        aggregate=("region", "sum", "stock"),
        groups=("east", "north", "south"),
    )
    c = q.candidates(db)
    sql, ref = q.execute(db), q.hard_result(c)
    assert sql.groups == ref.groups == ("east", "north", "south")
    np.testing.assert_allclose(sql.values, ref.values, rtol=1e-12)
    j = _numpy_join(data)
    keep = j["products.price"] < 40.0
    hand = [j["products.stock"][keep & (j["brands.region"] == g)].sum() for g in sql.groups]
    np.testing.assert_allclose(sql.values, hand)
    # the relaxed aggregate is differentiable in the threshold through the joined rows
    ds.check_grads(
        lambda t: q.replace(thresholds=t).relaxed(c.x, c.groups), (q.thresholds,), order=1
    )
    cq = CompiledQuery(q, db)
    np.testing.assert_allclose(cq.hard(c.x, c.keys, c.groups), ref.values)


def test_compiled_sql_qualifies_every_column_and_binds_every_value(db):
    q = Query("products", key="products.id", **TOPK[1])
    sql, args = q.compile(db, {"r": "south"})
    assert sql.startswith('SELECT "products"."id" AS key, (? + ? * CAST("products"."rating"')
    assert 'FROM "products" INNER JOIN "brands" ON "products"."brand_id" = "brands"."id"' in sql
    assert '"brands"."region" = ?' in sql and '"brands"."tier" IN (?, ?)' in sql
    assert "south" in args and "south" not in sql
    assert " LEFT JOIN " in Query("products", key="products.id", **TOPK[2]).compile(db)[0]


def test_left_join_nulls_follow_the_policy(db):
    q = Query("products", key="products.id", features=["rating", "trust"], k=5, joins=[
        Join("brands", [("brand_id", "id")], how="left")
    ])  # fmt: skip
    for run in (q.candidates, q.execute):
        with pytest.raises(QueryError, match=r"'trust'.*NULL.*nulls='error'.*nulls='drop'"):
            run(db)


def test_ambiguous_and_unknown_names_are_clear_errors(db):
    with pytest.raises(QueryError, match=r"^key: column 'id' is ambiguous: it is products\.id "
                       r"and brands\.id; qualify it as 'table\.column'"):
        Query("products", key="id", features=["rating"], k=1, joins=BRANDS).candidates(db)
    with pytest.raises(QueryError, match=r"^joins\[0\]: no table 'brand' .*tables: brands"):
        Query("products", key="id", features=["rating"], k=1, joins=[("brand", "id")]).execute(db)
    with pytest.raises(QueryError, match=r"^joins\[0\] on\[0\] left: no column 'bid' in table "
                       r"'products'"):
        Query("products", key="products.id", features=["rating"], k=1,
              joins=[("brands", [("bid", "id")])]).compile(db)  # fmt: skip
    with pytest.raises(QueryError, match=r"^features\[1\]: no column 'brands\.cost' in tables "
                       r"'products', 'brands' \(columns: products\.id, .*brands\.tier\)"):
        Query("products", key="products.id", features=["rating", "brands.cost"], weights=[1, 1],
              k=1, joins=BRANDS).candidates(db)  # fmt: skip
    with pytest.raises(QueryError, match=r"^features\[0\]: column 'region' of table 'brands' "
                       r"has type VARCHAR"):
        Query("products", key="products.id", features=["region"], k=1, joins=BRANDS).check(db)
    with pytest.raises(QueryError, match=r"^joins\[0\] on\[0\]: type mismatch: products\.brand_id "
                       r"is BIGINT, brands\.region is VARCHAR"):
        Query("products", key="products.id", features=["rating"], k=1,
              joins=[("brands", [("brand_id", "region")])]).check(db)  # fmt: skip
    with pytest.raises(QueryError, match=r"^joins\[1\]: table 'brands' is already in the query"):
        Query("products", key="products.id", features=["rating"], k=1,
              joins=[BRANDS[0], BRANDS[0]]).check(db)  # fmt: skip
    with pytest.raises(QueryError, match=r"joins\[0\]: Join\('brands'\): how must be one of"):
        Query("products", key="id", features=["rating"], joins=[("brands", "id", "outer")])


def test_a_key_repeated_by_a_join_is_an_error(db):
    q = Query("products", key="products.id", features=["rating", "stars"], k=3,
              joins=[("reviews", [("id", "product_id")])])  # fmt: skip
    with pytest.raises(QueryError, match=r"key: 'products\.id' is not unique over the joined "
                       r"rows \(50 repeats"):
        q.candidates(db)
    with pytest.raises(QueryError, match=r"key: 'products\.id' is not unique .*\(50 repeats\)"):
        q.execute(db)
    # keyed by the joined table's column: the join matches one product per review, yet the
    # key repeats, since reviews repeat products
    q = Query("reviews", key="products.id", features=["stars"], k=3,
              joins=[("products", [("product_id", "id")])])  # fmt: skip
    for run in (q.candidates, q.execute):
        with pytest.raises(QueryError, match=r"key: 'products\.id' is not unique"):
            run(db)
    # a many-to-one join keeps the first table's key unique: no error, same rows both ways
    q = Query("reviews", key="stars", features=["rating"], k=3,
              joins=[("products", [("product_id", "id")])])  # fmt: skip
    np.testing.assert_array_equal(q.execute(db).keys, q.hard_result(q.candidates(db)).keys)


HOSTILE = [
    "brands; DROP TABLE secrets; --",
    'brands" ON 1=1; DROP TABLE secrets; --',
    "' OR '1'='1",
    "id) OR (1=1",
    "secrets",
    "brands.id; DROP TABLE secrets",
    'brands"."id',
]


def _intact(db) -> None:
    assert db.tables() == ("brands", "products", "reviews", "secrets")
    assert db.con.execute("SELECT COUNT(*) FROM secrets").fetchone() == (1,)
    assert db.con.execute("SELECT COUNT(*) FROM brands").fetchone() == (B,)


@pytest.mark.parametrize("evil", HOSTILE)
@pytest.mark.parametrize(
    "part", ["join table", "on left", "on right", "qualified feature", "qualified filter"]
)
def test_injection_through_join_strings_is_refused(db, evil, part):
    table, on, feats, filters = "brands", [("brand_id", "id")], ["rating"], []
    if part == "join table":
        table = evil
    elif part == "on left":
        on = [(evil, "id")]
    elif part == "on right":
        on = [("brand_id", evil)]
    elif part == "qualified feature":
        feats = ["rating", "brands." + evil]
    else:
        filters = [("brands." + evil, "=", 1)]
    q = Query("products", key="products.id", features=feats, weights=[1.0] * len(feats),
              k=2, filters=filters, joins=[(table, on)])  # fmt: skip
    for run in (lambda: q.execute(db), lambda: q.candidates(db), lambda: q.compile(db)):
        with pytest.raises(QueryError, match=r"no (table|column)"):
            run()
    _intact(db)


@pytest.mark.parametrize("evil", ["outer", "INNER JOIN secrets ON 1=1 --", "cross"])
def test_injection_through_the_join_kind_is_refused(db, evil):
    with pytest.raises(QueryError, match="how must be one of"):
        Query("products", key="id", features=["rating"], joins=[("brands", "id", evil)])
    with pytest.raises(QueryError, match="how must be one of"):
        Join("brands", "id", how=evil)
    _intact(db)


@pytest.mark.parametrize("evil", HOSTILE)
def test_join_filter_values_are_bound(db, evil):
    q = Query("products", key="products.id", features=["rating"], k=3, joins=BRANDS,
              filters=[("region", "=", Param("r"))])  # fmt: skip
    assert len(q.execute(db, {"r": evil}).keys) == 0
    assert len(q.execute(db, {"r": "east"}).keys) == 3
    _intact(db)


def test_join_query_json_round_trip(db, tmp_path):
    q = Query("products", key="products.id", **TOPK[1])
    path = tmp_path / "q.json"
    q.save(path)
    again = Query.load(path)
    assert again.joins == q.joins and again.filters == q.filters
    np.testing.assert_array_equal(
        again.execute(db, {"r": "north"}).keys, q.execute(db, {"r": "north"}).keys
    )
    doc = q.to_dict()
    doc["joins"] = [["brands", [["brand_id", "id"]], "full outer"]]
    with pytest.raises(QueryError, match=r"query JSON joins\[0\]: Join\('brands'\): how must"):
        Query.from_dict(doc)
    doc.pop("joins")  # a document saved before joins existed still loads
    assert Query.from_dict(doc).joins == ()
