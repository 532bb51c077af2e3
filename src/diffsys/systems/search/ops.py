"""The differentiable layer of search: the REALM/RAG marginal likelihood over the retrieved
documents, and how stale an index is.

Two retrieval distributions ``p(z | x)`` over a query's candidate documents (``RETRIEVALS``):

- ``"softmax"``: a softmax of the retrieval scores over the ``k`` documents the exact top-k
  returned (REALM/RAG); the selection itself is exact, gradients reach the ``k`` scores.
- ``"soft_topk"``: ``relax.soft_topk_mask(scores, k) / k`` over a wider pool of candidates
  (``m >= k``): the selection itself is relaxed, so a document just outside the top k gets
  gradient too; as the regularization strength goes to 0 it becomes uniform over the hard
  top k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core.custom import stop_gradient
from ...relax import log_softmax, logsumexp, soft_topk_mask

Array = Any

__all__ = [
    "RETRIEVALS",
    "inner_product_scores",
    "marginal_nll",
    "mixture_nll",
    "retrieval_weights",
    "staleness",
]

#: The retrieval distributions over candidates (see the module docstring).
RETRIEVALS = ("softmax", "soft_topk")


def inner_product_scores(queries: Array, docs: Array) -> Array:
    """``<q_b, d_bz>``: retrieval scores ``(B, m)`` of queries ``(B, e)`` against each
    query's candidate document embeddings ``(B, m, e)``.

    >>> import numpy as np
    >>> inner_product_scores(np.ones((1, 2)), np.array([[[1.0, 2.0], [0.0, -1.0]]]))
    array([[ 3., -1.]])
    """
    if len(queries.shape) != 2 or len(docs.shape) != 3 or docs.shape[::2] != queries.shape:
        raise ValueError(
            f"inner_product_scores: queries (B, e) and documents (B, m, e), got "
            f"{tuple(queries.shape)} and {tuple(docs.shape)}"
        )
    return dnp.sum(queries[:, None, :] * docs, axis=-1)


def retrieval_weights(
    scores: Array,
    k: int | None = None,
    retrieval: str = "softmax",
    regularization_strength: Array = 1.0,
) -> Array:
    """``p(z | x)`` over the candidates ``(B, m)`` of each query (rows sum to 1):
    ``"softmax"`` over the ``k`` best-scored candidates (all ``m`` when ``k`` is None; the
    others get 0), or ``"soft_topk"``: ``soft_topk_mask(scores, k) / k``.

    >>> import numpy as np
    >>> retrieval_weights(np.array([[0.0, 3.0, 2.0]]), 1, "soft_topk", 0.1)
    array([[0., 1., 0.]])
    """
    if retrieval not in RETRIEVALS:
        raise ValueError(f"retrieval_weights: retrieval must be one of {RETRIEVALS}, got "
                         f"{retrieval!r}")  # fmt: skip
    m = scores.shape[-1]
    if k is not None and not (isinstance(k, int | np.integer) and 1 <= k <= m):
        raise ValueError(
            f"retrieval_weights: k must satisfy 1 <= k <= {m} (the candidates of scores "
            f"{tuple(scores.shape)}), got {k!r}"
        )
    if retrieval == "soft_topk":
        if k is None:
            raise ValueError("retrieval_weights: 'soft_topk' needs k (how many to retrieve)")
        return soft_topk_mask(scores, int(k), "l2", regularization_strength) / k
    if k is None or k == m:
        return dnp.exp(log_softmax(scores, axis=-1))
    s = np.asarray(stop_gradient(scores))
    order = np.argsort(-s, axis=-1, kind="stable")[..., : int(k)]
    keep = np.zeros(s.shape, bool)
    np.put_along_axis(keep, order, True, axis=-1)
    return dnp.exp(log_softmax(dnp.where(keep, scores, -np.inf), axis=-1))


def mixture_nll(weights: Array, reader_log_likelihood: Array) -> Array:
    """``-mean_b log sum_z w_bz p(y_b | x_b, z)`` for retrieval weights ``(B, m)`` (rows sum
    to 1, e.g. :func:`retrieval_weights`) and reader log-likelihoods ``(B, m)``; computed
    with the largest log-likelihood factored out. Zero weights are fine (no ``log 0``).

    >>> import numpy as np
    >>> round(float(mixture_nll(np.array([[0.5, 0.5]]), np.log(np.array([[1.0, 0.5]])))), 6)
    0.287682
    """
    if tuple(weights.shape) != tuple(reader_log_likelihood.shape):
        raise ValueError(
            f"mixture_nll: retrieval weights {tuple(weights.shape)} and reader "
            f"log-likelihoods {tuple(reader_log_likelihood.shape)} must have one shape (B, m)"
        )
    top = np.max(np.asarray(stop_gradient(reader_log_likelihood)), axis=-1, keepdims=True)
    mix = dnp.sum(weights * dnp.exp(reader_log_likelihood - top), axis=-1)
    return -dnp.mean(dnp.log(mix) + top[..., 0])


def marginal_nll(
    retrieval_scores: Array,
    reader_log_likelihood: Array,
    *,
    retrieval: str = "softmax",
    k: int | None = None,
    regularization_strength: Array = 1.0,
) -> Array:
    """``-mean_b log sum_z p(z | x_b) p(y_b | x_b, z)`` with ``p(z | x) = softmax`` of the
    retrieval scores over the ``k`` retrieved documents (both arguments ``(B, k)``;
    ``reader_log_likelihood[b, z] = log p(y_b | x_b, z)``). Gradients reach the query
    encoder, the document encoder (through the fresh scores) and the reader.

    ``retrieval="soft_topk"`` (with ``k`` below the candidates) uses the relaxed top-k
    instead: ``p(z | x) = soft_topk_mask(scores, k) / k`` (:func:`retrieval_weights`).

    >>> import numpy as np
    >>> round(float(marginal_nll(np.zeros((1, 2)), np.log(np.array([[1.0, 0.5]])))), 6)
    0.287682
    """
    if tuple(retrieval_scores.shape) != tuple(reader_log_likelihood.shape):
        raise ValueError(
            f"marginal_nll: retrieval scores {tuple(retrieval_scores.shape)} and reader "
            f"log-likelihoods {tuple(reader_log_likelihood.shape)} must have one shape (B, k)"
        )
    if retrieval != "softmax" or k is not None:
        w = retrieval_weights(retrieval_scores, k, retrieval, regularization_strength)
        return mixture_nll(w, reader_log_likelihood)
    joint = log_softmax(retrieval_scores, axis=-1) + reader_log_likelihood
    return -dnp.mean(logsumexp(joint, axis=-1))


def staleness(stale: np.ndarray, fresh: np.ndarray) -> float:
    """``||stale - fresh||_F / ||fresh||_F``: how far the index is from the embeddings the
    current document encoder would give."""
    fresh = np.asarray(fresh)
    return float(np.linalg.norm(np.asarray(stale) - fresh) / max(np.linalg.norm(fresh), 1e-300))
