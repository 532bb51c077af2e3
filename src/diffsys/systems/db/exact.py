"""The exact layer: DuckDB, driven with schema-checked identifiers and bound values only.

Nothing here is relaxed or traced. :class:`Database` wraps a DuckDB connection (in memory or
a file); every table and column name it puts into SQL is first looked up in the database's
own catalogue (``information_schema``) and then quoted, and every value travels as a bound
parameter (``?``), so no user-provided string is ever formatted into a statement.

Rows come back as NumPy arrays column by column (DuckDB's ``fetchnumpy``), never as Python
rows: fetching 100k rows x 16 columns costs a few milliseconds.

>>> import numpy as np
>>> from diffsys.systems.db import Database
>>> db = Database()
>>> db.create_table("items", {"id": np.arange(4), "price": np.array([3.0, 1.0, 2.0, 5.0])})
>>> db.columns("items")
{'id': 'BIGINT', 'price': 'DOUBLE'}
>>> db.fetch("items", ["id", "price"], [("price", "<", 3.0)])["id"]
array([1, 2])

Joins (:class:`Join`) put more tables in the ``FROM`` clause, keyed on columns checked
against both tables' schemas; a column is then named ``"table.column"`` (or plainly, when
only one table has it): :class:`Source` resolves every name.

>>> db.create_table("stock", {"item": np.array([0, 2, 3]), "qty": np.array([7, 0, 4])})
>>> db.fetch("items", ["id", "stock.qty"], joins=[Join("stock", [("id", "item")])])["stock.qty"]
array([7, 0, 4])
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

try:
    import duckdb
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "diffsys.systems.db needs DuckDB: install the 'db' extra "
        "(pip install 'diffsys[db]', or pip install duckdb)"
    ) from exc

__all__ = [
    "COMPARISONS",
    "JOIN_KINDS",
    "NULL_POLICIES",
    "NUMERIC_TYPES",
    "Column",
    "Database",
    "Filter",
    "Join",
    "Param",
    "QueryError",
    "Source",
    "quote",
]

#: The comparison operators an exact filter may use (a closed vocabulary: never SQL text).
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=", "in")
#: The joins a query may use: ``"inner"`` keeps matched rows, ``"left"`` keeps every row of
#: the tables before it (the joined table's columns NULL where nothing matched: the NULL
#: policy then applies to the columns the query reads).
JOIN_KINDS = ("inner", "left")
#: What to do with NULL or NaN in a column a query reads: ``"error"`` raises, naming the
#: column and the query part; ``"drop"`` keeps only rows where every read column is present
#: and not NaN (in SQL and in NumPy alike).
NULL_POLICIES = ("error", "drop")
#: DuckDB column types a feature, threshold or aggregated column may have.
NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL", "BOOLEAN",
)  # fmt: skip
_DECIMAL = re.compile(r"^DECIMAL\(\d+,\d+\)$")
_STRING_TYPES = ("VARCHAR", "ENUM(")
_NEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class QueryError(ValueError):
    """A query that cannot run as written: unknown table or column, a wrong type, NULLs under
    the ``"error"`` policy, an empty candidate set, ``k`` larger than the candidates. The
    message names the query part (``table``, ``features[1]``, ``filters[0]``, ...)."""


class Param:
    """A named placeholder for a filter value given at execution time (bound, never
    formatted): ``("category", "=", Param("cat"))`` then ``params={"cat": 3}``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Param: name must be a non-empty string, got {name!r}")
        self.name = name

    def __eq__(self, other) -> bool:
        return isinstance(other, Param) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Param", self.name))

    def __repr__(self) -> str:
        return f"Param({self.name!r})"

    def to_config(self) -> str:
        """The placeholder as JSON data (its name), for ``pl.save``."""
        return self.name

    @classmethod
    def from_config(cls, config) -> Param:
        """:meth:`to_config`'s data back (checked: a non-empty string)."""
        return cls(config)


