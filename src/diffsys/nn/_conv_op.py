"""N-d convolution (cross-correlation, as in PyTorch) as three primitives that are each
other's transposes.

``conv_p(x, w)`` is the convolution; ``conv_tx_p(g, w)`` its transpose with respect to the
input (the input gradient, and the transposed convolution); ``conv_tw_p(x, g)`` its transpose
with respect to the weight (the weight gradient). All three are bilinear, so the VJP and JVP
of each is written with the three of them: derivatives of any order stay fast.

Layouts: ``x`` is ``(N, C, *spatial)``, ``w`` is ``(O, C // groups, *kernel)``, the output
``(N, O, *out_spatial)``. The implementation is im2col: the input windows are a strided view
(``sliding_window_view``), copied once into a column matrix, then one (batched) matmul.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import numpy as dnp
from ..core.primitive import Primitive
from ._batch import loop_batch


class ConvSpec(NamedTuple):
    """Geometry of a convolution; hashable, a primitive parameter."""

    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int


def out_size(n: int, k: int, s: int, pad: tuple[int, int], d: int) -> int:
    return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def _windows(x: np.ndarray, kernel: tuple[int, ...], spec: ConvSpec) -> np.ndarray:
    """``(N, C, *out, *kernel)`` windows of ``x`` (a view of ``x``, or of a padded copy)."""
    nd = len(kernel)
    if any(lo or hi for lo, hi in spec.padding):
        x = np.pad(x, ((0, 0), (0, 0)) + tuple(spec.padding))
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, spec.dilation, strict=True))
    win = sliding_window_view(x, eff, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None))
    index += tuple(slice(None, None, s) for s in spec.stride)
    index += tuple(slice(None, None, d) for d in spec.dilation)
    return win[index]


def _columns(x: np.ndarray, kernel: tuple[int, ...], spec: ConvSpec) -> np.ndarray:
    """The im2col matrix of ``x``: ``(N, groups, C/groups * prod(kernel), prod(out))``."""
    nd = len(kernel)
    win = _windows(x, kernel, spec)
    n, c = win.shape[:2]
    out = win.shape[2 : 2 + nd]
    perm = (0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
    cols = np.ascontiguousarray(win.transpose(perm))
    g = spec.groups
    return cols.reshape(n, g, (c // g) * math.prod(kernel), math.prod(out)), out


def _conv_impl(x, w, *, spec: ConvSpec):
    kernel = w.shape[2:]
    cols, out = _columns(x, kernel, spec)
    g = spec.groups
    o = w.shape[0]
    wm = w.reshape(g, o // g, -1)
    y = np.matmul(wm, cols)  # (N, G, O/G, P)
    return y.reshape((x.shape[0], o) + out)


def _col2im_nlast(cols: np.ndarray, x_shape, kernel, spec: ConvSpec) -> np.ndarray:
    """The transpose of :func:`_columns`: scatter-add windows back into an input array.

    ``cols`` is ``(C, *kernel, *out, N)``, samples last, so each of the strided adds (one
    per kernel offset) runs over long contiguous rows.
    """
    nd = len(kernel)
    n, c = x_shape[:2]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], spec.padding, strict=True))
    out = cols.shape[1 + nd : 1 + 2 * nd]
    xp = np.zeros((c,) + padded + (n,), dtype=cols.dtype)
    for offs in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None),) + tuple(
            slice(o * d, o * d + s * (m - 1) + 1, s)
            for o, d, s, m in zip(offs, spec.dilation, spec.stride, out, strict=True)
        )
        xp[index] += cols[(slice(None),) + offs]
    crop = (slice(None),) + tuple(
        slice(lo, lo + s) for s, (lo, _) in zip(x_shape[2:], spec.padding, strict=True)
    )
    return np.moveaxis(xp[crop], -1, 0)  # (N, C, *in)


def _conv_tx_impl(g, w, *, spec: ConvSpec, in_shape: tuple[int, ...]):
    """The input gradient of a convolution: ``(N, O, *out) -> (N, C, *in_shape)``."""
    kernel = tuple(w.shape[2:])
    n, o = g.shape[:2]
    out = tuple(g.shape[2:])
    grp = spec.groups
    c = w.shape[1] * grp
    wm = w.reshape(grp, o // grp, -1)  # (G, O/G, C/G * K)
    gm = np.moveaxis(g, 0, -1).reshape(grp, o // grp, -1)  # (G, O/G, P * N), samples last
    cols = np.matmul(wm.transpose(0, 2, 1), gm)  # (G, C/G * K, P * N)
    cols = cols.reshape((c,) + kernel + out + (n,))
    return np.ascontiguousarray(_col2im_nlast(cols, (n, c) + tuple(in_shape), kernel, spec))


def _conv_tw_impl(x, g, *, spec: ConvSpec, kernel: tuple[int, ...]):
    """The weight gradient of a convolution: ``(N, C, *in), (N, O, *out) -> (O, C/G, *K)``."""
    cols, _ = _columns(x, kernel, spec)  # (N, G, CgK, P)
    n, grp = cols.shape[:2]
    o = g.shape[1]
    gm = g.reshape(n, grp, o // grp, -1)
    parts = [
        np.tensordot(gm[:, k], cols[:, k], axes=([0, 2], [0, 2])) for k in range(grp)
    ]  # each (O/G, CgK)
    dw = parts[0] if grp == 1 else np.concatenate(parts, axis=0)
    return dw.reshape((o, x.shape[1] // grp) + tuple(kernel))


conv_p = Primitive("nn.conv", _conv_impl)
conv_tx_p = Primitive("nn.conv_transpose_input", _conv_tx_impl)
conv_tw_p = Primitive("nn.conv_transpose_weight", _conv_tw_impl)


def _spatial(a) -> tuple[int, ...]:
    return tuple(dnp.shape(a)[2:])


# conv(x, w): bilinear.
conv_p.defvjp(
    lambda g, ans, x, w, spec: conv_tx_p(g, w, spec=spec, in_shape=_spatial(x)),
    lambda g, ans, x, w, spec: conv_tw_p(x, g, spec=spec, kernel=_spatial(w)),
)
conv_p.defjvp(
    lambda t, ans, x, w, spec: conv_p(t, w, spec=spec),
    lambda t, ans, x, w, spec: conv_p(x, t, spec=spec),
)

# conv_tx(g, w) -> c shaped like x:  <c, tx(g, w)> = <conv(c, w), g> = <tw(c, g), w>.
conv_tx_p.defvjp(
    lambda c, ans, g, w, spec, in_shape: conv_p(c, w, spec=spec),
    lambda c, ans, g, w, spec, in_shape: conv_tw_p(c, g, spec=spec, kernel=_spatial(w)),
)
conv_tx_p.defjvp(
    lambda t, ans, g, w, spec, in_shape: conv_tx_p(t, w, spec=spec, in_shape=in_shape),
    lambda t, ans, g, w, spec, in_shape: conv_tx_p(g, t, spec=spec, in_shape=in_shape),
)

# conv_tw(x, g) -> c shaped like w:  <c, tw(x, g)> = <g, conv(x, c)> = <tx(g, c), x>.
conv_tw_p.defvjp(
    lambda c, ans, x, g, spec, kernel: conv_tx_p(g, c, spec=spec, in_shape=_spatial(x)),
    lambda c, ans, x, g, spec, kernel: conv_p(x, c, spec=spec),
)
conv_tw_p.defjvp(
    lambda t, ans, x, g, spec, kernel: conv_tw_p(t, g, spec=spec, kernel=kernel),
    lambda t, ans, x, g, spec, kernel: conv_tw_p(x, t, spec=spec, kernel=kernel),
)


def _merge_batch(prim):
    """Batching rule: a batch of the first (data) operand folds into its sample axis; any
    other batched operand loops."""

    def rule(args, batched, **params):
        a, b = args
        if batched[0] and not batched[1]:
            s = dnp.shape(a)
            y = prim(dnp.reshape(a, (s[0] * s[1],) + s[2:]), b, **params)
            return dnp.reshape(y, (s[0], s[1]) + dnp.shape(y)[1:])
        return loop_batch(prim, args, batched, **params)

    return rule


conv_p.defbatch(_merge_batch(conv_p))
conv_tx_p.defbatch(_merge_batch(conv_tx_p))
conv_tw_p.defbatch(lambda args, batched, **params: loop_batch(conv_tw_p, args, batched, **params))


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


def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1, op="conv"):
    """N-d convolution (cross-correlation) of ``x`` ``(N, C, *S)`` with ``weight``
    ``(O, C // groups, *K)``, plus ``bias`` ``(O,)``.

    >>> import numpy as np
    >>> conv(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), padding="same").shape
    (1, 2, 4, 4)
    """
    xs, ws = dnp.shape(x), dnp.shape(weight)
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
    for n, k, s, p, d in zip(xs[2:], kernel, stride, pads, dilation, strict=True):
        if out_size(n, k, s, p, d) < 1:
            raise ValueError(
                f"{op}: the kernel {kernel} (dilation {dilation}) is larger than the padded "
                f"input of spatial shape {xs[2:]} (padding {pads})"
            )
    y = conv_p(x, weight, spec=spec)
    if bias is not None:
        y = y + dnp.reshape(bias, (-1,) + (1,) * nd)
    return y


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
    y = conv_tx_p(x, weight, spec=spec, in_shape=in_shape)
    if bias is not None:
        y = y + dnp.reshape(bias, (-1,) + (1,) * nd)
    return y
