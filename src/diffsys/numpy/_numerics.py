"""Numerical functions: fix, fmod, sinc, angle conversions, heaviside, nan_to_num, interp,
convolve/correlate, polyval, logaddexp2, float_power, copysign.

Most are compositions of differentiable primitives. New primitives: ``fix`` (zero
derivative), ``fmod`` and ``copysign`` (simple elementwise rules), and ``sinc`` with its
derivatives of every order (a Taylor series near 0, the closed form elsewhere), so that
``sinc`` is differentiable to any order, at 0 included.

Outside any transform, every function returns NumPy's own result.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.primitive import Primitive
from ..core.tracer import Tracer, concrete
from . import _elementwise as ew
from ._elementwise import _binary, _nondiff
from ._indexing import getitem
from ._ordering import _arr, _traced, searchsorted
from ._shape import concatenate, moveaxis, reshape
from ._util import array_like, def_elementwise_batch, dtype_of, shape_of

# --- rounding and remainders ----------------------------------------------------------------------

fix = _nondiff("fix", np.fix)
fix.__doc__ = "Round towards zero (zero derivative)."

fmod = _binary(
    "fmod",
    np.fmod,
    lambda ans, x, y: 1.0,
    lambda ans, x, y: ew.negative(ew.trunc(x / y)),
)
fmod.__doc__ = "C-style remainder ``x - trunc(x / y) * y`` (the sign of ``x``)."


def _copysign_dx(ans, x, y):
    # +1 where the sign is kept, -1 where it flips (as a float of x's dtype).
    flip = ew.not_equal(ew.signbit(x), ew.signbit(y))
    return ew.where(flip, np.asarray(-1.0, _fdtype(x)), np.asarray(1.0, _fdtype(x)))


copysign = _binary("copysign", np.copysign, _copysign_dx, lambda ans, x, y: 0.0)
copysign.__doc__ = "``|x|`` with the sign of ``y`` (differentiable in ``x``; zero in ``y``)."


def _weak(x):
    """Python scalars unchanged (weakly typed: they don't promote float32), else an array."""
    return x if type(x) in (int, float, complex) else _arr(x)


def _fdtype(x):
    dt = dtype_of(x)
    return dt if np.issubdtype(dt, np.inexact) else np.dtype(np.float64)


# --- sinc and its derivatives ---------------------------------------------------------------------

_SERIES_TERMS = 40


def _sinc_deriv_impl(x, n: int):
    """The ``n``-th derivative of ``sin(pi x) / (pi x)`` on plain arrays."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.inexact) else np.float64
    xf = x.astype(np.float64)
    if n == 0:
        return np.sinc(x) if x.dtype == dtype else np.sinc(xf).astype(dtype)
    out = np.empty_like(xf)
    t = np.pi * xf
    small = np.abs(xf) < 1.0
    # Taylor: sinc(x) = sum_k (-1)^k pi^2k x^2k / (2k+1)!; differentiate n times term by term.
    xs = xf[small]
    acc = np.zeros_like(xs)
    for k in range((n + 1) // 2, (n + 1) // 2 + _SERIES_TERMS):
        p = 2 * k - n
        coef = (-1) ** k * np.pi ** (2 * k) / math.factorial(2 * k + 1)
        coef *= math.factorial(2 * k) / math.factorial(p)
        acc += coef * xs**p
    out[small] = acc
    # Closed form: d^n/dx^n = pi^n g^(n)(t), g(t) = sin(t) / t, by Leibniz's rule on
    # sin(t) * (1/t): (1/t)^(m) = (-1)^m m! / t^(m+1).
    tl = t[~small]
    g = np.zeros_like(tl)
    for k in range(n + 1):
        m = n - k
        g += (
            math.comb(n, k)
            * np.sin(tl + k * np.pi / 2)
            * (-1) ** m
            * math.factorial(m)
            / tl ** (m + 1)
        )
    out[~small] = np.pi**n * g
    return out.astype(dtype)


sinc_deriv_p = Primitive("sinc_deriv", _sinc_deriv_impl)
sinc_deriv_p.defvjp(lambda g, ans, x, n: g * sinc_deriv_p(x, n=n + 1))
sinc_deriv_p.defjvp(lambda t, ans, x, n: t * sinc_deriv_p(x, n=n + 1))
def_elementwise_batch(sinc_deriv_p)


@array_like("x")
def sinc(x):
    """``sin(pi x) / (pi x)`` (1 at 0), differentiable to any order everywhere."""
    if not isinstance(x, Tracer):
        return np.sinc(x)
    return sinc_deriv_p(x, n=0)


# --- angles, steps, cleanup -----------------------------------------------------------------------

_D2R = math.pi / 180.0


@array_like("x")
def deg2rad(x):
    """Degrees to radians."""
    if not isinstance(x, Tracer):
        return np.deg2rad(x)
    return x * _D2R


@array_like("x")
def rad2deg(x):
    """Radians to degrees."""
    if not isinstance(x, Tracer):
        return np.rad2deg(x)
    return x * (180.0 / math.pi)


radians = deg2rad
degrees = rad2deg


def heaviside(x1, x2):
    """0 where ``x1 < 0``, ``x2`` where ``x1 == 0``, 1 where ``x1 > 0`` (differentiable in
    ``x2`` where ``x1 == 0``; zero derivative in ``x1``)."""
    if not _traced(x1, x2):
        return np.heaviside(x1, x2)
    x1, x2 = _weak(x1), _weak(x2)
    dtype = np.result_type(*[v if type(v) in (int, float) else _fdtype(v) for v in (x1, x2)])
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.dtype(np.float64)
    if not isinstance(x2, Tracer):
        x2 = np.asarray(x2, dtype)
    step = ew.where(ew.greater(x1, 0), np.ones((), dtype), np.zeros((), dtype))
    out = ew.where(ew.equal(x1, 0), x2, step)
    return ew.where(ew.isnan(x1), np.asarray(np.nan, dtype), out)


def nan_to_num(x, copy: bool = True, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced by finite numbers; the gradient flows at finite entries
    (and to ``nan``/``posinf``/``neginf`` where they are used, when traced)."""
    if not _traced(x, nan, posinf, neginf):
        return np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    x = _arr(x)
    dtype = dtype_of(x)
    if not np.issubdtype(dtype, np.inexact):
        return x
    if np.issubdtype(dtype, np.complexfloating):
        raise NotImplementedError("nan_to_num: complex inputs are not supported under transforms")
    big = np.finfo(dtype).max
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf

    def val(v):
        return v if isinstance(v, Tracer) else np.asarray(v, dtype)

    out = ew.where(ew.isnan(x), val(nan), x)
    out = ew.where(ew.logical_and(ew.isinf(x), ew.greater(x, 0)), val(posinf), out)
    return ew.where(ew.logical_and(ew.isinf(x), ew.less(x, 0)), val(neginf), out)


# --- interpolation --------------------------------------------------------------------------------


def interp(x, xp, fp, left=None, right=None, period=None):
    """Piecewise-linear interpolation (as ``numpy.interp``); differentiable in ``x``, ``xp``
    and ``fp`` (and in ``left``/``right``)."""
    if not _traced(x, xp, fp, left, right):
        return np.interp(x, xp, fp, left=left, right=right, period=period)
    x, xp, fp = _arr(x), _arr(xp), _arr(fp)
    if xp.ndim != 1 or fp.ndim != 1 or shape_of(xp) != shape_of(fp):
        raise ValueError("interp: xp and fp must be 1-D sequences of the same length")
    n = shape_of(xp)[0]
    if n == 0:
        raise ValueError("interp: array of sample points is empty")
    if period is not None:
        if period == 0:
            raise ValueError("interp: period must be a non-zero value")
        period = abs(period)
        x = ew.mod(x, period)
        xp = ew.mod(xp, period)
        order = np.argsort(np.asarray(concrete(xp)), kind="stable")
        xp, fp = getitem(xp, order), getitem(fp, order)
        xp = concatenate(
            [getitem(xp, slice(-1, None)) - period, xp, getitem(xp, slice(0, 1)) + period]
        )
        fp = concatenate([getitem(fp, slice(-1, None)), fp, getitem(fp, slice(0, 1))])
        left = right = None
        n += 2
    if n == 1:
        lo = hi = np.zeros(shape_of(x), np.intp)
    else:
        j = searchsorted(xp, x, side="right") - 1
        lo = ew.clip(j, 0, n - 2)
        hi = lo + 1
    x0, x1 = getitem(xp, lo), getitem(xp, hi)
    f0, f1 = getitem(fp, lo), getitem(fp, hi)
    if n == 1:
        y = f0 + ew.multiply(x, 0.0)
    else:
        dx = x1 - x0
        same = ew.equal(dx, 0)
        slope = (f1 - f0) / ew.where(same, 1.0, dx)
        y = ew.where(same, f0, slope * (x - x0) + f0)
        # At a sample point exactly (x == xp[j+1] when x is the last one) NumPy returns fp.
        y = ew.where(ew.equal(x, x1), f1, y)
    first, last = getitem(xp, 0), getitem(xp, -1)
    lv = getitem(fp, 0) if left is None else left
    rv = getitem(fp, -1) if right is None else right
    y = ew.where(ew.less(x, first), lv, y)
    y = ew.where(ew.greater(x, last), rv, y)
    dtype = np.result_type(_fdtype(x), _fdtype(xp), _fdtype(fp))
    if np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)  # np.interp computes and returns float64
    return y if dtype_of(y) == dtype else y.astype(dtype)


