"""Indexing with gradients, and functional updates (``x.at[idx].set(v)``).

An index is normalized once into a tuple of ints, slices, ``None`` and integer arrays
(boolean masks become the integer arrays of ``nonzero``, ``...`` becomes full slices); that
tuple is the primitive's parameter. The VJP of indexing scatters the cotangent back with
``index_add`` (``numpy.add.at`` semantics, so repeated indices accumulate).

Traced integer index arrays whose value must not be read while tracing are operands instead:
those batched under ``vmap`` (``vmap(lambda x, i: x[i])``: no single value) and those
recorded into a graph by ``ds.trace`` (reading them would fix the graph to the example
index). ``gather`` / ``scatter_add`` / ``scatter_set`` take them after the arrays, and the
index parameter holds a :class:`Slot` in their place. Their batching rules index with a
batch ``arange`` in front.
"""

from __future__ import annotations

import numpy as np

from ..core import ad_util
from ..core.primitive import Primitive, holds_tracer
from ..core.tracer import Tracer, concrete
from ._creation import asarray
from ._shape import broadcast_to, broadcast_to_p
from ._util import (
    array_like,
    batch_size,
    move_batch_axis,
    shape_of,
    shared_params,
    unbroadcast,
)

# --- index normalization ---------------------------------------------------------------------


