"""``diffsys.scipy.signal``: N-D convolution and correlation, differentiable in both inputs.

Two primitives carry everything: the full convolution and the valid correlation. They are
each other's adjoints (the VJP of a convolution is a correlation with the other input, and
the VJP of a correlation is a convolution and a correlation), so derivatives of any order
stay convolutions. ``same`` and ``valid`` modes are centred slices of the full convolution,
as in SciPy, and correlation is convolution with the reversed second input.

Real inputs only (complex ones raise ``TypeError``); both inputs have the same number of
dimensions, as SciPy requires.

>>> import numpy as np, diffsys as ds
>>> from diffsys.scipy import signal
>>> signal.convolve(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
array([1., 3., 2.])
"""

from __future__ import annotations

import numpy as np
import scipy.signal as ss

import diffsys.numpy as dnp

from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ..numpy._util import broadcast_like, dtype_of, shape_of, unbroadcast

__all__ = ["convolve", "convolve2d", "correlate", "correlate2d", "fftconvolve"]


def _conv_full_impl(x, k, method):
    return ss.convolve(x, k, mode="full", method=method)


def _corr_valid_impl(a, v, method):
    # a is at least as large as v in every dimension (so SciPy never swaps the inputs)
    return ss.correlate(a, v, mode="valid", method=method)


conv_full = Primitive("scipy.signal.convolve_full", _conv_full_impl)
corr_valid = Primitive("scipy.signal.correlate_valid", _corr_valid_impl)

# out[n] = sum_m x[m] k[n - m]:  x_bar[m] = sum_n g[n] k[n - m] = corr_valid(g, k)[m]
conv_full.defvjp(
    lambda g, ans, x, k, method: corr_valid(g, k, method=method),
    lambda g, ans, x, k, method: corr_valid(g, x, method=method),
)
conv_full.defjvp(
    lambda t, ans, x, k, method: conv_full(t, k, method=method),
    lambda t, ans, x, k, method: conv_full(x, t, method=method),
)
# out[m] = sum_j a[m + j] v[j]:  a_bar = conv_full(g, v), v_bar[j] = sum_m g[m] a[m + j]
corr_valid.defvjp(
    lambda g, ans, a, v, method: conv_full(g, v, method=method),
    lambda g, ans, a, v, method: corr_valid(a, g, method=method),
)
corr_valid.defjvp(
    lambda t, ans, a, v, method: corr_valid(t, v, method=method),
    lambda t, ans, a, v, method: corr_valid(a, t, method=method),
)


def _lead1(x):
    return dnp.reshape(x, (1,) + tuple(shape_of(x)))


def _conv_batch(args, batched, method):
    x, k = args
    if batched[0] and not batched[1]:  # a length-1 axis convolved with the batch keeps it
        return conv_full(x, _lead1(k), method=method)
    if batched[1] and not batched[0]:
        return conv_full(_lead1(x), k, method=method)
    return dnp.stack([conv_full(x[i], k[i], method=method) for i in range(shape_of(x)[0])])


def _corr_batch(args, batched, method):
    a, v = args
    if batched[0] and not batched[1]:
        return corr_valid(a, _lead1(v), method=method)
    n = shape_of(a if batched[0] else v)[0]
    return dnp.stack(
        [
            corr_valid(a[i] if batched[0] else a, v[i] if batched[1] else v, method=method)
            for i in range(n)
        ]
    )


conv_full.defbatch(_conv_batch)
corr_valid.defbatch(_corr_batch)


def _check(in1, in2, op):
    s1, s2 = shape_of(in1), shape_of(in2)
    if len(s1) != len(s2):
        raise ValueError(
            f"{op}: in1 and in2 should have the same dimensionality, got shapes {s1} and {s2}"
        )
    for a in (in1, in2):
        if dtype_of(a).kind == "c":
            raise TypeError(f"{op}: complex inputs are not supported (got {dtype_of(a)})")
    if 0 in s1 or 0 in s2:
        raise ValueError(f"{op}: empty input (shapes {s1} and {s2})")
    return s1, s2


def _centered(full, shape):
    fshape = shape_of(full)
    idx = tuple(slice((f - n) // 2, (f - n) // 2 + n) for f, n in zip(fshape, shape, strict=True))
    if all(s.start == 0 and s.stop == f for s, f in zip(idx, fshape, strict=True)):
        return full
    return full[idx]


def _convolve(in1, in2, mode, method, op):
    s1, s2 = _check(in1, in2, op)
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"{op}: mode must be 'full', 'valid' or 'same', got {mode!r}")
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"{op}: method must be 'auto', 'direct' or 'fft', got {method!r}")
    if mode == "valid":
        ge = all(a >= b for a, b in zip(s1, s2, strict=True))
        le = all(a <= b for a, b in zip(s1, s2, strict=True))
        if not (ge or le):
            raise ValueError(
                f"{op}: for 'valid' mode, one must be at least as large as the other in every "
                f"dimension (shapes {s1} and {s2})"
            )
        big, small = (in1, in2) if ge else (in2, in1)
        # convolve(big, small, valid) = corr_valid(big, reversed small): no wasted work
        if len(s1) == 0:
            return conv_full(in1, in2, method=method)
        return corr_valid(big, _reverse(small), method=method)
    if len(s1) == 0:
        return conv_full(in1, in2, method=method)
    full = conv_full(in1, in2, method=method)
    if mode == "full":
        return full
    return _centered(full, s1)


