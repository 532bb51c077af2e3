"""Shape, ordering, gather and sort functions as compositions of differentiable primitives.

Every function here is built from ``getitem`` (basic slices or integer index arrays),
``concatenate``, ``reshape``, ``broadcast_to``, ``where`` and the arithmetic primitives, so
derivatives of every order and batching come from theirs. The only new primitives are the
integer-valued ``argsort``, ``argpartition`` and ``searchsorted`` (no derivative, as in
autograd and JAX): ``sort(x)`` is ``take_along_axis(x, argsort(x))``, and its gradient flows
through the permutation.

Outside any transform, every function returns NumPy's own result.
"""

from __future__ import annotations

import numpy as np

from ..core.primitive import Primitive
from ..core.tracer import Tracer, concrete
from . import _elementwise as ew
from ._creation import asarray
from ._indexing import at, getitem
from ._reductions import sum as _sum
from ._shape import (
    broadcast_arrays,
    broadcast_to,
    concatenate,
    moveaxis,
    ravel,
    reshape,
    stack,
    transpose,
)
from ._util import array_like, dtype_of, ndim_of, normalize_axes, normalize_axis, shape_of


def _traced(*xs) -> bool:
    for x in xs:
        if isinstance(x, Tracer):
            return True
        if isinstance(x, list | tuple) and _traced(*x):
            return True
    return False


