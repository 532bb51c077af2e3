"""The few array primitives the engine needs itself.

Transforms must add cotangents, cast gradients to their primal's dtype, and reshape, slice,
transpose and broadcast the batched results of ``jacfwd``/``jacrev``/``vmap``. These
structural primitives live here, with rules written in terms of each other, so the engine
never depends on :mod:`diffsys.numpy` (which builds its NumPy surface on top of them).
All shapes and axes are already normalized (non-negative, no ``-1``) by the callers.
"""

from __future__ import annotations

import numpy as np

from .primitive import Primitive

# --- add_any: adding cotangents / tangents of one shape ------------------------------------

add_any = Primitive("add_any", np.add)  # the ufunc itself: graph replays call it directly
add_any.__doc__ = None  # (not np.add's documentation)
add_any.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: g)
add_any.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: t)
# Both operands have the same logical shape: right-aligned broadcasting adds the batch axis.
add_any.defbatch(lambda args, batched: add_any(*args))


def add_values(a, b):
    """``add_any(a, b)``, for accumulating cotangents and tangents: two plain arrays are
    added directly, without primitive dispatch (the common case of a first-order pass)."""
    if a.__class__ is np.ndarray and b.__class__ is np.ndarray:
        return a + b
    return add_any(a, b)


# --- cast: dtype conversion between inexact dtypes ------------------------------------------


def _cast_impl(x, dtype):
    return np.asarray(x, dtype=dtype)


cast = Primitive("cast", _cast_impl)


def _cast_vjp(g, ans, x, dtype):
    x_dtype = _dtype_of(x)
    if np.issubdtype(_dtype_of(g), np.complexfloating) and not np.issubdtype(
        x_dtype, np.complexfloating
    ):
        g = real_part(g)  # a real input receives the real part of a complex cotangent
    return cast(g, dtype=x_dtype)


cast.defvjp(_cast_vjp)
cast.defjvp(lambda t, ans, x, dtype: cast(t, dtype=dtype))
cast.defbatch(lambda args, batched, dtype: cast(args[0], dtype=dtype))


# --- real_part: the real part, used to bring complex cotangents back to real inputs --------


real_part = Primitive("real", lambda x: np.real(x))


def _real_part_vjp(g, ans, x):
    # The output is real, so only the real part of a cotangent pairs with it (as in cast's
    # rule); an imaginary part reaches here from a complex seed for a real output.
    if _dtype_of(g).kind == "c":
        g = real_part(g)
    return cast(g, dtype=_dtype_of(x))


real_part.defvjp(_real_part_vjp)
real_part.defjvp(lambda t, ans, x: real_part(t))
real_part.defbatch(lambda args, batched: real_part(args[0]))


# --- reshape ---------------------------------------------------------------------------------

def _reshape_impl(x, shape):
    # The array method: np.reshape's Python wrapper costs about 0.5 µs more per call.
    return x.reshape(shape) if x.__class__ is np.ndarray else np.reshape(x, shape)


def _transpose_impl(x, axes):
    return x.transpose(axes) if x.__class__ is np.ndarray else np.transpose(x, axes)


reshape = Primitive("reshape", _reshape_impl)
reshape.defvjp(lambda g, ans, x, shape: reshape(g, shape=np.shape(x)))
reshape.defjvp(lambda t, ans, x, shape: reshape(t, shape=shape))
reshape.defbatch(lambda args, batched, shape: reshape(args[0], shape=args[0].shape[:1] + shape))


# --- transpose ---------------------------------------------------------------------------------

transpose = Primitive("transpose", _transpose_impl)
transpose.defvjp(lambda g, ans, x, axes: transpose(g, axes=tuple(np.argsort(axes).tolist())))
transpose.defjvp(lambda t, ans, x, axes: transpose(t, axes=axes))
transpose.defbatch(
    lambda args, batched, axes: transpose(args[0], axes=(0,) + tuple(a + 1 for a in axes))
)


# --- slice_axis / pad_axis: a contiguous block along one axis, and its adjoint ------------------


def _slice_impl(x, start, stop, axis):
    return x[(slice(None),) * axis + (slice(start, stop),)]


def _pad_impl(x, before, after, axis):
    widths = [(0, 0)] * np.ndim(x)
    widths[axis] = (before, after)
    return np.pad(x, widths)


slice_axis = Primitive("slice_axis", _slice_impl)
pad_axis = Primitive("pad_axis", _pad_impl)
slice_axis.defvjp(
    lambda g, ans, x, start, stop, axis: pad_axis(
        g, before=start, after=np.shape(x)[axis] - stop, axis=axis
    )
)
slice_axis.defjvp(
    lambda t, ans, x, start, stop, axis: slice_axis(t, start=start, stop=stop, axis=axis)
)
slice_axis.defbatch(
    lambda args, batched, start, stop, axis: slice_axis(
        args[0], start=start, stop=stop, axis=axis + 1
    )
)
pad_axis.defvjp(
    lambda g, ans, x, before, after, axis: slice_axis(
        g, start=before, stop=before + np.shape(x)[axis], axis=axis
    )
)
pad_axis.defjvp(
    lambda t, ans, x, before, after, axis: pad_axis(t, before=before, after=after, axis=axis)
)
pad_axis.defbatch(
    lambda args, batched, before, after, axis: pad_axis(
        args[0], before=before, after=after, axis=axis + 1
    )
)


# --- broadcast_axis / sum_axis: a new axis of size n, and its adjoint ---------------------------


def _broadcast_axis_impl(x, n, axis):
    x = np.expand_dims(x, axis)
    shape = list(x.shape)
    shape[axis] = n
    return np.broadcast_to(x, shape)


broadcast_axis = Primitive("broadcast_axis", _broadcast_axis_impl)
sum_axis = Primitive("sum_axis", lambda x, axis: np.sum(x, axis=axis))
broadcast_axis.defvjp(lambda g, ans, x, n, axis: sum_axis(g, axis=axis))
broadcast_axis.defjvp(lambda t, ans, x, n, axis: broadcast_axis(t, n=n, axis=axis))
broadcast_axis.defbatch(lambda args, batched, n, axis: broadcast_axis(args[0], n=n, axis=axis + 1))
sum_axis.defvjp(lambda g, ans, x, axis: broadcast_axis(g, n=np.shape(x)[axis], axis=axis))
sum_axis.defjvp(lambda t, ans, x, axis: sum_axis(t, axis=axis))
sum_axis.defbatch(lambda args, batched, axis: sum_axis(args[0], axis=axis + 1))


# --- helpers -----------------------------------------------------------------------------------


def _dtype_of(x) -> np.dtype:
    dtype = getattr(x, "dtype", None)
    return np.result_type(x) if dtype is None else dtype


def zeros_like_value(x) -> np.ndarray:
    """A plain (untraced) array of zeros with the logical shape and dtype of ``x``."""
    return np.zeros(np.shape(x), dtype=_dtype_of(x))


def ones_like_value(x) -> np.ndarray:
    """A plain (untraced) array of ones with the logical shape and dtype of ``x``."""
    return np.ones(np.shape(x), dtype=_dtype_of(x))