# --- convolution ----------------------------------------------------------------------------------


def _conv_impl(a, v):
    return np.convolve(a, v, mode="full")


def _reversed(x):
    return getitem(x, slice(None, None, -1))


# The full 1-D convolution is bilinear: each VJP is a correlation with the other input,
# written with this same primitive (so derivatives of every order follow), and each JVP is a
# convolution of the tangent. Under vmap the engine's fallback loops over the batch.
convolve_full_p = Primitive("convolve_full", _conv_impl)
convolve_full_p.__doc__ = "Full 1-D convolution (numpy.convolve, mode='full'); bilinear rules."
convolve_full_p.defvjp(
    lambda g, ans, a, v: getitem(
        convolve_full_p(g, _reversed(v)),
        slice(shape_of(v)[0] - 1, shape_of(v)[0] - 1 + shape_of(a)[0]),
    ),
    lambda g, ans, a, v: getitem(
        convolve_full_p(g, _reversed(a)),
        slice(shape_of(a)[0] - 1, shape_of(a)[0] - 1 + shape_of(v)[0]),
    ),
)
convolve_full_p.defjvp(
    lambda t, ans, a, v: convolve_full_p(t, v),
    lambda t, ans, a, v: convolve_full_p(a, t),
)


def _convolve_batch(args, batched):
    """One batched operand: its rows, each followed by m - 1 zeros, convolved as one long
    signal (the zeros keep the rows' results apart), then cut back into rows. Both batched:
    the engine's loop."""
    if batched[0] and batched[1]:
        from ._fallback import loop_over_batch

        return loop_over_batch(convolve_full_p, shape_of(args[0])[0], args, batched)
    rows, other = (args[0], args[1]) if batched[0] else (args[1], args[0])
    b, n = shape_of(rows)
    m = shape_of(other)[0]
    length = n + m - 1
    dtype = np.result_type(dtype_of(rows), dtype_of(other))
    if m > 1:
        rows = concatenate([rows, np.zeros((b, m - 1), dtype)], axis=1)
    long = convolve_full_p(reshape(rows, (b * length,)), other)
    return reshape(getitem(long, slice(0, b * length)), (b, length))


