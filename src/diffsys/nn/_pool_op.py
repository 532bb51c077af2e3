"""Pooling: max pooling as a gather at the window maxima, average pooling as a depthwise
convolution, adaptive average pooling as two averaging matmuls."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from .. import numpy as dnp
from ..core.primitive import Primitive
from ._batch import loop_batch
from ._conv_op import ConvSpec, _tuple, conv_p, out_size, resolve_padding

# --- gather / scatter-add by flat index -----------------------------------------------------------


def _take_impl(x, idx, unique):
    return x.reshape(-1)[idx]


def _scatter_impl(g, idx, shape, unique):
    size = math.prod(shape)
    if unique:
        out = np.zeros(size, dtype=g.dtype)
        out[idx.reshape(-1)] = g.reshape(-1)
    else:
        out = np.bincount(idx.reshape(-1), weights=g.reshape(-1), minlength=size)
        out = out.astype(g.dtype, copy=False)
    return out.reshape(shape)


take_p = Primitive("nn.take_flat", _take_impl)
scatter_p = Primitive("nn.scatter_add_flat", _scatter_impl)
take_p.defvjp(
    lambda g, ans, x, idx, unique: scatter_p(g, idx, shape=tuple(dnp.shape(x)), unique=unique),
    None,
)
take_p.defjvp(lambda t, ans, x, idx, unique: take_p(t, idx, unique=unique), None)
scatter_p.defvjp(lambda c, ans, g, idx, shape, unique: take_p(c, idx, unique=unique), None)
scatter_p.defjvp(
    lambda t, ans, g, idx, shape, unique: scatter_p(t, idx, shape=shape, unique=unique)
)


def _take_batch(args, batched, unique):
    x, idx = args
    if batched[0] and not batched[1]:
        b = dnp.shape(x)[0]
        return dnp.reshape(x, (b, -1))[:, idx]
    return loop_batch(take_p, args, batched, unique=unique)


take_p.defbatch(_take_batch)
scatter_p.defbatch(lambda args, batched, **p: loop_batch(scatter_p, args, batched, **p))


# --- max pooling --------------------------------------------------------------------------------


def _plain(x):
    from ..core.tracer import concrete

    return concrete(x)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, op: str = "max_pool"):
    """Max pooling over the trailing spatial axes of ``x`` ``(N, C, *S)``.

    The gradient goes to the first maximum of each window (as in PyTorch). Padding counts
    as ``-inf``.

    >>> import numpy as np
    >>> max_pool(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    xs = dnp.shape(x)
    nd = len(xs) - 2
    if nd < 1:
        raise ValueError(f"{op}: expected an input (N, C, *spatial), got shape {xs}")
    kernel = _tuple(kernel_size, nd, "kernel_size", op)
    stride = kernel if stride is None else _tuple(stride, nd, "stride", op)
    dilation = _tuple(dilation, nd, "dilation", op)
    pads = resolve_padding(padding, xs[2:], kernel, stride, dilation, op)
    for (lo, hi), k in zip(pads, kernel, strict=True):
        if max(lo, hi) > k // 2:
            raise ValueError(f"{op}: padding {pads} must be at most half the kernel size {kernel}")
    spec = ConvSpec(stride, pads, dilation, 1)
    for n, k, s, p, d in zip(xs[2:], kernel, stride, pads, dilation, strict=True):
        if out_size(n, k, s, p, d) < 1:
            raise ValueError(f"{op}: kernel {kernel} is larger than the input {xs[2:]}")
    idx = _argmax_index(np.asarray(_plain(x)), kernel, spec)
    overlap = any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation, strict=True))
    return take_p(x, idx, unique=not overlap)


def _argmax_index(x: np.ndarray, kernel, spec: ConvSpec) -> np.ndarray:
    """Flat indices into ``x`` of each window's (first) maximum: ``(N, C, *out)``.

    Passes over strided views, one per kernel offset (no window copies): the maximum, then
    the first offset that reaches it.
    """
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    if any(lo or hi for lo, hi in spec.padding):
        fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
        x = np.pad(x, ((0, 0), (0, 0)) + tuple(spec.padding), constant_values=fill)
    out = tuple(
        out_size(s, k, st, p, d)
        for s, k, st, p, d in zip(
            spatial, kernel, spec.stride, spec.padding, spec.dilation, strict=True
        )
    )
    views = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + s * (m - 1) + 1, s)
            for o, d, s, m in zip(offs, spec.dilation, spec.stride, out, strict=True)
        )
        views.append(x[index])
    best = views[0].copy()
    for view in views[1:]:
        np.maximum(best, view, out=best)
    dtype = np.int32 if x.size < 2**31 else np.intp
    offset = np.zeros(best.shape, dtype=dtype)
    offsets = list(itertools.product(*(range(k) for k in kernel)))
    for k in range(len(views) - 1, 0, -1):  # the first maximum wins, as in PyTorch
        flat = sum(
            o * d * math.prod(spatial[a + 1 :])
            for a, (o, d) in enumerate(zip(offsets[k], spec.dilation, strict=True))
        )
        offset = np.where(views[k] == best, dtype(flat), offset)
    return _window_origins((n, c) + tuple(spatial), tuple(kernel), spec, out) + offset


