"""The differentiable layer of search: the REALM/RAG marginal likelihood over the retrieved
documents, and how stale an index is."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import numpy as dnp
from ...relax import log_softmax, logsumexp

Array = Any

__all__ = ["marginal_nll", "staleness"]


def marginal_nll(retrieval_scores: Array, reader_log_likelihood: Array) -> Array:
    """``-mean_b log sum_z p(z | x_b) p(y_b | x_b, z)`` with ``p(z | x) = softmax`` of the
    retrieval scores over the ``k`` retrieved documents (both arguments ``(B, k)``;
    ``reader_log_likelihood[b, z] = log p(y_b | x_b, z)``). Gradients reach the query
    encoder, the document encoder (through the fresh scores) and the reader.

    >>> import numpy as np
    >>> round(float(marginal_nll(np.zeros((1, 2)), np.log(np.array([[1.0, 0.5]])))), 6)
    0.287682
    """
    if tuple(retrieval_scores.shape) != tuple(reader_log_likelihood.shape):
        raise ValueError(
            f"marginal_nll: retrieval scores {tuple(retrieval_scores.shape)} and reader "
            f"log-likelihoods {tuple(reader_log_likelihood.shape)} must have one shape (B, k)"
        )
    joint = log_softmax(retrieval_scores, axis=-1) + reader_log_likelihood
    return -dnp.mean(logsumexp(joint, axis=-1))


def staleness(stale: np.ndarray, fresh: np.ndarray) -> float:
    """``||stale - fresh||_F / ||fresh||_F``: how far the index is from the embeddings the
    current document encoder would give."""
    fresh = np.asarray(fresh)
    return float(np.linalg.norm(np.asarray(stale) - fresh) / max(np.linalg.norm(fresh), 1e-300))