convolve_full_p.defbatch(_convolve_batch)


def _full_convolution(a, v):
    """The full 1-D convolution of ``a`` (length n) and ``v`` (length m): length n + m - 1."""
    return convolve_full_p(a, v)


def _mode_slice(full, n: int, m: int, mode: str, op: str):
    big, small = max(n, m), min(n, m)
    if mode == "full":
        return full
    if mode == "same":
        start = (small - 1) // 2
        return getitem(full, slice(start, start + big))
    if mode == "valid":
        return getitem(full, slice(small - 1, big))
    raise ValueError(f"{op}: mode must be 'full', 'same' or 'valid', got {mode!r}")


def _check_1d(a, v, op):
    a, v = _arr(a), _arr(v)
    if a.ndim == 0:
        a = reshape(a, (1,))
    if v.ndim == 0:
        v = reshape(v, (1,))
    if a.ndim != 1 or v.ndim != 1:
        raise ValueError(f"{op}: inputs must be 1-D (got shapes {shape_of(a)} and {shape_of(v)})")
    if not shape_of(a)[0] or not shape_of(v)[0]:
        raise ValueError(f"{op}: inputs cannot be empty")
    return a, v


def convolve(a, v, mode: str = "full"):
    """Discrete linear convolution of two 1-D sequences (modes full, same, valid)."""
    if not _traced(a, v):
        return np.convolve(a, v, mode=mode)
    a, v = _check_1d(a, v, "convolve")
    n, m = shape_of(a)[0], shape_of(v)[0]
    full = _full_convolution(a, v) if n >= m else _full_convolution(v, a)
    return _mode_slice(full, n, m, mode, "convolve")