def _arr(x):
    """A tracer unchanged; anything else as a NumPy array (lists may hold tracers)."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, list | tuple) and _traced(*x):
        return asarray(x)
    return np.asarray(x)


def _along(axis: int, item, ndim: int) -> tuple:
    """An index that applies ``item`` along ``axis`` and keeps the other axes whole."""
    return (slice(None),) * axis + (item,) + (slice(None),) * (ndim - axis - 1)


def _take_axis(x, idx, axis: int):
    return getitem(x, _along(axis, idx, ndim_of(x)))


# --- flips, rolls, rotations ----------------------------------------------------------------------


def flip(m, axis=None):
    """Reverse the order of elements along the given axes (as ``numpy.flip``)."""
    if not _traced(m):
        return np.flip(m, axis=axis)
    m = _arr(m)
    axes = normalize_axes(axis, m.ndim, "flip")
    return getitem(
        m, tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(m.ndim))
    )


@array_like("m")
def fliplr(m):
    """Reverse the order of columns (axis 1)."""
    if not _traced(m):
        return np.fliplr(m)
    if ndim_of(m) < 2:
        raise ValueError("fliplr: the input must be at least 2-D")
    return flip(m, 1)


@array_like("m")
def flipud(m):
    """Reverse the order of rows (axis 0)."""
    if not _traced(m):
        return np.flipud(m)
    if ndim_of(m) < 1:
        raise ValueError("flipud: the input must be at least 1-D")
    return flip(m, 0)


def roll(a, shift, axis=None):
    """Roll elements along the given axes; elements that leave one end enter at the other."""
    if not _traced(a):
        return np.roll(a, shift, axis=axis)
    a = _arr(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    shifts, axes = np.broadcast_arrays(np.asarray(concrete(shift)), np.asarray(axis))
    total: dict[int, int] = {}
    for s, ax in zip(shifts.ravel(), axes.ravel(), strict=True):
        k = normalize_axis(int(ax), a.ndim, "roll")
        total[k] = total.get(k, 0) + int(s)
    for k, s in total.items():
        n = a.shape[k]
        if n == 0:
            continue
        s %= n
        if s:
            a = concatenate(
                [_take_axis(a, slice(n - s, None), k), _take_axis(a, slice(0, n - s), k)], axis=k
            )
    return a


def rot90(m, k: int = 1, axes=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``axes`` (as ``numpy.rot90``)."""
    if not _traced(m):
        return np.rot90(m, k, axes)
    m = _arr(m)
    if len(axes) != 2:
        raise ValueError("rot90: len(axes) must be 2")
    a0, a1 = (normalize_axis(a, m.ndim, "rot90") for a in axes)
    if a0 == a1:
        raise ValueError("rot90: axes must be different")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(m.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return transpose(flip(m, a1), perm)
    return flip(transpose(m, perm), a1)


# --- tiling, repetition, padding ------------------------------------------------------------------


def tile(A, reps):
    """Repeat ``A`` the number of times given by ``reps`` along each axis."""
    if not _traced(A):
        return np.tile(A, reps)
    A = _arr(A)
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    d = max(len(reps), A.ndim)
    reps = (1,) * (d - len(reps)) + reps
    shape = (1,) * (d - A.ndim) + tuple(A.shape)
    x = reshape(A, tuple(v for s in shape for v in (1, s)))
    x = broadcast_to(x, tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s)))
    return reshape(x, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(a, repeats, axis=None):
    """Repeat each element ``repeats`` times along ``axis`` (flattened when ``None``)."""
    if not _traced(a):
        return np.repeat(a, concrete(repeats), axis=axis)
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axis(axis, a.ndim, "repeat")
    idx = np.repeat(np.arange(a.shape[axis]), concrete(repeats))
    return _take_axis(a, idx, axis)


def _pairs(value, ndim: int, op: str, name: str):
    """``pad_width``/``constant_values`` as one (before, after) pair per axis."""
    v = np.asarray(value, dtype=object)
    if v.ndim == 0:
        return [(value, value)] * ndim
    try:
        v = np.broadcast_to(v, (ndim, 2))
    except ValueError:
        raise ValueError(
            f"{op}: {name} {value!r} cannot be read as (before, after) pairs for {ndim} axes"
        ) from None
    return [tuple(p) for p in v]


def pad(array, pad_width, mode: str = "constant", **kwargs):
    """Pad an array (modes ``constant``, ``edge``, ``reflect``, ``symmetric``, ``wrap``).

    Differentiable in ``array`` and (``constant`` mode) in ``constant_values``.
    """
    if not _traced(array, kwargs.get("constant_values", 0)):
        return np.pad(array, pad_width, mode=mode, **kwargs)
    x = _arr(array)
    widths = [(int(b), int(a)) for b, a in _pairs(concrete(pad_width), x.ndim, "pad", "pad_width")]
    if any(b < 0 or a < 0 for b, a in widths):
        raise ValueError("pad: pad_width must not be negative")
    if mode == "constant":
        extra = set(kwargs) - {"constant_values"}
        if extra:
            raise TypeError(
                f"pad: unsupported keyword arguments for mode 'constant': {sorted(extra)}"
            )
        cv = kwargs.get("constant_values", 0)
        if isinstance(cv, Tracer) and cv.ndim == 0:
            values = [(cv, cv)] * x.ndim
        elif isinstance(cv, Tracer):
            cv2 = broadcast_to(cv, (x.ndim, 2))
            values = [(cv2[i, 0], cv2[i, 1]) for i in range(x.ndim)]
        else:
            values = _pairs(cv, x.ndim, "pad", "constant_values")
        dtype = dtype_of(x)
        for axis, ((b, a), (vb, va)) in enumerate(zip(widths, values, strict=True)):
            if not b and not a:
                continue
            parts = []
            shape = list(shape_of(x))
            if b:
                shape[axis] = b
                parts.append(broadcast_to(ew.add(np.zeros((), dtype), vb), tuple(shape)))
            parts.append(x)
            if a:
                shape[axis] = a
                parts.append(broadcast_to(ew.add(np.zeros((), dtype), va), tuple(shape)))
            x = concatenate(parts, axis=axis)
            if dtype_of(x) != dtype:
                x = x.astype(dtype)
        return x
    if mode in ("maximum", "minimum", "mean", "median", "linear_ramp"):
        return _pad_computed(x, widths, mode, kwargs)
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise NotImplementedError(f"pad: mode {mode!r} is not supported under transforms")
    if kwargs.get("reflect_type", "even") != "even":
        raise NotImplementedError("pad: reflect_type='odd' is not supported under transforms")
    kwargs.pop("reflect_type", None)
    if kwargs:
        raise TypeError(f"pad: unsupported keyword arguments: {sorted(kwargs)}")
    for axis, (b, a) in enumerate(widths):
        if not b and not a:
            continue
        n = x.shape[axis]
        if n == 0:
            raise ValueError(f"pad: can't extend the empty axis {axis} using mode {mode!r}")
        idx = np.pad(np.arange(n), (b, a), mode=mode)
        x = _take_axis(x, idx, axis)
    return x


def _pad_computed(x, widths, mode, kwargs):
    """Pad modes whose values are computed from the array: statistics of the edge slices
    (``maximum``, ``minimum``, ``mean``, ``median`` with ``stat_length``) and ``linear_ramp``
    (to ``end_values``). Axis by axis, as NumPy, so later axes see earlier padding."""
    from . import _reductions as red

    key = "end_values" if mode == "linear_ramp" else "stat_length"
    extra = set(kwargs) - {key}
    if extra:
        raise TypeError(f"pad: unsupported keyword arguments for mode {mode!r}: {sorted(extra)}")
    param = kwargs.get(key)
    if mode == "linear_ramp":
        param = _pairs(0 if param is None else concrete(param), x.ndim, "pad", key)
    elif param is not None:
        param = _pairs(concrete(param), x.ndim, "pad", key)
    dtype = dtype_of(x)
    for axis, (b, a) in enumerate(widths):
        if not b and not a:
            continue
        n = x.shape[axis]
        parts = []
        for width, before in ((b, True), (a, False)):
            if not width:
                continue
            shape = list(shape_of(x))
            shape[axis] = width
            if mode == "linear_ramp":
                end = float(param[axis][0 if before else 1])
                edge = _take_axis(x, slice(0, 1) if before else slice(n - 1, n), axis)
                steps = np.arange(width) / width
                if not before:
                    steps = steps[::-1]
                s = [1] * x.ndim
                s[axis] = width
                ramp = np.asarray(steps, dtype).reshape(s)
                parts.append(ew.add((edge - end) * ramp, np.asarray(end, dtype)))
                continue
            if n == 0:
                raise ValueError(f"pad: can't extend the empty axis {axis} using mode {mode!r}")
            k = n if param is None else max(1, min(int(param[axis][0 if before else 1]), n))
            window = _take_axis(x, slice(0, k) if before else slice(n - k, n), axis)
            if mode == "median":
                from ._statistics import median

                stat = median(window, axis=axis, keepdims=True)
            else:
                fn = {"maximum": red.max, "minimum": red.min, "mean": red.mean}[mode]
                stat = fn(window, axis=axis, keepdims=True)
            parts.append(broadcast_to(stat, tuple(shape)))
        if b:
            x = concatenate([parts[0], x] + parts[1:], axis=axis)
        else:
            x = concatenate([x] + parts, axis=axis)
    return x


def diff(a, n: int = 1, axis: int = -1, prepend=None, append=None):
    """The ``n``-th discrete difference along ``axis``."""
    if not _traced(a, prepend, append):
        kw = {}
        if prepend is not None:
            kw["prepend"] = prepend
        if append is not None:
            kw["append"] = append
        return np.diff(a, n=n, axis=axis, **kw)
    a = _arr(a)
    if n < 0:
        raise ValueError(f"diff: order must be non-negative but got {n!r}")
    if a.ndim == 0:
        raise ValueError("diff: requires input that is at least one dimensional")
    axis = normalize_axis(axis, a.ndim, "diff")
    parts = []
    for extra in (prepend, append):
        if extra is None:
            parts.append(None)
            continue
        extra = _arr(extra)
        if ndim_of(extra) == 0:
            shape = list(a.shape)
            shape[axis] = 1
            extra = broadcast_to(extra, tuple(shape))
        parts.append(extra)
    seq = [p for p in (parts[0], a, parts[1]) if p is not None]
    if len(seq) > 1:
        a = concatenate(seq, axis=axis)
    for _ in range(n):
        m = a.shape[axis]
        a = ew.subtract(
            _take_axis(a, slice(1, None), axis), _take_axis(a, slice(0, max(m - 1, 0)), axis)
        )
    return a


# --- triangles and diagonals ----------------------------------------------------------------------


def _tri_mask(shape, k, lower: bool):
    n, m = shape[-2], shape[-1]
    tri = np.tri(n, m, k=k, dtype=bool)
    return tri if lower else ~np.tri(n, m, k=k - 1, dtype=bool)


def triu(m, k: int = 0):
    """The upper triangle of (each matrix in) ``m``; elements below the ``k``-th diagonal are 0."""
    if not _traced(m):
        return np.triu(m, k)
    m = _arr(m)
    if m.ndim < 2:
        m = broadcast_to(m, (m.shape[-1],) * 2 if m.ndim else (1, 1))
    return ew.where(_tri_mask(m.shape, k, lower=False), m, np.zeros((), dtype_of(m)))


def tril(m, k: int = 0):
    """The lower triangle of (each matrix in) ``m``; elements above the ``k``-th diagonal are 0."""
    if not _traced(m):
        return np.tril(m, k)
    m = _arr(m)
    if m.ndim < 2:
        m = broadcast_to(m, (m.shape[-1],) * 2 if m.ndim else (1, 1))
    return ew.where(_tri_mask(m.shape, k, lower=True), m, np.zeros((), dtype_of(m)))


def _diag_indices(n: int, m: int, k: int):
    if k >= 0:
        length = max(min(n, m - k), 0)
        rows = np.arange(length)
        return rows, rows + k
    length = max(min(n + k, m), 0)
    cols = np.arange(length)
    return cols - k, cols


def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1):
    """The ``offset`` diagonal over ``axis1``/``axis2``, as the last axis of the result."""
    if not _traced(a):
        return np.diagonal(a, offset, axis1, axis2)
    a = _arr(a)
    if a.ndim < 2:
        raise ValueError("diagonal: the input must be at least 2-D")
    a1, a2 = normalize_axis(axis1, a.ndim, "diagonal"), normalize_axis(axis2, a.ndim, "diagonal")
    if a1 == a2:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    a = moveaxis(a, (a1, a2), (-2, -1))
    rows, cols = _diag_indices(a.shape[-2], a.shape[-1], int(offset))
    return getitem(a, (Ellipsis, rows, cols))


