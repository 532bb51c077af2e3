"""Reductions: sum, prod, max/min, mean, var, std, cumsum, cumprod.

Primitives take ``axis`` as a sorted tuple of non-negative ints (the wrappers normalize it).
``mean``, ``var`` and ``std`` are compositions of primitives, so every order of derivative
comes for free.
"""

from __future__ import annotations

import numpy as np

from ..core import ad_util
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from . import _elementwise as ew
from ._shape import broadcast_to_p, broadcast_view, concatenate, moveaxis, reshape
from ._util import (
    def_axes_batch,
    dtype_of,
    normalize_axes,
    normalize_axis,
    shape_of,
    shared_params,
)


def _from_sequence(a):
    """A list or tuple as an array; one that holds tracers (``dnp.sum([x, y])``, as NumPy
    allows) becomes a traced array instead of failing inside ``np.asarray``."""
    from ._creation import asarray

    return asarray(a)


def _ufunc_axes(axis, ndim: int, op: str) -> tuple[int, ...]:
    """Normalized axes of a reduction that NumPy implements as a ufunc reduction (sum, prod,
    max, min, any, all): on a 0-d array these accept an int axis 0 or -1 and reduce
    nothing (so that a function of a row behaves the same under vmap as on its own)."""
    if ndim == 0 and isinstance(axis, int | np.integer) and axis in (0, -1):
        return ()
    return normalize_axes(axis, ndim, op)


def _strict_axes(axis, ndim: int, op: str) -> tuple[int, ...]:
    """Normalized axes for mean, var and std, which (in NumPy) take no axis on 0-d arrays."""
    if ndim == 0 and axis is not None and axis != ():
        raise np.exceptions.AxisError(
            f"{op}: axis {axis} is out of bounds for an array of dimension 0"
        )
    return normalize_axes(axis, ndim, op)


def _keepdims_shape(shape, axis):
    return tuple(1 if i in axis else d for i, d in enumerate(shape))


def _expand_to_input(g, x, axis, keepdims):
    """A reduction's output (or cotangent) brought back to broadcast against its input."""
    shape = shape_of(x)
    if g.__class__ is np.ndarray:  # a plain backward pass: no primitives to record
        if not keepdims:
            g = g.reshape(_keepdims_shape(shape, axis))
        return broadcast_view(g, tuple(shape))
    if not keepdims:
        g = ad_util.reshape(g, shape=_keepdims_shape(shape, axis))
    return broadcast_to_p(g, shape=tuple(shape))


def _reduced(g, ans, x, axis, keepdims):
    return g if keepdims else ad_util.reshape(g, shape=_keepdims_shape(shape_of(x), axis))


# --- sum ---------------------------------------------------------------------------------------


def _sum_impl(x, axis, keepdims):
    if x.__class__ is np.ndarray:  # np.sum's own path for arrays, without its Python wrapper
        return _add_reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


_add_reduce = np.add.reduce
sum_p = Primitive("sum", _sum_impl)
sum_p.defvjp(lambda g, ans, x, axis, keepdims: _expand_to_input(g, x, axis, keepdims))
sum_p.defjvp(lambda t, ans, x, axis, keepdims: sum_p(t, axis=axis, keepdims=keepdims))
def_axes_batch(sum_p)


_SUM_PARAMS: dict[tuple, dict] = {}  # one dict per (axes, keepdims): see shared_params


def sum(a, axis=None, dtype=None, keepdims: bool = False):  # noqa: A001 - NumPy's name
    """Sum of array elements over the given axes (as ``numpy.sum``)."""
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np.sum(a, axis=axis, dtype=dtype, keepdims=keepdims)
    ndim = a.ndim
    if axis.__class__ is int and 0 <= axis < ndim:  # the common case, already normalized
        axes = (axis,)
    else:
        axes = _ufunc_axes(axis, ndim, "sum")
    keepdims = bool(keepdims)
    params = shared_params(_SUM_PARAMS, (axes, keepdims), axis=axes, keepdims=keepdims)
    out = sum_p.call_with((a,), params)
    return out if dtype is None else out.astype(dtype)


# --- prod --------------------------------------------------------------------------------------


