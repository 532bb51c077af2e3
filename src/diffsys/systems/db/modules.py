"""Thin ``nn.Module`` wrappers of :mod:`.ops`: the module holds the learned values and the
configuration; its methods check, then call the function."""

from __future__ import annotations

import numpy as np

from ...nn.module import Module, static
from . import ops
from .exact import QueryError

__all__ = ["LinearScorer", "SoftGroupBy", "SoftPredicate", "SoftTopK"]


def _positive(value, what: str, who: str) -> float:
    if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
        raise QueryError(f"{who}: {what} must be a finite number > 0, got {value!r}")
    return float(value)


class LinearScorer(Module):
    """``bias + x @ weights`` over candidate features ``x`` ``(n, F)`` (learned).

    >>> import numpy as np
    >>> LinearScorer([1.0, -1.0])(np.array([[3.0, 1.0]]))
    array([2.])
    """

    weights: np.ndarray
    bias: np.ndarray

    def __init__(self, weights, bias: float = 0.0) -> None:
        self.weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        self.bias = np.asarray(bias, dtype=np.float64).reshape(())

    def __call__(self, x, *, key=None):
        if len(x.shape) < 1 or x.shape[-1] != self.weights.shape[0]:
            raise QueryError(
                f"LinearScorer(features={self.weights.shape[0]}): x must have "
                f"{self.weights.shape[0]} features on its last axis, got shape {tuple(x.shape)}"
            )
        return ops.linear_score(x, self.weights, self.bias)


class SoftPredicate(Module):
    """``x op threshold`` with a learned threshold: ``relaxed`` (a sigmoid at
    ``temperature``, also ``__call__``) and ``hard`` (SQL's comparison).

    >>> import numpy as np
    >>> p = SoftPredicate(2.0, "<", temperature=0.5)
    >>> p.hard(np.array([1.0, 3.0]))
    array([1., 0.])
    """

    threshold: np.ndarray
    op: str = static()
    temperature: float = static()

    def __init__(self, threshold: float, op: str = "<", *, temperature: float = 1.0) -> None:
        if op not in ops.PREDICATE_OPS:
            raise QueryError(f"SoftPredicate: op must be one of {ops.PREDICATE_OPS}, got {op!r}")
        self.threshold = np.asarray(threshold, dtype=np.float64).reshape(())
        self.op = op
        self.temperature = _positive(temperature, "temperature", "SoftPredicate")

    def relaxed(self, x, *, key=None):
        return ops.soft_predicate(x, self.threshold, self.op, self.temperature)

    __call__ = relaxed

    def hard(self, x, *, key=None):
        return ops.hard_predicate(x, self.threshold, self.op)


class SoftTopK(Module):
    """Select the ``k`` best scores along the last axis: ``relaxed`` is
    ``relax.soft_topk_mask`` (l2, ``regularization_strength``), ``hard`` the 0/1 top-k.

    >>> import numpy as np
    >>> SoftTopK(1, regularization_strength=0.1).relaxed(np.array([0.0, 2.0, 1.0]))
    array([0., 1., 0.])
    """

    k: int = static()
    regularization_strength: float = static()

    def __init__(self, k: int, *, regularization_strength: float = 1.0) -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise QueryError(f"SoftTopK: k must be a whole number >= 1, got {k!r}")
        self.k = int(k)
        self.regularization_strength = _positive(
            regularization_strength, "regularization_strength", f"SoftTopK(k={k})"
        )

    def _check(self, scores):
        n = scores.shape[-1] if len(scores.shape) else 0
        if self.k > n:
            raise QueryError(f"SoftTopK(k={self.k}): k is larger than the {n} candidates")

    def relaxed(self, scores, *, key=None):
        self._check(scores)
        return ops.soft_select(scores, self.k, None, self.regularization_strength)

    __call__ = relaxed

    def hard(self, scores, *, key=None):
        self._check(scores)
        return ops.hard_select(scores, self.k)


class SoftGroupBy(Module):
    """Group-by aggregation ``how`` (sum, count, mean, max) of ``values`` ``(n,)`` with
    memberships ``(n, g)``: ``relaxed`` (soft memberships; max at ``temperature``) and
    ``hard`` (SQL's aggregate over 0/1 memberships)."""

    how: str = static()
    temperature: float = static()

    def __init__(self, how: str = "sum", *, temperature: float = 1.0) -> None:
        if how not in ops.AGGREGATES:
            raise QueryError(f"SoftGroupBy: how must be one of {ops.AGGREGATES}, got {how!r}")
        self.how = how
        self.temperature = _positive(temperature, "temperature", "SoftGroupBy")

    def relaxed(self, values, membership, *, key=None):
        return ops.soft_group_aggregate(values, membership, self.how, self.temperature)

    __call__ = relaxed

    def hard(self, values, membership, *, key=None):
        return ops.hard_group_aggregate(values, membership, self.how)
