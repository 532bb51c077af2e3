"""Ready ``pl.Stage`` builders for the database layer (``kind`` set, relaxed/hard forms).

>>> import numpy as np
>>> from diffsys.systems.db import Query, query_stage
>>> q = Query("t", key="id", features=["a"], k=1)
>>> query_stage("select", q).kind
'relaxed'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ... import pipeline as pl
from . import ops
from .exact import Database
from .modules import LinearScorer, SoftGroupBy, SoftPredicate, SoftTopK
from .query import CompiledQuery, Query

__all__ = [
    "RANKING_LOSSES",
    "query_stage",
    "sql_query_stage",
    "ranking_loss",
    "relaxed_stage",
    "scoring_stage",
]

#: The ranking losses by name: ``fn(scores, relevance) -> scalar``.
RANKING_LOSSES: dict[str, Callable] = {
    "ndcg": ops.soft_ndcg_loss,
    "listnet": ops.listnet_loss,
    "listmle": ops.listmle_loss,
    "pairwise": ops.pairwise_logistic_loss,
}


def query_stage(name: str, query: Query, *, inputs: str | Sequence[str] | None = None) -> pl.Stage:
    """A relaxed stage of ``query`` over candidate matrices: inputs ``("x",)`` for a top-k
    query, ``("x", "groups")`` for an aggregate one (batch keys or stage outputs).
    ``train()`` runs :meth:`Query.relaxed`, ``infer()`` :meth:`Query.hard` (DuckDB's result,
    as :meth:`Query.execute` checks), and ``mismatch()`` reports the gap."""
    if inputs is None:
        inputs = ("x", "groups") if query.aggregate is not None else ("x",)
    return pl.Stage(name, query, inputs=inputs, kind="relaxed")


def sql_query_stage(
    name: str,
    query: Query,
    db: Database,
    params: Mapping[str, Any] | None = None,
    *,
    inputs: str | Sequence[str] | None = None,
) -> pl.Stage:
    """A relaxed stage whose inference form is the compiled SQL run by DuckDB
    (:class:`CompiledQuery`): inputs ``("x", "keys")`` (and ``"groups"`` for an aggregate),
    the candidates of ``query.candidates(db, params)``."""
    if inputs is None:
        inputs = ("x", "keys", "groups") if query.aggregate is not None else ("x", "keys")
    return pl.Stage(name, CompiledQuery(query, db, params), inputs=inputs, kind="relaxed")


def scoring_stage(name: str, scorer: LinearScorer, *, inputs: str | Sequence[str] = "x"):
    """An exact stage: the learned linear score of each candidate."""
    return pl.Stage(name, scorer, inputs=inputs, kind="exact")


def relaxed_stage(
    name: str,
    module: SoftPredicate | SoftTopK | SoftGroupBy,
    *,
    inputs: str | Sequence[str] | None = None,
    straight_through: bool = False,
) -> pl.Stage:
    """A stage of a soft predicate, top-k or group-by: ``relaxed`` in training (or
    ``straight_through``: hard values, relaxed derivatives), ``hard`` at inference."""
    kind = "straight_through" if straight_through else "relaxed"
    return pl.Stage(name, module, inputs=inputs, kind=kind)


def ranking_loss(
    name: str, scores: str, relevance: str, *, loss: str = "ndcg", weight: float = 1.0
) -> pl.Loss:
    """A pipeline loss term ``loss(scores, relevance)`` (see :data:`RANKING_LOSSES`)."""
    if loss not in RANKING_LOSSES:
        raise ValueError(f"ranking_loss {name!r}: loss must be one of {sorted(RANKING_LOSSES)}")
    return pl.Loss(name, RANKING_LOSSES[loss], inputs=(scores, relevance), weight=weight)