class Filter:
    """One exact condition ``column op value``; ``op`` from :data:`COMPARISONS`; ``value`` a
    number, a string, a bool, a :class:`Param`, or (for ``"in"``) a list of them."""

    __slots__ = ("column", "op", "value")

    def __init__(self, column: str, op: str, value: Any) -> None:
        if not isinstance(column, str):
            raise TypeError(f"Filter: column must be a string, got {type(column).__name__}")
        if op not in COMPARISONS:
            raise QueryError(f"Filter({column!r}): op must be one of {COMPARISONS}, got {op!r}")
        if op == "in":
            if not isinstance(value, list | tuple) or not value:
                raise QueryError(
                    f"Filter({column!r}, 'in'): value must be a non-empty list, got {value!r}"
                )
            value = tuple(value)
        self.column, self.op, self.value = column, op, value

    @classmethod
    def of(cls, spec: Filter | Sequence, where: str) -> Filter:
        """A :class:`Filter` from a ``(column, op, value)`` triple (or a Filter)."""
        if isinstance(spec, Filter):
            return spec
        if not isinstance(spec, list | tuple) or len(spec) != 3:
            raise QueryError(f"{where}: expected (column, op, value), got {spec!r}")
        try:
            return cls(*spec)
        except (QueryError, TypeError) as exc:
            raise QueryError(f"{where}: {exc}") from None

    def values(self) -> tuple:
        return self.value if self.op == "in" else (self.value,)

    def __eq__(self, other) -> bool:
        return isinstance(other, Filter) and (self.column, self.op, self.value) == (
            other.column,
            other.op,
            other.value,
        )

    def __hash__(self) -> int:
        return hash((self.column, self.op, self.value))

    def __repr__(self) -> str:
        return f"Filter({self.column!r}, {self.op!r}, {self.value!r})"

    def to_config(self) -> list:
        """``[column, op, value]`` (a :class:`Param` stays one: the pipeline saver encodes it
        as a registered value); :meth:`from_config` checks it as the constructor does."""
        return [self.column, self.op, list(self.value) if self.op == "in" else self.value]

    @classmethod
    def from_config(cls, config) -> Filter:
        if not isinstance(config, list | tuple) or len(config) != 3:
            raise QueryError(f"Filter: expected [column, op, value], got {config!r}")
        values = config[2] if isinstance(config[2], list | tuple) else [config[2]]
        for v in values:
            if isinstance(v, float) and not np.isfinite(v) or not isinstance(
                v, bool | int | float | str | Param
            ):
                raise QueryError(
                    f"Filter({config[0]!r}): a value is a finite number, a string, a bool or a "
                    f"Param, got {v!r}"
                )
        return cls(*config)


class Join:
    """``how JOIN table ON left = right AND ...``: ``on`` is a sequence of ``(left, right)``
    column pairs (``left`` a column of a table already in the query, ``right`` one of
    ``table``; either may be qualified, ``"table.column"``), or one column name both tables
    share; ``how`` from :data:`JOIN_KINDS`. Every name is checked against the schema
    (:class:`Source`) before any SQL is written.

    >>> Join("brands", [("brand_id", "id")])
    Join('brands', [('brand_id', 'id')], how='inner')
    """

    __slots__ = ("how", "on", "table")

    def __init__(self, table: str, on: str | Sequence[Sequence[str]], how: str = "inner"):
        if not isinstance(table, str):
            raise QueryError(f"Join: table must be a string, got {type(table).__name__}")
        if how not in JOIN_KINDS:
            raise QueryError(f"Join({table!r}): how must be one of {JOIN_KINDS}, got {how!r}")
        if isinstance(on, str):
            on = [(on, on)]
        if not isinstance(on, list | tuple) or not on:
            raise QueryError(
                f"Join({table!r}): on must be a column name or a non-empty list of "
                f"(left, right) column pairs, got {on!r}"
            )
        pairs = []
        for pair in on:
            if (
                not isinstance(pair, list | tuple)
                or len(pair) != 2
                or not all(isinstance(c, str) for c in pair)
            ):
                raise QueryError(
                    f"Join({table!r}): each on entry is a (left, right) pair of column names, "
                    f"got {pair!r}"
                )
            pairs.append((pair[0], pair[1]))
        self.table, self.on, self.how = table, tuple(pairs), how

    @classmethod
    def of(cls, spec: Join | Sequence, where: str) -> Join:
        """A :class:`Join` from ``(table, on)`` or ``(table, on, how)`` (or a Join)."""
        if isinstance(spec, Join):
            return spec
        if not isinstance(spec, list | tuple) or len(spec) not in (2, 3):
            raise QueryError(f"{where}: expected (table, on[, how]), got {spec!r}")
        try:
            return cls(*spec)
        except (QueryError, TypeError) as exc:
            raise QueryError(f"{where}: {exc}") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, Join) and (self.table, self.on, self.how) == (
            other.table,
            other.on,
            other.how,
        )

    def __hash__(self) -> int:
        return hash((self.table, self.on, self.how))

    def __repr__(self) -> str:
        return f"Join({self.table!r}, {list(self.on)!r}, how={self.how!r})"

    def to_config(self) -> list:
        """``[table, [[left, right], ...], how]``: JSON data for ``pl.save`` and
        ``Query.save``."""
        return [self.table, [list(p) for p in self.on], self.how]

    @classmethod
    def from_config(cls, config) -> Join:
        """:meth:`to_config`'s data back, checked as the constructor checks."""
        if not isinstance(config, list | tuple) or len(config) != 3:
            raise QueryError(f"Join: expected [table, on, how], got {config!r}")
        return cls(*config)


