"""Row-wise primitives used by the sorting relaxations: permutations and block (segment) sums.

All of them act along the last axis and treat every leading index as an independent row; their
array arguments broadcast against each other over the leading axes. The integer/boolean
arguments (permutations, block starts) are structure, not values: they carry no derivative.

- ``sort_perm_p(x, descending)``: the sorting permutation along the last axis (zero
  derivative).
- ``permute_p(x, perm, inverse=False)``: ``x`` gathered by ``perm`` along the last axis
  (``x[perm]``), or with ``inverse=True`` scattered by it (``out[perm] = x``, i.e. ``x`` taken
  by the inverse permutation). Linear in ``x``; each is the other's transpose, O(n).
- ``segment_sum_p(x, starts)``, ``segment_mean_p(x, starts)``: every element replaced by the
  sum / mean of its block, blocks being the runs that begin where ``starts`` is true. Both are
  symmetric linear maps: their VJP and JVP are themselves (O(n)).
- ``segment_logsumexp_p(x, starts)``: every element replaced by the log-sum-exp of its block.
"""

from __future__ import annotations

import numpy as np

from ..core.primitive import Primitive
from ..numpy import exp, greater, isfinite, reshape, unbroadcast, where

# --- batching helper ----------------------------------------------------------------------------


def align_rows(args, batched):
    """Give every argument the same rank with the batch on axis 0 (size 1 when unbatched).

    Row-wise primitives broadcast their arguments over the leading axes, so after this the
    batch axis lines up with the batch axis of the batched arguments. The values may be
    tracers of outer transforms, so this reshapes with :mod:`diffsys.numpy`.
    """
    shapes = [tuple(np.shape(a)) if not hasattr(a, "shape") else tuple(a.shape) for a in args]
    cores = [len(s) - 1 if b else len(s) for s, b in zip(shapes, batched, strict=True)]
    rank = max(cores)
    out = []
    for a, s, b, k in zip(args, shapes, batched, cores, strict=True):
        new = s[:1] + (1,) * (rank - k) + s[1:] if b else (1,) * (rank - k + 1) + s
        out.append(reshape(a, new) if new != s else a)
    return out


# --- sorting permutations -----------------------------------------------------------------------


def _sort_perm_impl(x, descending=False):
    perm = np.argsort(np.asarray(x), axis=-1)
    return perm[..., ::-1] if descending else perm


sort_perm_p = Primitive("relax.sort_perm", _sort_perm_impl, zero_derivative=True)
sort_perm_p.defbatch(
    lambda args, batched, descending=False: sort_perm_p(args[0], descending=descending)
)


def _row_middle_impl(x):
    x = np.asarray(x)
    k = x.shape[-1] // 2
    return x[..., k : k + 1].copy()


# The middle entry of each row (the median of a sorted row), a constant: a centre for
# shift-invariant operations, whose derivatives do not depend on it.
row_middle_p = Primitive("relax.row_middle", _row_middle_impl, zero_derivative=True)
row_middle_p.defbatch(lambda args, batched: row_middle_p(args[0]))


# --- permutations -------------------------------------------------------------------------------