def correlate(a, v, mode: str = "valid"):
    """Cross-correlation of two 1-D sequences, ``c[k] = sum_n a[n + k] conj(v[n])``."""
    if not _traced(a, v):
        return np.correlate(a, v, mode=mode)
    a, v = _check_1d(a, v, "correlate")
    n, m = shape_of(a)[0], shape_of(v)[0]
    vr = ew.conjugate(getitem(v, slice(None, None, -1)))
    full = _full_convolution(a, vr) if n >= m else _full_convolution(vr, a)
    if mode == "same" and n < m:
        # NumPy swaps the inputs when v is longer, which moves the centre of 'same'.
        start = n // 2
        return getitem(full, slice(start, start + m))
    return _mode_slice(full, n, m, mode, "correlate")


# --- polynomials and special sums -----------------------------------------------------------------


def polyval(p, x):
    """The polynomial with coefficients ``p`` (highest power first) at ``x`` (Horner's rule);
    differentiable in both."""
    if not _traced(p, x):
        return np.polyval(p, x)
    p = _arr(p)
    x = _arr(x)
    y = ew.multiply(x, np.zeros((), dtype_of(p)))
    for i in range(shape_of(p)[0]):
        y = y * x + getitem(p, i)
    return y


_LN2 = math.log(2.0)


def logaddexp2(x1, x2):
    """``log2(2**x1 + 2**x2)``, computed stably."""
    if not _traced(x1, x2):
        return np.logaddexp2(x1, x2)

    def scaled(v):
        v = _weak(v)
        return v * _LN2 if type(v) in (int, float) else ew.multiply(v, _LN2)

    return ew.logaddexp(scaled(x1), scaled(x2)) / _LN2


def float_power(x1, x2):
    """``x1 ** x2`` computed in at least float64 (as NumPy: float32 inputs give float64)."""
    if not _traced(x1, x2):
        return np.float_power(x1, x2)
    x1, x2 = _arr(x1), _arr(x2)
    dtype = np.result_type(dtype_of(x1), dtype_of(x2), np.float64)
    if dtype_of(x1) != dtype:
        x1 = x1.astype(dtype)
    if dtype_of(x2) != dtype:
        x2 = x2.astype(dtype)
    return ew.power(x1, x2)


# --- gradient ----------------------------------------------------------------------------------


def _along(x, start, stop):
    """``x[start:stop]`` along axis 0."""
    return getitem(x, slice(start, stop))


def _coefficient(c, ndim: int):
    """A 1-D coefficient (or scalar) shaped to broadcast along axis 0 of an ``ndim`` array."""
    if len(shape_of(c)) == 0:
        return c
    return reshape(c, (shape_of(c)[0],) + (1,) * (ndim - 1))


