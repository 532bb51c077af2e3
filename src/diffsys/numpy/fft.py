"""``diffsys.numpy.fft``: NumPy's discrete Fourier transforms, differentiable in both modes.

Every transform is linear, so its JVP is the transform of the tangent. VJPs follow JAX's
complex convention (the transpose under ``Re(sum(a * b))``, no conjugation): the DFT matrix
is symmetric, so the VJP of ``fftn`` is ``fftn`` with the same ``norm``; ``rfftn`` is a
slice of ``fftn`` of a real input, so its VJP zero-pads the cotangent, transforms it and
keeps the real part; ``irfftn`` reads each interior frequency of the half spectrum twice,
so its VJP weights ``rfftn`` of the cotangent by 1 at the ends and 2 inside (as JAX's
``_irfft_transpose``). ``n``/``s`` crop or zero-pad the input (slices and pads, themselves
differentiable). ``fftfreq``/``rfftfreq`` are values; ``fftshift``/``ifftshift`` are rolls::

    import numpy as np
    import diffsys as ds
    import diffsys.numpy as dnp

    loss = lambda x: dnp.sum(dnp.fft.irfft(dnp.fft.rfft(x) * 0.5) ** 2)
    ds.grad(loss)(np.arange(4.0))  # == 0.5 * x
"""

from __future__ import annotations

import numpy as np

from .. import numpy as dnp
from ..core import ad_util
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ._util import array_like, dtype_of, normalize_axis, shape_of

__all__ = [
    "fft",
    "fft2",
    "fftfreq",
    "fftn",
    "fftshift",
    "hfft",
    "ifft",
    "ifft2",
    "ifftn",
    "ifftshift",
    "ihfft",
    "irfft",
    "irfft2",
    "irfftn",
    "rfft",
    "rfft2",
    "rfftfreq",
    "rfftn",
]

fftfreq = np.fft.fftfreq
rfftfreq = np.fft.rfftfreq

_NORMS = ("backward", "ortho", "forward")
_SWAP = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


def _norm(norm) -> str:
    if norm is None:
        return "backward"
    if norm not in _NORMS:
        raise ValueError(f"fft: invalid norm {norm!r}; expected one of None, {_NORMS}")
    return norm


def _traced(x) -> bool:
    return isinstance(x, Tracer)


def _is_complex(x) -> bool:
    return np.issubdtype(dtype_of(x), np.complexfloating)


def _axes_batch(prim):
    def rule(args, batched, axes, **params):
        return prim(args[0], axes=tuple(a + 1 for a in axes), **params)

    prim.defbatch(rule)


# --- complex-to-complex -----------------------------------------------------------------------


def _c2c_impl(x, axes, norm, inverse):
    return (np.fft.ifftn if inverse else np.fft.fftn)(x, axes=axes, norm=norm)


def _c2c_vjp(g, ans, x, axes, norm, inverse):
    ct = c2c_p(g, axes=axes, norm=norm, inverse=inverse)  # the DFT matrix is symmetric
    if not _is_complex(x):
        ct = ad_util.cast(ad_util.real_part(ct), dtype=dtype_of(x))
    return ct


c2c_p = Primitive("fft.c2c", _c2c_impl)
c2c_p.defvjp(_c2c_vjp)
c2c_p.defjvp(lambda t, ans, x, axes, norm, inverse: c2c_p(t, axes=axes, norm=norm, inverse=inverse))
_axes_batch(c2c_p)


# --- real-to-complex (half spectrum) and back -------------------------------------------------


def _r2c_impl(x, axes, norm):
    return np.fft.rfftn(x, axes=axes, norm=norm)


def _r2c_vjp(g, ans, x, axes, norm):
    last = axes[-1]
    n = shape_of(x)[last]
    full = ad_util.pad_axis(g, before=0, after=n - shape_of(g)[last], axis=last)
    ct = ad_util.real_part(c2c_p(full, axes=axes, norm=norm, inverse=False))
    return ad_util.cast(ct, dtype=dtype_of(x)) if dtype_of(ct) != dtype_of(x) else ct


r2c_p = Primitive("fft.r2c", _r2c_impl)
r2c_p.defvjp(_r2c_vjp)
r2c_p.defjvp(lambda t, ans, x, axes, norm: r2c_p(t, axes=axes, norm=norm))
_axes_batch(r2c_p)


def _c2r_impl(x, axes, n, norm):
    s = [x.shape[a] for a in axes[:-1]] + [n]
    return np.fft.irfftn(x, s=s, axes=axes, norm=norm)


