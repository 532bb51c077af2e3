"""The differentiable layer: scoring, soft predicates, soft selection, soft group-by
aggregation and ranking losses, as plain diffsys functions over candidate arrays.

Every relaxed operation here comes in two forms: the surrogate (used in training, smooth in
its inputs and its learned values) and the hard operation it relaxes, with exactly the
semantics of the SQL the query compiles to (``x < t`` is strict, ``ORDER BY score DESC``,
``GROUP BY``), so the hard NumPy result and DuckDB's agree row for row.

==========================  ===========================================  ======================
operation                   surrogate (temperature ``T``)                hard form (SQL)
==========================  ===========================================  ======================
``soft_predicate(x,t,"<")``  ``soft_step(t - x, T)``                      ``x < t``
``soft_select(s, k, m)``     ``soft_topk_mask(s + log m, k) * m``         top k of the rows kept
``soft_group_aggregate``     weighted ``sum``/``count``/``mean``;         ``SUM/COUNT/AVG/MAX``
                             ``max``: ``T log sum m exp(v / T)``          ``GROUP BY``
==========================  ===========================================  ======================

Ranking losses take ``scores`` and graded ``relevance`` of the same shape ``(..., n)``
(one list per leading index) and return a scalar: :func:`soft_ndcg_loss` (``1 - NDCG`` with
soft ranks), :func:`listnet_loss`, :func:`listmle_loss`, :func:`pairwise_logistic_loss`;
:func:`ndcg` is the exact metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core.custom import stop_gradient
from ...relax import log_sigmoid, log_softmax, logsumexp, soft_rank, soft_step, soft_topk_mask

Array = Any

__all__ = [
    "AGGREGATES",
    "PREDICATE_OPS",
    "hard_group_aggregate",
    "hard_predicate",
    "hard_select",
    "linear_score",
    "listmle_loss",
    "listnet_loss",
    "log_soft_predicate",
    "ndcg",
    "pairwise_logistic_loss",
    "soft_group_aggregate",
    "soft_ndcg",
    "soft_ndcg_loss",
    "soft_predicate",
    "soft_select",
]

#: Soft predicate comparisons (``x op threshold``).
PREDICATE_OPS = ("<", "<=", ">", ">=")
#: Group-by aggregates.
AGGREGATES = ("sum", "count", "mean", "max")


def linear_score(x: Array, weights: Array, bias: Array = 0.0) -> Array:
    """``bias + sum_j weights[j] * x[..., j]``, accumulated left to right over the features
    (the order of the SQL expression a query compiles to, so both round alike).

    >>> import numpy as np
    >>> linear_score(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -1.0]), 1.0)
    array([-0.5, -1.5])
    """
    n = x.shape[-1]
    if tuple(weights.shape) != (n,):
        raise ValueError(
            f"linear_score: weights have shape {tuple(weights.shape)}, expected ({n},) for "
            f"features of shape {tuple(x.shape)}"
        )
    out = bias + weights[0] * x[..., 0]
    for j in range(1, n):
        out = out + weights[j] * x[..., j]
    return out


def _signed_margin(x: Array, threshold: Array, op: str) -> Array:
    if op not in PREDICATE_OPS:
        raise ValueError(f"soft predicate: op must be one of {PREDICATE_OPS}, got {op!r}")
    return threshold - x if op in ("<", "<=") else x - threshold


def soft_predicate(x: Array, threshold: Array, op: str = "<", temperature: Array = 1.0) -> Array:
    """The relaxed ``x op threshold``: ``soft_step(±(threshold - x), temperature)`` in
    ``(0, 1)``; differentiable in ``x``, ``threshold`` and ``temperature``.

    >>> import numpy as np
    >>> soft_predicate(np.array([1.0, 3.0]), 2.0, "<", temperature=0.01).round(6)
    array([1., 0.])
    """
    return soft_step(_signed_margin(x, threshold, op), temperature)


def log_soft_predicate(
    x: Array, threshold: Array, op: str = "<", temperature: Array = 1.0
) -> Array:
    """``log(soft_predicate(...))``, computed stably (``log_sigmoid``)."""
    return log_sigmoid(_signed_margin(x, threshold, op) / temperature)


def hard_predicate(x: Array, threshold: Array, op: str = "<") -> np.ndarray:
    """``x op threshold`` as 0/1 floats, exactly SQL's comparison (strict for ``<``, ``>``)."""
    x, t = np.asarray(stop_gradient(x)), np.asarray(stop_gradient(threshold))
    if op not in PREDICATE_OPS:
        raise ValueError(f"hard predicate: op must be one of {PREDICATE_OPS}, got {op!r}")
    cmp = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[op]
    return cmp(x, t).astype(np.result_type(x.dtype, np.float64))


