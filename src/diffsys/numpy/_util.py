"""Helpers shared by the primitive definitions: broadcasting in rules, axes, batching rules."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import numpy as np

from ..core import ad_util
from ..core.primitive import Primitive, holds_tracer, pack_sequence
from ..core.tracer import Tracer

reshape_p = ad_util.reshape
transpose_p = ad_util.transpose


def shape_of(x) -> tuple[int, ...]:
    """The (logical) shape of an array, tracer or Python scalar."""
    s = getattr(x, "shape", None)
    return np.shape(x) if s is None else s


def ndim_of(x) -> int:
    return len(shape_of(x))


def dtype_of(x) -> np.dtype:
    d = getattr(x, "dtype", None)
    return np.result_type(x) if d is None else d


def is_traced(*xs) -> bool:
    for x in xs:
        if isinstance(x, Tracer):
            return True
    return False


# --- array_like arguments: lists and tuples that hold tracers -----------------------------------


def array_like(*names: str, sequences: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator: the parameters ``names`` take ``array_like`` values (a ``*args``
    parameter: each of its arguments), ``sequences`` sequences of them (``concatenate``'s
    ``arrays``). A list or tuple there that holds tracers, such as ``dnp.dot([x, 1.], y)``,
    is read as one traced array (``dnp.asarray``), as primitives read their operands.

    The function runs first as called; only when that raises ``TypeError`` (NumPy cannot
    convert a tracer) and such an argument holds tracers does it run again with them
    stacked. The wrapper has the function's own signature (no ``*args`` packing), so the
    usual path costs one Python call (about 25 ns). ``wrapper.array_like`` lists the
    parameters."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        for name in names + sequences:
            if name not in sig.parameters:
                raise TypeError(f"array_like: {fn.__qualname__} has no parameter {name!r}")

        def pack(*args, **kwargs):
            return _pack_arguments(sig, names, sequences, args, kwargs)

        wrapper = _forwarding(fn, sig, pack)
        functools.update_wrapper(wrapper, fn)
        wrapper.array_like = names + sequences
        return wrapper

    return decorate


def _forwarding(fn: Callable, sig: inspect.Signature, pack: Callable) -> Callable:
    """A function with ``fn``'s parameters that calls ``fn``; on ``TypeError`` it asks
    ``pack`` for new arguments (``None``: re-raise) and calls ``fn`` with those."""
    P = inspect.Parameter
    namespace: dict = {"_fn": fn, "_pack": pack}
    params, call = [], []
    star = False
    for i, p in enumerate(sig.parameters.values()):
        default = ""
        if p.default is not P.empty:
            namespace[f"_default{i}"] = p.default
            default = f"=_default{i}"
        if p.kind is P.VAR_POSITIONAL:
            params.append(f"*{p.name}")
            call.append(f"*{p.name}")
            star = True
        elif p.kind is P.VAR_KEYWORD:
            params.append(f"**{p.name}")
            call.append(f"**{p.name}")
        elif p.kind is P.KEYWORD_ONLY:
            if not star:
                params.append("*")
                star = True
            params.append(p.name + default)
            call.append(f"{p.name}={p.name}")
        else:
            params.append(p.name + default)
            call.append(p.name)
            if p.kind is P.POSITIONAL_ONLY and (
                i + 1 == len(sig.parameters)
                or list(sig.parameters.values())[i + 1].kind is not P.POSITIONAL_ONLY
            ):
                params.append("/")
    source = (
        f"def {fn.__name__}({', '.join(params)}):\n"
        f"    try:\n"
        f"        return _fn({', '.join(call)})\n"
        f"    except TypeError:\n"
        f"        bound = _pack({', '.join(call)})\n"
        f"        if bound is None:\n"
        f"            raise\n"
        f"    return _fn(*bound.args, **bound.kwargs)\n"
    )
    exec(compile(source, f"<array_like {fn.__qualname__}>", "exec"), namespace)  # noqa: S102
    return namespace[fn.__name__]


def _packed(value):
    if (value.__class__ is list or value.__class__ is tuple) and holds_tracer(value):
        return pack_sequence(value)
    return value


def _pack_arguments(sig, names, sequences, args, kwargs):
    """The bound arguments with the tracer-holding sequences of ``names`` (and in
    ``sequences``) stacked; ``None`` when there are none (or the call does not bind)."""
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:
        return None
    changed = False
    for name in names + sequences:
        if name not in bound.arguments:
            continue
        value = bound.arguments[name]
        if name in sequences or sig.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
            if value.__class__ is list or value.__class__ is tuple:
                new = type(value)(_packed(v) for v in value)
            else:
                new = value
        else:
            new = _packed(value)
        if new is not value and any(a is not b for a, b in _pairs(new, value)):
            bound.arguments[name] = new
            changed = True
    return bound if changed else None


def _pairs(new, old):
    if new.__class__ in (list, tuple) and old.__class__ is new.__class__:
        return zip(new, old, strict=True)
    return ((new, old),)


# --- parameter dicts shared between calls ------------------------------------------------------

_SHARED_PARAMS_LIMIT = 4096  # distinct parameter sets kept per cache


def shared_params(cache: dict, key, **params) -> dict:
    """One parameter dict per distinct hashable ``key``, handed to every call with those
    parameters (:meth:`~diffsys.core.primitive.Primitive.call_with`), so that the nodes of a
    reverse trace share it instead of each keeping its own (see ``core.reverse``). A cache
    stops growing at a few thousand entries; later keys get fresh dicts."""
    found = cache.get(key)
    if found is None:
        found = params
        if len(cache) < _SHARED_PARAMS_LIMIT:
            cache[key] = found
    return found


# --- sums that undo broadcasting, and broadcasting of tangents ----------------------------------


def unbroadcast(g, x):
    """Sum ``g`` (shaped like a broadcast result) back to the shape of ``x``.

    Used in VJP rules of broadcasting operations; a no-op when the shapes already match.
    """
    # In VJP rules both are arrays or tracers (values of traced arguments), so both have
    # ``.shape``; this check is on the hot path of every backward pass.
    gd, xd = g.dtype, x.dtype
    if gd is not xd and gd.kind == "c" and xd.kind != "c":
        g = ad_util.real_part(g)  # a real input receives the real part (JAX's convention)
    shape = x.shape
    if g.shape == shape:
        return g
    return unbroadcast_to(g, shape)


def unbroadcast_to(g, shape: tuple[int, ...]):
    gshape = shape_of(g)
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and gshape[lead + i] != 1
    )
    if g.__class__ is np.ndarray:  # a plain backward pass: no primitives to record
        if axes:
            g = np.add.reduce(g, axis=axes)
        return g if g.shape == shape else g.reshape(shape)
    if axes:
        from ._reductions import sum_p

        g = sum_p(g, axis=axes, keepdims=False)
    if shape_of(g) != shape:
        g = reshape_p(g, shape=tuple(shape))
    return g


def broadcast_like(t, ans):
    """Broadcast a tangent ``t`` to the shape of the output ``ans`` (no-op when they match)."""
    shape = ans.shape
    if t.shape == shape:
        return t
    from ._shape import broadcast_to_p

    return broadcast_to_p(t, shape=tuple(shape))


# --- axes ---------------------------------------------------------------------------------------


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    if not isinstance(axis, int | np.integer):
        raise TypeError(f"{op}: axis must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < max(ndim, 1):
        raise np.exceptions.AxisError(
            f"{op}: axis {axis} is out of bounds for an array of dimension {ndim}"
        )
    return int(axis) % max(ndim, 1)


def normalize_axes(axis, ndim: int, op: str) -> tuple[int, ...]:
    """``None`` -> all axes; an int or a sequence -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int | np.integer):
        axis = (axis,)
    out = tuple(sorted(normalize_axis(a, ndim, op) for a in axis))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return out


