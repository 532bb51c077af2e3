"""Pooling over the trailing spatial axes, with strided views (no window copies, no Python
loop over pixels: one NumPy call per kernel offset).

Primitives, each over any number of leading axes (so a batch of ``vmap`` is one more
leading axis and every batching rule is a single call):

- ``max_pool_p(x)``: the maximum of each window.
- ``max_pool_route_p(g, x, y)``: ``g`` routed to the first maximum of each window (the
  VJP of max pooling; ``x`` and ``y = max_pool(x)`` only say where the maxima are), and
  ``max_pool_pick_p(t, x, y)``, its transpose: the entry of ``t`` at each window's first
  maximum (the JVP). Both are linear in their first operand, so derivatives of any order
  are these two again.
- ``avg_pool_p(x)`` and ``avg_pool_t_p(g)``: the window mean and its transpose.

The selection is exact: the gradient of a window goes to one entry, the first maximum in
window order (as in PyTorch), and ``inf``/``nan`` cotangents are not spread to the other
entries (see :mod:`._select`).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np

from .. import numpy as dnp
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ._conv_op import _tuple, out_size, resolve_padding
from ._select import as_layout_of, empty_like_layout, select, select_scratch


class PoolSpec(NamedTuple):
    """Geometry of a pooling over the last ``len(kernel)`` axes; a primitive parameter."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]

    def out(self, spatial) -> tuple[int, ...]:
        return tuple(
            out_size(n, k, s, p, d)
            for n, k, s, p, d in zip(
                spatial, self.kernel, self.stride, self.padding, self.dilation, strict=True
            )
        )

    @property
    def padded(self) -> bool:
        return any(lo or hi for lo, hi in self.padding)

    def tiles(self, spatial) -> bool:
        """Whether the windows cover every input entry exactly once."""
        return not self.padded and all(
            s == k and d == 1 and n % k == 0
            for n, k, s, d in zip(spatial, self.kernel, self.stride, self.dilation, strict=True)
        )


def _views(a: np.ndarray, spec: PoolSpec, out) -> list[np.ndarray]:
    """One strided view of ``a`` (padded input) per kernel offset, each shaped like the
    output: entry ``[..., i, j]`` of view ``k`` is the ``k``-th entry of window ``(i, j)``."""
    return [a[index] for index in _view_indices(spec, tuple(out), a.ndim)]


@functools.lru_cache(maxsize=256)
def _view_indices(spec: PoolSpec, out: tuple[int, ...], ndim: int) -> tuple:
    lead = (slice(None),) * (ndim - len(spec.kernel))
    return tuple(
        lead
        + tuple(
            slice(o * d, o * d + s * (m - 1) + 1, s)
            for o, d, s, m in zip(offs, spec.dilation, spec.stride, out, strict=True)
        )
        for offs in itertools.product(*(range(k) for k in spec.kernel))
    )


def _pad(x: np.ndarray, spec: PoolSpec, fill) -> np.ndarray:
    """``x`` with its last axes padded by ``fill`` (kept in ``x``'s memory layout)."""
    if not spec.padded:
        return x
    nd = len(spec.kernel)
    shape = x.shape[:-nd] + tuple(
        n + lo + hi for n, (lo, hi) in zip(x.shape[-nd:], spec.padding, strict=True)
    )
    xp = empty_like_layout(x, shape, x.dtype)
    xp.fill(fill)
    xp[_crop(spec, x.shape[-nd:], x.ndim)] = x
    return xp


def _crop(spec: PoolSpec, spatial, ndim: int) -> tuple[slice, ...]:
    nd = len(spec.kernel)
    inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, spec.padding, strict=True))
    return (slice(None),) * (ndim - nd) + inner


def _lowest(dtype: np.dtype):
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    return np.iinfo(dtype).min if np.issubdtype(dtype, np.integer) else False


# --- max pooling ------------------------------------------------------------------------------


def _max_pool_impl(x, *, spec: PoolSpec):
    """The maximum of each window over the last axes (padding counts as ``-inf``)."""
    x = np.asarray(x)
    nd = len(spec.kernel)
    views = _views(_pad(x, spec, _lowest(x.dtype)), spec, spec.out(x.shape[-nd:]))
    if len(views) == 1:
        return views[0].copy(order="K")
    y = np.maximum(views[0], views[1])  # allocated in the layout of x
    for v in views[2:]:
        np.maximum(y, v, out=y)
    return y


def _first_maxima(x: np.ndarray, y: np.ndarray, spec: PoolSpec):
    """For each kernel offset, the mask of windows whose first maximum sits there.

    One buffer is yielded each time, overwritten by the next offset: use it at once.
    """
    nd = len(spec.kernel)
    views = _views(_pad(x, spec, _lowest(x.dtype)), spec, y.shape[-nd:])
    shape = np.broadcast_shapes(views[0].shape, y.shape)
    hit = np.empty_like(y, dtype=bool) if shape == y.shape else np.empty(shape, bool)
    found = np.empty_like(hit)
    # A window whose maximum is NaN (np.maximum propagates it) routes to its first NaN, as in
    # PyTorch; NaN == NaN is false, so those windows need their own test (rare: checked once).
    nan_y = np.isnan(y) if y.dtype.kind in "fc" else None
    if nan_y is not None and not nan_y.any():
        nan_y = None
    last = len(views) - 1
    for k, v in enumerate(views):
        np.equal(v, y, out=hit)
        if nan_y is not None:
            hit |= np.isnan(v) & nan_y
        if k == 0:
            np.copyto(found, hit)
        else:
            np.greater(hit, found, out=hit)  # a maximum, and none found before
            if k < last:
                np.logical_or(found, hit, out=found)
        yield hit