class Column(NamedTuple):
    """A column reference resolved against a :class:`Source`: ``ref`` as written,
    ``table`` and ``name`` it names, its DuckDB ``type``, and ``sql``, the quoted
    expression (``"name"`` over one table, ``"table"."name"`` over joins)."""

    ref: str
    table: str
    name: str
    type: str
    sql: str


class Source:
    """The ``FROM`` clause of a query: ``table`` and its ``joins``, every table and join
    column checked against ``db``'s schema. :meth:`column` resolves a column reference
    (``"column"`` or ``"table.column"``); an unknown or ambiguous one is an error naming
    ``where``.

    >>> import numpy as np
    >>> db = Database()
    >>> db.create_table("a", {"id": np.arange(2), "x": np.ones(2)})
    >>> db.create_table("b", {"id": np.arange(2), "y": np.ones(2)})
    >>> src = Source(db, "a", [Join("b", "id")])
    >>> src.sql(), src.column("y", "features[0]").sql
    ('"a" INNER JOIN "b" ON "a"."id" = "b"."id"', '"b"."y"')
    """

    def __init__(self, db: Database, table: str, joins: Sequence[Join | Sequence] = ()):
        self.db, self.table = db, table
        self.schemas: dict[str, dict[str, str]] = {table: db.check_table(table)}
        self.joins: list[tuple[Join, list[tuple[Column, Column]]]] = []
        for i, spec in enumerate(joins):
            where = f"joins[{i}]"
            j = Join.of(spec, where)
            if j.table in self.schemas:
                raise QueryError(
                    f"{where}: table {j.table!r} is already in the query (a table appears "
                    "once: self-joins are not supported; make a view under another name)"
                )
            schema = db.check_table(j.table, where)
            before = dict(self.schemas)
            self.schemas[j.table] = schema
            on = []
            for k, (left, right) in enumerate(j.on):
                lc = self._resolve(left, f"{where} on[{k}] left", before)
                rc = self._resolve(right, f"{where} on[{k}] right", {j.table: schema})
                if is_numeric(lc.type) != is_numeric(rc.type):
                    raise QueryError(
                        f"{where} on[{k}]: type mismatch: {lc.table}.{lc.name} is {lc.type}, "
                        f"{rc.table}.{rc.name} is {rc.type}; join columns must both be "
                        "numbers or both text"
                    )
                on.append((lc, rc))
            self.joins.append((j, on))

    @property
    def qualified(self) -> bool:
        """Whether columns are written ``"table"."column"`` (the query has joins)."""
        return len(self.schemas) > 1

    def _resolve(self, ref: str, where: str, schemas: Mapping[str, Mapping[str, str]]):
        if not isinstance(ref, str):
            raise QueryError(f"{where}: a column name is a string, got {type(ref).__name__}")
        hits = [(t, ref) for t, s in schemas.items() if ref in s]
        hits += [
            (t, ref[len(t) + 1 :])
            for t, s in schemas.items()
            if ref.startswith(t + ".") and ref[len(t) + 1 :] in s
        ]
        if not hits:
            if len(schemas) == 1:  # one table: the message names it plainly
                (t, s), = schemas.items()
                raise QueryError(
                    f"{where}: no column {ref!r} in table {t!r} (columns: {', '.join(s)})"
                )
            known = ", ".join(f"{t}.{c}" for t, s in schemas.items() for c in s)
            names = ", ".join(repr(t) for t in schemas)
            raise QueryError(f"{where}: no column {ref!r} in tables {names} (columns: {known})")
        if len(hits) > 1:
            raise QueryError(
                f"{where}: column {ref!r} is ambiguous: it is "
                + " and ".join(f"{t}.{c}" for t, c in hits)
                + "; qualify it as 'table.column'"
            )
        t, c = hits[0]
        sql = f"{quote(t)}.{quote(c)}" if self.qualified else quote(c)
        return Column(ref, t, c, schemas[t][c], sql)

    def column(self, ref: str, where: str, *, numeric: bool = False) -> Column:
        """``ref`` resolved over every table of the query (see the class docstring)."""
        col = self._resolve(ref, where, self.schemas)
        if self.qualified:  # later joins may have changed how earlier ones were written
            col = col._replace(sql=f"{quote(col.table)}.{quote(col.name)}")
        if numeric and not is_numeric(col.type):
            raise QueryError(
                f"{where}: column {col.name!r} of table {col.table!r} has type {col.type}; a "
                "feature, threshold or aggregated column must be numeric (INTEGER, BIGINT, "
                "DOUBLE, ...): cast it in a view, or encode it as numbers"
            )
        return col

    def sql(self) -> str:
        """The ``FROM`` clause's text (after ``FROM``): quoted, checked names only."""
        out = quote(self.table)
        for j, on in self.joins:
            conds = " AND ".join(
                f"{quote(lc.table)}.{quote(lc.name)} = {quote(rc.table)}.{quote(rc.name)}"
                for lc, rc in on
            )
            out += f" {j.how.upper()} JOIN {quote(j.table)} ON {conds}"
        return out


