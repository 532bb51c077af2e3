"""The differentiable database (``diffsys.systems.db``): the relaxed training step, the hard
compiled query in DuckDB, and the candidate fetch.

- ``db_soft_topk``: a linear score over 16 features of 100k candidates, a soft top-10
  (``relax.soft_topk_mask``, l2, strength 1) and the gradient of a gain with respect to the
  16 weights: forward + backward. The NumPy row is hand-written (SciPy's isotonic regression,
  block-average derivatives) and is the reference.
- ``db_query_1m``: the hard top-10 over 1M rows (``WHERE f1 < 0.8 ORDER BY score DESC LIMIT
  10``): ``Query.execute`` (compiled SQL with bound weights, schema and NULL checks included)
  beside the same query written by hand in SQL (the limit) and NumPy's ``argpartition``
  over arrays already in memory.
- ``db_fetch``: 100k rows x 16 feature columns from DuckDB into NumPy: ``Database.fetch``
  (schema-checked) beside the raw ``fetchnumpy`` of hand-written SQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._spec import Impl, Thunk, Workload
from .soft_sort import _block_mean, _isotonic_decreasing

F = 16
N_CAND = 100_000
N_TABLE = 1_000_000
K = 10
FEATURES = [f"f{j}" for j in range(F)]


# --- db_soft_topk -----------------------------------------------------------------------------


def _topk_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_CAND, F))
    w = rng.standard_normal(F) / np.sqrt(F)
    gain = rng.random(N_CAND)
    return x, w, gain


def numpy_topk_vjp(x: np.ndarray, w: np.ndarray, gain: np.ndarray):
    """mask = soft_topk_mask(x @ w, K) (l2, strength 1) and d sum(mask * gain) / dw."""
    s = x @ w
    n = s.shape[0]
    perm = np.argsort(-s)
    sorted_s = s[perm]
    target = np.zeros(n)
    target[:K] = 1.0
    sol = _isotonic_decreasing((sorted_s - target)[None])[0]
    mask = np.empty(n)
    mask[perm] = sorted_s - sol
    g = gain[perm][None]
    g = (g - _block_mean(g, sol[None]))[0]
    ds_ = np.empty(n)
    ds_[perm] = g
    return mask, x.T @ ds_


def _diffsys_topk() -> Thunk:
    import diffsys as ds
    from diffsys.relax import soft_topk_mask

    x, w, gain = _topk_inputs()

    def run() -> Any:
        mask, pull = ds.vjp(lambda w: soft_topk_mask(x @ w, K, "l2", 1.0), w)
        return mask, pull(gain)[0]

    return run


def _numpy_topk() -> Thunk:
    x, w, gain = _topk_inputs()
    return lambda: numpy_topk_vjp(x, w, gain)


WORKLOAD_SOFT_TOPK = Workload(
    name="db_soft_topk",
    title="scoring + soft top-10 over 100k candidates, forward + backward",
    description=(
        f"A linear score over {F} features of {N_CAND:,} candidates (float64), "
        "`relax.soft_topk_mask(x @ w, 10, 'l2', 1.0)`, and the pullback of a fixed gain to the "
        "16 weights (`ds.vjp`). The NumPy row is hand-written: sort, SciPy's "
        "`isotonic_regression`, block-average derivatives; it is also the reference."
    ),
    unit="ms",
    scale=1e3,
    target=20.0,
    reference=lambda: numpy_topk_vjp(*_topk_inputs()),
    impls={
        "diffsys": Impl(_diffsys_topk, "`ds.vjp` of `soft_topk_mask(x @ w, 10)`"),
        "numpy": Impl(_numpy_topk, "NumPy + scipy isotonic_regression, by hand"),
    },
)


# --- db_query_1m ------------------------------------------------------------------------------


def _table(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    cols = {"id": np.arange(n)}
    for name in FEATURES:
        cols[name] = rng.random(n)
    return cols


def _weights() -> np.ndarray:
    return np.random.default_rng(2).standard_normal(F)


def _numpy_query(cols: dict[str, np.ndarray], w: np.ndarray):
    """The hard query in NumPy: score in the SQL's order of operations, WHERE f1 < 0.8,
    top 10 by argpartition, then sorted."""
    s = 0.0 + w[0] * cols["f0"]
    for j in range(1, F):
        s = s + w[j] * cols[FEATURES[j]]
    s = np.where(cols["f1"] < 0.8, s, -np.inf)
    top = np.argpartition(-s, K)[:K]
    top = top[np.argsort(-s[top], kind="stable")]
    return cols["id"][top].astype(np.float64), s[top]


def _query_reference():
    return _numpy_query(_table(N_TABLE), _weights())


def _database(n: int):
    from diffsys.systems.db import Database

    db = Database()
    db.create_table("t", _table(n))
    return db


def _diffsys_query() -> Thunk:
    from diffsys.systems.db import Query

    db = _database(N_TABLE)
    q = Query("t", key="id", features=FEATURES, weights=_weights(), k=K,
              predicates=[("f1", "<", 0.8)])  # fmt: skip

    def run() -> Any:
        r = q.execute(db)
        return r.keys.astype(np.float64), r.scores

    return run


def _sql_query() -> Thunk:
    db = _database(N_TABLE)
    w = _weights()
    score = " + ".join(f"{float(w[j])!r} * f{j}" for j in range(F))
    sql = f"SELECT id, (0.0 + {score}) AS score FROM t WHERE f1 < 0.8 ORDER BY score DESC LIMIT {K}"

    def run() -> Any:
        out = db.con.execute(sql).fetchnumpy()
        return out["id"].astype(np.float64), out["score"]

    return run


def _numpy_query_thunk() -> Thunk:
    cols, w = _table(N_TABLE), _weights()
    return lambda: _numpy_query(cols, w)


WORKLOAD_QUERY = Workload(
    name="db_query_1m",
    title="hard top-10 query over 1M rows",
    description=(
        f"`SELECT id, score FROM t WHERE f1 < 0.8 ORDER BY score DESC LIMIT 10` over "
        f"{N_TABLE:,} rows, score a linear expression of {F} columns. diffsys: the compiled "
        "`Query.execute` in DuckDB (bound weights; its schema and NULL checks included). "
        "Hand SQL: the same statement with the weights as literals. NumPy: `argpartition` "
        "over the columns already in memory (the reference)."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    reference=_query_reference,
    impls={
        "diffsys": Impl(_diffsys_query, "`Query.execute` (compiled SQL, DuckDB)"),
        "numpy": Impl(_numpy_query_thunk, "`np.argpartition` on in-memory columns"),
        "sql": Impl(_sql_query, "hand-written SQL, `fetchnumpy`"),
    },
    tolerance=1e-12,
)


# --- db_fetch ---------------------------------------------------------------------------------


def _fetch_reference():
    cols = _table(N_CAND)
    return (np.stack([cols[f] for f in FEATURES], axis=1),)


def _diffsys_fetch() -> Thunk:
    db = _database(N_CAND)

    def run() -> Any:
        out = db.fetch("t", FEATURES)
        return (np.stack([out[f] for f in FEATURES], axis=1),)

    return run


def _sql_fetch() -> Thunk:
    db = _database(N_CAND)
    sql = f"SELECT {', '.join(FEATURES)} FROM t"

    def run() -> Any:
        out = db.con.execute(sql).fetchnumpy()
        return (np.stack([out[f] for f in FEATURES], axis=1),)

    return run


WORKLOAD_FETCH = Workload(
    name="db_fetch",
    title="candidate fetch, 100k rows x 16 columns, DuckDB -> NumPy",
    description=(
        f"{N_CAND:,} rows x {F} float64 columns from a DuckDB table into NumPy arrays (then "
        "stacked into one matrix). diffsys: `Database.fetch` (schema-checked identifiers); "
        "hand SQL: the raw `fetchnumpy`."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    reference=_fetch_reference,
    impls={
        "diffsys": Impl(_diffsys_fetch, "`Database.fetch`"),
        "sql": Impl(_sql_fetch, "hand-written SQL, `fetchnumpy`"),
    },
    tolerance=0.0,
)

WORKLOADS = [WORKLOAD_SOFT_TOPK, WORKLOAD_QUERY, WORKLOAD_FETCH]
