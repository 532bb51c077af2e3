"""NaN-aware reductions, weighted averages, order statistics, closeness tests.

All are compositions of differentiable primitives (``where``, ``sum``, ``max``, ``sort``,
``take_along_axis``...), so derivatives of every order and batching come for free. NaN
entries get a zero gradient. Quantiles use linear interpolation between order statistics
and are differentiable in the values (and in ``q``).

Outside any transform, every function returns NumPy's own result.
"""

from __future__ import annotations

import numpy as np

from ..core.ad_util import cast
from ..core.primitive import Primitive
from ..core.tracer import Tracer, concrete
from . import _elementwise as ew
from . import _reductions as red
from ._ordering import _arr, _traced, sort, take
from ._shape import broadcast_to, moveaxis, reshape
from ._util import array_like, def_elementwise_batch, dtype_of, normalize_axes, shape_of


def _float_dtype(x):
    dt = dtype_of(x)
    return dt if np.issubdtype(dt, np.inexact) else np.dtype(np.float64)


def _zero(x):
    return np.zeros((), _float_dtype(x))


def _count(mask, axis, keepdims, dtype):
    """The number of true entries of a boolean ``mask``, in ``dtype``."""
    return red.sum(cast(mask, dtype=dtype), axis=axis, keepdims=keepdims)


# --- nan-aware reductions --------------------------------------------------------------------


def nansum(a, axis=None, dtype=None, keepdims: bool = False):
    """Sum treating NaNs as zero (their gradient is zero)."""
    if not _traced(a):
        return np.nansum(a, axis=axis, dtype=dtype, keepdims=keepdims)
    a = _arr(a)
    return red.sum(ew.where(ew.isnan(a), _zero(a), a), axis=axis, dtype=dtype, keepdims=keepdims)


def nanmean(a, axis=None, dtype=None, keepdims: bool = False):
    """Mean of the non-NaN entries (NaN where a slice has none, as NumPy)."""
    if not _traced(a):
        return np.nanmean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    a = _arr(a)
    ok = ew.logical_not(ew.isnan(a))
    n = _count(ok, axis, keepdims, _float_dtype(a))
    out = nansum(a, axis=axis, keepdims=keepdims) / n
    return out if dtype is None else out.astype(dtype)


