"""N-d convolution (cross-correlation, as in PyTorch) as im2col plus one matrix product.

Primitives (each linear or bilinear, with VJP, JVP and batching rules written with each
other, so derivatives of any order stay one matrix product each):

- ``im2col_p(x)``: the windows of ``x`` as a column matrix; ``col2im_p`` is its transpose
  (it adds each window back, one strided addition per kernel offset).
- ``conv_mm_p(cols, w, b)``: ``w @ cols + b``, the convolution of the columns;
  ``conv_mm_tc_p(g, w)`` (``w.T @ g``, columns of the input gradient) and
  ``conv_mm_tw_p(cols, g)`` (``g @ cols.T``, the weight gradient) are its transposes.
- ``conv_p(x, w, b)`` = ``conv_mm_p(im2col_p(x), w, b)`` and ``conv_tx_p(g, w)`` =
  ``col2im_p(conv_mm_tc_p(g, w))`` in one node each: what they keep for the backward pass
  is ``x``, not the columns, which the weight gradient makes again.

:func:`conv` records ``im2col_p`` and ``conv_mm_p`` when the columns are small (up to
:data:`KEEP_COLUMNS_BYTES`), so the weight gradient reuses them, and ``conv_p`` otherwise.

Layouts: ``x`` is ``(N, C, *spatial)``, ``w`` is ``(O, C // groups, *kernel)``, the output
``(N, O, *out)``. The columns are ``(groups, C // groups * prod(kernel), *out, N)``: the
sample axis innermost, so that each window copy runs over whole rows of ``out * N`` values
and each matrix product is one large BLAS call. Outputs (and input gradients) keep that
order in memory: a convolution returns a ``(N, O, *out)`` view of an ``(O, *out, N)``
array. NumPy treats it as any other array; the next convolution, pooling, ReLU and their
gradients then run on it without copies.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np

from .. import numpy as dnp
from ..core.primitive import Primitive

KEEP_COLUMNS_BYTES = 32 << 20
"""Columns up to this size are kept for the weight gradient instead of being made again."""


class ConvSpec(NamedTuple):
    """Geometry of a convolution; hashable, a primitive parameter."""

    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int


def out_size(n: int, k: int, s: int, pad: tuple[int, int], d: int) -> int:
    return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def _padded(spatial, spec: ConvSpec) -> tuple[int, ...]:
    return tuple(s + lo + hi for s, (lo, hi) in zip(spatial, spec.padding, strict=True))


def _interior(spatial, spec: ConvSpec) -> tuple[slice, ...]:
    return tuple(slice(lo, lo + s) for s, (lo, _) in zip(spatial, spec.padding, strict=True))


@functools.lru_cache(maxsize=256)
def _offset_slices(kernel: tuple[int, ...], spec: ConvSpec, out) -> tuple:
    """For each kernel offset: ``(offset, the input positions it meets)``, one slice per
    spatial axis (cached: the same layers run every step)."""
    return tuple(
        (
            offs,
            tuple(
                slice(o * d, o * d + s * (m - 1) + 1, s)
                for o, d, s, m in zip(offs, spec.dilation, spec.stride, out, strict=True)
            ),
        )
        for offs in itertools.product(*(range(k) for k in kernel))
    )


_LAST = {n: (*range(1, n), 0) for n in range(1, 9)}
_FIRST = {n: (n - 1, *range(n - 1)) for n in range(1, 9)}


def _samples_last(x: np.ndarray) -> np.ndarray:
    """``(N, C, *S)`` -> ``(C, *S, N)``, a view."""
    return x.transpose(_LAST[x.ndim])


def _samples_first(x: np.ndarray) -> np.ndarray:
    """``(C, *S, N)`` -> ``(N, C, *S)``, a view."""
    return x.transpose(_FIRST[x.ndim])


# --- implementations ----------------------------------------------------------------------


def _im2col_impl(x, *, kernel: tuple[int, ...], spec: ConvSpec):
    """``(N, C, *S)`` -> columns ``(G, C/G * prod(kernel), *out, N)`` (contiguous)."""
    x = np.asarray(x)
    xt = _samples_last(x)
    c, spatial, n = xt.shape[0], xt.shape[1:-1], xt.shape[-1]
    if any(lo or hi for lo, hi in spec.padding):
        xp = np.zeros((c, *_padded(spatial, spec), n), x.dtype)
        xp[(slice(None), *_interior(spatial, spec))] = xt
    else:
        xp = np.ascontiguousarray(xt)  # no copy when x came from a convolution or a pool
    # The windows as a strided view (C, *kernel, *out, N) of the padded (C, *S', N) array.
    st = xp.strides
    out = tuple(
        (p - d * (k - 1) - 1) // s + 1
        for p, k, s, d in zip(xp.shape[1:-1], kernel, spec.stride, spec.dilation, strict=True)
    )
    win = np.ndarray(
        (c, *kernel, *out, n),
        x.dtype,
        buffer=xp,
        strides=(
            st[0],
            *(a * d for a, d in zip(st[1:-1], spec.dilation, strict=True)),
            *(a * s for a, s in zip(st[1:-1], spec.stride, strict=True)),
            st[-1],
        ),
    )
    cols = np.empty((spec.groups, c // spec.groups * math.prod(kernel), *out, n), x.dtype)
    np.copyto(cols.reshape(win.shape), win)
    return cols


def _col2im_impl(cols, *, kernel: tuple[int, ...], spec: ConvSpec, in_spatial: tuple[int, ...]):
    """The transpose of im2col: each window of the columns added back into the input."""
    cols = np.asarray(cols)
    nd = len(kernel)
    g, ckg = cols.shape[:2]
    c = g * (ckg // math.prod(kernel))
    out, n = cols.shape[2 : 2 + nd], cols.shape[-1]
    cols = cols.reshape((c,) + tuple(kernel) + out + (n,))
    xp = np.zeros((c, *_padded(in_spatial, spec), n), dtype=cols.dtype)
    every = slice(None)
    for offs, index in _offset_slices(tuple(kernel), spec, out):
        view = xp[(every, *index)]
        view += cols[(every, *offs)]  # rows of out[-1] * N contiguous values
    return _samples_first(xp[(every, *_interior(in_spatial, spec))])


def _rows(a: np.ndarray, groups: int) -> np.ndarray:
    """``(N, O, *S)`` -> ``(G, O/G, prod(S) * N)``: a view for arrays from these primitives."""
    o = a.shape[1]
    return _samples_last(a).reshape(groups, o // groups, -1)


def _mm_impl(cols, w, b=None, *, spec: ConvSpec):
    """``w @ cols (+ b)``: ``(N, O, *out)``, laid out as ``(O, *out, N)``."""
    w = np.asarray(w)
    g, ckg = cols.shape[:2]
    o = w.shape[0]
    nd = w.ndim - 2
    out, n = cols.shape[2 : 2 + nd], cols.shape[-1]
    if g == 1:
        y = np.matmul(w.reshape(o, ckg), cols.reshape(ckg, -1))
    else:
        y = np.matmul(w.reshape(g, o // g, ckg), cols.reshape(g, ckg, -1)).reshape(o, -1)
    if b is not None:
        b = np.asarray(b).reshape(o, 1)
        if np.result_type(y, b) == y.dtype:
            y += b
        else:
            y = y + b
    return _from_rows(y, out, n)


def _from_rows(y: np.ndarray, out, n: int) -> np.ndarray:
    return _samples_first(y.reshape((y.shape[0],) + tuple(out) + (n,)))


def _tc_impl(g, w, *, spec: ConvSpec):
    """``w.T @ g``: the columns of the input gradient, ``(G, C/G * K, *out, N)``."""
    g, w = np.asarray(g), np.asarray(w)
    grp = spec.groups
    o, ckg = w.shape[0], math.prod(w.shape[1:])
    gm = _rows(g, grp)
    if grp == 1:
        c = np.matmul(w.reshape(o, ckg).T, gm[0])
    else:
        c = np.matmul(w.reshape(grp, o // grp, ckg).transpose(0, 2, 1), gm)
    return c.reshape((grp, ckg) + g.shape[2:] + g.shape[:1])


def _tw_impl(cols, g, *, spec: ConvSpec, kernel: tuple[int, ...]):
    """``g @ cols.T``: the weight gradient, ``(O, C/G, *kernel)``."""
    g = np.asarray(g)
    grp, ckg = cols.shape[:2]
    o = g.shape[1]
    gm = _rows(g, grp)
    cm = cols.reshape(grp, ckg, -1)
    if grp == 1:
        dw = np.matmul(gm[0], cm[0].T)
    else:
        dw = np.matmul(gm, cm.transpose(0, 2, 1))
    return dw.reshape((o, ckg // math.prod(kernel)) + tuple(kernel))


def _conv_impl(x, w, b=None, *, spec: ConvSpec):
    """Convolution of ``x`` with ``w`` plus ``b`` in one node (im2col, one matmul).

    Only ``x`` is kept for the backward pass; the weight gradient makes the columns again.
    """
    kernel = tuple(np.shape(w)[2:])
    return _mm_impl(_im2col_impl(x, kernel=kernel, spec=spec), w, b, spec=spec)


def _conv_tx_impl(g, w, *, spec: ConvSpec, in_spatial: tuple[int, ...]):
    """Input gradient of a convolution (the transposed convolution) in one node.

    ``w.T @ g``, added back window by window into ``(N, C, *in_spatial)``.
    """
    kernel = tuple(np.shape(w)[2:])
    cols = _tc_impl(g, w, spec=spec)
    return _col2im_impl(cols, kernel=kernel, spec=spec, in_spatial=in_spatial)


def _bias_grad_impl(g):
    """The sum of ``g`` ``(N, O, *out)`` over all axes but the channel axis."""
    g = np.asarray(g)
    t = _samples_last(g)
    if t.flags.c_contiguous:  # the layout of these primitives: one pass along rows
        return np.add.reduce(t.reshape(g.shape[1], -1), axis=1)
    return g.sum(axis=(0,) + tuple(range(2, g.ndim)))


im2col_p = Primitive("nn.im2col", _im2col_impl)
col2im_p = Primitive("nn.col2im", _col2im_impl)
conv_mm_p = Primitive("nn.conv_matmul", _mm_impl)
conv_mm_tc_p = Primitive("nn.conv_matmul_transpose_columns", _tc_impl)
conv_mm_tw_p = Primitive("nn.conv_matmul_transpose_weight", _tw_impl)
conv_p = Primitive("nn.conv", _conv_impl)
conv_tx_p = Primitive("nn.conv_transpose_input", _conv_tx_impl)
bias_grad_p = Primitive("nn.conv_bias_grad", _bias_grad_impl)


# --- derivative rules ----------------------------------------------------------------------


def _spatial(a) -> tuple[int, ...]:
    return tuple(dnp.shape(a)[2:])


def _bias_tangent(t, ans):
    """A bias tangent ``(O,)`` broadcast over an output ``(N, O, *out)``."""
    nd = len(dnp.shape(ans)) - 2
    return dnp.broadcast_to(dnp.reshape(t, (-1,) + (1,) * nd), dnp.shape(ans))


def _affine_jvp(prim: Primitive) -> None:
    """JVP rules of ``prim(a, w, b)``, bilinear in ``(a, w)`` plus a bias ``b``."""
    prim.defjvp(
        lambda t, ans, a, w, b, spec: prim(t, w, None, spec=spec),
        lambda t, ans, a, w, b, spec: prim(a, t, None, spec=spec),
        lambda t, ans, a, w, b, spec: _bias_tangent(t, ans),
    )


im2col_p.defvjp(
    lambda c, ans, x, kernel, spec: col2im_p(c, kernel=kernel, spec=spec, in_spatial=_spatial(x))
)
im2col_p.defjvp(lambda t, ans, x, kernel, spec: im2col_p(t, kernel=kernel, spec=spec))
col2im_p.defvjp(
    lambda c, ans, cols, kernel, spec, in_spatial: im2col_p(c, kernel=kernel, spec=spec)
)
col2im_p.defjvp(
    lambda t, ans, cols, kernel, spec, in_spatial: col2im_p(
        t, kernel=kernel, spec=spec, in_spatial=in_spatial
    )
)

# conv_mm(cols, w, b): <c, tc(g, w)> = <mm(c, w), g> and <c, tw(cols, g)> = <mm(cols, c), g>.
conv_mm_p.defvjp(
    lambda g, ans, cols, w, b, spec: conv_mm_tc_p(g, w, spec=spec),
    lambda g, ans, cols, w, b, spec: conv_mm_tw_p(cols, g, spec=spec, kernel=_spatial(w)),
    lambda g, ans, cols, w, b, spec: bias_grad_p(g),
)
_affine_jvp(conv_mm_p)
conv_mm_tc_p.defvjp(
    lambda c, ans, g, w, spec: conv_mm_p(c, w, None, spec=spec),
    lambda c, ans, g, w, spec: conv_mm_tw_p(c, g, spec=spec, kernel=_spatial(w)),
)
conv_mm_tc_p.defjvp(
    lambda t, ans, g, w, spec: conv_mm_tc_p(t, w, spec=spec),
    lambda t, ans, g, w, spec: conv_mm_tc_p(g, t, spec=spec),
)
conv_mm_tw_p.defvjp(
    lambda c, ans, cols, g, spec, kernel: conv_mm_tc_p(g, c, spec=spec),
    lambda c, ans, cols, g, spec, kernel: conv_mm_p(cols, c, None, spec=spec),
)
conv_mm_tw_p.defjvp(
    lambda t, ans, cols, g, spec, kernel: conv_mm_tw_p(t, g, spec=spec, kernel=kernel),
    lambda t, ans, cols, g, spec, kernel: conv_mm_tw_p(cols, t, spec=spec, kernel=kernel),
)

# conv(x, w, b) = conv_mm(im2col(x), w, b), the columns made again for the weight gradient.
conv_p.defvjp(
    lambda g, ans, x, w, b, spec: conv_tx_p(g, w, spec=spec, in_spatial=_spatial(x)),
    lambda g, ans, x, w, b, spec: conv_mm_tw_p(
        im2col_p(x, kernel=_spatial(w), spec=spec), g, spec=spec, kernel=_spatial(w)
    ),
    lambda g, ans, x, w, b, spec: bias_grad_p(g),
)
_affine_jvp(conv_p)

# conv_tx(g, w) = col2im(tc(g, w)):  <c, tx(g, w)> = <conv(c, w), g> = <tw(im2col(c), g), w>.
conv_tx_p.defvjp(
    lambda c, ans, g, w, spec, in_spatial: conv_p(c, w, None, spec=spec),
    lambda c, ans, g, w, spec, in_spatial: conv_mm_tw_p(
        im2col_p(c, kernel=_spatial(w), spec=spec), g, spec=spec, kernel=_spatial(w)
    ),
)
conv_tx_p.defjvp(
    lambda t, ans, g, w, spec, in_spatial: conv_tx_p(t, w, spec=spec, in_spatial=in_spatial),
    lambda t, ans, g, w, spec, in_spatial: conv_tx_p(g, t, spec=spec, in_spatial=in_spatial),
)

bias_grad_p.defvjp(lambda c, ans, g: _bias_tangent(c, g))
bias_grad_p.defjvp(lambda t, ans, g: bias_grad_p(t))


# --- batching rules -------------------------------------------------------------------------
#
# A batch of the data operand (x, cols or g) folds into the sample axis N: one call, the
# same matrix products with longer rows. Batched weights or biases (per-example parameters,
# or the basis vectors of jacfwd/jacrev with respect to a weight) go through broadcasting
# matrix products of diffsys.numpy, which are differentiable and batchable in turn.


def _fold(a):
    """``(B, N, ...)`` -> ``(B * N, ...)``."""
    s = dnp.shape(a)
    return dnp.reshape(a, (s[0] * s[1],) + tuple(s[2:]))


def _unfold(a, b: int):
    """``(B * N, ...)`` -> ``(B, N, ...)``."""
    s = dnp.shape(a)
    return dnp.reshape(a, (b, s[0] // b) + tuple(s[1:]))


def _cols_fold(c):
    """Batched columns ``(B, G, CK, *out, N)`` -> ``(G, CK, *out, B * N)``."""
    c = dnp.moveaxis(c, 0, -2)
    s = dnp.shape(c)
    return dnp.reshape(c, tuple(s[:-2]) + (s[-2] * s[-1],))


def _cols_unfold(c, b: int):
    """``(G, CK, *out, B * N)`` -> batched columns ``(B, G, CK, *out, N)``."""
    s = dnp.shape(c)
    return dnp.moveaxis(dnp.reshape(c, tuple(s[:-1]) + (b, s[-1] // b)), -2, 0)


def _im2col_batch(args, batched, *, kernel, spec):
    (x,) = args
    b = dnp.shape(x)[0]
    return _cols_unfold(im2col_p(_fold(x), kernel=kernel, spec=spec), b)


def _col2im_batch(args, batched, *, kernel, spec, in_spatial):
    (c,) = args
    b = dnp.shape(c)[0]
    y = col2im_p(_cols_fold(c), kernel=kernel, spec=spec, in_spatial=in_spatial)
    return _unfold(y, b)


def _cols3(cols, batched: bool):
    """Columns (batched or not) as ``([B,] G, CK, P * N)``."""
    s = dnp.shape(cols)
    lead = 1 + int(batched)
    return dnp.reshape(cols, tuple(s[:lead]) + (s[lead], -1))


def _g_rows(g, batched: bool, groups: int):
    """``([B,] N, O, *out)`` -> ``([B,] G, O/G, P * N)``."""
    lead = int(batched)
    s = dnp.shape(g)
    gm = dnp.moveaxis(g, lead, -1)  # ([B,] O, *out, N)
    return dnp.reshape(gm, tuple(s[:lead]) + (groups, s[lead + 1] // groups, -1))


def _w3(w, batched: bool, groups: int):
    """``([B,] O, C/G, *K)`` -> ``([B,] G, O/G, C/G * K)``."""
    lead = int(batched)
    s = dnp.shape(w)
    return dnp.reshape(w, tuple(s[:lead]) + (groups, s[lead] // groups, -1))


def _mm_general(cols, w, b, bc: bool, bw: bool, bb: bool, spec: ConvSpec):
    """``conv_mm`` of batched operands: ``(B, N, O, *out)`` by broadcasting matmuls."""
    grp = spec.groups
    sc = dnp.shape(cols)
    nd = len(dnp.shape(w)) - 2 - int(bw)
    out, n = tuple(sc[2 + bc : 2 + bc + nd]), sc[-1]
    y = dnp.matmul(_w3(w, bw, grp), _cols3(cols, bc))  # (B, G, O/G, P * N)
    s = dnp.shape(y)
    y = dnp.reshape(y, (s[0], s[1] * s[2]) + out + (n,))
    y = dnp.moveaxis(y, -1, 1)  # (B, N, O, *out)
    if b is not None:
        o = s[1] * s[2]
        lead = (dnp.shape(b)[0],) if bb else ()
        y = y + dnp.reshape(b, lead + (1, o) + (1,) * nd)
    return y


def _mm_batch(args, batched, *, spec):
    cols, w, b = args
    bc, bw, bb = batched
    if bc and not bw and not bb:
        n = dnp.shape(cols)[0]
        return _unfold(conv_mm_p(_cols_fold(cols), w, b, spec=spec), n)
    if not bc and not bw:  # only the bias is batched
        y = conv_mm_p(cols, w, None, spec=spec)  # (N, O, *out) + (B, 1, O, 1, ...)
        nd = len(dnp.shape(w)) - 2
        return y + dnp.reshape(b, (dnp.shape(b)[0], 1, -1) + (1,) * nd)
    return _mm_general(cols, w, b, bc, bw, bb, spec)


def _tc_batch(args, batched, *, spec):
    g, w = args
    bg, bw = batched
    if bg and not bw:
        return _cols_unfold(conv_mm_tc_p(_fold(g), w, spec=spec), dnp.shape(g)[0])
    grp = spec.groups
    w3 = _w3(w, bw, grp)
    c = dnp.matmul(dnp.swapaxes(w3, -1, -2), _g_rows(g, bg, grp))  # (B, G, CK, P * N)
    sg = dnp.shape(g)
    out, n = tuple(sg[2 + bg :]), sg[bg]
    s = dnp.shape(c)
    return dnp.reshape(c, tuple(s[:3]) + out + (n,))


def _tw_batch(args, batched, *, spec, kernel):
    cols, g = args
    bc, bg = batched
    grp = spec.groups
    dw = dnp.matmul(_g_rows(g, bg, grp), dnp.swapaxes(_cols3(cols, bc), -1, -2))
    s = dnp.shape(dw)  # (B, G, O/G, C/G * K)
    return dnp.reshape(dw, (s[0], s[1] * s[2], s[3] // math.prod(kernel)) + tuple(kernel))


def _conv_batch(args, batched, *, spec):
    x, w, b = args
    bx, bw, bb = batched
    if bx and not bw and not bb:
        return _unfold(conv_p(_fold(x), w, b, spec=spec), dnp.shape(x)[0])
    kernel = tuple(dnp.shape(w)[1 + bw + 1 :])
    if bx:
        cols = _im2col_batch((x,), (True,), kernel=kernel, spec=spec)
    else:
        cols = im2col_p(x, kernel=kernel, spec=spec)
    return _mm_batch((cols, w, b), (bx, bw, bb), spec=spec)


def _conv_tx_batch(args, batched, *, spec, in_spatial):
    g, w = args
    bg, bw = batched
    if bg and not bw:
        y = conv_tx_p(_fold(g), w, spec=spec, in_spatial=in_spatial)
        return _unfold(y, dnp.shape(g)[0])
    kernel = tuple(dnp.shape(w)[2 + bw :])
    cols = _tc_batch((g, w), (bg, bw), spec=spec)
    return _col2im_batch((cols,), (True,), kernel=kernel, spec=spec, in_spatial=in_spatial)


def _bias_grad_batch(args, batched):
    (g,) = args
    return dnp.sum(g, axis=(1,) + tuple(range(3, len(dnp.shape(g)))))


im2col_p.defbatch(_im2col_batch)
col2im_p.defbatch(_col2im_batch)
conv_mm_p.defbatch(_mm_batch)
conv_mm_tc_p.defbatch(_tc_batch)
conv_mm_tw_p.defbatch(_tw_batch)
conv_p.defbatch(_conv_batch)
conv_tx_p.defbatch(_conv_tx_batch)
bias_grad_p.defbatch(_bias_grad_batch)


# --- the functional API ---------------------------------------------------------------------------


def _tuple(v, nd: int, what: str, op: str) -> tuple[int, ...]:
    if isinstance(v, int | np.integer):
        v = (int(v),) * nd
    v = tuple(int(a) for a in v)
    if len(v) != nd:
        raise ValueError(f"{op}: {what} must be an int or a tuple of {nd} ints, got {v}")
    return v


def resolve_padding(
    padding, in_spatial, kernel, stride, dilation, op: str
) -> tuple[tuple[int, int], ...]:
    """Explicit ``(lo, hi)`` pairs from an int, a tuple of ints or pairs, ``"valid"`` or
    ``"same"`` (output size ``ceil(in / stride)``, the extra row at the end as in TF/PyTorch)."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            pads = []
            for n, k, s, d in zip(in_spatial, kernel, stride, dilation, strict=True):
                total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}"
        )
    if isinstance(padding, int | np.integer):
        return ((int(padding), int(padding)),) * nd
    padding = tuple(padding)
    if len(padding) != nd:
        raise ValueError(f"{op}: padding {padding} has {len(padding)} entries, expected {nd}")
    out = []
    for p in padding:
        if isinstance(p, int | np.integer):
            out.append((int(p), int(p)))
        else:
            lo, hi = p
            out.append((int(lo), int(hi)))
    if any(lo < 0 or hi < 0 for lo, hi in out):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    return tuple(out)