def _reverse(x):
    return x[(slice(None, None, -1),) * len(shape_of(x))]


def convolve(in1, in2, mode: str = "full", method: str = "auto"):
    """N-D convolution of ``in1`` and ``in2`` (as :func:`scipy.signal.convolve`),
    differentiable in both; ``mode`` is ``'full'``, ``'valid'`` or ``'same'``."""
    return _convolve(in1, in2, mode, method, "convolve")


def correlate(in1, in2, mode: str = "full", method: str = "auto"):
    """N-D cross-correlation (as :func:`scipy.signal.correlate`, real inputs),
    differentiable in both: ``convolve(in1, in2[::-1, ...], mode)``."""
    s1, s2 = _check(in1, in2, "correlate")
    if mode == "valid" and all(a >= b for a, b in zip(s1, s2, strict=True)) and s1:
        return corr_valid(in1, in2, method=method)
    if mode == "valid" and s1 and all(a <= b for a, b in zip(s1, s2, strict=True)):
        # SciPy swaps the inputs and reverses: correlate(in2, in1)[::-1]
        return _reverse(corr_valid(in2, in1, method=method))
    return _convolve(in1, _reverse(in2) if s2 else in2, mode, method, "correlate")


def fftconvolve(in1, in2, mode: str = "full", axes=None):
    """N-D convolution by FFT (as :func:`scipy.signal.fftconvolve`), differentiable in both
    inputs; the derivatives are FFT correlations and convolutions.

    With ``axes``, only those axes are convolved; along the others the inputs broadcast
    (equal sizes or 1), as in SciPy.
    """
    if axes is None:
        return _convolve(in1, in2, mode, "fft", "fftconvolve")
    s1, s2 = _check(in1, in2, "fftconvolve")
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"fftconvolve: mode must be 'full', 'valid' or 'same', got {mode!r}")
    nd = len(s1)
    axes = (axes,) if isinstance(axes, int | np.integer) else tuple(axes)
    axes = tuple(sorted({int(a) % max(nd, 1) for a in axes}))
    for ax in range(nd):
        if ax not in axes and s1[ax] != s2[ax] and 1 not in (s1[ax], s2[ax]):
            raise ValueError(
                f"fftconvolve: incompatible shapes {s1} and {s2} along axis {ax}, which is "
                "not convolved (sizes must be equal or 1)"
            )
    full = fconv_full(in1, in2, axes=axes)
    fshape = shape_of(full)
    if mode == "full":
        return full
    if mode == "same":  # SciPy centres every axis on in1's size, broadcast ones included
        target = {ax: s1[ax] for ax in range(nd)}
    else:
        if not (all(s1[ax] >= s2[ax] for ax in axes) or all(s1[ax] <= s2[ax] for ax in axes)):
            raise ValueError(
                "fftconvolve: for 'valid' mode, one must be at least as large as the other "
                f"along every convolved axis (shapes {s1} and {s2}, axes {axes})"
            )
        target = {ax: abs(s1[ax] - s2[ax]) + 1 for ax in axes}
    idx = tuple(
        slice((fshape[ax] - target[ax]) // 2, (fshape[ax] - target[ax]) // 2 + target[ax])
        if ax in target
        else slice(None)
        for ax in range(nd)
    )
    return full[idx]


# --- FFT convolution along some axes, broadcasting along the others -------------------------


def _flip(x, axes):
    return x[tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim))]


fconv_full = Primitive(
    "scipy.signal.fftconvolve_axes",
    lambda x, k, axes: ss.fftconvolve(x, k, mode="full", axes=axes),
)
fcorr_valid = Primitive(
    "scipy.signal.fftcorrelate_axes_valid",
    lambda a, v, axes: ss.fftconvolve(a, _flip(v, axes), mode="valid", axes=axes),
)
fconv_full.defvjp(
    lambda g, ans, x, k, axes: unbroadcast(fcorr_valid(g, k, axes=axes), x),
    lambda g, ans, x, k, axes: unbroadcast(fcorr_valid(g, x, axes=axes), k),
)
fconv_full.defjvp(
    lambda t, ans, x, k, axes: broadcast_like(fconv_full(t, k, axes=axes), ans),
    lambda t, ans, x, k, axes: broadcast_like(fconv_full(x, t, axes=axes), ans),
)
fcorr_valid.defvjp(
    lambda g, ans, a, v, axes: unbroadcast(fconv_full(g, v, axes=axes), a),
    lambda g, ans, a, v, axes: unbroadcast(fcorr_valid(a, g, axes=axes), v),
)
fcorr_valid.defjvp(
    lambda t, ans, a, v, axes: broadcast_like(fcorr_valid(t, v, axes=axes), ans),
    lambda t, ans, a, v, axes: broadcast_like(fcorr_valid(a, t, axes=axes), ans),
)


