"""The exact layer of search: document embeddings stored in DuckDB, read back as one NumPy
matrix, and exact top-k by inner product (in NumPy, or as a compiled
:class:`~diffsys.systems.db.Query` that DuckDB runs)."""

from __future__ import annotations

import numpy as np

from ..db import Database, Query, QueryError

__all__ = ["EmbeddingIndex", "top_k"]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores per row ``(B, n) -> (B, k)``, best first (ties:
    the lower index)."""
    scores = np.asarray(scores)
    n = scores.shape[-1]
    if not 1 <= k <= n:
        raise QueryError(f"top_k: k must satisfy 1 <= k <= {n} (the documents), got {k}")
    part = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(scores, part, -1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, -1)


class EmbeddingIndex:
    """Embeddings of documents ``(n, d)`` in table ``table`` of ``db`` (columns ``id``,
    ``v0 .. v{d-1}``). :meth:`write` replaces them (a refresh) and bumps :attr:`version`;
    :attr:`matrix` is the copy read back from DuckDB (no per-row Python)."""

    def __init__(self, db: Database, table: str = "doc_index") -> None:
        self.db, self.table = db, table
        self.ids: np.ndarray | None = None
        self.matrix: np.ndarray | None = None
        self.version = 0

    @property
    def columns(self) -> list[str]:
        return [f"v{j}" for j in range(self.matrix.shape[1])]

    def write(self, ids: np.ndarray, embeddings: np.ndarray) -> None:
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != len(ids) or not np.all(np.isfinite(emb)):
            raise QueryError(
                f"EmbeddingIndex.write: expected finite embeddings ({len(ids)}, d), got "
                f"shape {emb.shape}"
            )
        cols = {"id": np.asarray(ids)} | {f"v{j}": emb[:, j] for j in range(emb.shape[1])}
        self.db.create_table(self.table, cols, replace=True)
        data = self.db.fetch(self.table, list(cols), order_by="id")
        self.ids = data["id"]
        self.matrix = np.stack([data[f"v{j}"] for j in range(emb.shape[1])], axis=1)
        self.version += 1

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows (positions in :attr:`ids`) of the ``k`` best documents per query, in NumPy."""
        if self.matrix is None:
            raise QueryError("EmbeddingIndex.search: the index is empty; write() it first")
        return top_k(np.asarray(queries) @ self.matrix.T, k)

    def search_sql(self, query: np.ndarray, k: int) -> np.ndarray:
        """The ids of the ``k`` best documents for one query vector, by DuckDB: the inner
        product compiled as a :class:`Query` score (``ORDER BY score DESC LIMIT k``)."""
        q = Query(self.table, key="id", features=self.columns, weights=np.asarray(query), k=k)
        return q.execute(self.db).keys