# --- batching rules -------------------------------------------------------------------------------


def batch_size(args, batched) -> int:
    for a, b in zip(args, batched, strict=True):
        if b:
            return shape_of(a)[0]
    raise AssertionError("no batched argument")


def align_batched(args, batched):
    """Give batched arguments (batch on axis 0) the rank of the broadcast result, so that
    right-aligned broadcasting lines up their core axes with the unbatched ones."""
    ndims = [ndim_of(a) - b for a, b in zip(args, batched, strict=True)]
    rank = max(ndims)
    if all(nd == rank for nd, b in zip(ndims, batched, strict=True) if b):
        return args  # the common case: nothing to align
    out = []
    for a, b, nd in zip(args, batched, ndims, strict=True):
        if b and nd < rank:
            s = shape_of(a)
            a = reshape_p(a, shape=s[:1] + (1,) * (rank - nd) + s[1:])
        out.append(a)
    return out


def def_elementwise_batch(prim: Primitive) -> None:
    """Batching rule for an elementwise (broadcasting) primitive: one call on the batch."""

    def rule(args, batched, **params):
        return prim(*align_batched(args, batched), **params)

    prim.defbatch(rule)


def def_axes_batch(prim: Primitive) -> None:
    """Batching rule for a unary primitive with an ``axis`` parameter (a tuple or an int)."""

    def rule(args, batched, axis, **params):
        shifted = tuple(a + 1 for a in axis) if isinstance(axis, tuple) else axis + 1
        return prim(args[0], axis=shifted, **params)

    prim.defbatch(rule)


def move_batch_axis(x, src: int, dst: int):
    if src == dst:
        return x
    order = [a for a in range(ndim_of(x)) if a != src]
    order.insert(dst, src)
    return transpose_p(x, axes=tuple(order))
