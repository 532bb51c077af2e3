"""Ready ``pl.Stage`` builders for search pipelines (``kind`` set), and a whole pipeline.

A search pipeline over a batch of questions ``x`` ``(B, q)``, the text of each question's
``m`` candidate documents ``doc_text`` ``(B, m, t)`` (what the exact index returned), their
whole content ``docs`` ``(B, m, d)`` and the answers ``y`` ``(B,)``::

    query    = query_encoder(x)                      exact
    doc_emb  = doc_encoder(doc_text)                 exact
    scores   = inner_product_scores(query, doc_emb)  exact
    retrieve = SoftRetrieval(k)(scores)              relaxed (soft_topk) or exact (softmax)
    read     = Reader(docs, y)                       exact
    loss     = mixture_nll(retrieve, read)           the REALM/RAG objective

>>> from diffsys.systems.search import SoftRetrieval, retrieval_stage
>>> retrieval_stage("retrieve", SoftRetrieval(3)).kind
'relaxed'
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import pipeline as pl
from .model import RetrievalQA
from .modules import Reader, SoftRetrieval
from .ops import inner_product_scores, mixture_nll

__all__ = [
    "marginal_loss",
    "reader_stage",
    "retrieval_stage",
    "scores_stage",
    "search_pipeline",
]


def scores_stage(name: str, *, inputs: Sequence[str] = ("query", "doc_emb")) -> pl.Stage:
    """An exact stage: :func:`inner_product_scores` of the query ``(B, e)`` and candidate
    document embeddings ``(B, m, e)``."""
    return pl.Stage(name, inner_product_scores, inputs=tuple(inputs), kind="exact")


def retrieval_stage(
    name: str, retrieval: SoftRetrieval, *, inputs: str | Sequence[str] = "scores"
) -> pl.Stage:
    """The retrieval distribution over the candidates: kind ``relaxed`` for soft top-k
    (``train()`` relaxed, ``infer()`` the exact top k, ``mismatch()`` the gap), ``exact``
    for the softmax over the exact top k."""
    return pl.Stage(name, retrieval, inputs=inputs, kind=retrieval.kind)


def reader_stage(
    name: str, reader: Reader, *, inputs: Sequence[str] = ("docs", "y")
) -> pl.Stage:
    """An exact stage: the reader's log-likelihood of the answer for each candidate."""
    return pl.Stage(name, reader, inputs=tuple(inputs), kind="exact")


def marginal_loss(
    name: str = "marginal_nll",
    retrieval: str = "retrieve",
    reader: str = "read",
    *,
    weight: float = 1.0,
) -> pl.Loss:
    """The REALM/RAG loss term: :func:`mixture_nll` of the outputs ``retrieval`` (weights
    over candidates) and ``reader`` (log-likelihoods)."""
    return pl.Loss(name, mixture_nll, inputs=(retrieval, reader), weight=weight)


def search_pipeline(
    model: RetrievalQA,
    k: int,
    *,
    retrieval: str = "soft_topk",
    regularization_strength: float = 1.0,
) -> pl.Pipeline:
    """The pipeline above (see the module docstring) with ``model``'s encoders and reader;
    batch keys ``("x", "doc_text", "docs", "y")``. With ``retrieval="softmax"`` and ``m == k``
    candidates its loss is :meth:`RetrievalQA.loss`."""
    return pl.Pipeline(
        [
            pl.Stage("query", model.query_encoder, inputs="x"),
            pl.Stage("doc_emb", model.doc_encoder, inputs="doc_text"),
            scores_stage("scores"),
            retrieval_stage(
                "retrieve",
                SoftRetrieval(
                    k, retrieval=retrieval, regularization_strength=regularization_strength
                ),
            ),
            reader_stage("read", Reader(1, 1, linear=model.reader)),
        ],
        batch_keys=("x", "doc_text", "docs", "y"),
        losses=[marginal_loss()],
    )
