"""Shape operations: reshape, transpose and friends, broadcasting, joining and splitting.

``reshape`` and ``transpose`` are the engine's own structural primitives; most of the rest
are compositions of them. ``broadcast_to`` and ``concatenate`` are primitives here.
"""

from __future__ import annotations

import operator

import numpy as np

from ..core import ad_util
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ._util import (
    array_like,
    batch_size,
    normalize_axes,
    normalize_axis,
    shape_of,
    shared_params,
    unbroadcast,
)

# --- reshape / transpose --------------------------------------------------------------------------


def _resolve_shape(newshape, size: int, op: str) -> tuple[int, ...]:
    if isinstance(newshape, int | np.integer):
        newshape = (newshape,)
    newshape = tuple(operator.index(d) for d in newshape)
    unknown = [i for i, d in enumerate(newshape) if d == -1]
    if len(unknown) > 1:
        raise ValueError(f"{op}: can only specify one unknown dimension (-1), got {newshape}")
    known = 1
    for d in newshape:
        if d != -1:
            known *= d
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"{op}: cannot reshape an array of size {size} into shape {newshape}")
        newshape = tuple(size // known if d == -1 else d for d in newshape)
    elif known != size:
        raise ValueError(f"{op}: cannot reshape an array of size {size} into shape {newshape}")
    return newshape


@array_like("a")
def reshape(a, newshape=None, order: str = "C", *, shape=None):
    """``a`` with a new shape (one dimension may be -1); ``order`` 'C' or 'F'."""
    if shape is not None:
        newshape = shape
    if not isinstance(a, Tracer):
        return np.reshape(a, newshape, order=order)
    target = _resolve_shape(newshape, a.size, "reshape")
    if order == "F":
        flipped = transpose(a)
        return transpose(ad_util.reshape(flipped, shape=target[::-1]))
    if order != "C":
        raise ValueError(f"reshape: order must be 'C' or 'F', got {order!r}")
    if target == a.shape:
        return a
    return ad_util.reshape(a, shape=target)


@array_like("a")
def ravel(a, order: str = "C"):
    """``a`` flattened to one dimension."""
    return reshape(a, (-1,), order=order)


@array_like("a")
def transpose(a, axes=None):
    """``a`` with its axes permuted (reversed when ``axes`` is None)."""
    if not isinstance(a, Tracer):
        return np.transpose(a, axes)
    nd = a.ndim
    if axes is None:
        axes = tuple(range(nd))[::-1]
    else:
        axes = tuple(normalize_axis(ax, nd, "transpose") for ax in axes)
        if sorted(axes) != list(range(nd)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {nd} axes")
    if axes == tuple(range(nd)):
        return a
    return ad_util.transpose(a, axes=axes)


@array_like("a")
def swapaxes(a, axis1: int, axis2: int):
    """``a`` with two axes interchanged."""
    if not isinstance(a, Tracer):
        return np.swapaxes(a, axis1, axis2)
    nd = a.ndim
    order = list(range(nd))
    i, j = normalize_axis(axis1, nd, "swapaxes"), normalize_axis(axis2, nd, "swapaxes")
    order[i], order[j] = order[j], order[i]
    return transpose(a, order)


@array_like("a")
def moveaxis(a, source, destination):
    """``a`` with axes moved to new positions (as ``numpy.moveaxis``)."""
    if not isinstance(a, Tracer):
        return np.moveaxis(a, source, destination)
    nd = a.ndim
    src = [source] if isinstance(source, int | np.integer) else list(source)
    dst = [destination] if isinstance(destination, int | np.integer) else list(destination)
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of axes")
    src = [normalize_axis(s, nd, "moveaxis") for s in src]
    dst = [normalize_axis(d, nd, "moveaxis") for d in dst]
    for name, axes in (("source", src), ("destination", dst)):
        if len(set(axes)) != len(axes):
            raise ValueError(f"moveaxis: repeated axis in `{name}` argument: {axes}")
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return transpose(a, order)


@array_like("a")
def expand_dims(a, axis):
    """``a`` with new axes of length one inserted at ``axis``."""
    if not isinstance(a, Tracer):
        return np.expand_dims(a, axis)
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    nd = a.ndim + len(axes)
    axes = normalize_axes(axes, nd, "expand_dims")
    shape = iter(a.shape)
    return ad_util.reshape(a, shape=tuple(1 if i in axes else next(shape) for i in range(nd)))


@array_like("a")
def squeeze(a, axis=None):
    """``a`` without the given length-one axes (all of them when ``axis`` is None)."""
    if not isinstance(a, Tracer):
        return np.squeeze(a, axis)
    shape = a.shape
    if axis is None:
        axes = tuple(i for i, d in enumerate(shape) if d == 1)
    else:
        axes = normalize_axes(axis, a.ndim, "squeeze")
        bad = [i for i in axes if shape[i] != 1]
        if bad:
            raise ValueError(
                f"squeeze: cannot select an axis to squeeze out which has size not equal to "
                f"one (axis {bad[0]} of shape {shape})"
            )
    return ad_util.reshape(a, shape=tuple(d for i, d in enumerate(shape) if i not in axes))


@array_like("arys")
def atleast_1d(*arys):
    """Inputs viewed with at least one dimension."""
    res = [reshape(a, (1,)) if np.ndim(a) == 0 else a for a in map(asarray_any, arys)]
    return res[0] if len(res) == 1 else res


@array_like("arys")
def atleast_2d(*arys):
    """Inputs viewed with at least two dimensions."""
    res = []
    for a in map(asarray_any, arys):
        nd = np.ndim(a)
        res.append(reshape(a, (1, 1)) if nd == 0 else reshape(a, (1, -1)) if nd == 1 else a)
    return res[0] if len(res) == 1 else res


@array_like("arys")
def atleast_3d(*arys):
    """Inputs viewed with at least three dimensions (as ``numpy.atleast_3d``)."""
    res = []
    for a in map(asarray_any, arys):
        nd = np.ndim(a)
        if nd == 0:
            a = reshape(a, (1, 1, 1))
        elif nd == 1:
            a = reshape(a, (1, -1, 1))
        elif nd == 2:
            a = expand_dims(a, -1)
        res.append(a)
    return res[0] if len(res) == 1 else res


def asarray_any(a):
    """A tracer as it is; anything else as a NumPy array."""
    return a if isinstance(a, Tracer | np.ndarray) else np.asarray(a)


# --- broadcast_to ------------------------------------------------------------------------------


def _broadcast_batch(args, batched, shape):
    x = args[0]
    xs = shape_of(x)
    core = xs[1:]
    x = ad_util.reshape(x, shape=xs[:1] + (1,) * (len(shape) - len(core)) + core)
    return broadcast_to_p(x, shape=xs[:1] + tuple(shape))


def broadcast_view(x, shape: tuple[int, ...]):
    """``np.broadcast_to(x, shape)`` (a read-only view) for a plain array whose shape is known
    to broadcast to ``shape``; for a C-contiguous ``x`` it builds the view directly, which
    saves ``np.broadcast_to``'s Python-level argument handling (about 2 µs per call)."""
    if x.__class__ is not np.ndarray or not x.flags.c_contiguous:
        return np.broadcast_to(x, shape)
    lead = len(shape) - x.ndim
    strides = [0] * lead
    for d, n, st in zip(x.shape, shape[lead:], x.strides, strict=True):
        if d == n:
            strides.append(st)
        elif d == 1:
            strides.append(0)
        else:  # not broadcastable: NumPy's own error
            return np.broadcast_to(x, shape)
    out = np.ndarray(shape, x.dtype, x, 0, tuple(strides))
    out.setflags(write=False)
    return out


broadcast_to_p = Primitive("broadcast_to", lambda x, shape: broadcast_view(x, shape))
broadcast_to_p.defvjp(lambda g, ans, x, shape: unbroadcast(g, x))
broadcast_to_p.defjvp(lambda t, ans, x, shape: broadcast_to_p(t, shape=shape))
broadcast_to_p.defbatch(_broadcast_batch)


@array_like("array")
def broadcast_to(array, shape):
    """``array`` broadcast to ``shape`` (a read-only view outside transforms, as in NumPy)."""
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    if not isinstance(array, Tracer):
        return np.broadcast_to(array, shape)
    np.broadcast_shapes(array.shape, shape)  # raises NumPy's clear error when incompatible
    if array.shape == shape:
        return array
    return broadcast_to_p(array, shape=shape)


@array_like("args")
def broadcast_arrays(*args):
    """The arguments broadcast against each other."""
    shape = np.broadcast_shapes(*[shape_of(a) for a in args])
    return [broadcast_to(a, shape) for a in args]


# --- concatenate / stack ----------------------------------------------------------------------


def _concat_impl(*arrays, axis):
    return np.concatenate(arrays, axis=axis)


def _concat_vjp(k):
    def rule(g, ans, *arrays, axis):
        start = 0
        for a in arrays[:k]:
            start += a.shape[axis]
        stop = start + arrays[k].shape[axis]
        return ad_util.slice_axis(g, start=start, stop=stop, axis=axis)

    return rule


def _concat_jvp(primals, tangents, ans, axis):
    ts = [
        ad_util.zeros_like_value(p) if t is None else t
        for p, t in zip(primals, tangents, strict=True)
    ]
    return concatenate_p(*ts, axis=axis)


def _concat_batch(args, batched, axis):
    n = batch_size(args, batched)
    args = [
        a if b else ad_util.broadcast_axis(a, n=n, axis=0)
        for a, b in zip(args, batched, strict=True)
    ]
    return concatenate_p(*args, axis=axis + 1)


concatenate_p = Primitive("concatenate", _concat_impl)
concatenate_p.defvjp_variadic(_concat_vjp)
concatenate_p.defjvp_all(_concat_jvp)
concatenate_p.defbatch(_concat_batch)


_AXIS_PARAMS: dict[int, dict] = {}  # one {"axis": k} per axis: see shared_params


@array_like(sequences=("arrays",))
def concatenate(arrays, axis: int | None = 0):
    """Join arrays along an existing axis (flattened first when ``axis`` is None)."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array to concatenate")
    for a in arrays:
        if isinstance(a, Tracer):
            break
    else:
        return np.concatenate(arrays, axis=axis)
    arrays = [asarray_any(a) for a in arrays]
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    ref = arrays[0].shape
    nd = len(ref)
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    if axis.__class__ is not int or not -nd <= axis < nd:
        axis = normalize_axis(axis, nd, "concatenate")  # checks, and names the error
    elif axis < 0:
        axis += nd
    ref_rest = ref[:axis] + ref[axis + 1 :]  # every shape must match this off the axis
    for i, a in enumerate(arrays):
        s = a.shape
        if len(s) != nd or s[:axis] + s[axis + 1 :] != ref_rest:
            raise ValueError(
                f"concatenate: all input array dimensions except for the concatenation axis "
                f"must match exactly: array 0 has shape {ref}, array {i} has shape {s} "
                f"(axis {axis})"
            )
    if len(arrays) == 1:
        return arrays[0]
    return concatenate_p.call_with(tuple(arrays), shared_params(_AXIS_PARAMS, axis, axis=axis))


@array_like(sequences=("arrays",))
def stack(arrays, axis: int = 0):
    """Join arrays along a new axis."""
    arrays = [asarray_any(a) for a in arrays]
    if not arrays:
        raise ValueError("stack: need at least one array to stack")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all input arrays must have the same shape, got {sorted(shapes)}")
    if not any(isinstance(a, Tracer) for a in arrays):
        return np.stack(arrays, axis=axis)
    axis = normalize_axis(axis, np.ndim(arrays[0]) + 1, "stack")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


@array_like(sequences=("tup",))
def hstack(tup):
    """Stack arrays horizontally (column-wise)."""
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if np.ndim(arrs[0]) == 1 else 1)


@array_like(sequences=("tup",))
def vstack(tup):
    """Stack arrays vertically (row-wise)."""
    return concatenate([atleast_2d(a) for a in tup], axis=0)


row_stack = vstack  # NumPy's alias (deprecated there since 2.0)


@array_like(sequences=("tup",))
def dstack(tup):
    """Stack arrays along the third axis."""
    return concatenate([atleast_3d(a) for a in tup], axis=2)


@array_like(sequences=("tup",))
def column_stack(tup):
    """Stack 1-D arrays as columns of a 2-D array."""
    cols = [reshape(a, (-1, 1)) if np.ndim(a) < 2 else a for a in map(asarray_any, tup)]
    return concatenate(cols, axis=1)


# --- split -------------------------------------------------------------------------------------


def _split_bounds(n: int, indices_or_sections, strict: bool, op: str):
    if isinstance(indices_or_sections, int | np.integer):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(f"{op}: number of sections must be larger than 0")
        if strict and n % sections:
            raise ValueError(
                f"{op}: array of length {n} does not divide into {sections} equal sections"
            )
        base, extra = divmod(n, sections)
        sizes = [base + 1] * extra + [base] * (sections - extra)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    return [
        (min(max(a, 0), n), min(max(b, 0), n)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _split(a, indices_or_sections, axis, strict, op):
    if not isinstance(a, Tracer):
        fn = np.split if strict else np.array_split
        return fn(a, indices_or_sections, axis=axis)
    axis = normalize_axis(axis, a.ndim, op)
    out = []
    for start, stop in _split_bounds(a.shape[axis], indices_or_sections, strict, op):
        out.append(ad_util.slice_axis(a, start=start, stop=max(start, stop), axis=axis))
    return out


def split(ary, indices_or_sections, axis: int = 0):
    """Split into equal sections, or at the given indices, along ``axis``."""
    return _split(ary, indices_or_sections, axis, True, "split")


@array_like("ary")
def array_split(ary, indices_or_sections, axis: int = 0):
    """Like :func:`split`, allowing sections of unequal size."""
    return _split(ary, indices_or_sections, axis, False, "array_split")


def hsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=1 if np.ndim(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=2)


@array_like("arr", "values")
def append(arr, values, axis=None):
    """``values`` appended to ``arr`` (both flattened when ``axis`` is None), as NumPy."""
    if not isinstance(arr, Tracer) and not isinstance(values, Tracer):
        return np.append(arr, values, axis=axis)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def rollaxis(a, axis: int, start: int = 0):
    """Move ``axis`` to stand before position ``start`` (NumPy's older ``moveaxis``)."""
    if not isinstance(a, Tracer):
        return np.rollaxis(a, axis, start)
    n = len(shape_of(a))
    axis = normalize_axis(axis, n, "rollaxis")
    if not -n <= start <= n:
        raise np.exceptions.AxisError(
            f"rollaxis: start {start} is out of bounds for an array of dimension {n}"
        )
    start = start + n if start < 0 else start
    if axis < start:
        start -= 1
    return a if axis == start else moveaxis(a, axis, start)