def quote(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier (``"`` doubled). Only ever applied to names
    already found in the schema: quoting is the second fence, not the first."""
    return '"' + identifier.replace('"', '""') + '"'


def is_numeric(sql_type: str) -> bool:
    """Whether a DuckDB column type holds numbers (features, thresholds, aggregates)."""
    return sql_type in NUMERIC_TYPES or bool(_DECIMAL.match(sql_type))


class Database:
    """A DuckDB database (``":memory:"`` by default, or a file path), or a wrapped
    ``duckdb`` connection (``Database(connection=con)``)."""

    def __init__(self, path: str = ":memory:", *, connection=None, read_only: bool = False):
        if connection is not None:
            self.con = connection
        else:
            if not isinstance(path, str):
                path = str(path)
            self.con = duckdb.connect(path, read_only=read_only)
        self.path = path if connection is None else "<connection>"

    def __repr__(self) -> str:
        return f"Database({self.path!r})"

    def close(self) -> None:
        self.con.close()

    def to_config(self):
        """Refused: a live connection is not configuration (``pl.save`` calls this)."""
        raise QueryError(
            f"{self!r}: a database connection is not saved with a pipeline; save the query "
            "as query_stage(name, query) (its hard form in NumPy equals DuckDB's row for row) "
            "and after pl.load make it sql_query_stage(name, query, db) again"
        )

    @classmethod
    def from_config(cls, config):
        raise QueryError("Database: a saved pipeline holds no database connection")

    # --- schema -----------------------------------------------------------------------------
    def tables(self) -> tuple[str, ...]:
        """The names of the tables and views of the main schema."""
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() ORDER BY table_name"
        ).fetchall()
        return tuple(r[0] for r in rows)

    def columns(self, table: str) -> dict[str, str]:
        """``{column: DuckDB type}`` of ``table``, in table order; :class:`QueryError` when
        there is no such table."""
        rows = self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = "
            "current_schema() AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        if not rows:
            known = ", ".join(self.tables()) or "none"
            raise QueryError(f"table: no table {table!r} in {self!r} (tables: {known})")
        return {name: typ for name, typ in rows}

    def check_table(self, table: str, where: str = "table") -> dict[str, str]:
        """The columns of ``table``; an error naming ``where`` when it is unknown."""
        if not isinstance(table, str):
            raise QueryError(f"{where}: a table name is a string, got {type(table).__name__}")
        try:
            return self.columns(table)
        except QueryError as exc:
            raise QueryError(f"{where}: {str(exc).removeprefix('table: ')}") from None

    @staticmethod
    def check_column(
        schema: Mapping[str, str], table: str, column: str, where: str, *, numeric: bool = False
    ) -> str:
        """``column``'s type in ``schema``; errors name ``where``, the table and the fix."""
        if not isinstance(column, str) or column not in schema:
            raise QueryError(
                f"{where}: no column {column!r} in table {table!r} (columns: {', '.join(schema)})"
            )
        sql_type = schema[column]
        if numeric and not is_numeric(sql_type):
            raise QueryError(
                f"{where}: column {column!r} of table {table!r} has type {sql_type}; a "
                "feature, threshold or aggregated column must be numeric (INTEGER, BIGINT, "
                "DOUBLE, ...): cast it in a view, or encode it as numbers"
            )
        return sql_type

    # --- writing ----------------------------------------------------------------------------
    def create_table(
        self, name: str, columns: Mapping[str, np.ndarray], *, replace: bool = False
    ) -> None:
        """Create table ``name`` from NumPy columns (no per-row Python: DuckDB scans the
        arrays). Names must be plain identifiers (letters, digits, ``_``)."""
        for n in (name, *columns):
            if not isinstance(n, str) or not _NEW_NAME.match(n):
                raise QueryError(
                    f"create_table: {n!r} is not a plain identifier (letters, digits and _, "
                    "starting with a letter or _)"
                )
        arrays = {k: np.ascontiguousarray(v) for k, v in columns.items()}
        lengths = {k: v.shape for k, v in arrays.items()}
        if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) > 1:
            raise QueryError(
                f"create_table({name!r}): columns must be 1-D of one length, got {lengths}"
            )
        view = f"_diffsys_load_{name}"
        self.con.register(view, arrays)
        try:
            verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
            self.con.execute(f"{verb} {quote(name)} AS SELECT * FROM {quote(view)}")
        finally:
            self.con.unregister(view)

    # --- reading ----------------------------------------------------------------------------
    def fetch(
        self,
        table: str,
        columns: Sequence[str],
        filters: Sequence[Filter | Sequence] = (),
        params: Mapping[str, Any] | None = None,
        *,
        nulls: str = "error",
        order_by: str | None = None,
        joins: Sequence[Join | Sequence] = (),
    ) -> dict[str, np.ndarray]:
        """Columns of the rows of ``table`` (joined with ``joins``) that pass ``filters``, as
        NumPy arrays keyed by the names as given.

        Identifiers are checked against the schema; filter values (and :class:`Param` values
        from ``params``) are bound. ``nulls`` (:data:`NULL_POLICIES`) applies to ``columns``.
        """
        source = Source(self, table, joins)
        refs = list(dict.fromkeys(columns))
        cols = [source.column(c, f"columns[{list(columns).index(c)}]") for c in refs]
        where, args = self.where_clause(source, filters, params)
        if nulls == "drop":
            where += [present(c.sql, c.type) for c in cols]
        elif nulls not in NULL_POLICIES:
            raise QueryError(f"nulls: expected one of {NULL_POLICIES}, got {nulls!r}")
        # DuckDB's NumPy fetch of text columns goes through pandas: fetch text as codes
        # (DENSE_RANK over the kept rows) and its few distinct values apart.
        text = [i for i, c in enumerate(cols) if not is_numeric(c.type)]
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        picks = [
            f"CAST(DENSE_RANK() OVER (ORDER BY {c.sql}) - 1 AS BIGINT) AS c{i}"
            if i in text
            else f"{c.sql} AS c{i}"
            for i, c in enumerate(cols)
        ]
        sql = f"SELECT {', '.join(picks)} FROM {source.sql()}{cond}"
        if order_by is not None:
            sql += f" ORDER BY {source.column(order_by, 'order_by').sql}"
        raw = self.con.execute(sql, args).fetchnumpy()
        out = {c.ref: raw[f"c{i}"] for i, c in enumerate(cols)}
        for i in text:
            c = cols[i]
            levels = self.con.execute(
                f"SELECT DISTINCT {c.sql} FROM {source.sql()}{cond} ORDER BY 1", args
            ).fetchall()
            levels = np.asarray([r[0] for r in levels], dtype=object)
            if nulls == "error" and any(v is None for v in levels):
                raise QueryError(
                    f"columns[{list(columns).index(c.ref)}] ({c.ref!r}): NULL value(s) in table "
                    f"{c.table!r} under nulls='error'; use nulls='drop' to skip those rows"
                )
            codes = np.asarray(out[c.ref], dtype=np.intp)
            out[c.ref] = levels[codes] if levels.size else levels
        result = {}
        for i, c in enumerate(columns):
            a = out[c]
            table = cols[refs.index(c)].table
            if isinstance(a, np.ma.MaskedArray):
                if np.ma.is_masked(a):
                    raise QueryError(
                        f"columns[{i}] ({c!r}): {int(np.ma.count_masked(a))} NULL value(s) in "
                        f"table {table!r} under nulls='error'; use nulls='drop' to skip those "
                        "rows, or fill them in SQL (COALESCE) in a view"
                    )
                a = a.data
            if nulls == "error" and a.dtype.kind == "f" and np.isnan(a).any():
                raise QueryError(
                    f"columns[{i}] ({c!r}): {int(np.isnan(a).sum())} NaN value(s) in table "
                    f"{table!r} under nulls='error'; use nulls='drop' to skip those rows"
                )
            result[c] = a
        return result

    def where_clause(
        self,
        source: Source,
        filters: Sequence[Filter | Sequence],
        params: Mapping[str, Any] | None,
    ) -> tuple[list[str], list]:
        """SQL conditions (``col op ?``) and their bound values for ``filters`` over the
        tables of ``source`` (a :class:`Source`)."""
        conds, args = [], []
        for i, spec in enumerate(filters):
            where = f"filters[{i}]"
            f = Filter.of(spec, where)
            col = source.column(f.column, where)
            values = [
                bind_value(v, params, col.type, f"{where} ({f.column!r})") for v in f.values()
            ]
            if f.op == "in":
                conds.append(f"{col.sql} IN ({', '.join('?' * len(values))})")
            else:
                conds.append(f"{col.sql} {f.op} ?")
            args.extend(values)
        return conds, args


def present(q: str, sql_type: str) -> str:
    """The SQL condition "column ``q`` (a quoted expression, :attr:`Column.sql`) is not NULL
    (and not NaN, for floating types)"."""
    if sql_type in ("DOUBLE", "FLOAT", "REAL"):
        return f"({q} IS NOT NULL AND NOT isnan({q}))"
    return f"{q} IS NOT NULL"


def bind_value(value: Any, params: Mapping[str, Any] | None, sql_type: str, where: str):
    """A filter value ready to bind: a :class:`Param` resolved from ``params``, its type
    checked against the column's (a string against a number column is an error)."""
    if isinstance(value, Param):
        if params is None or value.name not in params:
            given = sorted(params) if params else []
            raise QueryError(f"{where}: no value for Param({value.name!r}); params given: {given}")
        value = params[value.name]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        ok = sql_type == "BOOLEAN" or is_numeric(sql_type)
    elif isinstance(value, int | float):
        ok = is_numeric(sql_type)
        if ok and isinstance(value, float) and np.isnan(value):
            raise QueryError(f"{where}: NaN is not a filter value (it compares false with all)")
    elif isinstance(value, str):
        ok = sql_type.startswith(_STRING_TYPES)
    else:
        raise QueryError(
            f"{where}: a filter value is a number, a string or a bool, got {type(value).__name__}"
        )
    if not ok:
        raise QueryError(
            f"{where}: type mismatch: a {type(value).__name__} value {value!r} against a "
            f"{sql_type} column"
        )
    return value