def _gradient_axis(f, h, edge_order: int):
    """NumPy's ``gradient`` of ``f`` along axis 0, spacing ``h`` (a scalar or coordinates)."""
    nd = len(shape_of(f))
    if len(shape_of(h)) == 0:  # uniform spacing
        inner = (_along(f, 2, None) - _along(f, None, -2)) / (2.0 * h)
        if edge_order == 1:
            first = (_along(f, 1, 2) - _along(f, 0, 1)) / h
            last = (_along(f, -1, None) - _along(f, -2, -1)) / h
        else:
            first = -1.5 * _along(f, 0, 1) + 2.0 * _along(f, 1, 2) - 0.5 * _along(f, 2, 3)
            last = 0.5 * _along(f, -3, -2) - 2.0 * _along(f, -2, -1) + 1.5 * _along(f, -1, None)
            first, last = first / h, last / h
        return concatenate([first, inner, last], axis=0)
    dx = _along(h, 1, None) - _along(h, None, -1)
    d1, d2 = _along(dx, None, -1), _along(dx, 1, None)
    a, b, c = -d2 / (d1 * (d1 + d2)), (d2 - d1) / (d1 * d2), d1 / (d2 * (d1 + d2))
    inner = (
        _coefficient(a, nd) * _along(f, None, -2)
        + _coefficient(b, nd) * _along(f, 1, -1)
        + _coefficient(c, nd) * _along(f, 2, None)
    )
    if edge_order == 1:
        first = (_along(f, 1, 2) - _along(f, 0, 1)) / _coefficient(_along(dx, 0, 1), nd)
        last = (_along(f, -1, None) - _along(f, -2, -1)) / _coefficient(_along(dx, -1, None), nd)
    else:
        d1, d2 = _along(dx, 0, 1), _along(dx, 1, 2)
        a = -(2.0 * d1 + d2) / (d1 * (d1 + d2))
        b = (d1 + d2) / (d1 * d2)
        c = -d1 / (d2 * (d1 + d2))
        first = (
            _coefficient(a, nd) * _along(f, 0, 1)
            + _coefficient(b, nd) * _along(f, 1, 2)
            + _coefficient(c, nd) * _along(f, 2, 3)
        )
        d1, d2 = _along(dx, -2, -1), _along(dx, -1, None)
        a = d2 / (d1 * (d1 + d2))
        b = -(d2 + d1) / (d1 * d2)
        c = (2.0 * d2 + d1) / (d2 * (d1 + d2))
        last = (
            _coefficient(a, nd) * _along(f, -3, -2)
            + _coefficient(b, nd) * _along(f, -2, -1)
            + _coefficient(c, nd) * _along(f, -1, None)
        )
    return concatenate([first, inner, last], axis=0)


@array_like("f", "varargs")
def gradient(f, *varargs, axis=None, edge_order: int = 1):
    """The gradient of sampled values ``f`` by central differences (one-sided at the ends,
    of order ``edge_order``), as ``numpy.gradient``: spacings are scalars or coordinate
    arrays, one per axis (or one for all). Differentiable in ``f`` and the spacings.

    >>> import numpy as np, diffsys.numpy as dnp
    >>> dnp.gradient(np.array([1.0, 4.0, 9.0, 16.0]))
    array([3., 4., 6., 7.])
    """
    if not any(isinstance(v, Tracer) for v in (f, *varargs)):
        return np.gradient(f, *varargs, axis=axis, edge_order=edge_order)
    nd = len(shape_of(f))
    axes = tuple(range(nd)) if axis is None else axis
    axes = (axes,) if isinstance(axes, int | np.integer) else tuple(axes)
    axes = tuple(int(a) % nd if -nd <= a < nd else _bad_axis(a, nd) for a in axes)
    if not varargs:
        spacings = [1.0] * len(axes)
    elif len(varargs) == 1 and len(shape_of(varargs[0])) == 0:
        spacings = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        spacings = list(varargs)
    else:
        raise TypeError(
            f"gradient: give no spacing, one scalar, or one spacing per axis ({len(axes)}), "
            f"got {len(varargs)}"
        )
    if edge_order not in (1, 2):
        raise ValueError(f"gradient: edge_order must be 1 or 2, got {edge_order}")
    if dtype_of(f).kind not in "fc":
        f = ew.multiply(f, 1.0)  # integers differentiate as float64, as NumPy
    out = []
    for ax, h in zip(axes, spacings, strict=True):
        n = shape_of(f)[ax]
        if n < edge_order + 1:
            raise ValueError(
                f"gradient: axis {ax} of shape {shape_of(f)} needs at least {edge_order + 1} "
                f"samples for edge_order={edge_order}"
            )
        if len(shape_of(h)) not in (0, 1) or (len(shape_of(h)) == 1 and shape_of(h)[0] != n):
            raise ValueError(
                f"gradient: a spacing must be a scalar or {n} coordinates along axis {ax}, "
                f"got shape {shape_of(h)}"
            )
        g = _gradient_axis(moveaxis(f, ax, 0), h, edge_order)
        if dtype_of(g) != dtype_of(f):  # NumPy keeps f's dtype (float32 with float64 steps)
            g = ew.real(g) if dtype_of(f).kind == "f" and dtype_of(g).kind == "c" else g
            g = g.astype(dtype_of(f))
        out.append(moveaxis(g, 0, ax))
    return out[0] if len(out) == 1 else tuple(out)


def _bad_axis(axis, nd):
    raise np.exceptions.AxisError(f"gradient: axis {axis} is out of bounds for {nd} dimensions")