def _make_conv_geometry(xs, ws, stride, padding, dilation, groups, op: str):
    """Check a convolution's shapes and arguments: ``(ConvSpec, kernel, out spatial)``."""
    nd = len(ws) - 2
    if nd < 1 or len(xs) != nd + 2:
        raise ValueError(
            f"{op}: expected an input of shape (N, C, {nd} spatial dims) for a weight of shape "
            f"{ws}, got input shape {xs}"
        )
    groups = int(groups)
    if groups < 1 or xs[1] % groups or ws[0] % groups:
        raise ValueError(
            f"{op}: groups={groups} must divide the input channels ({xs[1]}) and the output "
            f"channels ({ws[0]})"
        )
    if xs[1] != ws[1] * groups:
        raise ValueError(
            f"{op}: input has {xs[1]} channels but the weight of shape {ws} expects "
            f"{ws[1] * groups} (weight.shape[1] * groups)"
        )
    kernel = tuple(ws[2:])
    stride = _tuple(stride, nd, "stride", op)
    dilation = _tuple(dilation, nd, "dilation", op)
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: stride and dilation must be >= 1, got {stride}, {dilation}")
    pads = resolve_padding(padding, xs[2:], kernel, stride, dilation, op)
    spec = ConvSpec(stride, pads, dilation, groups)
    out = tuple(
        out_size(n, k, s, p, d)
        for n, k, s, p, d in zip(xs[2:], kernel, stride, pads, dilation, strict=True)
    )
    if min(out) < 1:
        raise ValueError(
            f"{op}: the kernel {kernel} (dilation {dilation}) is larger than the padded "
            f"input of spatial shape {xs[2:]} (padding {pads})"
        )
    return spec, kernel, out