@functools.lru_cache(maxsize=32)
def _window_origins(shape, kernel, spec: ConvSpec, out) -> np.ndarray:
    """Flat index in the unpadded input of each window's first element (read-only)."""
    n, c = shape[:2]
    spatial = shape[2:]
    nd = len(kernel)
    index = np.arange(n * c, dtype=np.intp).reshape(n, c, *([1] * nd))
    for a in range(nd):
        o = np.arange(out[a]).reshape([1, 1] + [out[a] if i == a else 1 for i in range(nd)])
        index = index * spatial[a] + (o * spec.stride[a] - spec.padding[a][0])
    index.flags.writeable = False
    return index


# --- average pooling ------------------------------------------------------------------------------


def avg_pool(
    x,
    kernel_size,
    stride=None,
    padding=0,
    count_include_pad: bool = True,
    op: str = "avg_pool",
):
    """Average pooling over the trailing spatial axes of ``x`` ``(N, C, *S)``.

    >>> import numpy as np
    >>> avg_pool(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    xs = dnp.shape(x)
    nd = len(xs) - 2
    if nd < 1:
        raise ValueError(f"{op}: expected an input (N, C, *spatial), got shape {xs}")
    kernel = _tuple(kernel_size, nd, "kernel_size", op)
    stride = kernel if stride is None else _tuple(stride, nd, "stride", op)
    pads = resolve_padding(padding, xs[2:], kernel, stride, (1,) * nd, op)
    spec = ConvSpec(stride, pads, (1,) * nd, 1)
    for n, k, s, p in zip(xs[2:], kernel, stride, pads, strict=True):
        if out_size(n, k, s, p, 1) < 1:
            raise ValueError(f"{op}: kernel {kernel} is larger than the input {xs[2:]}")
    dtype = dnp.result_type(x.dtype if hasattr(x, "dtype") else np.float64, np.float32)
    w = np.full((1, 1) + kernel, 1.0 / math.prod(kernel), dtype=dtype)
    n, c = xs[:2]
    flat = dnp.reshape(x, (n * c, 1) + tuple(xs[2:]))
    y = conv_p(flat, w, spec=spec)
    y = dnp.reshape(y, (n, c) + dnp.shape(y)[2:])
    if count_include_pad or not any(lo or hi for lo, hi in pads):
        return y
    ones = np.ones((1, 1) + tuple(xs[2:]), dtype=dtype)
    counts = conv_p(ones, w, spec=spec)  # the fraction of each window inside the input
    return y / counts[0, 0]


def _adaptive_matrix(n_in: int, n_out: int, dtype) -> np.ndarray:
    """Rows that average PyTorch's adaptive windows ``[floor(i n/m), ceil((i+1) n/m))``."""
    m = np.zeros((n_out, n_in), dtype=dtype)
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x, output_size, op: str = "adaptive_avg_pool"):
    """Average pooling to a fixed spatial output size (PyTorch's window rule).

    >>> import numpy as np
    >>> adaptive_avg_pool(np.ones((2, 3, 5, 7)), (2, 3)).shape
    (2, 3, 2, 3)
    """
    xs = dnp.shape(x)
    nd = len(xs) - 2
    if nd < 1:
        raise ValueError(f"{op}: expected an input (N, C, *spatial), got shape {xs}")
    if isinstance(output_size, int | np.integer) or output_size is None:
        output_size = (output_size,) * nd
    sizes = tuple(n if o is None else int(o) for n, o in zip(xs[2:], output_size, strict=True))
    dtype = dnp.result_type(x.dtype if hasattr(x, "dtype") else np.float64, np.float32)
    y = x
    for a, (n, m) in enumerate(zip(xs[2:], sizes, strict=True)):
        if n == m:
            continue
        axis = 2 + a
        y = dnp.moveaxis(y, axis, -1)
        y = dnp.matmul(y, _adaptive_matrix(n, m, dtype).T)
        y = dnp.moveaxis(y, -1, axis)
    return y