class Slot:
    """In a normalized index, the place of an integer index array that is an operand of the
    primitive (batched under ``vmap``, or an input of a graph being traced)."""

    __slots__ = ("k", "shape")

    def __init__(self, k: int, shape: tuple[int, ...]) -> None:
        self.k = k
        self.shape = tuple(shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"Slot({self.k}, shape={self.shape})"


def _in_graph(x) -> bool:
    """Whether the tracer ``x`` is recorded into a graph (``ds.trace``) at some level."""
    while isinstance(x, Tracer):
        if x.records_graph:
            return True
        x = x._value
    return False


def _has_concrete_value(x, read_graph: bool = False) -> bool:
    """Whether the index tracer ``x`` may be read as a plain value while tracing. Not when it
    is batched under ``vmap`` (no single value), nor, unless ``read_graph``, when it is
    recorded into a graph: reading it would fix the graph to the example index."""
    if not read_graph and _in_graph(x):
        return False
    try:
        concrete(x)
    except TypeError:  # a batched value (vmap): no single concrete value
        return False
    return True


def normalize_index(
    idx, shape: tuple[int, ...], operands: list | None = None, read_graph: bool = False
) -> tuple:
    """``idx`` as a tuple of ints, slices, ``None`` and integer arrays, for an array of
    ``shape``; raises ``IndexError``/``TypeError`` for what NumPy would reject.

    Traced integer index arrays without a value to read (batched under ``vmap``, or recorded
    into a graph unless ``read_graph``) are appended to ``operands`` and stand in the result
    as :class:`Slot` s; without ``operands`` they are an error. Traced boolean masks are
    always read (the result's shape depends on them)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    items = []
    for item in idx:
        if item.__class__ is list or item.__class__ is tuple:
            # A sequence inside an index is an index array, as in NumPy: x[[0, 1]],
            # x[(0, 1), (1, 0)], x[[i, 0]] with i traced.
            if holds_tracer(item):
                item = asarray(item)
            else:
                item = np.asarray(item)
                if item.size == 0:
                    item = item.astype(np.intp)
        if isinstance(item, Tracer):
            dtype = item.dtype
            if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
                raise TypeError(
                    f"indexing: a traced array of dtype {dtype} cannot be used as an index; "
                    "indices must be integers, slices, None, ... or boolean masks"
                )
            if not _has_concrete_value(item, read_graph or dtype == np.bool_):
                if dtype == np.bool_:
                    raise IndexError(
                        f"indexing: a boolean mask of shape {item.shape} that is batched "
                        "under vmap has no single concrete value, and the shape of the result "
                        "would depend on it: use dnp.where(mask, x, 0.0) instead"
                    )
                if operands is None:
                    raise TypeError(
                        f"indexing: an integer index of shape {item.shape} that is batched "
                        "under vmap is not supported here"
                    )
                items.append(Slot(len(operands), item.shape))
                operands.append(item)
                continue
            item = concrete(item)
        if isinstance(item, np.ndarray | np.generic) and item.dtype == np.bool_:
            if item.ndim == 0:
                raise IndexError("indexing: boolean scalar indices are not supported")
            items.append(item)  # checked against the shape, then made integer arrays below
            continue
        if isinstance(item, np.ndarray | np.generic):
            if not np.issubdtype(item.dtype, np.integer):
                raise IndexError(
                    f"indexing: arrays used as indices must be of integer or boolean type, "
                    f"got dtype {item.dtype}"
                )
            item = int(item) if item.ndim == 0 else item
        elif isinstance(item, bool):
            raise IndexError("indexing: boolean scalar indices are not supported")
        elif isinstance(item, int | np.integer):
            item = int(item)
        elif not (item is None or item is Ellipsis or isinstance(item, slice)):
            raise IndexError(
                f"indexing: only integers, slices, ..., None and integer or boolean arrays "
                f"are valid indices, got {type(item).__name__}"
            )
        items.append(item)
    n_ellipsis = sum(1 for i in items if i is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("indexing: an index can only have a single ellipsis ('...')")
    consumed = sum(_mask_ndim(i) or 1 for i in items if i is not None and i is not Ellipsis)
    if consumed > len(shape):
        raise IndexError(
            f"indexing: too many indices for array: array is {len(shape)}-dimensional, "
            f"but {consumed} were indexed"
        )
    if n_ellipsis:
        k = items.index(Ellipsis)
        items[k : k + 1] = [slice(None)] * (len(shape) - consumed)
    # Check bounds eagerly so errors name the shape (NumPy's message is generic).
    dim = 0
    out = []
    for item in items:
        if item is None:
            out.append(item)
            continue
        if isinstance(item, Slot):  # checked when the values are known (by NumPy)
            out.append(item)
            dim += 1
            continue
        nd = _mask_ndim(item)
        if nd:
            if item.shape != tuple(shape[dim : dim + nd]):
                raise IndexError(
                    f"indexing: a boolean index of shape {item.shape} does not match the "
                    f"indexed dimensions {tuple(shape[dim : dim + nd])} (axes {dim} to "
                    f"{dim + nd - 1} of array shape {shape})"
                )
            out.extend(np.nonzero(item))
            dim += nd
            continue
        out.append(item)
        if isinstance(item, int):
            if not -shape[dim] <= item < shape[dim]:
                raise IndexError(
                    f"indexing: index {item} is out of bounds for axis {dim} with size "
                    f"{shape[dim]} (array shape {shape})"
                )
        elif isinstance(item, np.ndarray) and item.size:
            if item.max() >= shape[dim] or item.min() < -shape[dim]:
                raise IndexError(
                    f"indexing: an index array has values out of bounds for axis {dim} with "
                    f"size {shape[dim]} (array shape {shape})"
                )
        dim += 1
    return tuple(out)


def _mask_ndim(item) -> int:
    """The number of dimensions a boolean mask index covers; 0 for any other index item."""
    if isinstance(item, np.ndarray) and item.dtype == np.bool_:
        return item.ndim
    return 0


def _is_basic(idx) -> bool:
    return not any(isinstance(i, np.ndarray | Slot) for i in idx)


def _advanced_layout(idx) -> tuple[int, int]:
    """Where NumPy puts the dimensions of the advanced indices: ``(position, rank)``.

    Separated advanced indices go first (position 0); adjacent ones stay where they are,
    after the dimensions of the items before them. ``(0, 0)`` without advanced indices."""
    arrays = [i for i in idx if isinstance(i, np.ndarray | Slot)]
    if not arrays:
        return 0, 0
    rank = len(np.broadcast_shapes(*[a.shape for a in arrays]))
    positions = [k for k, i in enumerate(idx) if isinstance(i, np.ndarray | Slot | int)]
    if positions[-1] - positions[0] + 1 != len(positions):
        return 0, rank
    return sum(1 for i in idx[: positions[0]] if i is None or isinstance(i, slice)), rank


def _advanced_front_rank(idx) -> int:
    """When advanced indices are separated (NumPy then puts their dimensions first), the
    rank of those leading dimensions; 0 when they stay in place."""
    arrays = [i for i in idx if isinstance(i, np.ndarray | Slot)]
    if not arrays:
        return 0
    positions = [k for k, i in enumerate(idx) if isinstance(i, np.ndarray | Slot | int)]
    if positions[-1] - positions[0] + 1 == len(positions):
        return 0
    return len(np.broadcast_shapes(*[a.shape for a in arrays]))


def _fill_slots(idx, operands) -> tuple:
    """The index with each :class:`Slot` replaced by its operand."""
    return tuple(operands[i.k] if isinstance(i, Slot) else i for i in idx)


def _region_shape(shape, idx) -> tuple[int, ...]:
    idx = tuple(np.zeros(i.shape, dtype=np.intp) if isinstance(i, Slot) else i for i in idx)
    # A zero-strided view: no allocation of the array itself, only of an advanced result.
    return np.broadcast_to(np.empty((), dtype=np.bool_), shape)[idx].shape


# --- getitem ---------------------------------------------------------------------------------


def _getitem_batch(args, batched, idx):
    out = getitem_p(args[0], idx=(slice(None),) + idx)
    front = _advanced_front_rank(idx)
    return move_batch_axis(out, front, 0) if front else out


getitem_p = Primitive("getitem", lambda x, idx: x[idx])


getitem_p.defvjp(lambda g, ans, x, idx: scatter_zeros_p(g, shape=shape_of(x), idx=idx))
getitem_p.defjvp(lambda t, ans, x, idx: getitem_p(t, idx=idx))
getitem_p.defbatch(_getitem_batch)


# One parameter dict per distinct ``x[a:b]`` with int bounds (see shared_params).
_SLICE_PARAMS: dict[tuple, dict] = {}


def _slice_params(idx: slice) -> dict:
    start, stop, step = idx.start, idx.stop, idx.step
    if (
        (start is None or start.__class__ is int)
        and (stop is None or stop.__class__ is int)
        and (step is None or step.__class__ is int)
    ):
        return shared_params(_SLICE_PARAMS, (start, stop, step), idx=(idx,))
    return {"idx": (idx,)}


def _index_has_tracer(idx) -> bool:
    if idx.__class__ is tuple or idx.__class__ is list:
        return holds_tracer(idx)
    return isinstance(idx, Tracer)


def getitem(x, idx):
    """``x[idx]`` with full NumPy indexing semantics, differentiable in ``x``.

    Integer index arrays may be traced (batched under ``vmap``: ``vmap(lambda x, i: x[i])``)."""
    if not isinstance(x, Tracer) and not _index_has_tracer(idx):
        return x[idx]
    if idx.__class__ is slice and x.ndim:  # x[a:b], the commonest index: nothing to normalize
        return getitem_p.call_with((x,), _slice_params(idx))
    operands: list = []
    nidx = normalize_index(idx, shape_of(x), operands)
    if operands:
        return gather_p(x, *operands, idx=nidx)
    if not isinstance(x, Tracer):
        return x[nidx]
    return getitem_p(x, idx=nidx)


# --- gather / scatter with index operands ---------------------------------------------------------
#
# When integer index arrays are themselves traced (batched under vmap), they are operands of
# the primitive (never differentiated) and the index parameter holds Slots in their places.


def _batch_index_operands(args, batched, idx, n: int):
    """Give the target and every index operand the batch axis, and prepend to the index a
    batch ``arange`` (shaped to broadcast with the advanced indices). Returns the new
    arguments, the new index, and the per-example layout of the advanced dimensions."""
    args = [
        a if b else ad_util.broadcast_axis(a, n=n, axis=0)
        for a, b in zip(args, batched, strict=True)
    ]
    position, rank = _advanced_layout(idx)
    new_idx = (np.arange(n).reshape((n,) + (1,) * rank),) + tuple(
        Slot(i.k, (n,) + i.shape) if isinstance(i, Slot) else i for i in idx
    )
    return args, new_idx, position, rank


def _front_to_position(out, position: int, rank: int):
    """Batched results have the batch and advanced dimensions first; move the advanced block
    (after the batch axis) to ``position`` of the per-example layout."""
    if not position:
        return out
    nd = len(shape_of(out))
    adv = list(range(1, 1 + rank))
    pre = list(range(1 + rank, 1 + rank + position))
    rest = list(range(1 + rank + position, nd))
    return ad_util.transpose(out, axes=tuple([0] + pre + adv + rest))


def _position_to_front(v, position: int, rank: int):
    """The inverse of :func:`_front_to_position` for a value laid out per example."""
    if not position:
        return v
    nd = len(shape_of(v))
    pre = list(range(1, 1 + position))
    adv = list(range(1 + position, 1 + position + rank))
    rest = list(range(1 + position + rank, nd))
    return ad_util.transpose(v, axes=tuple([0] + adv + pre + rest))


def _gather_batch(args, batched, idx):
    args, new_idx, position, rank = _batch_index_operands(
        args, batched, idx, batch_size(args, batched)
    )
    out = gather_p(*args, idx=new_idx)
    return _front_to_position(out, position, rank)


def _zeros_for(x, g):
    return np.zeros(shape_of(x), dtype=ad_util._dtype_of(g))


def _index_operand_error(op: str, x, ops, err: IndexError) -> IndexError:
    shapes = ", ".join(str(np.shape(o)) for o in ops)
    return IndexError(
        f"{op}: an index given as an operand (traced under vmap or ds.trace, shapes {shapes}) "
        f"does not fit the indexed array of shape {np.shape(x)}: {err}"
    )


def _gather_impl(x, *ops, idx):
    """``x`` indexed by ``idx`` with its :class:`Slot` s filled by the index operands."""
    try:
        return x[_fill_slots(idx, ops)]
    except IndexError as err:
        raise _index_operand_error("indexing (gather)", x, ops, err) from None


gather_p = Primitive("gather", _gather_impl)
gather_p.defvjp(lambda g, ans, x, *ops, idx: scatter_add_p(_zeros_for(x, g), g, *ops, idx=idx))
gather_p.defjvp(lambda t, ans, x, *ops, idx: gather_p(t, *ops, idx=idx))
gather_p.defbatch(_gather_batch)


def _scatter_add_impl(x, v, *ops, idx):
    out = _updated_copy(x, v)
    try:
        np.add.at(out, _fill_slots(idx, ops), v)
    except IndexError as err:
        raise _index_operand_error("x.at[idx].add (scatter_add)", x, ops, err) from None
    return out


def _scatter_set_impl(x, v, *ops, idx):
    out = _updated_copy(x, v)
    try:
        out[_fill_slots(idx, ops)] = v
    except IndexError as err:
        raise _index_operand_error("x.at[idx].set (scatter_set)", x, ops, err) from None
    return out


def _dynamic_scatter_batch(prim):
    def rule(args, batched, idx):
        n = batch_size(args, batched)
        x, v, ops = args[0], args[1], list(args[2:])
        region = _region_shape(shape_of(x)[1:] if batched[0] else shape_of(x), idx)
        # The update laid out as one region per example: (n, *region).
        if batched[1]:
            vs = shape_of(v)
            v = ad_util.reshape(v, shape=vs[:1] + (1,) * (len(region) - len(vs) + 1) + vs[1:])
            v = broadcast_to_p(v, shape=(n,) + region)
        else:
            v = ad_util.broadcast_axis(broadcast_to(v, region), n=n, axis=0)
        xo, new_idx, position, rank = _batch_index_operands(
            [x, *ops], [batched[0], *batched[2:]], idx, n
        )
        v = _position_to_front(v, position, rank)
        return prim(xo[0], v, *xo[1:], idx=new_idx)

    prim.defbatch(rule)


scatter_add_p = Primitive("scatter_add", _scatter_add_impl)
scatter_add_p.defvjp(
    lambda g, ans, x, v, *ops, idx: unbroadcast(g, x),
    lambda g, ans, x, v, *ops, idx: unbroadcast(gather_p(g, *ops, idx=idx), v),
)
scatter_add_p.defjvp(
    lambda t, ans, x, v, *ops, idx: t,
    lambda t, ans, x, v, *ops, idx: scatter_add_p(_zeros_for(ans, t), t, *ops, idx=idx),
)


def _kept_writes(region, x, write, read):
    """Zero the entries of ``region`` (the cotangent gathered at the written positions)
    whose write was overwritten by a later one at the same position: with repeated
    indices only the last write reaches the output, as in NumPy."""
    rshape = shape_of(region)
    order = np.arange(int(np.prod(rshape, dtype=np.intp)), dtype=np.intp).reshape(rshape)
    marker = write(np.full(shape_of(x), -1, dtype=np.intp), order)
    return region * (read(marker) == order)


scatter_set_p = Primitive("scatter_set", _scatter_set_impl)
scatter_set_p.defvjp(
    lambda g, ans, x, v, *ops, idx: scatter_set_p(g, 0.0, *ops, idx=idx),
    lambda g, ans, x, v, *ops, idx: unbroadcast(
        _kept_writes(
            gather_p(g, *ops, idx=idx),
            x,
            lambda m, o: scatter_set_p(m, o, *ops, idx=idx),
            lambda m: gather_p(m, *ops, idx=idx),
        ),
        v,
    ),
)
scatter_set_p.defjvp(
    lambda t, ans, x, v, *ops, idx: scatter_set_p(t, 0.0, *ops, idx=idx),
    lambda t, ans, x, v, *ops, idx: scatter_set_p(_zeros_for(ans, t), t, *ops, idx=idx),
)
_dynamic_scatter_batch(scatter_add_p)
_dynamic_scatter_batch(scatter_set_p)


# --- index_add / index_set (scatter) -----------------------------------------------------------


def _updated_copy(x, v):
    return np.array(x, dtype=np.result_type(x, v), copy=True)


def _index_add_impl(x, v, idx):
    out = _updated_copy(x, v)
    if _is_basic(idx):
        out[idx] += v
    else:
        np.add.at(out, idx, v)
    return out


def _index_set_impl(x, v, idx):
    out = _updated_copy(x, v)
    out[idx] = v
    return out


def _scatter_batch(prim):
    """Batch a scatter: the target gets the batch axis; the update is broadcast to the
    indexed region's layout (which NumPy may put after the advanced-index dimensions)."""

    def rule(args, batched, idx):
        x, v = args
        bx, bv = batched
        n = batch_size(args, batched)
        if not bx:
            x = ad_util.broadcast_axis(x, n=n, axis=0)
        core = shape_of(x)[1:]
        region = _region_shape(core, idx)
        front = _advanced_front_rank(idx)
        if bv:
            vs = shape_of(v)
            v = ad_util.reshape(v, shape=vs[:1] + (1,) * (len(region) - len(vs) + 1) + vs[1:])
            from ._shape import broadcast_to_p

            v = broadcast_to_p(v, shape=(n,) + region)
            v = move_batch_axis(v, 0, front)
        else:
            from ._shape import broadcast_to

            v = ad_util.broadcast_axis(broadcast_to(v, region), n=n, axis=front)
        return prim(x, v, idx=(slice(None),) + idx)

    prim.defbatch(rule)


index_add_p = Primitive("index_add", _index_add_impl)
index_add_p.defvjp(
    lambda g, ans, x, v, idx: unbroadcast(g, x),
    lambda g, ans, x, v, idx: unbroadcast(getitem_p(g, idx=idx), v),
)
index_add_p.defjvp(
    lambda t, ans, x, v, idx: t,
    lambda t, ans, x, v, idx: index_add_p(
        np.zeros(shape_of(ans), dtype=ad_util._dtype_of(t)), t, idx=idx
    ),
)
_scatter_batch(index_add_p)

index_set_p = Primitive("index_set", _index_set_impl)


def _index_set_vjp_v(g, ans, x, v, idx):
    region = getitem_p(g, idx=idx)
    if not _is_basic(idx):  # integer arrays may repeat a position
        region = _kept_writes(
            region,
            x,
            lambda m, o: index_set_p(m, o, idx=idx),
            lambda m: getitem_p(m, idx=idx),
        )
    return unbroadcast(region, v)


index_set_p.defvjp(lambda g, ans, x, v, idx: index_set_p(g, 0.0, idx=idx), _index_set_vjp_v)
index_set_p.defjvp(
    lambda t, ans, x, v, idx: index_set_p(t, 0.0, idx=idx),
    lambda t, ans, x, v, idx: index_set_p(
        np.zeros(shape_of(ans), dtype=ad_util._dtype_of(t)), t, idx=idx
    ),
)
_scatter_batch(index_set_p)


def _scatter_zeros_impl(g, shape, idx):
    out = np.zeros(shape, dtype=g.dtype)
    if _is_basic(idx):
        out[idx] = g  # basic indices never repeat a position
    else:
        np.add.at(out, idx, g)
    return out


def _scatter_zeros_batch(args, batched, shape, idx):
    g = args[0]  # (n, *region): the batch moves to where NumPy puts it in the target region
    front = _advanced_front_rank(idx)
    if front:
        g = move_batch_axis(g, 0, front)
    return scatter_zeros_p(
        g, shape=shape_of(g)[front : front + 1] + tuple(shape), idx=(slice(None),) + idx
    )


scatter_zeros_p = Primitive("scatter_zeros", _scatter_zeros_impl)
"""``g`` placed at ``idx`` of zeros of ``shape`` (repeated indices add up): the VJP of
indexing, without copying a target array."""
scatter_zeros_p.defvjp(lambda g, ans, v, shape, idx: getitem_p(g, idx=idx))
scatter_zeros_p.defjvp(lambda t, ans, v, shape, idx: scatter_zeros_p(t, shape=shape, idx=idx))
scatter_zeros_p.defbatch(_scatter_zeros_batch)


def _has_repeats(shape, idx) -> bool:
    if _is_basic(idx):
        return False
    counts = np.zeros(shape, dtype=np.intp)
    np.add.at(counts, idx, 1)
    return bool(counts.max(initial=0) > 1)


class IndexUpdateRef:
    """``x.at[idx]``: functional updates that return a new array."""

    __slots__ = ("x", "idx")

    def __init__(self, x, idx) -> None:
        self.x = x
        self.idx = idx

    def _prepare(self, v, op: str, read_graph: bool = False):
        """``v`` checked against the indexed region (leading axes of length one dropped, as
        NumPy's assignment allows), the normalized index and its index operands."""
        operands: list = []
        idx = normalize_index(self.idx, shape_of(self.x), operands, read_graph)
        shape = shape_of(self.x)
        region = _region_shape(shape, idx)
        vs = shape_of(v)
        extra = len(vs) - len(region)
        core = vs[extra:] if extra > 0 and all(d == 1 for d in vs[:extra]) else vs
        try:
            ok = np.broadcast_shapes(core, region) == region
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"x.at[idx].{op}(v): a value of shape {vs} cannot be broadcast to the indexed "
                f"region of shape {region} (array shape {shape})"
            )
        if core != vs:
            v = ad_util.reshape(v, shape=core)
        return v, idx, operands

    def get(self):
        """``x[idx]``."""
        return getitem(self.x, self.idx)

    def set(self, v):
        """A copy of ``x`` with ``x[idx] = v``."""
        v, idx, ops = self._prepare(v, "set")
        if ops:
            return scatter_set_p(self.x, v, *ops, idx=idx)
        return index_set_p(self.x, v, idx=idx)

    def add(self, v):
        """A copy of ``x`` with ``v`` added at ``idx`` (repeated indices accumulate)."""
        v, idx, ops = self._prepare(v, "add")
        if ops:
            return scatter_add_p(self.x, v, *ops, idx=idx)
        return index_add_p(self.x, v, idx=idx)

    def subtract(self, v):
        """A copy of ``x`` with ``v`` subtracted at ``idx``."""
        from ._elementwise import negative

        # A Python scalar stays a Python scalar (weakly typed: float32 stays float32).
        v = -v if type(v) in (int, float, complex) else negative(v)
        v, idx, ops = self._prepare(v, "subtract")
        if ops:
            return scatter_add_p(self.x, v, *ops, idx=idx)
        return index_add_p(self.x, v, idx=idx)

    def multiply(self, v):
        """A copy of ``x`` with ``x[idx]`` multiplied by ``v``."""
        if not isinstance(self.x, Tracer) and not isinstance(v, Tracer):
            return self._plain(np.multiply, v, "multiply")
        return self.x * self._factor(v, "multiply")

    def divide(self, v):
        """A copy of ``x`` with ``x[idx]`` divided by ``v``."""
        if not isinstance(self.x, Tracer) and not isinstance(v, Tracer):
            return self._plain(np.divide, v, "divide")
        return self.x / self._factor(v, "divide")

    def _plain(self, ufunc, v, op):
        """Outside transforms: NumPy's ``ufunc.at`` (repeated indices apply repeatedly)."""
        v, idx, ops = self._prepare(v, op, read_graph=True)
        if ops:  # an index batched under vmap: not supported (raises)
            return self._factor(v, op)
        weak = type(v) in (int, float, complex)
        dtype = np.result_type(ad_util._dtype_of(self.x), v if weak else ad_util._dtype_of(v))
        out = np.array(self.x, dtype=dtype, copy=True)
        ufunc.at(out, idx, v)
        return out

    def _factor(self, v, op):
        # Repeated positions must be found from the index values: a graph being traced reads
        # (and is specialised to) its index here, with a GraphSpecializationWarning.
        v, idx, ops = self._prepare(v, op, read_graph=True)
        shape = shape_of(self.x)
        if ops:
            raise NotImplementedError(
                f"x.at[idx].{op}(v) with an index that is batched under vmap is not supported "
                f"(shape {shape}): repeated positions could not be combined"
            )
        if _has_repeats(shape, idx):
            raise NotImplementedError(
                f"x.at[idx].{op}(v) with repeated indices is not supported (shape {shape}); "
                "combine the factors of repeated positions first"
            )
        weak = type(v) in (int, float, complex)  # Python scalars don't promote float32
        dtype = np.result_type(ad_util._dtype_of(self.x), v if weak else ad_util._dtype_of(v))
        return index_set_p(np.ones(shape, dtype=dtype), v, idx=idx)