_conv_geometry = functools.lru_cache(maxsize=256)(_make_conv_geometry)


def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1, op="conv"):
    """N-d convolution (cross-correlation) of ``x`` ``(N, C, *S)`` with ``weight``
    ``(O, C // groups, *K)``, plus ``bias`` ``(O,)``.

    >>> import numpy as np
    >>> conv(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), padding="same").shape
    (1, 2, 4, 4)
    """
    xs, ws = tuple(dnp.shape(x)), tuple(dnp.shape(weight))
    try:
        spec, kernel, out = _conv_geometry(xs, ws, stride, padding, dilation, groups, op)
    except TypeError:  # an unhashable argument (a list): the same checks, uncached
        spec, kernel, out = _make_conv_geometry(xs, ws, stride, padding, dilation, groups, op)
    itemsize = np.result_type(_dtype(x), _dtype(weight)).itemsize
    if itemsize * xs[0] * xs[1] * math.prod(kernel) * math.prod(out) <= KEEP_COLUMNS_BYTES:
        # Two nodes: the columns stay on the tape for the weight gradient.
        return conv_mm_p(im2col_p(x, kernel=kernel, spec=spec), weight, bias, spec=spec)
    return conv_p(x, weight, bias, spec=spec)


def _dtype(a) -> np.dtype:
    d = getattr(a, "dtype", None)
    return np.result_type(a) if d is None else d