def _exclusive_cumprod(v):
    """prod_{k < i} v_k along the last axis of ``v`` (exact with zeros).

    On plain arrays this is one ``np.cumprod``. On traced values it is a Hillis-Steele scan
    of multiplications (log2(n) steps), not the ``cumprod`` primitive: cumprod's rules divide
    by the input, so derivatives of the scan through it (the Hessian of ``prod``) would be
    NaN wherever an element is exactly zero. Multiplications and shifts differentiate exactly
    at every order.
    """
    lead, n = shape_of(v)[:-1], shape_of(v)[-1]
    dtype = dtype_of(v)
    out = concatenate([np.ones(lead + (1,), dtype=dtype), v[..., : n - 1]], axis=-1)
    if not isinstance(v, Tracer):
        return np.cumprod(out, axis=-1)
    step = 1
    while step < n:
        shifted = concatenate([np.ones(lead + (step,), dtype=dtype), out[..., : n - step]], axis=-1)
        out = out * shifted
        step *= 2
    return out


def _prod_of_others(x, axis):
    """For each element, the product of the other elements on its reduction slice (exact
    with zeros, at every order), from exclusive cumulative products in both directions."""
    shape = shape_of(x)
    if 0 in shape:  # no elements: nothing to multiply (and no slices to scan)
        return ad_util.zeros_like_value(x)
    kept = [i for i in range(len(shape)) if i not in axis]
    moved = moveaxis(x, list(axis), list(range(len(kept), len(shape))))
    flat = reshape(moved, tuple(shape[i] for i in kept) + (-1,))
    left = _exclusive_cumprod(flat)
    right = _exclusive_cumprod(flat[..., ::-1])[..., ::-1]
    others = reshape(left * right, shape_of(moved))
    return moveaxis(others, list(range(len(kept), len(shape))), list(axis))


prod_p = Primitive("prod", lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims))
prod_p.defvjp(
    lambda g, ans, x, axis, keepdims: (
        _expand_to_input(g, x, axis, keepdims) * _prod_of_others(x, axis)
    )
)
prod_p.defjvp(
    lambda t, ans, x, axis, keepdims: sum_p(
        t * _prod_of_others(x, axis), axis=axis, keepdims=keepdims
    )
)
def_axes_batch(prod_p)


def prod(a, axis=None, dtype=None, keepdims: bool = False):
    """Product of array elements over the given axes; the gradient is exact at zeros."""
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np.prod(a, axis=axis, dtype=dtype, keepdims=keepdims)
    out = prod_p(a, axis=_ufunc_axes(axis, a.ndim, "prod"), keepdims=bool(keepdims))
    return out if dtype is None else out.astype(dtype)


# --- max / min ----------------------------------------------------------------------------------


def _argext_share(ans, x, axis, keepdims):
    """1/k on each of the k elements that attain the extremum (ties share the gradient)."""
    # Cast the mask to x's dtype: bool / int counts would promote float32 tangents to float64.
    hit = ad_util.cast(ew.equal(x, _expand_to_input(ans, x, axis, keepdims)), dtype=dtype_of(x))
    return hit / sum_p(hit, axis=axis, keepdims=True)


def _extremum(name, np_fn):
    prim = Primitive(name, lambda x, axis, keepdims: np_fn(x, axis=axis, keepdims=keepdims))
    prim.defvjp(
        lambda g, ans, x, axis, keepdims: (
            _expand_to_input(g, x, axis, keepdims) * _argext_share(ans, x, axis, keepdims)
        )
    )
    prim.defjvp(
        lambda t, ans, x, axis, keepdims: sum_p(
            t * _argext_share(ans, x, axis, keepdims), axis=axis, keepdims=keepdims
        )
    )
    def_axes_batch(prim)
    return prim


max_p = _extremum("max", np.max)
min_p = _extremum("min", np.min)


def max(a, axis=None, keepdims: bool = False):  # noqa: A001 - NumPy's name
    """Maximum over the given axes; tied maxima share the gradient equally."""
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np.max(a, axis=axis, keepdims=keepdims)
    return max_p(a, axis=_ufunc_axes(axis, a.ndim, "max"), keepdims=bool(keepdims))


def min(a, axis=None, keepdims: bool = False):  # noqa: A001 - NumPy's name
    """Minimum over the given axes; tied minima share the gradient equally."""
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np.min(a, axis=axis, keepdims=keepdims)
    return min_p(a, axis=_ufunc_axes(axis, a.ndim, "min"), keepdims=bool(keepdims))


amax = max
amin = min


# --- mean / var / std (compositions) -------------------------------------------------------------


def _count(shape, axes) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def mean(a, axis=None, dtype=None, keepdims: bool = False):
    """Arithmetic mean over the given axes."""
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np.mean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    axes = _strict_axes(axis, a.ndim, "mean")
    out = sum_p(a, axis=axes, keepdims=bool(keepdims)) / _count(a.shape, axes)
    return out if dtype is None else out.astype(dtype)