class IndexUpdateHelper:
    """The ``.at`` property: ``x.at[idx].set(v)``, ``.add(v)``, ``.multiply(v)``, ..."""

    __slots__ = ("x",)

    def __init__(self, x) -> None:
        self.x = x

    def __getitem__(self, idx) -> IndexUpdateRef:
        return IndexUpdateRef(self.x, idx)


def at(x) -> IndexUpdateHelper:
    """Functional updates for tracers and plain arrays alike: ``dnp.at(x)[idx].set(v)``.

    >>> import diffsys.numpy as dnp
    >>> dnp.at(dnp.zeros(3))[1].set(5.0)
    array([0., 5., 0.])
    """
    return IndexUpdateHelper(x)


# --- values only ---------------------------------------------------------------------------------


def _arg_batch(prim):
    def rule(args, batched, axis):
        x = args[0]
        if axis is None:
            s = shape_of(x)
            return prim(ad_util.reshape(x, shape=(s[0], int(np.prod(s[1:], dtype=int)))), axis=1)
        return prim(x, axis=axis + 1)

    prim.defbatch(rule)
    return prim


argmax_p = _arg_batch(
    Primitive("argmax", lambda x, axis: np.argmax(x, axis=axis), zero_derivative=True)
)
argmin_p = _arg_batch(
    Primitive("argmin", lambda x, axis: np.argmin(x, axis=axis), zero_derivative=True)
)


@array_like("a")
def argmax(a, axis=None):
    """Indices of the maximum values (not differentiable: integer output)."""
    if not isinstance(a, Tracer):
        return np.argmax(a, axis=axis)
    return argmax_p(a, axis=None if axis is None else int(axis) % max(a.ndim, 1))


@array_like("a")
def argmin(a, axis=None):
    """Indices of the minimum values (not differentiable: integer output)."""
    if not isinstance(a, Tracer):
        return np.argmin(a, axis=axis)
    return argmin_p(a, axis=None if axis is None else int(axis) % max(a.ndim, 1))


@array_like("a")
def nonzero(a):
    """Indices of the non-zero elements (values only; the shape depends on the data)."""
    return np.nonzero(concrete(a))


@array_like("a")
def argwhere(a):
    """Indices of the non-zero elements, one row each (values only)."""
    return np.argwhere(concrete(a))