def conv_transpose(
    x,
    weight,
    bias=None,
    stride=1,
    padding=0,
    output_padding=0,
    dilation=1,
    groups: int = 1,
    op="conv_transpose",
):
    """Transposed convolution (the gradient of :func:`conv` with respect to its input), with
    ``weight`` ``(C_in, C_out // groups, *K)`` as in PyTorch.

    >>> import numpy as np
    >>> conv_transpose(np.ones((1, 2, 3, 3)), np.ones((2, 1, 3, 3)), stride=2).shape
    (1, 1, 7, 7)
    """
    xs, ws = dnp.shape(x), dnp.shape(weight)
    nd = len(ws) - 2
    if nd < 1 or len(xs) != nd + 2:
        raise ValueError(f"{op}: input shape {xs} does not fit weight shape {ws}")
    if xs[1] != ws[0]:
        raise ValueError(
            f"{op}: input has {xs[1]} channels but the weight of shape {ws} expects {ws[0]}"
        )
    groups = int(groups)
    if groups < 1 or ws[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({ws[0]})")
    kernel = tuple(ws[2:])
    stride = _tuple(stride, nd, "stride", op)
    dilation = _tuple(dilation, nd, "dilation", op)
    out_pad = _tuple(output_padding, nd, "output_padding", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    pads = resolve_padding(padding, xs[2:], kernel, stride, dilation, op)
    for op_, s, d in zip(out_pad, stride, dilation, strict=True):
        if op_ >= max(s, d):
            raise ValueError(
                f"{op}: output_padding {out_pad} must be smaller than stride or dilation"
            )
    in_shape = tuple(
        (n - 1) * s - lo - hi + d * (k - 1) + 1 + e
        for n, s, (lo, hi), d, k, e in zip(
            xs[2:], stride, pads, dilation, kernel, out_pad, strict=True
        )
    )
    if min(in_shape) < 1:
        raise ValueError(f"{op}: the output would be empty (spatial shape {in_shape})")
    spec = ConvSpec(stride, pads, dilation, groups)
    y = conv_tx_p(x, weight, spec=spec, in_spatial=in_shape)
    if bias is not None:
        y = y + dnp.reshape(bias, (-1,) + (1,) * nd)
    return y