def var(a, axis=None, dtype=None, ddof: int = 0, keepdims: bool = False):
    """Variance over the given axes, with ``ddof`` delta degrees of freedom."""
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np.var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    axes = _strict_axes(axis, a.ndim, "var")
    n = _count(a.shape, axes)
    centered = a - sum_p(a, axis=axes, keepdims=True) / n
    if np.issubdtype(a.dtype, np.complexfloating):
        sq = ew.real(centered * ew.conjugate(centered))
    else:
        sq = centered * centered
    out = sum_p(sq, axis=axes, keepdims=bool(keepdims)) / (n - ddof)
    return out if dtype is None else out.astype(dtype)


def std(a, axis=None, dtype=None, ddof: int = 0, keepdims: bool = False):
    """Standard deviation over the given axes (the square root of :func:`var`)."""
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np.std(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    v = var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
    if ddof == 0 and _count(a.shape, _strict_axes(axis, a.ndim, "std")) == 1:
        # One element per slice: the deviation is identically 0, and so is the variance,
        # derivatives of every order included (its centred values are exactly 0); sqrt's
        # derivative at 0 would turn those zeros into 0 * inf = NaN.
        return v
    return ew.sqrt(v)


# --- cumulative sums and products -------------------------------------------------------------


def _reverse_cumsum(g, axis):
    """sum_{j >= i} g_j along ``axis``, without flipping: total - cumsum + g."""
    return sum_p(g, axis=(axis,), keepdims=True) - cumsum_p(g, axis=axis) + g


cumsum_p = Primitive("cumsum", lambda x, axis: np.cumsum(x, axis=axis))
cumsum_p.defvjp(lambda g, ans, x, axis: _reverse_cumsum(g, axis))
cumsum_p.defjvp(lambda t, ans, x, axis: cumsum_p(t, axis=axis))
def_axes_batch(cumsum_p)

cumprod_p = Primitive("cumprod", lambda x, axis: np.cumprod(x, axis=axis))
# d ans_j / d x_i = ans_j / x_i for j >= i (x_i != 0); rules divide by x like autograd and JAX.
cumprod_p.defvjp(lambda g, ans, x, axis: _reverse_cumsum(g * ans, axis) / x)
cumprod_p.defjvp(lambda t, ans, x, axis: ans * cumsum_p(t / x, axis=axis))
def_axes_batch(cumprod_p)


def _cumulative(prim, np_fn, a, axis, dtype, op):
    if isinstance(a, list | tuple):
        a = _from_sequence(a)
    if not isinstance(a, Tracer):
        return np_fn(a, axis=axis, dtype=dtype)
    if a.ndim == 0 and isinstance(axis, int | np.integer) and axis in (0, -1):
        axis = None  # a 0-d input gives shape (1,), as in NumPy
    if axis is not None:
        axis = normalize_axis(axis, a.ndim, op)
    if axis is None:
        from ._shape import ravel

        a, axis = ravel(a), 0
    out = prim(a, axis=axis)
    return out if dtype is None else out.astype(dtype)


def cumsum(a, axis=None, dtype=None):
    """Cumulative sum along ``axis`` (flattened when ``axis`` is None)."""
    return _cumulative(cumsum_p, np.cumsum, a, axis, dtype, "cumsum")


def cumprod(a, axis=None, dtype=None):
    """Cumulative product along ``axis``. Its gradient divides by ``a``: inputs with exact
    zeros give non-finite gradients (use ``prod`` for an exact gradient at zeros)."""
    return _cumulative(cumprod_p, np.cumprod, a, axis, dtype, "cumprod")


# --- logical reductions (values only) ----------------------------------------------------------


def _logical_reduction(name, np_fn):
    prim = Primitive(
        name, lambda x, axis, keepdims: np_fn(x, axis=axis, keepdims=keepdims), zero_derivative=True
    )
    def_axes_batch(prim)

    def reduce(a, axis=None, keepdims: bool = False):
        if isinstance(a, list | tuple):
            a = _from_sequence(a)
        if not isinstance(a, Tracer):
            return np_fn(a, axis=axis, keepdims=keepdims)
        return prim(a, axis=_ufunc_axes(axis, a.ndim, name), keepdims=bool(keepdims))

    reduce.__name__ = name
    reduce.__doc__ = f"``numpy.{name}`` on traced arrays (a boolean value: no derivative)."
    return reduce


any = _logical_reduction("any", np.any)  # noqa: A001 - NumPy's name
all = _logical_reduction("all", np.all)  # noqa: A001 - NumPy's name
