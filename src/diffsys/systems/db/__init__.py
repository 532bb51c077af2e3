"""``diffsys.systems.db``: a differentiable database over DuckDB (the ``db`` extra).

Three layers:

- exact (:mod:`.exact`): :class:`Database` runs SQL in DuckDB with schema-checked
  identifiers and bound values only (filters, and joins of tables on key columns); rows
  come back as NumPy arrays.
- differentiable (:mod:`.ops`): linear scoring, soft predicates, soft top-k selection, soft
  group-by aggregation, ranking losses (soft NDCG, ListNet, ListMLE, pairwise logistic),
  each with its hard form.
- the :class:`Query` object: exact SQL part, then scoring, soft predicates, top-k and
  aggregation; relaxed in NumPy for training, compiled to SQL for DuckDB at inference.

:func:`query_stage` makes a ``pl.Stage`` of a query (kind ``relaxed``). See docs/db.md.
"""

try:
    import duckdb  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "diffsys.systems.db needs DuckDB, which is the optional 'db' extra: "
        "pip install 'diffsys[db]' (or pip install duckdb)"
    ) from exc

from .exact import (
    COMPARISONS,
    JOIN_KINDS,
    NULL_POLICIES,
    Database,
    Filter,
    Join,
    Param,
    QueryError,
    Source,
)
from .modules import LinearScorer, SoftGroupBy, SoftPredicate, SoftTopK
from .ops import (
    AGGREGATES,
    PREDICATE_OPS,
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
from .query import Candidates, CompiledQuery, Query, QueryResult
from .stages import (
    RANKING_LOSSES,
    query_stage,
    ranking_loss,
    relaxed_stage,
    scoring_stage,
    sql_query_stage,
)

__all__ = [
    "AGGREGATES",
    "COMPARISONS",
    "JOIN_KINDS",
    "NULL_POLICIES",
    "PREDICATE_OPS",
    "RANKING_LOSSES",
    "Candidates",
    "CompiledQuery",
    "Database",
    "Filter",
    "Join",
    "Param",
    "Query",
    "QueryError",
    "QueryResult",
    "Source",
    "LinearScorer",
    "SoftGroupBy",
    "SoftPredicate",
    "SoftTopK",
    "hard_group_aggregate",
    "hard_predicate",
    "hard_select",
    "linear_score",
    "listmle_loss",
    "listnet_loss",
    "log_soft_predicate",
    "ndcg",
    "pairwise_logistic_loss",
    "query_stage",
    "ranking_loss",
    "relaxed_stage",
    "scoring_stage",
    "soft_group_aggregate",
    "soft_ndcg",
    "soft_ndcg_loss",
    "soft_predicate",
    "soft_select",
    "sql_query_stage",
]


def _register_stage_types() -> None:
    """Register the query, its parts, the modules and the ranking losses with
    ``diffsys.pipeline`` (once), so pipelines holding them save and load by name."""
    from ...pipeline import register

    for obj in (
        Query,
        CompiledQuery,
        Database,
        Filter,
        Join,
        Param,
        LinearScorer,
        SoftGroupBy,
        SoftPredicate,
        SoftTopK,
        *RANKING_LOSSES.values(),
    ):
        register(obj, name=f"systems.db.{obj.__name__}")


_register_stage_types()
