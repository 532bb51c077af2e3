"""Two linear primitives the renderer's pair arrays are built on (each the other's kind of
transpose), O(rows) both ways:

- :func:`gather_rows`: ``x[index]`` along axis 0, whose backward pass adds rows back with
  ``np.bincount`` (several times faster than the ``np.add.at`` of general indexing);
- :func:`segment_sum`: sums of rows by sorted segment id (pixel), by ``np.add.reduceat``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.primitive import Primitive

Array = Any

__all__ = ["gather_rows", "segment_sum"]


def _segment_sum_impl(x, seg, *, n):
    x = np.asarray(x)
    out = np.zeros((n, *x.shape[1:]), dtype=x.dtype)
    if len(seg):
        starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
        out[seg[starts]] = np.add.reduceat(x, starts, axis=0)
    return out


segment_sum_p = Primitive("render.segment_sum", _segment_sum_impl)
segment_sum_p.defvjp(lambda g, ans, x, seg, *, n: g[seg])
segment_sum_p.defjvp(lambda t, ans, x, seg, *, n: segment_sum_p(t, seg, n=n))


def segment_sum(x: Array, segment: np.ndarray, n: int) -> Array:
    """``out[s] = sum of x[i] with segment[i] == s`` for ``s < n`` (``segment`` sorted).

    >>> segment_sum(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 2]), 3)
    array([3., 0., 3.])
    """
    segment = np.asarray(segment, dtype=np.int64)
    if segment.ndim != 1 or len(segment) != np.shape(x)[0]:
        raise ValueError(
            f"segment_sum: segment must be 1-D with one id per row of x, got shapes "
            f"{segment.shape} and {np.shape(x)}"
        )
    if len(segment) > 1 and np.any(segment[1:] < segment[:-1]):
        raise ValueError("segment_sum: segment ids must be sorted (ascending)")
    return segment_sum_p(x, segment, n=int(n))


def _scatter_rows_impl(g, idx, *, n):
    g = np.asarray(g)
    k = int(np.prod(g.shape[1:], dtype=np.int64))
    flat = (idx[:, None] * k + np.arange(k)).ravel()
    out = np.bincount(flat, weights=g.reshape(-1), minlength=n * k)
    return out.reshape((n, *g.shape[1:])).astype(g.dtype, copy=False)


# rows of ``x`` gathered by ``idx`` / scattered (added) back: each the other's transpose, and
# a scatter by ``np.bincount`` is several times faster than ``np.add.at``
gather_rows_p = Primitive("render.gather_rows", lambda x, idx: np.asarray(x)[idx])
scatter_rows_p = Primitive("render.scatter_rows", _scatter_rows_impl)
gather_rows_p.defvjp(lambda g, ans, x, idx: scatter_rows_p(g, idx, n=np.shape(x)[0]))
gather_rows_p.defjvp(lambda t, ans, x, idx: gather_rows_p(t, idx))
scatter_rows_p.defvjp(lambda g, ans, x, idx, *, n: gather_rows_p(g, idx))
scatter_rows_p.defjvp(lambda t, ans, x, idx, *, n: scatter_rows_p(t, idx, n=n))


def gather_rows(x: Array, index: np.ndarray) -> Array:
    """``x[index]`` along axis 0, whose backward pass adds rows with ``np.bincount``.

    >>> gather_rows(np.array([[1.0], [2.0]]), np.array([1, 1, 0]))[:, 0]
    array([2., 2., 1.])
    """
    return gather_rows_p(x, np.asarray(index, dtype=np.int64))