def _route_impl(g, x, y, *, spec: PoolSpec):
    """``g`` routed to the first maximum of each window of ``x`` (``y``: the maxima)."""
    g, x, y = np.asarray(g), np.asarray(x), np.asarray(y)
    nd = len(spec.kernel)
    spatial = x.shape[-nd:]
    lead = np.broadcast_shapes(g.shape[:-nd], x.shape[:-nd])
    g = as_layout_of(g, y)
    shape = lead + spatial
    if spec.padded:
        shape = lead + tuple(n + lo + hi for n, (lo, hi) in zip(spatial, spec.padding, strict=True))
    # Windows that tile the input, and no broadcasting: each entry is written exactly once.
    direct = spec.tiles(spatial) and g.shape == y.shape and x.shape[:-nd] == lead
    gx = empty_like_layout(x if x.shape[:-nd] == lead else g, shape, g.dtype)
    if not direct:
        gx.fill(0)
    scratch = select_scratch(g, y) if direct else None
    views = _views(gx, spec, y.shape[-nd:])
    for view, first in zip(views, _first_maxima(x, y, spec), strict=True):
        if direct:
            select(g, first, out=view, scratch=scratch)
        else:
            view += _select_broadcast(g, first)
    return gx[_crop(spec, spatial, gx.ndim)] if spec.padded else gx


def _pick_impl(t, x, y, *, spec: PoolSpec):
    """The entry of ``t`` at the first maximum of each window of ``x`` (``y``: the maxima)."""
    t, x, y = np.asarray(t), np.asarray(x), np.asarray(y)
    nd = len(spec.kernel)
    out = y.shape[-nd:]
    views = _views(_pad(t, spec, 0), spec, out)
    picked = None
    for view, first in zip(views, _first_maxima(x, y, spec), strict=True):
        part = _select_broadcast(view, first)
        picked = part if picked is None else np.add(picked, part, out=picked)
    return picked


def _select_broadcast(g: np.ndarray, m: np.ndarray) -> np.ndarray:
    if g.shape == m.shape:
        return select(g, m)
    shape = np.broadcast_shapes(g.shape, m.shape)
    return np.where(np.broadcast_to(m, shape), g, np.zeros((), g.dtype))


max_pool_p = Primitive("nn.max_pool", _max_pool_impl)
max_pool_route_p = Primitive("nn.max_pool_route", _route_impl)
max_pool_pick_p = Primitive("nn.max_pool_pick", _pick_impl)

# Where the maxima are is data, not a differentiable input: the positions are constant
# almost everywhere, so x and y enter the route/pick primitives as constants.
_where_maxima = Primitive("nn.max_pool_where", lambda x: x, zero_derivative=True)
_where_maxima.defbatch(lambda args, batched: args[0])


def _const(a):
    return _where_maxima(a) if isinstance(a, Tracer) else a


max_pool_p.defvjp(lambda g, ans, x, spec: max_pool_route_p(g, _const(x), _const(ans), spec=spec))
max_pool_p.defjvp(lambda t, ans, x, spec: max_pool_pick_p(t, _const(x), _const(ans), spec=spec))
max_pool_route_p.defvjp(
    lambda c, ans, g, x, y, spec: dnp.unbroadcast(max_pool_pick_p(c, x, y, spec=spec), g),
    None,
    None,
)
max_pool_route_p.defjvp(lambda t, ans, g, x, y, spec: max_pool_route_p(t, x, y, spec=spec))
max_pool_pick_p.defvjp(
    lambda c, ans, t, x, y, spec: dnp.unbroadcast(max_pool_route_p(c, x, y, spec=spec), t),
    None,
    None,
)
max_pool_pick_p.defjvp(lambda s, ans, t, x, y, spec: max_pool_pick_p(s, x, y, spec=spec))


# --- average pooling ------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _window_counts(spatial: tuple[int, ...], spec: PoolSpec) -> np.ndarray:
    """How many entries of each window lie inside the input (read-only)."""
    counts = _avg_sum(np.ones(spatial), spec)
    counts.flags.writeable = False
    return counts


def _avg_sum(x: np.ndarray, spec: PoolSpec) -> np.ndarray:
    nd = len(spec.kernel)
    views = _views(_pad(x, spec, 0), spec, spec.out(x.shape[-nd:]))
    s = views[0].copy(order="K")
    for v in views[1:]:
        np.add(s, v, out=s)
    return s