def _axes_batch(prim):
    # The batch axis is one more broadcast axis: shift the convolved axes, give an unbatched
    # operand a leading 1.
    def rule(args, batched, axes):
        args = [a if b else _lead1(a) for a, b in zip(args, batched, strict=True)]
        return prim(*args, axes=tuple(a + 1 for a in axes))

    prim.defbatch(rule)


_axes_batch(fconv_full)
_axes_batch(fcorr_valid)


# --- 2-D with boundary conditions ---


def _boundary_index(n: int, pad: int, boundary: str) -> np.ndarray:
    """Source indices of a length-``n`` axis padded by ``pad`` on both sides."""
    i = np.arange(-pad, n + pad)
    if boundary == "wrap":
        return np.mod(i, n)
    if boundary == "symm":  # reflect including the edge: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
        j = np.mod(i, 2 * n)
        return np.where(j < n, j, 2 * n - 1 - j)
    return np.clip(i, 0, n - 1)  # fill: placeholder indices, masked below


def _pad2d(x, pads, boundary, fillvalue):
    """``x`` padded by ``pads[axis]`` on both sides of each axis (differentiable in ``x``)."""
    for axis, pad in enumerate(pads):
        if pad == 0:
            continue
        n = shape_of(x)[axis]
        idx = _boundary_index(n, pad, boundary)
        sel = (slice(None),) * axis + (idx,)
        x = x[sel]
        if boundary == "fill":
            inside = (np.arange(-pad, n + pad) >= 0) & (np.arange(-pad, n + pad) < n)
            mask = inside.reshape((-1,) + (1,) * (1 - axis))
            x = dnp.where(mask, x, fillvalue)
    return x


def _conv2d(in1, in2, mode, boundary, fillvalue, op, flip):
    s1, s2 = _check(in1, in2, op)
    if len(s1) != 2:
        raise ValueError(f"{op}: inputs must be 2-D, got shapes {s1} and {s2}")
    if boundary not in ("fill", "wrap", "symm"):
        raise ValueError(f"{op}: boundary must be 'fill', 'wrap' or 'symm', got {boundary!r}")
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"{op}: mode must be 'full', 'valid' or 'same', got {mode!r}")
    if flip:  # correlate2d(a, b) = convolve2d(a, b reversed), as SciPy defines it
        in2 = _reverse(in2)
    plain_zero_fill = not isinstance(fillvalue, Tracer) and np.all(np.asarray(fillvalue) == 0)
    if mode == "valid" or (boundary == "fill" and plain_zero_fill):
        if mode == "valid":
            ge = all(a >= b for a, b in zip(s1, s2, strict=True))
            le = all(a <= b for a, b in zip(s1, s2, strict=True))
            if not (ge or le):
                raise ValueError(
                    f"{op}: for 'valid' mode, one must be at least as large as the other in "
                    f"every dimension (shapes {s1} and {s2})"
                )
            if flip and le and not ge:
                # SciPy swaps the inputs of a correlation: correlate2d(in2, in1) reversed
                return _reverse(corr_valid(_reverse(in2), in1, method="direct"))
        if mode == "valid":
            return _convolve(in1, in2, mode, "direct", op)
        full = conv_full(in1, in2, method="direct")
    else:
        # pad in1 by the kernel's reach with the boundary rule, then take the valid part
        padded = _pad2d(in1, [k - 1 for k in s2], boundary, fillvalue)
        full = corr_valid(padded, _reverse(in2), method="direct")
    if mode == "full":
        return full
    # SciPy centres 'same' at (k - 1) // 2 for convolve2d but at k // 2 for correlate2d
    starts = [k // 2 if flip else (k - 1) // 2 for k in s2]
    return full[tuple(slice(a, a + n) for a, n in zip(starts, s1, strict=True))]


def convolve2d(in1, in2, mode: str = "full", boundary: str = "fill", fillvalue=0):
    """2-D convolution with SciPy's boundary rules (``fill`` with ``fillvalue``, ``wrap``,
    ``symm``), as :func:`scipy.signal.convolve2d`; differentiable in both inputs (and in
    ``fillvalue``)."""
    return _conv2d(in1, in2, mode, boundary, fillvalue, "convolve2d", flip=False)


def correlate2d(in1, in2, mode: str = "full", boundary: str = "fill", fillvalue=0):
    """2-D cross-correlation with SciPy's boundary rules, as :func:`scipy.signal.correlate2d`;
    differentiable in both inputs."""
    return _conv2d(in1, in2, mode, boundary, fillvalue, "correlate2d", flip=True)