def soft_select(
    scores: Array,
    k: int,
    log_membership: Array | None = None,
    regularization_strength: Array = 1.0,
) -> Array:
    """Relaxed "the ``k`` best-scored rows among those kept": weights in ``[0, 1]``.

    ``soft_topk_mask(scores + log_membership, k) * exp(log_membership)``: rows the soft
    predicates drop lose both their rank and their weight. With no membership it is
    ``relax.soft_topk_mask(scores, k)``. Along the last axis.

    >>> import numpy as np
    >>> soft_select(np.array([0.0, 3.0, 2.0]), 1, regularization_strength=0.1)
    array([0., 1., 0.])
    """
    if log_membership is None:
        return soft_topk_mask(scores, k, "l2", regularization_strength)
    mask = soft_topk_mask(scores + log_membership, k, "l2", regularization_strength)
    return mask * dnp.exp(log_membership)


def hard_select(scores: Array, k: int, membership: Array | None = None) -> np.ndarray:
    """The exact selection as 0/1: the ``k`` largest scores among rows with membership 1
    (fewer when fewer are kept); ties go to the earlier row, as ``ORDER BY score DESC, key``
    over candidates sorted by key."""
    s = np.asarray(stop_gradient(scores), dtype=np.float64)
    keep = np.ones(s.shape, bool) if membership is None else np.asarray(membership) > 0.5
    order = np.argsort(np.where(keep, -s, np.inf), axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(s.shape[-1]), axis=-1)
    return ((ranks < k) & keep).astype(s.dtype)


def soft_group_aggregate(
    values: Array | None,
    membership: Array,
    how: str = "sum",
    temperature: Array = 1.0,
) -> Array:
    """Weighted group-by: ``membership`` ``(n, g)`` (soft, in ``[0, 1]``) gives each row's
    weight in each group; ``values`` ``(n,)`` (ignored for ``count``).

    ``sum``: ``m.T @ v``; ``count``: ``m.sum(0)``; ``mean``: their ratio; ``max``:
    ``T * log(sum_i m_i exp(v_i / T))``, which tends to the largest member's value as
    ``T -> 0`` for hard memberships. Returns ``(g,)``.

    >>> import numpy as np
    >>> m = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> soft_group_aggregate(np.array([1.0, 2.0, 5.0]), m, "mean")
    array([1.5, 5. ])
    """
    if how not in AGGREGATES:
        raise ValueError(f"soft_group_aggregate: how must be one of {AGGREGATES}, got {how!r}")
    if how == "count":
        return dnp.sum(membership, axis=0)
    if values is None:
        raise ValueError(f"soft_group_aggregate: {how!r} needs values")
    if how == "max":
        # log m, -inf where m == 0 (the double where keeps the gradient finite there)
        member = membership > 0
        logm = dnp.where(member, dnp.log(dnp.where(member, membership, 1.0)), -np.inf)
        return temperature * logsumexp(values[:, None] / temperature + logm, axis=0)
    total = dnp.matmul(values, membership)
    if how == "sum":
        return total
    return total / dnp.sum(membership, axis=0)


