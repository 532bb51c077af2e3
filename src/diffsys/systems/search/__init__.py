"""``diffsys.systems.search``: differentiable retrieval for question answering (the ``db``
extra: the document index lives in DuckDB).

- exact (:mod:`.index`): :class:`EmbeddingIndex` stores document embeddings in DuckDB and
  finds the top k by inner product (NumPy, or a compiled ``systems.db.Query``).
- differentiable (:mod:`.ops`): :func:`marginal_nll`, the REALM/RAG objective (marginal
  likelihood of the answer over the retrieved documents); :func:`staleness`.
- :class:`RetrievalQA` (query encoder, document encoder, reader) and :func:`train_search`,
  which refreshes the index every N steps and records the index's staleness and its effect
  on the loss and on recall.
- pipelines (:mod:`.stages`): :class:`SoftRetrieval` (soft top-k retrieval, a relaxed
  stage, or the softmax over the exact top k), :class:`Reader`, stage builders and
  :func:`search_pipeline`. See docs/search.md.
"""

try:
    import duckdb  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "diffsys.systems.search needs DuckDB, which is the optional 'db' extra: "
        "pip install 'diffsys[db]' (or pip install duckdb)"
    ) from exc

from .index import EmbeddingIndex, top_k
from .model import RetrievalQA, SearchHistory, train_search
from .modules import Reader, SoftRetrieval
from .ops import (
    RETRIEVALS,
    inner_product_scores,
    marginal_nll,
    mixture_nll,
    retrieval_weights,
    staleness,
)
from .stages import (
    marginal_loss,
    reader_stage,
    retrieval_stage,
    scores_stage,
    search_pipeline,
)

__all__ = [
    "RETRIEVALS",
    "EmbeddingIndex",
    "Reader",
    "RetrievalQA",
    "SearchHistory",
    "SoftRetrieval",
    "inner_product_scores",
    "marginal_loss",
    "marginal_nll",
    "mixture_nll",
    "reader_stage",
    "retrieval_stage",
    "retrieval_weights",
    "scores_stage",
    "search_pipeline",
    "staleness",
    "top_k",
    "train_search",
]


def _register_stage_types() -> None:
    """Register the search modules and functions with ``diffsys.pipeline`` so pipelines
    holding them save and load by name."""
    from ...pipeline import register

    for obj in (Reader, RetrievalQA, SoftRetrieval, inner_product_scores, mixture_nll):
        register(obj, name=f"systems.search.{obj.__name__}")


_register_stage_types()
