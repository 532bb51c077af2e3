"""Array creation. Constants are plain NumPy arrays (zero derivative); ``array``/``asarray``
of nested sequences that hold tracers stack them, and ``full``/``linspace`` are
differentiable in their traced arguments."""

from __future__ import annotations

import numpy as np

from ..core import ad_util
from ..core.primitive import set_sequence_rule
from ..core.tracer import Tracer
from ._shape import broadcast_to, reshape, stack
from ._util import array_like, dtype_of, shape_of


def _contains_tracer(obj) -> bool:
    if isinstance(obj, Tracer):
        return True
    if isinstance(obj, list | tuple):
        return any(_contains_tracer(o) for o in obj)
    return False


def _build(obj):
    if isinstance(obj, list | tuple):
        if not obj:
            return np.asarray(obj, dtype=float)
        return stack([_build(o) for o in obj])
    if isinstance(obj, Tracer | np.ndarray):
        return obj
    return np.asarray(obj)


def _with_dtype(x, dtype):
    if dtype is None or dtype_of(x) == np.dtype(dtype):
        return x
    return x.astype(dtype)


def array(object, dtype=None, copy: bool = True, ndmin: int = 0):  # noqa: A002 - NumPy's name
    """An array from ``object``; nested lists/tuples may hold tracers (they are stacked)."""
    if not _contains_tracer(object):
        return np.array(object, dtype=dtype, copy=copy, ndmin=ndmin)
    out = _with_dtype(_build(object), dtype)
    nd = len(shape_of(out))
    if ndmin > nd:
        out = reshape(out, (1,) * (ndmin - nd) + tuple(shape_of(out)))
    return out


def asarray(a, dtype=None):
    """``a`` as an array without copying when possible; tracers stay tracers."""
    if not _contains_tracer(a):
        return np.asarray(a, dtype=dtype)
    return _with_dtype(_build(a), dtype)


zeros = np.zeros
ones = np.ones
empty = np.empty
eye = np.eye
identity = np.identity
arange = np.arange


def _like(a, dtype, shape):
    """The shape and dtype for ``*_like(a)``: ``a``'s unless given (``a`` may be a tracer)."""
    if isinstance(a, Tracer):
        return (a.shape if shape is None else shape), (a.dtype if dtype is None else dtype)
    a = np.asarray(a)
    return (a.shape if shape is None else shape), (a.dtype if dtype is None else dtype)


@array_like("a")
def zeros_like(a, dtype=None, shape=None):
    """Zeros with the shape and dtype of ``a`` (a constant: its derivative is zero)."""
    if not isinstance(a, Tracer):
        return np.zeros_like(a, dtype=dtype, shape=shape)
    return np.zeros(*_like(a, dtype, shape))


@array_like("a")
def ones_like(a, dtype=None, shape=None):
    """Ones with the shape and dtype of ``a`` (a constant)."""
    if not isinstance(a, Tracer):
        return np.ones_like(a, dtype=dtype, shape=shape)
    return np.ones(*_like(a, dtype, shape))


@array_like("a")
def empty_like(a, dtype=None, shape=None):
    """An uninitialized array with the shape and dtype of ``a`` (a constant)."""
    if not isinstance(a, Tracer):
        return np.empty_like(a, dtype=dtype, shape=shape)
    return np.empty(*_like(a, dtype, shape))


@array_like("fill_value")
def full(shape, fill_value, dtype=None):
    """An array of ``shape`` filled with ``fill_value`` (differentiable in ``fill_value``)."""
    if not isinstance(fill_value, Tracer):
        return np.full(shape, fill_value, dtype=dtype)
    return _with_dtype(broadcast_to(fill_value, shape), dtype)


@array_like("a", "fill_value")
def full_like(a, fill_value, dtype=None, shape=None):
    """An array like ``a`` filled with ``fill_value`` (differentiable in ``fill_value``)."""
    if not isinstance(a, Tracer) and not isinstance(fill_value, Tracer):
        return np.full_like(a, fill_value, dtype=dtype, shape=shape)
    shape, dtype = _like(a, dtype, shape)
    return full(shape, fill_value, dtype=dtype)


@array_like("start", "stop")
def linspace(
    start,
    stop,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype=None,
    axis: int = 0,
):
    """Evenly spaced numbers over an interval; differentiable in ``start`` and ``stop``."""
    if not isinstance(start, Tracer) and not isinstance(stop, Tracer):
        return np.linspace(
            start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype, axis=axis
        )
    div = (num - 1) if endpoint else num
    # NumPy's dtype: that of the endpoints (Python scalars are weak) and a float.
    weak = [x if type(x) in (int, float, complex) else dtype_of(x) for x in (start, stop)]
    steps = (np.arange(num, dtype=float) / max(div, 1)).astype(np.result_type(*weak, 1.0))
    start_b = (
        ad_util.reshape(start, shape=(1,) + tuple(shape_of(start))) if shape_of(start) else start
    )
    stop_b = ad_util.reshape(stop, shape=(1,) + tuple(shape_of(stop))) if shape_of(stop) else stop
    frac = steps.reshape((num,) + (1,) * len(np.broadcast_shapes(shape_of(start), shape_of(stop))))
    out = start_b + (stop_b - start_b) * frac
    out = _with_dtype(out, dtype)
    if axis != 0:  # as NumPy: the samples run along axis 0, then move to ``axis``
        from ._shape import moveaxis

        out = moveaxis(out, 0, axis)
    if retstep:
        # NumPy's step is NaN when there is no interval to divide (one sample, endpoint).
        step = (stop - start) / div if div > 0 else np.asarray(np.nan, dtype=dtype_of(out))
        return out, step
    return out


# A list or tuple holding tracers, passed where a primitive takes an array, is this array.
set_sequence_rule(asarray)