def nanvar(a, axis=None, dtype=None, ddof: int = 0, keepdims: bool = False):
    """Variance of the non-NaN entries, with ``ddof`` delta degrees of freedom."""
    if not _traced(a):
        return np.nanvar(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    a = _arr(a)
    nan = ew.isnan(a)
    ok = ew.logical_not(nan)
    zero = _zero(a)
    n = _count(ok, axis, True, _float_dtype(a))
    clean = ew.where(nan, zero, a)
    centered = ew.where(nan, zero, clean - red.sum(clean, axis=axis, keepdims=True) / n)
    if np.issubdtype(dtype_of(a), np.complexfloating):
        sq = ew.real(centered * ew.conjugate(centered))
    else:
        sq = centered * centered
    dof = _count(ok, axis, keepdims, _float_dtype(a)) - ddof
    bad = ew.less_equal(dof, 0)  # NaN there, as NumPy
    nan_value = np.asarray(np.nan, _float_dtype(a))
    out = ew.where(
        bad, nan_value, red.sum(sq, axis=axis, keepdims=keepdims) / ew.where(bad, 1, dof)
    )
    return out if dtype is None else out.astype(dtype)


def nanstd(a, axis=None, dtype=None, ddof: int = 0, keepdims: bool = False):
    """Standard deviation of the non-NaN entries."""
    if not _traced(a):
        return np.nanstd(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    return ew.sqrt(nanvar(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims))


def _nanext(reduce, fill, a, axis, keepdims):
    a = _arr(a)
    nan = ew.isnan(a)
    out = reduce(ew.where(nan, np.asarray(fill, _float_dtype(a)), a), axis=axis, keepdims=keepdims)
    all_nan = red.all(nan, axis=axis, keepdims=keepdims)
    return ew.where(all_nan, np.asarray(np.nan, _float_dtype(a)), out)


def nanmax(a, axis=None, keepdims: bool = False):
    """Maximum ignoring NaNs (NaN for all-NaN slices); ties share the gradient."""
    if not _traced(a):
        return np.nanmax(a, axis=axis, keepdims=keepdims)
    return _nanext(red.max, -np.inf, a, axis, keepdims)


def nanmin(a, axis=None, keepdims: bool = False):
    """Minimum ignoring NaNs (NaN for all-NaN slices); ties share the gradient."""
    if not _traced(a):
        return np.nanmin(a, axis=axis, keepdims=keepdims)
    return _nanext(red.min, np.inf, a, axis, keepdims)


def nancumsum(a, axis=None, dtype=None):
    """Cumulative sum treating NaNs as zero."""
    if not _traced(a):
        return np.nancumsum(a, axis=axis, dtype=dtype)
    a = _arr(a)
    return red.cumsum(ew.where(ew.isnan(a), _zero(a), a), axis=axis, dtype=dtype)


def nancumprod(a, axis=None, dtype=None):
    """Cumulative product treating NaNs as one."""
    if not _traced(a):
        return np.nancumprod(a, axis=axis, dtype=dtype)
    a = _arr(a)
    one = np.ones((), _float_dtype(a))
    return red.cumprod(ew.where(ew.isnan(a), one, a), axis=axis, dtype=dtype)


def ptp(a, axis=None, keepdims: bool = False):
    """Range of values (maximum minus minimum) along ``axis``."""
    if not _traced(a):
        return np.ptp(a, axis=axis, keepdims=keepdims)
    a = _arr(a)
    return red.max(a, axis=axis, keepdims=keepdims) - red.min(a, axis=axis, keepdims=keepdims)


def count_nonzero(a, axis=None, *, keepdims: bool = False):
    """The number of non-zero values (an integer: no derivative)."""
    if not _traced(a):
        return np.count_nonzero(a, axis=axis, keepdims=keepdims)
    a = _arr(a)
    return red.sum(cast(ew.not_equal(a, 0), dtype=np.intp), axis=axis, keepdims=keepdims)


# --- weighted average -----------------------------------------------------------------------------


def average(a, axis=None, weights=None, returned: bool = False, *, keepdims: bool = False):
    """Weighted average along ``axis``; differentiable in ``a`` and in ``weights``.

    ``weights`` has ``a``'s shape, or is 1-D along a single ``axis`` (as NumPy).
    """
    if not _traced(a, weights):
        return np.average(a, axis=axis, weights=weights, returned=returned, keepdims=keepdims)
    a = _arr(a)
    if weights is None:
        avg = red.mean(a, axis=axis, keepdims=keepdims)
        if returned:
            n = np.prod([a.shape[i] for i in normalize_axes(axis, a.ndim, "average")])
            return avg, broadcast_to(np.asarray(n, dtype_of(avg)), shape_of(avg))
        return avg
    w = _arr(weights)
    if shape_of(w) != shape_of(a):
        if axis is None:
            raise TypeError("average: axis must be specified when shapes of a and weights differ")
        if isinstance(axis, tuple | list):
            axes = normalize_axes(axis, a.ndim, "average")
            if shape_of(w) != tuple(a.shape[i] for i in axes):
                raise ValueError(
                    "average: shape of weights must be consistent with shape of a along axis"
                )
            shape = [1] * a.ndim
            for i, d in zip(axes, shape_of(w), strict=True):
                shape[i] = d
            w = reshape(w, tuple(shape))
        else:
            if w.ndim != 1 or shape_of(w)[0] != a.shape[axis]:
                raise ValueError(
                    f"average: weights of shape {shape_of(w)} must be 1-D with the length "
                    f"of axis {axis} of a (shape {a.shape})"
                )
            w = moveaxis(reshape(w, (-1,) + (1,) * (a.ndim - 1)), 0, axis)
        w = broadcast_to(w, a.shape)
    scl = red.sum(w, axis=axis, keepdims=keepdims)
    avg = red.sum(a * w, axis=axis, keepdims=keepdims) / scl
    if returned:
        return avg, broadcast_to(scl, shape_of(avg)) if shape_of(scl) != shape_of(avg) else scl
    return avg


# --- order statistics -----------------------------------------------------------------------------


@array_like("a", "q")
def quantile(
    a,
    q,
    axis=None,
    out=None,
    overwrite_input=False,
    method="linear",
    keepdims=False,
    *,
    weights=None,
):
    """Quantiles by linear interpolation between order statistics (``method='linear'``).

    Differentiable in ``a`` (through the sorting permutation) and in ``q``. The result has
    ``q``'s shape in front of the reduced shape, as NumPy.
    """
    return _order_statistic(
        "quantile", np.quantile, 1, a, q, axis, out, overwrite_input, method, keepdims, weights
    )


def _order_statistic(op, np_fn, scale, a, q, axis, out, overwrite_input, method, keepdims, weights):
    """``quantile`` (``scale`` 1) and ``percentile`` (``scale`` 100): NumPy's on plain values,
    linear interpolation between sorted values under transforms."""
    if not _traced(a, q):
        return np_fn(
            a,
            q,
            axis=axis,
            out=out,
            overwrite_input=overwrite_input,
            method=method,
            keepdims=keepdims,
            weights=weights,
        )
    if method != "linear" or weights is not None or out is not None:
        raise NotImplementedError(
            f"{op}: only method='linear' without weights/out is supported under transforms"
        )
    if scale == 1:
        return _quantile(_arr(a), q, axis, keepdims, op)
    qc = np.asarray(concrete(q))
    if np.any(qc < 0) or np.any(qc > scale):
        raise ValueError(f"{op}: percentiles must be in the range [0, {scale}]")
    q_unit = q / scale if isinstance(q, Tracer) else np.true_divide(q, scale)
    return _quantile(_arr(a), q_unit, axis, keepdims, op, q)


def _quantile(a, q, axis, keepdims, op, q_given=None):
    qc = np.asarray(concrete(q))
    if np.any(qc < 0) or np.any(qc > 1):
        raise ValueError(f"{op}: quantiles must be in the range [0, 1]")
    nd = a.ndim
    axes = normalize_axes(axis, nd, op)
    kept = [i for i in range(nd) if i not in axes]
    # The reduced axes flattened into one last axis.
    x = moveaxis(a, list(axes), list(range(len(kept), nd))) if axes else a
    x = reshape(x, tuple(a.shape[i] for i in kept) + (-1,))
    n = shape_of(x)[-1]
    s = sort(x, axis=-1)
    dt = _float_dtype(a)
    if isinstance(q, Tracer):
        pos = q * (n - 1)
        lo = np.floor(np.asarray(concrete(pos))).astype(np.intp)
    else:
        pos = np.asarray(q, np.float64) * (n - 1)
        lo = np.floor(pos).astype(np.intp)
    lo = np.clip(lo, 0, max(n - 1, 0))
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    if not isinstance(frac, Tracer):
        frac = np.asarray(frac, dt)
    # Gather: q's axes in front of the kept axes.
    qshape = np.shape(qc)
    vlo, vhi = take(s, lo, axis=-1), take(s, hi, axis=-1)
    if qshape and kept:
        src = list(range(len(kept), len(kept) + len(qshape)))
        dst = list(range(len(qshape)))
        vlo, vhi = moveaxis(vlo, src, dst), moveaxis(vhi, src, dst)
    if qshape:
        frac = reshape(frac, qshape + (1,) * len(kept))
    # NumPy's lerp: exact at both ends.
    diff = vhi - vlo
    out = ew.where(frac >= 0.5, vhi - diff * (1 - frac), vlo + diff * frac)
    # A NaN in a slice makes its quantiles NaN, as NumPy (the sort put it last).
    has_nan = red.any(ew.isnan(x), axis=-1)
    out = ew.where(has_nan, np.asarray(np.nan, dtype_of(out)), out)
    # The result type as NumPy's: a Python scalar q is weak, an array q promotes.
    q_given = q if q_given is None else q_given
    weak = type(q_given) in (int, float)
    target = np.result_type(dtype_of(a), q_given if weak else np.asarray(concrete(q_given)).dtype)
    if not np.issubdtype(target, np.inexact):
        target = np.dtype(np.float64)
    if dtype_of(out) != target:
        out = out.astype(target)
    if keepdims:
        shape = list(qshape) + [1 if i in axes else a.shape[i] for i in range(nd)]
        out = reshape(out, tuple(shape))
    return out


@array_like("a", "q")
def percentile(
    a,
    q,
    axis=None,
    out=None,
    overwrite_input=False,
    method="linear",
    keepdims=False,
    *,
    weights=None,
):
    """Percentiles (``q`` in [0, 100]); see :func:`quantile`."""
    return _order_statistic(
        "percentile", np.percentile, 100,
        a, q, axis, out, overwrite_input, method, keepdims, weights,
    )  # fmt: skip


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The median (the mean of the two middle values for an even count)."""
    if not _traced(a):
        return np.median(a, axis=axis, out=out, overwrite_input=overwrite_input, keepdims=keepdims)
    return _quantile(_arr(a), 0.5, axis, keepdims, "median")


# --- closeness (values only) ----------------------------------------------------------------------

isclose_p = Primitive(
    "isclose",
    lambda a, b, rtol, atol, equal_nan: np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan),
    zero_derivative=True,
)
def_elementwise_batch(isclose_p)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|a - b| <= atol + rtol * |b|`` (booleans: no derivative)."""
    if not _traced(a, b):
        return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return isclose_p(
        _arr(a), _arr(b), rtol=float(rtol), atol=float(atol), equal_nan=bool(equal_nan)
    )


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Whether all elements are close (a Python bool, as NumPy)."""
    if not _traced(a, b):
        return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))
    return bool(np.all(concrete(isclose(a, b, rtol, atol, equal_nan))))
