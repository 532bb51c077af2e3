"""``diffsys.systems.search``: differentiable retrieval for question answering (the ``db``
extra: the document index lives in DuckDB).

- exact (:mod:`.index`): :class:`EmbeddingIndex` stores document embeddings in DuckDB and
  finds the top k by inner product (NumPy, or a compiled ``systems.db.Query``).
- differentiable (:mod:`.ops`): :func:`marginal_nll`, the REALM/RAG objective (marginal
  likelihood of the answer over the retrieved documents); :func:`staleness`.
- :class:`RetrievalQA` (query encoder, document encoder, reader) and :func:`train_search`,
  which refreshes the index every N steps and records the index's staleness and its effect
  on the loss and on recall. See docs/search.md.
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
from .ops import marginal_nll, staleness

__all__ = [
    "EmbeddingIndex",
    "RetrievalQA",
    "SearchHistory",
    "marginal_nll",
    "staleness",
    "top_k",
    "train_search",
]