def trace(a, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype=None):
    """The sum along a diagonal (as ``numpy.trace``)."""
    if not _traced(a):
        return np.trace(a, offset, axis1, axis2, dtype=dtype)
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def diag(v, k: int = 0):
    """A 2-D array's ``k``-th diagonal, or a 2-D array with the 1-D ``v`` on that diagonal."""
    if not _traced(v):
        return np.diag(v, k)
    v = _arr(v)
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ValueError("diag: the input must be 1-D or 2-D")
    n = v.shape[0] + abs(int(k))
    rows, cols = _diag_indices(n, n, int(k))
    return at(np.zeros((n, n), dtype_of(v)))[rows, cols].set(v)


def diagflat(v, k: int = 0):
    """A 2-D array with the flattened ``v`` on its ``k``-th diagonal."""
    if not _traced(v):
        return np.diagflat(v, k)
    return diag(ravel(_arr(v)), k)


# --- products of shapes -------------------------------------------------------------------------


def kron(a, b):
    """The Kronecker product (as ``numpy.kron``)."""
    if not _traced(a, b):
        return np.kron(a, b)
    a, b = _arr(a), _arr(b)
    d = max(a.ndim, b.ndim)
    sa = (1,) * (d - a.ndim) + tuple(shape_of(a))
    sb = (1,) * (d - b.ndim) + tuple(shape_of(b))
    x = reshape(a, tuple(v for s in sa for v in (s, 1)))
    y = reshape(b, tuple(v for s in sb for v in (1, s)))
    return reshape(ew.multiply(x, y), tuple(p * q for p, q in zip(sa, sb, strict=True)))


