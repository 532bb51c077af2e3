"""Thin ``nn.Module`` wrappers of :mod:`.ops` for search pipelines: the retrieval
distribution (relaxed and hard forms) and the reader."""

from __future__ import annotations

import numpy as np

from ... import numpy as dnp
from ...nn import Linear
from ...nn.module import Module, static
from ...relax import log_softmax
from ..db import QueryError
from .ops import RETRIEVALS, retrieval_weights

__all__ = ["Reader", "SoftRetrieval"]


class SoftRetrieval(Module):
    """``p(z | x)`` over each query's candidates from their scores ``(B, m)``.

    ``retrieval="soft_topk"`` (a relaxed stage): ``relaxed`` is
    ``soft_topk_mask(scores, k) / k``, ``hard`` the uniform weight ``1 / k`` on the exact top
    k; their gap shrinks with ``regularization_strength``. ``retrieval="softmax"`` (exact):
    the softmax over the exact top k, in both forms.

    >>> import numpy as np
    >>> r = SoftRetrieval(1, retrieval="soft_topk", regularization_strength=0.1)
    >>> r.hard(np.array([[0.0, 2.0, 1.0]]))
    array([[0., 1., 0.]])
    """

    k: int = static()
    retrieval: str = static()
    regularization_strength: float = static()

    def __init__(
        self, k: int, *, retrieval: str = "soft_topk", regularization_strength: float = 1.0
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise QueryError(f"SoftRetrieval: k must be a whole number >= 1, got {k!r}")
        if retrieval not in RETRIEVALS:
            raise QueryError(
                f"SoftRetrieval(k={k}): retrieval must be one of {RETRIEVALS}, got {retrieval!r}"
            )
        v = regularization_strength
        if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
            raise QueryError(
                f"SoftRetrieval(k={k}): regularization_strength must be a finite number > 0, "
                f"got {v!r}"
            )
        self.k, self.retrieval, self.regularization_strength = int(k), retrieval, float(v)

    @property
    def kind(self) -> str:
        """The stage kind: ``"relaxed"`` for ``soft_topk``, ``"exact"`` for ``softmax``."""
        return "relaxed" if self.retrieval == "soft_topk" else "exact"

    def _check(self, scores) -> None:
        shape = tuple(scores.shape)
        if len(shape) != 2 or shape[1] < self.k:
            raise QueryError(
                f"SoftRetrieval(k={self.k}, {self.retrieval!r}): scores must have shape "
                f"(B, m) with m >= {self.k} candidates, got {shape}"
            )

    def relaxed(self, scores, *, key=None):
        self._check(scores)
        return retrieval_weights(scores, self.k, self.retrieval, self.regularization_strength)

    __call__ = relaxed

    def hard(self, scores, *, key=None):
        self._check(scores)
        if self.retrieval == "softmax":
            return self.relaxed(scores)
        s = np.asarray(scores)
        order = np.argsort(-s, axis=-1, kind="stable")[..., : self.k]
        out = np.zeros(s.shape)
        np.put_along_axis(out, order, 1.0 / self.k, axis=-1)
        return out


class Reader(Module):
    """``log p(y | x, z)`` for each candidate document: ``log_softmax(linear(c_z))[y]``
    over document contents ``(B, m, d)`` and answers ``y`` ``(B,)`` -> ``(B, m)``.

    >>> import numpy as np
    >>> Reader(3, 2, key=0)(np.zeros((1, 4, 3)), np.array([1])).shape
    (1, 4)
    """

    linear: Linear

    def __init__(self, doc_dim: int, answers: int, *, key=0, linear: Linear | None = None):
        self.linear = Linear(doc_dim, answers, key=key) if linear is None else linear

    def __call__(self, docs, y, *, key=None):
        y = np.asarray(y)
        if len(docs.shape) != 3 or y.shape != tuple(docs.shape[:1]) or y.dtype.kind not in "iu":
            raise QueryError(
                f"Reader: documents (B, m, d) and integer answers (B,), got {tuple(docs.shape)} "
                f"and {y.shape} {y.dtype}"
            )
        logp = log_softmax(self.linear(docs), axis=-1)
        return dnp.take_along_axis(logp, y[:, None, None], axis=-1)[..., 0]
