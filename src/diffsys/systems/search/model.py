"""``RetrievalQA``: query encoder + document encoder + reader, trained end to end with the
marginal likelihood over the documents retrieved from a periodically refreshed index."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ... import numpy as dnp
from ...core.transforms import value_and_grad
from ...nn import Linear
from ...nn.module import Module
from ...optim import GradientTransformation, apply_updates
from ...relax import log_softmax
from .index import EmbeddingIndex
from .ops import RETRIEVALS, marginal_nll, staleness

__all__ = ["RetrievalQA", "SearchHistory", "train_search"]


class RetrievalQA(Module):
    """``score(x, z) = <query_encoder(x), doc_encoder(c_z[:text_dim])>``; the reader gives
    ``log p(y | z) = log_softmax(reader(c_z))`` from the document's whole content ``c_z``
    (the index embeds the first ``text_dim`` features: the document's text; the reader
    reads all of it)."""

    query_encoder: Linear
    doc_encoder: Linear
    reader: Linear
    text_dim: int

    def __init__(
        self, query_dim: int, doc_dim: int, embed_dim: int, answers: int, *, text_dim=None, key=0
    ):
        rng = np.random.default_rng(key)
        self.text_dim = doc_dim if text_dim is None else int(text_dim)
        self.query_encoder = Linear(query_dim, embed_dim, bias=False, key=rng)
        self.doc_encoder = Linear(self.text_dim, embed_dim, bias=False, key=rng)
        self.reader = Linear(doc_dim, answers, key=rng)

    def embed_docs(self, content):
        return self.doc_encoder(content[..., : self.text_dim])

    def loss(
        self,
        x,
        y,
        content,
        candidates,
        *,
        retrieval: str = "softmax",
        k: int | None = None,
        regularization_strength: float = 1.0,
    ):
        """The marginal NLL of answers ``y`` ``(B,)`` for questions ``x`` over ``candidates``
        ``(B, m)`` (document rows, from the index); scores recomputed with the current
        encoders, so the document encoder gets gradients too. ``retrieval``, ``k`` and
        ``regularization_strength`` choose ``p(z | x)`` (:func:`~.ops.marginal_nll`): the
        softmax over the candidates (default), or soft top-``k`` among them."""
        q = self.query_encoder(x)  # (B, e)
        docs = content[candidates]  # (B, k, doc_dim): exact, constant
        d = self.embed_docs(docs)  # (B, k, e)
        scores = dnp.sum(q[:, None, :] * d, axis=-1)
        logp = log_softmax(self.reader(docs), axis=-1)  # (B, k, answers)
        reader_ll = dnp.take_along_axis(logp, np.asarray(y)[:, None, None], axis=-1)[..., 0]
        return marginal_nll(
            scores,
            reader_ll,
            retrieval=retrieval,
            k=k,
            regularization_strength=regularization_strength,
        )

    def predict(self, x, content, candidates) -> np.ndarray:
        """``argmax_y sum_z p(z | x) p(y | z)`` over the candidates."""
        q = np.asarray(self.query_encoder(x))
        docs = content[candidates]
        d = np.asarray(self.embed_docs(docs))
        pz = np.asarray(log_softmax(np.sum(q[:, None, :] * d, axis=-1), axis=-1))
        py = np.asarray(log_softmax(self.reader(docs), axis=-1))
        return np.argmax(np.log(np.sum(np.exp(pz[..., None] + py), axis=1)), axis=-1)


@dataclass
class SearchHistory:
    """Per step: the training loss (candidates from the stale index), the same loss with
    candidates from a fresh index, the index's staleness, and (with ``doc_labels``) the
    precision@k of the candidates (the share whose label is the answer), stale and fresh;
    ``refreshes``: the steps at which the index was rewritten."""

    loss: list = field(default_factory=list)
    loss_fresh: list = field(default_factory=list)
    staleness: list = field(default_factory=list)
    precision: list = field(default_factory=list)
    precision_fresh: list = field(default_factory=list)
    refreshes: list = field(default_factory=list)


def train_search(
    model: RetrievalQA,
    optimizer: GradientTransformation,
    index: EmbeddingIndex,
    content: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    doc_labels: np.ndarray | None = None,
    k: int = 10,
    steps: int = 100,
    batch: int = 64,
    refresh_every: int = 10,
    trainable: tuple[str, ...] = ("query_encoder", "doc_encoder", "reader"),
    seed: int = 0,
    retrieval: str = "softmax",
    pool: int | None = None,
    regularization_strength: float = 1.0,
) -> tuple[RetrievalQA, SearchHistory]:
    """Train end to end with Adam-like ``optimizer`` on the marginal likelihood over the
    ``k`` documents the index returns. The index is rewritten (in DuckDB) from the current
    document encoder every ``refresh_every`` steps; between refreshes the encoder moves under
    it, and every step records its staleness and the loss and precision a fresh index would
    give. ``trainable`` names the parts that learn (the others keep their values).

    ``retrieval="softmax"`` (REALM/RAG) marginalizes over the ``k`` retrieved documents with
    a softmax of their scores; ``"soft_topk"`` fetches ``pool`` candidates (default ``2k``)
    and marginalizes with the relaxed top-k weights ``soft_topk_mask(scores, k) / k``
    (``regularization_strength``), so documents near the cut get gradient too. Precision@k
    is measured on the ``k`` best candidates either way."""
    if retrieval not in RETRIEVALS:
        raise ValueError(f"train_search: retrieval must be one of {RETRIEVALS}, got {retrieval!r}")
    fetch = k if retrieval == "softmax" else (2 * k if pool is None else int(pool))
    if fetch < k:
        raise ValueError(f"train_search: pool ({fetch}) must be at least k ({k})")
    how = dict(
        retrieval=retrieval,
        k=None if retrieval == "softmax" else k,
        regularization_strength=regularization_strength,
    )
    rng = np.random.default_rng(seed)
    ids = np.arange(len(content))
    state = optimizer.init(model)
    hist = SearchHistory()
    mask = model.replace(
        **{n: _scaled(getattr(model, n), 1.0 if n in trainable else 0.0) for n in
           ("query_encoder", "doc_encoder", "reader")}
    )  # fmt: skip
    for step in range(steps):
        if step % refresh_every == 0:
            index.write(ids, np.asarray(model.embed_docs(content)))
            hist.refreshes.append(step)
        rows = rng.choice(len(x), size=min(batch, len(x)), replace=False)
        xb, yb = x[rows], y[rows]
        q = np.asarray(model.query_encoder(xb))
        cand = index.search(q, fetch)
        fresh = np.asarray(model.embed_docs(content))
        cand_fresh = _top_k(q @ fresh.T, fetch)
        loss, g = value_and_grad(functools.partial(RetrievalQA.loss, **how))(
            model, xb, yb, content, cand
        )
        hist.loss.append(float(loss))
        hist.loss_fresh.append(float(model.loss(xb, yb, content, cand_fresh, **how)))
        hist.staleness.append(staleness(index.matrix, fresh))
        if doc_labels is not None:
            top, top_fresh = cand[:, :k], cand_fresh[:, :k]
            hist.precision.append(float(np.mean(doc_labels[top] == yb[:, None])))
            hist.precision_fresh.append(float(np.mean(doc_labels[top_fresh] == yb[:, None])))
        g = _tree_mul(g, mask)
        updates, state = optimizer.update(g, state, model)
        model = apply_updates(model, updates)
    return model, hist


def _top_k(scores, k):
    from .index import top_k

    return top_k(scores, k)


def _scaled(module: Linear, factor: float):
    from ...core.pytree import tree_map

    return tree_map(lambda a: np.full_like(a, factor), module)


def _tree_mul(a, b):
    from ...core.pytree import tree_map

    return tree_map(lambda u, v: u * v, a, b)