def cross(a, b, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis=None):
    """The cross product of 2- or 3-element vectors (as ``numpy.cross``)."""
    if not _traced(a, b):
        return np.cross(a, b, axisa, axisb, axisc, axis)
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(_arr(a), axisa, -1)
    b = moveaxis(_arr(b), axisb, -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(
            "cross: incompatible dimensions for cross product (dimension must be 2 or 3)"
        )
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    z = a0 * b1 - a1 * b0
    if na == 2 and nb == 2:
        return z
    if na == 3 and nb == 3:
        a2, b2 = a[..., 2], b[..., 2]
        c0, c1 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2
    elif na == 2:
        b2 = b[..., 2]
        c0, c1 = a1 * b2, ew.negative(a0 * b2)
    else:
        a2 = a[..., 2]
        c0, c1 = ew.negative(a2 * b1), a2 * b0
    c0, c1, z = broadcast_arrays(c0, c1, z)
    out = stack([c0, c1, z], axis=-1)
    return moveaxis(out, -1, axisc)


def meshgrid(*xi, copy: bool = True, sparse: bool = False, indexing: str = "xy"):
    """Coordinate matrices from coordinate vectors (as ``numpy.meshgrid``)."""
    if not _traced(*xi):
        return np.meshgrid(*xi, copy=copy, sparse=sparse, indexing=indexing)
    if indexing not in ("xy", "ij"):
        raise ValueError("meshgrid: indexing must be 'xy' or 'ij'")
    nd = len(xi)
    out = []
    for i, x in enumerate(xi):
        shape = [1] * nd
        shape[i] = -1
        out.append(reshape(ravel(_arr(x)), tuple(shape)))
    if indexing == "xy" and nd > 1:
        out = [moveaxis(o, (0, 1), (1, 0)) for o in out]
    if not sparse:
        out = list(broadcast_arrays(*out))
    return out


# --- gather ---------------------------------------------------------------------------------------


def _wrap_indices(idx, n: int, mode: str, op: str):
    if mode == "raise":
        return idx
    idx = np.asarray(concrete(idx))
    if mode == "wrap":
        return np.mod(idx, n)
    if mode == "clip":
        return np.clip(idx, 0, n - 1)
    raise ValueError(f"{op}: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")


def take(a, indices, axis=None, mode: str = "raise"):
    """Elements of ``a`` at ``indices`` along ``axis`` (flattened when ``None``)."""
    if not _traced(a, indices):
        return np.take(a, indices, axis=axis, mode=mode)
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axis(axis, a.ndim, "take")
    indices = _wrap_indices(indices, a.shape[axis], mode, "take")
    if not isinstance(indices, Tracer):
        indices = np.asarray(indices)
        if indices.ndim == 0:
            indices = int(indices)
    return _take_axis(a, indices, axis)


def _along_axis_index(shape, indices, axis: int) -> tuple:
    """The advanced index that picks ``indices`` along ``axis`` and aligns the other axes."""
    nd = len(shape)
    ishape = shape_of(indices)
    if len(ishape) != nd:
        raise ValueError(
            f"take_along_axis: indices (shape {ishape}) and arr (shape {tuple(shape)}) must have "
            "the same number of dimensions"
        )
    idx = []
    for d in range(nd):
        if d == axis:
            idx.append(indices)
        else:
            s = [1] * nd
            s[d] = shape[d]
            idx.append(np.arange(shape[d]).reshape(s))
    return tuple(idx)


def take_along_axis(arr, indices, axis=-1):
    """Values at ``indices`` along ``axis``, matched with the other axes (as NumPy)."""
    if not _traced(arr, indices):
        return np.take_along_axis(arr, indices, axis=axis)
    arr = _arr(arr)
    if axis is None:
        arr, axis = ravel(arr), 0
    axis = normalize_axis(axis, arr.ndim, "take_along_axis")
    if not isinstance(indices, Tracer):
        indices = np.asarray(indices)
    return getitem(arr, _along_axis_index(arr.shape, indices, axis))


@array_like("values")
def put_along_axis(arr, indices, values, axis):
    """A copy of ``arr`` with ``values`` put at ``indices`` along ``axis`` (functional form of
    ``numpy.put_along_axis``; differentiable in ``arr`` and ``values``)."""
    if not _traced(arr, indices, values):
        out = np.array(arr, copy=True)
        np.put_along_axis(out, np.asarray(indices), values, axis)
        return out
    arr = _arr(arr)
    shape = arr.shape
    if axis is None:
        arr, axis = ravel(arr), 0
    axis = normalize_axis(axis, arr.ndim, "put_along_axis")
    if not isinstance(indices, Tracer):
        indices = np.asarray(indices)
    idx = _along_axis_index(arr.shape, indices, axis)
    region = np.broadcast_shapes(*(shape_of(i) for i in idx))
    values = broadcast_to(ew.add(np.zeros((), dtype_of(arr)), values), region)
    if dtype_of(values) != dtype_of(arr):  # NumPy casts the values to the array's dtype
        values = values.astype(dtype_of(arr))
    if not isinstance(indices, Tracer) and indices.size:
        # Repeated positions: NumPy keeps the last write. Set only those writes, so that
        # overwritten values get no gradient.
        full = [np.broadcast_to(i, region).ravel() for i in idx]
        flat = np.ravel_multi_index(
            tuple(i % n for i, n in zip(full, arr.shape, strict=True)), arr.shape
        )
        _, first_of_reversed = np.unique(flat[::-1], return_index=True)
        if len(first_of_reversed) < len(flat):
            keep = np.sort(len(flat) - 1 - first_of_reversed)
            idx = tuple(i[keep] for i in full)
            values = getitem(reshape(values, (-1,)), keep)
    out = at(arr)[idx].set(values)
    return reshape(out, shape) if shape_of(out) != shape else out


@array_like("a", sequences=("choices",))
def choose(a, choices, mode: str = "raise"):
    """Elements of ``choices[a]`` (as ``numpy.choose``); differentiable in the choices."""
    if not _traced(a, choices):
        return np.choose(a, choices, mode=mode)
    choices = (
        list(choices)
        if isinstance(choices, list | tuple)
        else [choices[i] for i in range(shape_of(choices)[0])]
    )
    a = _wrap_indices(a, len(choices), mode, "choose")
    weak = (int, float, complex)
    dtype = np.result_type(*[c if type(c) in weak else dtype_of(c) for c in choices])
    choices = [np.asarray(c, dtype) if type(c) in weak else _arr(c) for c in choices]
    arrays = broadcast_arrays(a, *choices)
    a, cs = arrays[0], arrays[1:]
    stacked = stack(cs, axis=0)
    return take_along_axis(stacked, reshape(a, (1,) + tuple(shape_of(a))), axis=0)[0]


@array_like(sequences=("condlist", "choicelist"))
def select(condlist, choicelist, default=0):
    """Elements from ``choicelist`` by the first true condition of ``condlist``."""
    if not _traced(condlist, choicelist, default):
        return np.select(condlist, choicelist, default)
    if len(condlist) != len(choicelist):
        raise ValueError("select: list of cases must be same length as list of conditions")
    dtype = np.result_type(*[dtype_of(c) for c in choicelist])
    out = ew.add(np.zeros((), dtype), default)
    for cond, choice in zip(reversed(list(condlist)), reversed(list(choicelist)), strict=True):
        out = ew.where(cond, choice, out)
    shape = np.broadcast_shapes(
        *[shape_of(c) for c in list(condlist) + list(choicelist)], shape_of(default)
    )
    return broadcast_to(out, shape)


def compress(condition, a, axis=None):
    """Slices of ``a`` along ``axis`` where ``condition`` is true."""
    if not _traced(condition, a):
        return np.compress(condition, a, axis=axis)
    cond = np.asarray(concrete(condition), dtype=bool).ravel()
    return take(a, np.nonzero(cond)[0], axis=axis)


# --- sort -----------------------------------------------------------------------------------------


def _axis_batch(prim):
    def rule(args, batched, axis, **params):
        return prim(args[0], axis=axis + 1, **params)

    prim.defbatch(rule)
    return prim


argsort_p = _axis_batch(
    Primitive(
        "argsort",
        lambda x, axis, kind, stable: np.argsort(x, axis=axis, kind=kind, stable=stable),
        zero_derivative=True,
    )
)
argpartition_p = _axis_batch(
    Primitive(
        "argpartition",
        lambda x, axis, kth: np.argpartition(x, kth, axis=axis),
        zero_derivative=True,
    )
)


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Indices that sort ``a`` along ``axis`` (integer values: no derivative)."""
    if not _traced(a):
        return np.argsort(a, axis=axis, kind=kind, order=order, stable=stable)
    if order is not None:
        raise NotImplementedError(
            "argsort: order= (structured arrays) is not supported under transforms"
        )
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    return argsort_p(a, axis=normalize_axis(axis, a.ndim, "argsort"), kind=kind, stable=stable)


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """``a`` sorted along ``axis``; the gradient flows back through the sorting permutation."""
    if not _traced(a):
        return np.sort(a, axis=axis, kind=kind, order=order, stable=stable)
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axis(axis, a.ndim, "sort")
    return take_along_axis(a, argsort(a, axis, kind, order, stable=stable), axis)


def argpartition(a, kth, axis=-1, kind: str = "introselect", order=None):
    """Indices that partition ``a`` around ``kth`` (integer values: no derivative)."""
    if not _traced(a):
        return np.argpartition(a, kth, axis=axis, kind=kind, order=order)
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    kth = concrete(kth)
    kth = int(kth) if np.ndim(kth) == 0 else tuple(int(k) for k in np.ravel(kth))
    return argpartition_p(a, axis=normalize_axis(axis, a.ndim, "argpartition"), kth=kth)


def partition(a, kth, axis=-1, kind: str = "introselect", order=None):
    """``a`` partitioned around ``kth``; values differentiable through the permutation."""
    if not _traced(a):
        return np.partition(a, kth, axis=axis, kind=kind, order=order)
    a = _arr(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = normalize_axis(axis, a.ndim, "partition")
    return take_along_axis(a, argpartition(a, kth, axis), axis)


searchsorted_p = Primitive(
    "searchsorted",
    lambda a, v, side, sorter: np.searchsorted(a, v, side=side, sorter=sorter),
    zero_derivative=True,
)


def searchsorted(a, v, side: str = "left", sorter=None):
    """Indices where ``v`` would be inserted into the sorted ``a`` (values: no derivative)."""
    if not _traced(a, v):
        return np.searchsorted(a, v, side=side, sorter=sorter)
    if sorter is not None:
        sorter = np.asarray(concrete(sorter))
        a = take(a, sorter)
        sorter = None
    return searchsorted_p(_arr(a), _arr(v), side=side, sorter=None)


def unique(
    ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *, equal_nan=True
):
    """The sorted unique values of ``ar`` (differentiable in the values: each unique value
    takes the gradient of its first occurrence); indices and counts as NumPy's."""
    if not _traced(ar):
        return np.unique(
            ar,
            return_index=return_index,
            return_inverse=return_inverse,
            return_counts=return_counts,
            axis=axis,
            equal_nan=equal_nan,
        )
    ar = _arr(ar)
    res = np.unique(
        np.asarray(concrete(ar)),
        return_index=True,
        return_inverse=return_inverse,
        return_counts=return_counts,
        axis=axis,
        equal_nan=equal_nan,
    )
    first = res[1]
    values = take(ravel(ar), first) if axis is None else take(ar, first, axis=axis)
    extra = []
    if return_index:
        extra.append(first)
    extra.extend(res[2:])
    return (values, *extra) if extra else values


# --- r_ and c_ --------------------------------------------------------------------------------


class _Concatenator:
    """``r_`` / ``c_``: concatenation by index syntax (as NumPy's). Under transforms the items
    may be tracers, arrays, scalars and slices (``start:stop:step``, as ``numpy.r_``); the
    string directives of NumPy's forms are supported only outside transforms."""

    __slots__ = ("axis", "ndmin", "trans1d", "np_obj")

    def __init__(self, axis: int, ndmin: int, trans1d: int, np_obj) -> None:
        self.axis, self.ndmin, self.trans1d, self.np_obj = axis, ndmin, trans1d, np_obj

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not _traced(*items):
            return self.np_obj[key]
        if any(isinstance(i, str) for i in items):
            raise NotImplementedError("r_/c_: string directives are not supported under transforms")
        parts = []
        for item in items:
            if isinstance(item, slice):
                item = np.r_[item]
            x = _arr(item)
            nd = ndim_of(x)
            if nd < self.ndmin:
                x = reshape(x, (1,) * (self.ndmin - nd) + tuple(shape_of(x)))
                if self.trans1d != -1:
                    k2, k1 = self.ndmin - nd, self.trans1d
                    if k1 < 0:
                        k1 += k2 + 1
                    axes = list(range(self.ndmin))
                    x = transpose(x, axes[:k1] + axes[k2:] + axes[k1:k2])
            parts.append(x)
        dtype = np.result_type(*[dtype_of(p) for p in parts])
        parts = [p if dtype_of(p) == dtype else ew.add(np.zeros((), dtype), p) for p in parts]
        return concatenate(parts, axis=self.axis)

    def __len__(self) -> int:
        return 0


r_ = _Concatenator(0, 1, -1, np.r_)
c_ = _Concatenator(-1, 2, 0, np.c_)