def _c2r_vjp(g, ans, x, axes, n, norm):
    if _is_complex(g):  # a real output: only the real part of a complex cotangent counts
        g = ad_util.cast(ad_util.real_part(g), dtype=dtype_of(ans))
    y = r2c_p(g, axes=axes, norm=_SWAP[norm])
    last = axes[-1]
    m = shape_of(y)[last]
    weights = np.full(m, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    shape = [1] * len(shape_of(y))
    shape[last] = m
    weights = weights.reshape(shape).astype(dtype_of(ans))
    return dnp.conjugate(y * weights)


c2r_p = Primitive("fft.c2r", _c2r_impl)
c2r_p.defvjp(_c2r_vjp)
c2r_p.defjvp(lambda t, ans, x, axes, n, norm: c2r_p(t, axes=axes, n=n, norm=norm))
_axes_batch(c2r_p)


# --- argument handling ------------------------------------------------------------------------


def _fit(x, axis: int, size: int):
    """Crop or zero-pad ``x`` along ``axis`` to ``size`` (as NumPy's ``n``/``s``)."""
    have = shape_of(x)[axis]
    if size < 1:
        raise ValueError(f"fft: invalid number of data points ({size}) specified")
    if have == size:
        return x
    if have > size:
        return ad_util.slice_axis(x, start=0, stop=size, axis=axis)
    return ad_util.pad_axis(x, before=0, after=size - have, axis=axis)


def _axes_and_sizes(x, s, axes, op):
    nd = len(shape_of(x))
    if axes is None:
        if s is None:
            axes = tuple(range(nd))
        else:
            axes = tuple(range(nd - len(s), nd))
    elif isinstance(axes, int | np.integer):
        axes = (int(axes),)
    axes = tuple(normalize_axis(a, nd, op) for a in axes)
    if s is None:
        s = tuple(shape_of(x)[a] for a in axes)
    elif isinstance(s, int | np.integer):
        s = (int(s),)
    s = tuple(int(v) for v in s)
    if len(s) != len(axes):
        raise ValueError(f"{op}: shape s={s} and axes={axes} have different lengths")
    return axes, s


def _as_float(x):
    """Integer and boolean inputs are transformed as float64, as NumPy does."""
    if not np.issubdtype(dtype_of(x), np.inexact):
        return dnp.astype(x, np.float64)
    return x


def _c2c(x, s, axes, norm, inverse, op):
    x = _as_float(dnp.asarray(x) if not _traced(x) else x)
    axes, s = _axes_and_sizes(x, s, axes, op)
    if len(set(axes)) != len(axes):
        # repeated axes: transform one axis at a time, as NumPy does
        for a, n in zip(axes, s, strict=True):
            x = _c2c(x, (n,), (a,), norm, inverse, op)
        return x
    for a, n in zip(axes, s, strict=True):
        x = _fit(x, a, n)
    return c2c_p(x, axes=axes, norm=_norm(norm), inverse=inverse)


def _r2c(x, s, axes, norm, op):
    if _is_complex(x):
        raise TypeError(f"{op}: the input must be real, got dtype {dtype_of(x)}")
    x = _as_float(x)
    axes, s = _axes_and_sizes(x, s, axes, op)
    for a, n in zip(axes, s, strict=True):
        x = _fit(x, a, n)
    return r2c_p(x, axes=axes, norm=_norm(norm))


def _c2r(x, s, axes, norm, op):
    x = _as_float(x)
    nd = len(shape_of(x))
    if axes is None:
        axes = tuple(range(nd - len(s), nd)) if s is not None else tuple(range(nd))
    elif isinstance(axes, int | np.integer):
        axes = (int(axes),)
    axes = tuple(normalize_axis(a, nd, op) for a in axes)
    if s is None:
        s = tuple(shape_of(x)[a] for a in axes[:-1]) + (2 * (shape_of(x)[axes[-1]] - 1),)
    elif isinstance(s, int | np.integer):
        s = (int(s),)
    s = tuple(int(v) for v in s)
    if len(s) != len(axes):
        raise ValueError(f"{op}: shape s={s} and axes={axes} have different lengths")
    for a, n in zip(axes[:-1], s[:-1], strict=True):
        x = _fit(x, a, n)
    x = _fit(x, axes[-1], s[-1] // 2 + 1)
    if not _is_complex(x):
        x = dnp.astype(x, np.result_type(dtype_of(x), np.complex64))
    return c2r_p(x, axes=axes, n=s[-1], norm=_norm(norm))


# --- the public transforms --------------------------------------------------------------------


@array_like("a")
def fft(a, n=None, axis: int = -1, norm=None):
    """1-D discrete Fourier transform."""
    if not _traced(a):
        return np.fft.fft(a, n, axis, norm)
    return _c2c(a, None if n is None else (n,), (axis,), norm, False, "fft")


@array_like("a")
def ifft(a, n=None, axis: int = -1, norm=None):
    """1-D inverse discrete Fourier transform."""
    if not _traced(a):
        return np.fft.ifft(a, n, axis, norm)
    return _c2c(a, None if n is None else (n,), (axis,), norm, True, "ifft")


@array_like("a")
def fftn(a, s=None, axes=None, norm=None):
    """N-D discrete Fourier transform."""
    if not _traced(a):
        return np.fft.fftn(a, s, axes, norm)
    return _c2c(a, s, axes, norm, False, "fftn")


@array_like("a")
def ifftn(a, s=None, axes=None, norm=None):
    """N-D inverse discrete Fourier transform."""
    if not _traced(a):
        return np.fft.ifftn(a, s, axes, norm)
    return _c2c(a, s, axes, norm, True, "ifftn")


@array_like("a")
def fft2(a, s=None, axes=(-2, -1), norm=None):
    """2-D discrete Fourier transform."""
    return fftn(a, s, axes, norm)


@array_like("a")
def ifft2(a, s=None, axes=(-2, -1), norm=None):
    """2-D inverse discrete Fourier transform."""
    return ifftn(a, s, axes, norm)


@array_like("a")
def rfft(a, n=None, axis: int = -1, norm=None):
    """1-D transform of a real input: the non-negative half of the spectrum."""
    if not _traced(a):
        return np.fft.rfft(a, n, axis, norm)
    return _r2c(a, None if n is None else (n,), (axis,), norm, "rfft")


@array_like("a")
def irfft(a, n=None, axis: int = -1, norm=None):
    """Inverse of ``rfft``: a real signal of length ``n`` (default ``2 * (m - 1)``)."""
    if not _traced(a):
        return np.fft.irfft(a, n, axis, norm)
    return _c2r(a, None if n is None else (n,), (axis,), norm, "irfft")


@array_like("a")
def rfftn(a, s=None, axes=None, norm=None):
    """N-D transform of a real input (half spectrum along the last of ``axes``)."""
    if not _traced(a):
        return np.fft.rfftn(a, s, axes, norm)
    return _r2c(a, s, axes, norm, "rfftn")


@array_like("a")
def irfftn(a, s=None, axes=None, norm=None):
    """Inverse of ``rfftn``."""
    if not _traced(a):
        return np.fft.irfftn(a, s, axes, norm)
    return _c2r(a, s, axes, norm, "irfftn")


@array_like("a")
def rfft2(a, s=None, axes=(-2, -1), norm=None):
    """2-D transform of a real input."""
    return rfftn(a, s, axes, norm)


@array_like("a")
def irfft2(a, s=None, axes=(-2, -1), norm=None):
    """Inverse of ``rfft2``."""
    return irfftn(a, s, axes, norm)


@array_like("a")
def hfft(a, n=None, axis: int = -1, norm=None):
    """Transform of a Hermitian-symmetric signal given by its half: a real spectrum."""
    if not _traced(a):
        return np.fft.hfft(a, n, axis, norm)
    return irfft(dnp.conjugate(a), n, axis, _SWAP[_norm(norm)])


@array_like("a")
def ihfft(a, n=None, axis: int = -1, norm=None):
    """Inverse of ``hfft``."""
    if not _traced(a):
        return np.fft.ihfft(a, n, axis, norm)
    return dnp.conjugate(rfft(a, n, axis, _SWAP[_norm(norm)]))


# --- shifts -----------------------------------------------------------------------------------


def _roll(x, shift: int, axis: int):
    n = shape_of(x)[axis]
    shift %= n if n else 1
    if shift == 0:
        return x
    head = ad_util.slice_axis(x, start=n - shift, stop=n, axis=axis)
    tail = ad_util.slice_axis(x, start=0, stop=n - shift, axis=axis)
    return dnp.concatenate([head, tail], axis=axis)


def _shift(x, axes, inverse, op):
    nd = len(shape_of(x))
    if axes is None:
        axes = tuple(range(nd))
    elif isinstance(axes, int | np.integer):
        axes = (int(axes),)
    for a in axes:
        a = normalize_axis(a, nd, op)
        n = shape_of(x)[a]
        x = _roll(x, -(n // 2) if inverse else n // 2, a)
    return x


@array_like("x")
def fftshift(x, axes=None):
    """Move the zero-frequency term to the centre (a roll: differentiable)."""
    if not _traced(x):
        return np.fft.fftshift(x, axes)
    return _shift(x, axes, False, "fftshift")


@array_like("x")
def ifftshift(x, axes=None):
    """Inverse of ``fftshift``."""
    if not _traced(x):
        return np.fft.ifftshift(x, axes)
    return _shift(x, axes, True, "ifftshift")