def _flat_indices(perm: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Indices into the flattened array of ``shape`` for row-local indices ``perm``."""
    n = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    offsets = np.arange(0, rows * n, n, dtype=perm.dtype).reshape(shape[:-1] + (1,))
    return np.add(perm, offsets).reshape(-1)


def _permute_impl(x, perm, inverse=False):
    x, perm = np.asarray(x), np.asarray(perm)
    shape = np.broadcast_shapes(x.shape, perm.shape)
    if not shape or shape[-1] == 0 or 0 in shape:
        return np.broadcast_to(x, shape).copy()
    idx = _flat_indices(perm, shape)
    flat = np.broadcast_to(x, shape).reshape(-1)
    if not inverse:
        return np.take(flat, idx).reshape(shape)
    out = np.empty_like(flat)
    out[idx] = flat
    return out.reshape(shape)


permute_p = Primitive("relax.permute", _permute_impl)
permute_p.defvjp(
    lambda g, ans, x, perm, inverse=False: unbroadcast(permute_p(g, perm, inverse=not inverse), x)
)
permute_p.defjvp(lambda t, ans, x, perm, inverse=False: permute_p(t, perm, inverse=inverse))
permute_p.defbatch(
    lambda args, batched, inverse=False: permute_p(*align_rows(args, batched), inverse=inverse)
)


# --- segments -----------------------------------------------------------------------------------


def _segments(shape: tuple[int, ...], starts) -> tuple[np.ndarray, np.ndarray]:
    """Flat start indices and lengths of the blocks of an array of ``shape`` (rows = last axis)."""
    n = shape[-1]
    flat = np.array(np.broadcast_to(starts, shape), dtype=bool).reshape(-1)
    flat[::n] = True  # every row starts a block
    idx = np.flatnonzero(flat)
    counts = np.diff(idx, append=flat.size)
    return idx, counts


def _segment_reduce(x, starts, kind: str):
    x = np.asarray(x)
    starts = np.asarray(starts)
    shape = np.broadcast_shapes(x.shape, starts.shape)
    if not shape or shape[-1] == 0 or 0 in shape:
        return np.broadcast_to(x, shape).copy()
    idx, counts = _segments(shape, starts)
    flat = np.broadcast_to(x, shape).reshape(-1)
    return np.repeat(_reduce_flat(flat, idx, counts, kind), counts).reshape(shape)


def _reduce_flat(flat, idx, counts, kind: str):
    """One value per block of the flat array ``flat`` (blocks start at ``idx``)."""
    if kind == "sum":
        red = np.add.reduceat(flat, idx)
    elif kind == "mean":
        red = np.add.reduceat(flat, idx) / counts.astype(flat.dtype)
    elif kind == "max":
        red = np.maximum.reduceat(flat, idx)
    else:  # logsumexp, stable, with -inf / +inf entries handled as in scipy.special.logsumexp
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            m = np.maximum.reduceat(flat, idx)
            m = np.where(np.isfinite(m), m, np.zeros_like(m))
            red = np.log(np.add.reduceat(np.exp(flat - np.repeat(m, counts)), idx)) + m
    return red


def _segment_batch(prim):
    return lambda args, batched: prim(*align_rows(args, batched))


segment_sum_p = Primitive("relax.segment_sum", lambda x, starts: _segment_reduce(x, starts, "sum"))
segment_sum_p.defvjp(lambda g, ans, x, starts: unbroadcast(segment_sum_p(g, starts), x))
segment_sum_p.defjvp(lambda t, ans, x, starts: segment_sum_p(t, starts))
segment_sum_p.defbatch(_segment_batch(segment_sum_p))

segment_mean_p = Primitive(
    "relax.segment_mean", lambda x, starts: _segment_reduce(x, starts, "mean")
)
segment_mean_p.defvjp(lambda g, ans, x, starts: unbroadcast(segment_mean_p(g, starts), x))
segment_mean_p.defjvp(lambda t, ans, x, starts: segment_mean_p(t, starts))
segment_mean_p.defbatch(_segment_batch(segment_mean_p))


# The block maximum, a constant: the block softmax below does not depend on it.
segment_max_p = Primitive(
    "relax.segment_max", lambda x, starts: _segment_reduce(x, starts, "max"), zero_derivative=True
)
segment_max_p.defbatch(_segment_batch(segment_max_p))


def _block_softmax(x, starts):
    """``exp(x - logsumexp_block(x))``: the weights of each element in its block (0 at -inf).

    As ``e / sum_block(e)`` with ``e = exp(x - max_block(x))``, not ``exp(x - ans)``: where
    ``x`` is large (a soft sort of values near 1.7e12) ``ans`` is rounded to ``x``'s ulp, and
    ``x - ans`` with it, while ``x - max`` is exact for the close values a block pools. No
    NaN reaches a derivative: a block of -inf has weights 0, never ``-inf - (-inf)``.
    """
    m = segment_max_p(x, starts)
    e = exp(x - where(isfinite(m), m, 0.0))
    total = segment_sum_p(e, starts)
    return e / where(greater(total, 0.0), total, 1.0)


segment_logsumexp_p = Primitive(
    "relax.segment_logsumexp", lambda x, starts: _segment_reduce(x, starts, "logsumexp")
)
segment_logsumexp_p.defvjp(
    lambda g, ans, x, starts: unbroadcast(
        _block_softmax(x, starts) * segment_sum_p(g, starts), x
    )
)
segment_logsumexp_p.defjvp(
    lambda t, ans, x, starts: segment_sum_p(_block_softmax(x, starts) * t, starts)
)
segment_logsumexp_p.defbatch(_segment_batch(segment_logsumexp_p))


# --- the projection given its blocks --------------------------------------------------------------


def _project_blocks_impl(s, w, starts, kind):
    s, w, starts = np.asarray(s), np.asarray(w), np.asarray(starts)
    shape = np.broadcast_shapes(s.shape, w.shape, starts.shape)
    dtype = np.result_type(s, w)
    out = np.array(np.broadcast_to(w, shape), dtype=dtype).reshape(-1)  # a block of one: w
    if out.size == 0:
        return out.reshape(shape)
    idx, counts = _segments(shape, starts)
    pooled = counts > 1
    if pooled.any():  # only the pooled blocks are reduced (most are single at small eps)
        idx, counts = idx[pooled], counts[pooled]
        first = np.cumsum(counts) - counts  # where each pooled block starts among them
        elements = np.arange(int(counts.sum())) + np.repeat(idx - first, counts)
        fs = np.broadcast_to(s, shape).reshape(-1)[elements]
        fw = out[elements]
        reduce = "mean" if kind == "l2" else "logsumexp"
        own = np.repeat(_reduce_flat(fs, first, counts, reduce), counts)
        other = np.repeat(_reduce_flat(fw, first, counts, reduce), counts)
        out[elements] = (fs - own) + other
    return out.reshape(shape)


def _project_blocks_vjp_s(g, ans, s, w, starts, kind):
    if kind == "l2":
        return unbroadcast(g - segment_mean_p(g, starts), s)
    return unbroadcast(g - _block_softmax(s, starts) * segment_sum_p(g, starts), s)


def _project_blocks_vjp_w(g, ans, s, w, starts, kind):
    if kind == "l2":
        return unbroadcast(segment_mean_p(g, starts), w)
    return unbroadcast(_block_softmax(w, starts) * segment_sum_p(g, starts), w)


def _project_blocks_jvp_s(t, ans, s, w, starts, kind):
    # (the segment operations broadcast t to the blocks' shape, which is the output's)
    if kind == "l2":
        return t - segment_mean_p(t, starts)
    return t - segment_sum_p(_block_softmax(s, starts) * t, starts)


def _project_blocks_jvp_w(t, ans, s, w, starts, kind):
    if kind == "l2":
        return segment_mean_p(t, starts)
    return segment_sum_p(_block_softmax(w, starts) * t, starts)


# ``project_blocks_p(s, w, starts, kind)``: the projection of ``s`` onto the permutahedron of
# ``w`` (both sorted descending) given the blocks of its isotonic regression, in the forms
# that stay exact (see ``sorting.py``): ``mean_B(w) + (s - mean_B(s))`` for ``kind="l2"``,
# ``(s - lse_B(s)) + lse_B(w)`` for ``"kl"``. One pass over the blocks for both arguments.
project_blocks_p = Primitive("relax.project_blocks", _project_blocks_impl)
project_blocks_p.defvjp(_project_blocks_vjp_s, _project_blocks_vjp_w, None)
project_blocks_p.defjvp(_project_blocks_jvp_s, _project_blocks_jvp_w, None)
project_blocks_p.defbatch(
    lambda args, batched, kind: project_blocks_p(*align_rows(args, batched), kind=kind)
)
