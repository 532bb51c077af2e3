"""``Query``: a small differentiable query over DuckDB tables.

    SELECT key, score FROM table [INNER|LEFT JOIN other ON table.a = other.b ...]
    WHERE <exact filters, bound values> AND <soft predicates: column op threshold>
    ORDER BY score DESC, key LIMIT k                    -- score = bias + sum_j w_j * feature_j
    -- or, with an aggregate:
    SELECT group, SUM|COUNT|AVG|MAX(value) ... GROUP BY group ORDER BY group

The exact part (table, filters) runs in DuckDB and yields the candidates as NumPy arrays
(:meth:`Query.candidates`). Above it, the learned parts (weights, bias, thresholds) are
evaluated relaxed over the candidates in training (:meth:`Query.relaxed`), exactly in NumPy
(:meth:`Query.hard`), or compiled to SQL and executed by DuckDB (:meth:`Query.execute`):
the learned values travel as bound parameters, never as SQL text.

With ``joins`` the exact part joins more tables (DuckDB does the join, in training and at
inference alike); a column is then named ``"table.column"``, or plainly when only one of the
tables has it, and the key must identify the joined rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...nn.module import Module, static
from . import ops
from .exact import (
    NULL_POLICIES,
    Database,
    Filter,
    Join,
    Param,
    QueryError,
    Source,
    present,
    quote,
)

__all__ = ["Candidates", "CompiledQuery", "Query", "QueryResult"]

FORMAT = "diffsys.systems.db.Query"
VERSION = 1


@dataclass(frozen=True)
class Candidates:
    """What the exact part returned, as arrays: ``keys`` ``(n,)`` (sorted), ``x`` ``(n, C)``
    float64 with the columns of :attr:`Query.columns`, ``groups`` ``(n, g)`` one-hot over
    ``group_values`` (aggregate queries; else ``None``)."""

    keys: np.ndarray
    x: np.ndarray
    groups: np.ndarray | None = None
    group_values: tuple = ()


@dataclass(frozen=True)
class QueryResult:
    """A hard result: ``keys`` and ``scores`` in rank order (top-k queries), or ``groups``
    and ``values`` in group order (aggregate queries)."""

    keys: np.ndarray | None = None
    scores: np.ndarray | None = None
    groups: tuple = ()
    values: np.ndarray | None = None


def _floats(x, shape, what: str) -> np.ndarray:
    try:
        raw = np.asarray(x)
        ok = raw.dtype.kind in "iuf" and raw.shape == shape
        a = raw.astype(np.float64)
    except (TypeError, ValueError):
        ok = False
    if not ok or not np.all(np.isfinite(a)):
        raise QueryError(f"{what}: expected finite numbers of shape {shape}, got {x!r}")
    return a


class Query(Module):
    """A differentiable query: see the module docstring.

    >>> import numpy as np
    >>> from diffsys.systems.db import Database, Query
    >>> db = Database()
    >>> db.create_table("t", {"id": np.arange(5), "a": np.array([5.0, 1.0, 4.0, 2.0, 3.0]),
    ...                       "p": np.array([1.0, 9.0, 2.0, 3.0, 8.0])})
    >>> q = Query("t", key="id", features=["a"], weights=[1.0], predicates=[("p", "<", 5.0)], k=2)
    >>> q.execute(db).keys
    array([0, 2])
    """

    weights: np.ndarray
    bias: np.ndarray
    thresholds: np.ndarray
    table: str = static()
    key: str = static()
    features: tuple = static()
    filters: tuple = static()
    joins: tuple = static()
    predicate_columns: tuple = static()
    predicate_ops: tuple = static()
    k: int | None = static()
    aggregate: tuple | None = static()
    groups: tuple | None = static()
    temperature: float = static()
    regularization_strength: float = static()
    nulls: str = static()

    def __init__(
        self,
        table: str,
        *,
        key: str,
        features: Sequence[str] = (),
        weights: Sequence[float] | None = None,
        bias: float = 0.0,
        filters: Sequence[Filter | Sequence] = (),
        predicates: Sequence[Sequence] = (),
        k: int | None = None,
        joins: Sequence[Join | Sequence] = (),
        aggregate: Sequence | None = None,
        groups: Sequence | None = None,
        temperature: float = 1.0,
        regularization_strength: float = 1.0,
        nulls: str = "error",
    ) -> None:
        for what, name in [("table", table), ("key", key)]:
            if not isinstance(name, str):
                raise QueryError(f"{what}: expected a name (str), got {type(name).__name__}")
        features = tuple(features)
        for i, f in enumerate(features):
            if not isinstance(f, str):
                raise QueryError(f"features[{i}]: expected a column name, got {f!r}")
        self.table, self.key, self.features = table, key, features
        self.filters = tuple(Filter.of(f, f"filters[{i}]") for i, f in enumerate(filters))
        self.joins = tuple(Join.of(j, f"joins[{i}]") for i, j in enumerate(joins))
        cols, op_list, ts = [], [], []
        for i, p in enumerate(predicates):
            if not isinstance(p, list | tuple) or len(p) != 3:
                raise QueryError(f"predicates[{i}]: expected (column, op, threshold), got {p!r}")
            col, op, t = p
            if not isinstance(col, str):
                raise QueryError(f"predicates[{i}]: expected a column name, got {col!r}")
            if op not in ops.PREDICATE_OPS:
                raise QueryError(
                    f"predicates[{i}]: op must be one of {ops.PREDICATE_OPS}, got {op!r}"
                )
            cols.append(col)
            op_list.append(op)
            ts.append(_floats(t, (), f"predicates[{i}] threshold"))
        self.predicate_columns, self.predicate_ops = tuple(cols), tuple(op_list)
        self.thresholds = np.array(ts, dtype=np.float64).reshape(len(ts))
        if weights is None:
            weights = np.ones(len(features))
        self.weights = _floats(weights, (len(features),), "weights")
        self.bias = _floats(bias, (), "bias")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1):
            raise QueryError(f"k: expected a whole number >= 1 or None, got {k!r}")
        self.k = None if k is None else int(k)
        if aggregate is not None:
            aggregate = tuple(aggregate)
            if len(aggregate) != 3:
                raise QueryError(f"aggregate: expected (group_by, how, value), got {aggregate!r}")
            group_by, how, value = aggregate
            if how not in ops.AGGREGATES:
                raise QueryError(f"aggregate: how must be one of {ops.AGGREGATES}, got {how!r}")
            if not isinstance(group_by, str) or not (value is None or isinstance(value, str)):
                raise QueryError(
                    f"aggregate: group_by and value are column names, got {aggregate!r}"
                )
            if how != "count" and value is None:
                raise QueryError(f"aggregate: {how!r} needs a value column (or 'score')")
            if value == "score" and not features:
                raise QueryError("aggregate: value 'score' needs features")
        elif not features:
            raise QueryError("features: a query without an aggregate ranks rows: give features")
        self.aggregate = aggregate
        self.groups = None if groups is None else tuple(groups)
        for what, v in [
            ("temperature", temperature),
            ("regularization_strength", regularization_strength),
        ]:
            if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
                raise QueryError(f"{what}: expected a finite number > 0, got {v!r}")
        self.temperature = float(temperature)
        self.regularization_strength = float(regularization_strength)
        if nulls not in NULL_POLICIES:
            raise QueryError(f"nulls: expected one of {NULL_POLICIES}, got {nulls!r}")
        self.nulls = nulls
        self.__check_init__()

    def __check_init__(self) -> None:
        """The structure's invariants, checked after construction and again when a saved
        pipeline rebuilds the query from its file (``pl.load``): every name a string, every
        operator from its closed list, shapes that agree."""

        def names(what, xs):
            if not isinstance(xs, tuple) or not all(isinstance(x, str) for x in xs):
                raise QueryError(f"{what}: expected a tuple of names, got {xs!r}")

        names("table and key", (self.table, self.key))
        names("features", self.features)
        names("predicates columns", self.predicate_columns)
        for what, xs, cls in (("filters", self.filters, Filter), ("joins", self.joins, Join)):
            if not isinstance(xs, tuple) or not all(isinstance(x, cls) for x in xs):
                raise QueryError(f"{what}: expected a tuple of {cls.__name__}, got {xs!r}")
        ops_ = self.predicate_ops
        if not isinstance(ops_, tuple) or not all(o in ops.PREDICATE_OPS for o in ops_):
            raise QueryError(f"predicates: ops must be in {ops.PREDICATE_OPS}, got {ops_!r}")
        shapes = {
            "weights": (tuple(self.weights.shape), (len(self.features),)),
            "bias": (tuple(self.bias.shape), ()),
            "thresholds": (tuple(self.thresholds.shape), (len(ops_),)),
        }
        for what, (got, want) in shapes.items():
            if got != want:
                raise QueryError(f"{what}: expected shape {want}, got {got}")
        if len(self.predicate_columns) != len(ops_):
            raise QueryError(f"predicates: {len(self.predicate_columns)} columns, {len(ops_)} ops")
        k = self.k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise QueryError(f"k: expected a whole number >= 1 or None, got {k!r}")
        agg = self.aggregate
        if agg is not None and not (
            isinstance(agg, tuple)
            and len(agg) == 3
            and isinstance(agg[0], str)
            and agg[1] in ops.AGGREGATES
            and (agg[2] is None or isinstance(agg[2], str))
        ):
            raise QueryError(
                f"aggregate: expected (group_by, how in {ops.AGGREGATES}, value), got {agg!r}"
            )
        if self.groups is not None and not isinstance(self.groups, tuple):
            raise QueryError(f"groups: expected a tuple or None, got {self.groups!r}")
        for what in ("temperature", "regularization_strength"):
            v = getattr(self, what)
            if not (isinstance(v, float) and np.isfinite(v) and v > 0):
                raise QueryError(f"{what}: expected a finite number > 0, got {v!r}")
        if self.nulls not in NULL_POLICIES:
            raise QueryError(f"nulls: expected one of {NULL_POLICIES}, got {self.nulls!r}")

    # --- layout of the candidate matrix ------------------------------------------------------
    @property
    def value_column(self) -> str | None:
        """The aggregated column (``None`` for ``count`` or ``'score'``)."""
        if self.aggregate is None or self.aggregate[2] in (None, "score"):
            return None
        return self.aggregate[2]

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of the candidate matrix ``x``: features, predicate columns, the
        aggregated column (each once, in that order)."""
        extra = () if self.value_column is None else (self.value_column,)
        return tuple(dict.fromkeys((*self.features, *self.predicate_columns, *extra)))

    def _describe(self) -> str:
        joins = "".join(f" {j.how} join {j.table!r}" for j in self.joins)
        return f"Query({self.table!r}{joins}, k={self.k}, aggregate={self.aggregate})"

    # --- the exact part ----------------------------------------------------------------------
    def check(self, db: Database) -> Source:
        """Check every identifier against ``db``'s schema; the query's :class:`Source` (its
        tables and joins, which resolves the column names)."""
        source = Source(db, self.table, self.joins)
        source.column(self.key, "key")
        for i, f in enumerate(self.features):
            source.column(f, f"features[{i}]", numeric=True)
        for i, c in enumerate(self.predicate_columns):
            source.column(c, f"predicates[{i}]", numeric=True)
        if self.aggregate is not None:
            source.column(self.aggregate[0], "aggregate group_by")
            if self.value_column is not None:
                source.column(self.value_column, "aggregate value", numeric=True)
        return source

    def _read(self) -> list[str]:
        """The columns the query reads (key, candidate columns, group-by), each once."""
        extra = [] if self.aggregate is None else [self.aggregate[0]]
        return list(dict.fromkeys([self.key, *self.columns, *extra]))

    def _exact_where(self, db, source, params) -> tuple[list[str], list]:
        where, args = db.where_clause(source, self.filters, params)
        if self.nulls == "drop":
            cols = [source.column(c, "columns") for c in self._read()]
            where = where + [present(c.sql, c.type) for c in cols]
        return where, args

    def candidates(self, db: Database, params: Mapping[str, Any] | None = None) -> Candidates:
        """Run the exact part in DuckDB: the candidate rows (sorted by key) as arrays."""
        self.check(db)
        group_by = None if self.aggregate is None else self.aggregate[0]
        data = db.fetch(
            self.table,
            self._read(),
            self.filters,
            params,
            nulls=self.nulls,
            order_by=self.key,
            joins=self.joins,
        )
        keys = data[self.key]
        if keys.size == 0:
            raise QueryError(
                f"{self._describe()} filters: no candidate rows in table {self.table!r} for "
                f"filters {list(self.filters)} with params {dict(params or {})}"
            )
        if self.joins and keys.size > 1 and np.any(keys[1:] == keys[:-1]):
            dup = keys[1:][keys[1:] == keys[:-1]]
            raise QueryError(
                f"{self._describe()} key: {self.key!r} is not unique over the joined rows "
                f"({dup.size} repeats, e.g. {dup[0]!r}): a join matched several rows per key; "
                "key by a column that identifies the joined rows (of the joined table)"
            )
        x = np.empty((keys.size, len(self.columns)), dtype=np.float64)
        for j, c in enumerate(self.columns):
            x[:, j] = data[c]
        if group_by is None:
            return Candidates(keys, x)
        values = data[group_by]
        groups = self.groups if self.groups is not None else tuple(np.unique(values).tolist())
        onehot = (values[:, None] == np.asarray(groups, dtype=values.dtype)[None, :]).astype(float)
        return Candidates(keys, x, onehot, groups)

    # --- the differentiable part -------------------------------------------------------------
    def _col(self, x, name: str):
        return x[:, self.columns.index(name)]

    def _check_x(self, x):
        shape = tuple(x.shape)
        if len(shape) != 2 or shape[1] != len(self.columns):
            raise QueryError(
                f"{self._describe()}: candidates x must have shape (n, {len(self.columns)}) "
                f"for columns {list(self.columns)}, got {shape}"
            )
        if shape[0] == 0:
            raise QueryError(f"{self._describe()}: no candidate rows (x has shape {shape})")
        if self.k is not None and self.k > shape[0]:
            raise QueryError(
                f"{self._describe()} k: k = {self.k} is larger than the {shape[0]} candidate "
                "rows; lower k or widen the filters"
            )

    def score(self, x):
        """The learned linear score of each candidate row, ``(n,)``."""
        idx = [self.columns.index(f) for f in self.features]
        return ops.linear_score(x[:, idx], self.weights, self.bias)

    def log_membership(self, x):
        """``sum_i log soft_predicate_i``: the log-weight each row keeps after the soft
        predicates (``None`` without predicates)."""
        out = None
        for i, (c, op) in enumerate(zip(self.predicate_columns, self.predicate_ops, strict=True)):
            term = ops.log_soft_predicate(self._col(x, c), self.thresholds[i], op, self.temperature)
            out = term if out is None else out + term
        return out

    def hard_membership(self, x) -> np.ndarray:
        """1 for rows that pass every predicate exactly, else 0."""
        m = np.ones(x.shape[0])
        for i, (c, op) in enumerate(zip(self.predicate_columns, self.predicate_ops, strict=True)):
            m = m * ops.hard_predicate(self._col(x, c), self.thresholds[i], op)
        return m

    def _agg_values(self, x):
        if self.aggregate[2] == "score":
            return self.score(x)
        if self.value_column is None:
            return None
        return self._col(x, self.value_column)

    def relaxed(self, x, groups=None):
        """The training form over candidates ``x``: soft selection weights ``(n,)``
        (top-k queries), or the soft aggregate per group ``(g,)``."""
        self._check_x(x)
        logm = self.log_membership(x)
        if self.k is not None:
            w = ops.soft_select(self.score(x), self.k, logm, self.regularization_strength)
        else:
            from ... import numpy as dnp

            w = dnp.ones(x.shape[0]) if logm is None else dnp.exp(logm)
        if self.aggregate is None:
            return w
        groups = self._check_groups(x, groups)
        how = self.aggregate[1]
        return ops.soft_group_aggregate(
            self._agg_values(x), groups * w[:, None], how, self.temperature
        )

    __call__ = relaxed

    def hard(self, x, groups=None):
        """The exact form in NumPy: 0/1 selection ``(n,)`` or the aggregate per group (NaN for
        an empty group)."""
        self._check_x(x)
        m = self.hard_membership(x)
        w = ops.hard_select(self.score(x), self.k, m) if self.k is not None else m
        if self.aggregate is None:
            return w
        groups = self._check_groups(x, groups)
        return ops.hard_group_aggregate(self._agg_values(x), groups * w[:, None], self.aggregate[1])

    def _check_groups(self, x, groups):
        if groups is None:
            raise QueryError(f"{self._describe()}: an aggregate query needs groups (n, g)")
        if tuple(groups.shape)[:1] != (x.shape[0],) or len(groups.shape) != 2:
            raise QueryError(
                f"{self._describe()}: groups must have shape ({x.shape[0]}, g), got "
                f"{tuple(groups.shape)}"
            )
        return groups

    def hard_result(self, cands: Candidates) -> QueryResult:
        """:meth:`hard` over ``cands`` in the shape :meth:`execute` returns (rank order, or the
        non-empty groups in group order)."""
        w = self.hard(cands.x, cands.groups)
        if self.aggregate is None:
            s = np.asarray(self.score(cands.x))
            idx = np.flatnonzero(w)
            idx = idx[np.argsort(-s[idx], kind="stable")]
            return QueryResult(keys=cands.keys[idx], scores=s[idx])
        keep = ~np.isnan(w) if self.aggregate[1] != "count" else w > 0
        order = np.argsort(np.asarray(cands.group_values, dtype=object)[keep], kind="stable")
        groups = tuple(np.asarray(cands.group_values, dtype=object)[keep][order].tolist())
        return QueryResult(groups=groups, values=w[keep][order])

    # --- compiled to SQL ---------------------------------------------------------------------
    def compile(self, db: Database, params: Mapping[str, Any] | None = None) -> tuple[str, list]:
        """The hard query as one SQL statement and its bound values (learned weights, bias and
        thresholds included): identifiers checked and quoted, values bound."""
        return self._compile(db, self.check(db), params)

    def _compile(self, db, source, params) -> tuple[str, list]:
        def col(ref: str) -> str:
            return source.column(ref, "columns").sql

        where, args = self._exact_where(db, source, params)
        for i, (c, op) in enumerate(zip(self.predicate_columns, self.predicate_ops, strict=True)):
            where.append(f"CAST({col(c)} AS DOUBLE) {op} ?")
            args.append(float(self.thresholds[i]))
        score_sql, score_args = "", []
        if self.features:
            score_sql = (
                "(? + " + " + ".join(f"? * CAST({col(f)} AS DOUBLE)" for f in self.features) + ")"
            )
            score_args = [float(self.bias), *map(float, self.weights)]
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        table = source.sql()
        key = col(self.key)
        if self.aggregate is None:
            limit = "" if self.k is None else f" LIMIT {int(self.k)}"
            sql = (
                f"SELECT {key} AS key, {score_sql} AS score FROM {table}{cond} "
                f"ORDER BY score DESC, key{limit}"
            )
            return sql, score_args + args
        group_by, how, value = self.aggregate
        g = col(group_by)
        if value == "score":
            v_sql, v_args = score_sql, score_args
        elif value is None:
            v_sql, v_args = "1", []
        else:
            v_sql, v_args = f"CAST({col(value)} AS DOUBLE)", []
        fn = {
            "sum": "SUM(v)",
            "count": "CAST(COUNT(*) AS DOUBLE)",
            "mean": "AVG(v)",
            "max": "MAX(v)",
        }[how]
        if self.k is not None:
            inner = (
                f"SELECT {g} AS g, {v_sql} AS v, {score_sql} AS score, {key} AS key "
                f"FROM {table}{cond} ORDER BY score DESC, key LIMIT {int(self.k)}"
            )
            inner_args = v_args + score_args + args
        else:
            inner = f"SELECT {g} AS g, {v_sql} AS v FROM {table}{cond}"
            inner_args = v_args + args
        sql = f"SELECT g, {fn} AS value FROM ({inner}) GROUP BY g ORDER BY g"
        return sql, inner_args

    def execute(self, db: Database, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Compile and let DuckDB run the hard query; NULLs follow :attr:`nulls` (``"error"``
        raises when a read column of a filtered row is NULL or NaN)."""
        source = self.check(db)
        sql, args = self._compile(db, source, params)
        if self.nulls == "error":
            self._check_no_nulls(db, source, params)
        if self.joins:
            self._check_unique_key(db, source, params)
        cursor = db.con.execute(sql, args)
        if self.aggregate is None:
            out = cursor.fetchnumpy()
            return QueryResult(keys=np.asarray(out["key"]), scores=np.asarray(out["score"]))
        rows = cursor.fetchall()  # one row per group: few
        values = np.array([np.nan if v is None else v for _, v in rows], dtype=np.float64)
        return QueryResult(groups=tuple(g for g, _ in rows), values=values)

    def _check_no_nulls(self, db, source, params) -> None:
        where, args = db.where_clause(source, self.filters, params)
        read = [source.column(c, "columns") for c in self._read()]
        bad = " OR ".join(f"NOT {present(c.sql, c.type)}" for c in read)
        cond = " AND ".join([*where, f"({bad})"])
        counts = ", ".join(f"COUNT(*) FILTER (WHERE NOT {present(c.sql, c.type)})" for c in read)
        sql = f"SELECT {counts} FROM {source.sql()} WHERE {cond}"
        counts = db.con.execute(sql, args).fetchone()
        for c, n in zip(read, counts, strict=True):
            if n:
                raise QueryError(
                    f"{self._describe()} column {c.ref!r}: {n} NULL/NaN value(s) among the "
                    "filtered rows under nulls='error'; use nulls='drop' to skip them"
                )

    def _check_unique_key(self, db, source, params) -> None:
        # The key of the first table stays unique (as it is without joins) when every join
        # matches at most one row: a scan of the joined tables (often small) settles that;
        # otherwise count the repeated keys over the joined rows.
        if source.column(self.key, "key").table == self.table and all(
            _matches_at_most_one(db, on) for _, on in source.joins
        ):
            return
        where, args = self._exact_where(db, source, params)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        key = source.column(self.key, "key").sql
        sql = f"SELECT COUNT(*) - COUNT(DISTINCT {key}) FROM {source.sql()}{cond}"
        (repeats,) = db.con.execute(sql, args).fetchone()
        if repeats:
            raise QueryError(
                f"{self._describe()} key: {self.key!r} is not unique over the joined rows "
                f"({repeats} repeats): a join matched several rows per key; key by a column "
                "that identifies the joined rows (of the joined table)"
            )

    # --- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The query as plain JSON data (no pickle): structure and learned values."""

        def enc(v):
            if isinstance(v, Param):
                return {"param": v.name}
            if isinstance(v, tuple):
                return [enc(x) for x in v]
            return v

        return {
            "format": FORMAT,
            "version": VERSION,
            "table": self.table,
            "key": self.key,
            "features": list(self.features),
            "weights": [float(w) for w in self.weights],
            "bias": float(self.bias),
            "filters": [[f.column, f.op, enc(f.value)] for f in self.filters],
            "joins": [j.to_config() for j in self.joins],
            "predicates": [
                [c, op, float(t)]
                for c, op, t in zip(
                    self.predicate_columns, self.predicate_ops, self.thresholds, strict=True
                )
            ],
            "k": self.k,
            "aggregate": None if self.aggregate is None else list(self.aggregate),
            "groups": None if self.groups is None else list(self.groups),
            "temperature": self.temperature,
            "regularization_strength": self.regularization_strength,
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, doc: Mapping) -> Query:
        """A query from :meth:`to_dict`'s data; every field checked, unknown ones refused."""
        if not isinstance(doc, Mapping):
            raise QueryError(f"query JSON: expected an object, got {type(doc).__name__}")
        fields = set(
            cls(  # the field names of a minimal query's document
                "t", key="k", features=["f"]
            ).to_dict()
        )
        unknown = set(doc) - fields
        missing = fields - set(doc) - {"joins"}  # a query saved before joins has none
        if unknown or missing:
            raise QueryError(
                f"query JSON: unknown fields {sorted(unknown)}, missing {sorted(missing)}"
            )
        if doc["format"] != FORMAT or doc["version"] != VERSION:
            raise QueryError(
                f"query JSON: format {doc['format']!r} version {doc['version']!r}; expected "
                f"{FORMAT!r} version {VERSION}"
            )

        def dec(v, where):
            if isinstance(v, dict):
                if set(v) != {"param"} or not isinstance(v["param"], str):
                    raise QueryError(
                        f"query JSON {where}: a placeholder is {{'param': name}}, got {v!r}"
                    )
                return Param(v["param"])
            if isinstance(v, list):
                return [dec(x, where) for x in v]
            if v is None or not isinstance(v, int | float | str | bool):
                raise QueryError(
                    f"query JSON {where}: a value is a number, string or bool, got {v!r}"
                )
            return v

        def lst(name):
            v = doc[name]
            if not isinstance(v, list):
                raise QueryError(f"query JSON {name}: expected a list, got {type(v).__name__}")
            return v

        filters = []
        for i, f in enumerate(lst("filters")):
            if not isinstance(f, list) or len(f) != 3:
                raise QueryError(
                    f"query JSON filters[{i}]: expected [column, op, value], got {f!r}"
                )
            filters.append((f[0], f[1], dec(f[2], f"filters[{i}]")))
        joins = []
        if not isinstance(doc.get("joins", []), list):
            raise QueryError(f"query JSON joins: expected a list, got {doc['joins']!r}")
        for i, j in enumerate(doc.get("joins", [])):
            try:
                joins.append(Join.from_config(j))
            except QueryError as exc:
                raise QueryError(f"query JSON joins[{i}]: {exc}") from None
        for name in ("weights", "predicates"):
            lst(name)
        if any(isinstance(w, bool) or not isinstance(w, int | float) for w in doc["weights"]):
            raise QueryError(f"query JSON weights: expected numbers, got {doc['weights']!r}")
        return cls(
            doc["table"],
            key=doc["key"],
            features=lst("features"),
            weights=doc["weights"],
            bias=doc["bias"],
            filters=filters,
            joins=joins,
            predicates=doc["predicates"],
            k=doc["k"],
            aggregate=doc["aggregate"],
            groups=doc["groups"],
            temperature=doc["temperature"],
            regularization_strength=doc["regularization_strength"],
            nulls=doc["nulls"],
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Query:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QueryError(f"query JSON: not JSON ({exc})") from None
        return cls.from_dict(doc)

    def save(self, path: str | os.PathLike) -> None:
        """Write the query as JSON to ``path`` (atomically: a temporary file, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Query:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _matches_at_most_one(db: Database, on) -> bool:
    """Whether the right-hand join columns ``on`` (pairs of resolved columns) identify the
    rows of their table (no non-NULL combination repeats)."""
    cols = [f"{quote(rc.table)}.{quote(rc.name)}" for _, rc in on]
    present_all = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    sql = (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(on[0][1].table)} WHERE {present_all} "
        f"GROUP BY {', '.join(cols)} HAVING COUNT(*) > 1)"
    )
    return db.con.execute(sql).fetchone()[0] == 0


class CompiledQuery(Module):
    """A :class:`Query` whose hard form is DuckDB's: ``relaxed(x, keys[, groups])`` is
    :meth:`Query.relaxed` over the candidates; ``hard(...)`` compiles the query, lets DuckDB
    execute it on ``db`` (exact part bound with ``params``) and returns the result in the
    relaxed form's shape: a 0/1 indicator over the candidate ``keys`` (top-k queries), or the
    value per group of ``query.groups`` (aggregate queries; NaN for a group SQL left out).
    ``db`` and ``params`` are configuration, not parameters."""

    query: Query
    db: Database = static()
    params: tuple = static()

    def __init__(self, query: Query, db: Database, params: Mapping[str, Any] | None = None):
        if query.aggregate is not None and query.groups is None:
            raise QueryError(
                f"{query._describe()}: a compiled aggregate query needs groups=(...) fixed, so "
                "the SQL result lines up with the relaxed one"
            )
        query.check(db)
        self.query, self.db = query, db
        self.params = tuple(sorted((params or {}).items()))

    def relaxed(self, x, keys, groups=None):
        return self.query.relaxed(x, groups)

    __call__ = relaxed

    def hard(self, x, keys, groups=None):
        result = self.query.execute(self.db, dict(self.params))
        if self.query.aggregate is None:
            keys = np.asarray(keys)
            pos = np.searchsorted(keys, result.keys)
            pos = np.minimum(pos, keys.size - 1)
            if not np.array_equal(keys[pos], result.keys):
                raise QueryError(
                    f"{self.query._describe()}: DuckDB returned keys that are not among the "
                    "candidate keys (were the candidates fetched with the same filters and "
                    "params, sorted by key?)"
                )
            out = np.zeros(keys.size)
            out[pos] = 1.0
            return out
        index = {g: i for i, g in enumerate(self.query.groups)}
        out = np.full(len(self.query.groups), np.nan)
        for g, v in zip(result.groups, result.values, strict=True):
            out[index[g]] = v
        if self.query.aggregate[1] == "count":
            out = np.nan_to_num(out, nan=0.0)
        return out
