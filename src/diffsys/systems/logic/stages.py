"""Ready-made pipeline stages: a Datalog query as a relaxed stage.

The relaxed form is the query's tags in a differentiable semiring (default
``TopKProofs(3)``: probabilities); the hard form is exact Datalog (``BOOLEAN``) on the facts
whose weight exceeds ``threshold``, as 0/1 floats. ``pipeline.train()`` runs the first,
``pipeline.infer()`` the second, and ``mismatch()`` measures the gap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ... import numpy as dnp
from .ops import evaluate
from .semirings import BOOLEAN, Semiring, TopKProofs
from .syntax import LogicError

Array = Any


def query_functions(
    program,
    facts: dict[str, list],
    weighted: str,
    relation: str,
    queries: Sequence[tuple],
    semiring: Semiring | None = None,
    threshold: float = 0.5,
) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    """``(relaxed, hard)``: both map the weights of relation ``weighted``'s facts (in the
    order given in ``facts``) to the tags of ``relation(*q)`` for each query ``q``. The program
    is grounded once, here; a query that is not derivable gives the semiring's zero."""
    semiring = semiring or TopKProofs(3)
    if weighted not in facts:
        raise LogicError(f"query_functions: no facts given for the weighted relation {weighted!r}")
    g = program.ground(facts)
    if relation not in g.relations:
        raise LogicError(f"query_functions: unknown relation {relation!r}")
    where = {t: i for i, t in enumerate(g.tuples(relation))}
    n = len(where)
    index = np.array([where.get(tuple(q), n) for q in queries], dtype=np.int64)

    def relaxed(w: Array) -> Array:
        v = evaluate(g, {weighted: w}, semiring).weights(relation)
        v = dnp.concatenate([v, np.full(1, semiring.zero, dtype=np.float64)])
        return v[index]

    def hard(w: Array) -> Array:
        on = np.asarray(w) > threshold
        v = np.asarray(evaluate(g, {weighted: on}, BOOLEAN).weights(relation))
        return np.concatenate([v, [False]])[index].astype(np.float64)

    return relaxed, hard


def query_stage(name: str, program, facts, weighted: str, relation: str, queries, *,
                semiring: Semiring | None = None, threshold: float = 0.5, **stage_options):
    """A ``relaxed`` :class:`diffsys.pipeline.Stage` of :func:`query_functions`: its input is
    the fact weights, its output the query tags."""
    from ...pipeline import Stage

    relaxed, hard = query_functions(program, facts, weighted, relation, queries, semiring,
                                    threshold)
    return Stage(name, relaxed, hard=hard, kind="relaxed", **stage_options)