def hard_group_aggregate(values: Array | None, membership: Array, how: str = "sum") -> np.ndarray:
    """The exact group-by over 0/1 ``membership`` ``(n, g)``: SQL's ``SUM``, ``COUNT``,
    ``AVG``, ``MAX``; an empty group is NaN for ``sum``/``mean``/``max`` (SQL leaves it out)."""
    m = np.asarray(stop_gradient(membership)) > 0.5
    count = m.sum(axis=0).astype(np.float64)
    if how == "count":
        return count
    if how not in AGGREGATES:
        raise ValueError(f"hard_group_aggregate: how must be one of {AGGREGATES}, got {how!r}")
    v = np.asarray(stop_gradient(values), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if how == "max":
            out = np.where(m, v[:, None], -np.inf).max(axis=0)
        else:
            out = np.where(m, v[:, None], 0.0).sum(axis=0)
            if how == "mean":
                out = out / count
    return np.where(count > 0, out, np.nan)


# --- ranking losses ---------------------------------------------------------------------------


def _check_lists(scores: Array, relevance: Array, name: str) -> np.ndarray:
    rel = np.asarray(stop_gradient(relevance), dtype=np.float64)
    if tuple(rel.shape) != tuple(scores.shape) or rel.ndim == 0:
        raise ValueError(
            f"{name}: scores {tuple(scores.shape)} and relevance {tuple(rel.shape)} must have "
            "one shape (..., n)"
        )
    return rel


def _ideal_dcg(rel: np.ndarray, k: int | None) -> np.ndarray:
    n = rel.shape[-1]
    k = n if k is None else min(k, n)
    gains = np.sort(2.0**rel - 1.0, axis=-1)[..., ::-1][..., :k]
    return np.sum(gains / np.log2(np.arange(2, k + 2)), axis=-1)


def ndcg(scores: Array, relevance: Array, k: int | None = None) -> np.ndarray:
    """The exact NDCG@k per list (gains ``2^rel - 1``, discounts ``1/log2(1 + rank)``);
    a list with no relevant item scores 1.

    >>> import numpy as np
    >>> float(ndcg(np.array([3.0, 2.0, 1.0]), np.array([2.0, 1.0, 0.0])))
    1.0
    """
    rel = _check_lists(scores, relevance, "ndcg")
    s = np.asarray(stop_gradient(scores), dtype=np.float64)
    n = s.shape[-1]
    kk = n if k is None else min(k, n)
    order = np.argsort(-s, axis=-1, kind="stable")[..., :kk]
    gains = np.take_along_axis(2.0**rel - 1.0, order, axis=-1)
    dcg = np.sum(gains / np.log2(np.arange(2, kk + 2)), axis=-1)
    ideal = _ideal_dcg(rel, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal > 0, dcg / ideal, 1.0)


def soft_ndcg(
    scores: Array,
    relevance: Array,
    k: int | None = None,
    regularization_strength: Array = 1.0,
) -> Array:
    """NDCG@k with soft ranks (``relax.soft_rank``, descending): differentiable in the
    scores; with ``k`` the cut is a soft top-k mask. Tends to :func:`ndcg` as the strength
    goes to 0 (no ties)."""
    rel = _check_lists(scores, relevance, "soft_ndcg")
    ranks = soft_rank(scores, "l2", regularization_strength, descending=True)
    w = (2.0**rel - 1.0) / dnp.log2(1.0 + ranks)
    if k is not None and k < scores.shape[-1]:
        w = w * soft_topk_mask(scores, k, "l2", regularization_strength)
    ideal = _ideal_dcg(rel, k)
    safe = np.where(ideal > 0, ideal, 1.0)
    return dnp.where(ideal > 0, dnp.sum(w, axis=-1) / safe, 1.0)


def soft_ndcg_loss(
    scores: Array, relevance: Array, k: int | None = None, regularization_strength: Array = 1.0
) -> Array:
    """``1 - mean(soft_ndcg)``: a ranking loss (0 for a perfect order)."""
    return 1.0 - dnp.mean(soft_ndcg(scores, relevance, k, regularization_strength))


def listnet_loss(scores: Array, relevance: Array, temperature: float = 1.0) -> Array:
    """ListNet (top-one): cross-entropy of ``softmax(scores)`` against
    ``softmax(relevance / temperature)``, averaged over lists."""
    rel = _check_lists(scores, relevance, "listnet_loss")
    target = np.exp(rel / temperature - np.max(rel / temperature, axis=-1, keepdims=True))
    target = target / target.sum(axis=-1, keepdims=True)
    return -dnp.mean(dnp.sum(target * log_softmax(scores, axis=-1), axis=-1))


def listmle_loss(scores: Array, relevance: Array) -> Array:
    """ListMLE: the Plackett-Luce negative log-likelihood of the order by ``relevance``
    (descending; ties in a fixed order), averaged over lists."""
    rel = _check_lists(scores, relevance, "listmle_loss")
    order = np.argsort(-rel, axis=-1, kind="stable")
    s = dnp.take_along_axis(scores, order, axis=-1)
    shift = np.max(np.asarray(stop_gradient(s)), axis=-1, keepdims=True)
    tail = dnp.flip(dnp.cumsum(dnp.flip(dnp.exp(s - shift), axis=-1), axis=-1), axis=-1)
    return dnp.mean(dnp.sum(dnp.log(tail) + shift - s, axis=-1))


def pairwise_logistic_loss(scores: Array, relevance: Array) -> Array:
    """``mean over pairs rel_i > rel_j of softplus(-(s_i - s_j))`` (RankNet); O(n^2) per
    list. 0 pairs give 0."""
    rel = _check_lists(scores, relevance, "pairwise_logistic_loss")
    pairs = (rel[..., :, None] > rel[..., None, :]).astype(np.float64)
    count = pairs.sum()
    if count == 0:
        return dnp.sum(scores) * 0.0
    diff = scores[..., :, None] - scores[..., None, :]
    return dnp.sum(pairs * -log_sigmoid(diff)) / count