def _divisor(spatial, spec: PoolSpec, count_include_pad: bool, dtype):
    if count_include_pad or not spec.padded:
        return np.asarray(math.prod(spec.kernel), dtype)
    return _window_counts(tuple(spatial), spec).astype(dtype)


def _avg_pool_impl(x, *, spec: PoolSpec, count_include_pad: bool):
    """The mean of each window over the last axes."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.inexact):
        x = x.astype(np.float64)
    nd = len(spec.kernel)
    s = _avg_sum(x, spec)
    s /= _divisor(x.shape[-nd:], spec, count_include_pad, s.dtype)
    return s


def _avg_pool_t_impl(g, *, spec: PoolSpec, count_include_pad: bool, in_spatial):
    """The transpose of average pooling: each window receives its share of ``g``."""
    g = np.asarray(g)
    nd = len(spec.kernel)
    g = g / _divisor(in_spatial, spec, count_include_pad, g.dtype)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(in_spatial, spec.padding, strict=True))
    gx = empty_like_layout(g, g.shape[:-nd] + padded, g.dtype)
    gx.fill(0)
    for view in _views(gx, spec, g.shape[-nd:]):
        view += g
    return gx[_crop(spec, in_spatial, gx.ndim)] if spec.padded else gx


avg_pool_p = Primitive("nn.avg_pool", _avg_pool_impl)
avg_pool_t_p = Primitive("nn.avg_pool_transpose", _avg_pool_t_impl)


def _spatial_of(x, spec: PoolSpec) -> tuple[int, ...]:
    return tuple(dnp.shape(x)[-len(spec.kernel) :])


avg_pool_p.defvjp(
    lambda c, ans, x, spec, count_include_pad: avg_pool_t_p(
        c, spec=spec, count_include_pad=count_include_pad, in_spatial=_spatial_of(x, spec)
    )
)
avg_pool_p.defjvp(
    lambda t, ans, x, spec, count_include_pad: avg_pool_p(
        t, spec=spec, count_include_pad=count_include_pad
    )
)
avg_pool_t_p.defvjp(
    lambda c, ans, g, spec, count_include_pad, in_spatial: avg_pool_p(
        c, spec=spec, count_include_pad=count_include_pad
    )
)
avg_pool_t_p.defjvp(
    lambda t, ans, g, spec, count_include_pad, in_spatial: avg_pool_t_p(
        t, spec=spec, count_include_pad=count_include_pad, in_spatial=in_spatial
    )
)


# --- batching: the pooled axes are the last ones, so a batch is one more leading axis ----------


def _leading_batch(prim):
    def rule(args, batched, **params):
        # Operands of one logical shape: an unbatched one broadcasts against the batch axis.
        return prim(*args, **params)

    return rule


for _prim in (max_pool_p, max_pool_route_p, max_pool_pick_p, avg_pool_p, avg_pool_t_p):
    _prim.defbatch(_leading_batch(_prim))


# --- the functional API ---------------------------------------------------------------------


def _pool_spec(xs, kernel_size, stride, padding, dilation, op: str) -> PoolSpec:
    try:
        return _pool_spec_cached(tuple(xs), kernel_size, stride, padding, dilation, op)
    except TypeError:  # an unhashable argument (a list): the same checks, uncached
        return _make_pool_spec(xs, kernel_size, stride, padding, dilation, op)


def _make_pool_spec(xs, kernel_size, stride, padding, dilation, op: str) -> PoolSpec:
    nd = len(xs) - 2
    if nd < 1:
        raise ValueError(f"{op}: expected an input (N, C, *spatial), got shape {xs}")
    kernel = _tuple(kernel_size, nd, "kernel_size", op)
    stride = kernel if stride is None else _tuple(stride, nd, "stride", op)
    dilation = _tuple(dilation, nd, "dilation", op)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(
            f"{op}: kernel_size, stride and dilation must be >= 1, got {kernel}, {stride}, "
            f"{dilation}"
        )
    pads = resolve_padding(padding, xs[2:], kernel, stride, dilation, op)
    for (lo, hi), k in zip(pads, kernel, strict=True):
        if max(lo, hi) > k // 2:
            raise ValueError(f"{op}: padding {pads} must be at most half the kernel size {kernel}")
    spec = PoolSpec(kernel, stride, pads, dilation)
    if min(spec.out(xs[2:])) < 1:
        raise ValueError(f"{op}: kernel {kernel} is larger than the input {xs[2:]}")
    return spec


_pool_spec_cached = functools.lru_cache(maxsize=256)(_make_pool_spec)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, op: str = "max_pool"):
    """Max pooling over the trailing spatial axes of ``x`` ``(N, C, *S)``.

    The gradient goes to the first maximum of each window (as in PyTorch). Padding counts
    as ``-inf``.

    >>> import numpy as np
    >>> max_pool(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    spec = _pool_spec(dnp.shape(x), kernel_size, stride, padding, dilation, op)
    return max_pool_p(x, spec=spec)


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
    spec = _pool_spec(dnp.shape(x), kernel_size, stride, padding, 1, op)
    return avg_pool_p(x, spec=spec, count_include_pad=bool(count_include_pad))


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
