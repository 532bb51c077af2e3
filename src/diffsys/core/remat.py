"""Recomputation on a reverse trace's own tape: the machinery under ``checkpoint`` and ``scan``.

A rematerialized function (``checkpoint(fun)``, a ``scan`` step) is recorded as one node on
the reverse trace ``T`` that differentiates it; its backward pass runs the function again and
differentiates that run. Both runs happen *on* ``T``, inside a :class:`Recording`: ``T``'s
tape is swapped for a private list while the function runs, so nothing it does stays on the
real tape, and the private list is what the backward pass walks (:func:`backprop`).

Running on ``T`` itself, not on a fresh inner trace, is what makes closures work (closure
conversion, eager style). A function may read values traced by ``T`` that it was not given as
arguments: parameters in a closure, a global, an attribute of an object. Every primitive
applied to them is recorded by ``T`` like any other, so the private list shows which values
from *before* the recording a run read: the entries whose parent slots are below the
recording's first slot (:meth:`Recording.captured`). The node lists those slots as extra
inputs, and the backward pass hands them their cotangents. No closure is inspected to be
correct; :func:`closure_tracers` only looks for traced values a function holds, to choose the
trace a node belongs to before running it (:func:`node_trace`).
"""

from __future__ import annotations

import functools
import types

import numpy as np

from .ad_util import add_values, zeros_like_value
from .reverse import ReverseTrace, ReverseTracer, _CustomNode
from .tracer import Tracer


class Recording:
    """``with Recording(trace) as rec:`` records ``trace``'s primitives into ``rec.entries``.

    On entry the trace's tape is swapped for ``rec.entries`` and slots are numbered from
    ``rec.base`` (at least ``reserve``); on exit the tape and the slot counter are restored,
    so the slots used inside are handed out again afterwards. Entries recorded here may be
    walked later (:func:`backprop`) as long as that walk runs inside a recording whose
    ``reserve`` is at least their :attr:`end`, so nothing recorded meanwhile reuses their slots.
    """

    __slots__ = ("trace", "entries", "base", "reserve", "_tape", "_nslots")

    def __init__(self, trace: ReverseTrace, reserve: int = 0) -> None:
        self.trace = trace
        self.reserve = reserve

    def __enter__(self) -> Recording:
        t = self.trace
        self._tape = t.tape
        self._nslots = t.nslots
        if self.reserve > t.nslots:
            t.nslots = self.reserve
        self.base = t.nslots
        self.entries = t.tape = []
        return self

    def __exit__(self, *exc) -> bool:
        t = self.trace
        t.tape = self._tape
        t.nslots = self._nslots
        return False

    @property
    def end(self) -> int:
        """One past the last slot used so far."""
        return self.trace.nslots

    def box(self, value) -> ReverseTracer:
        """A new input of the recording (a fresh slot) holding ``value``."""
        return self.trace.new_input(value)

    def captured(self, out_leaves=(), into: dict | None = None) -> dict:
        """``{slot: value}`` of values recorded before this recording that it read.

        They are the parents below :attr:`base` of the entries, and the leaves of
        ``out_leaves`` that are such values (returned without any operation on them).
        """
        found = {} if into is None else into
        base = self.base
        for _op, vals, _out, parents, _slot, _n in self.entries:
            for i, s in enumerate(parents):
                if s is not None and s < base and s not in found:
                    found[s] = vals[i]
        trace = self.trace
        for o in out_leaves:
            if o.__class__ is ReverseTracer and o._trace is trace and o._slot < base:
                found.setdefault(o._slot, o._value)
        return found


def accumulate(cts: dict, slot: int, ct) -> None:
    old = cts.get(slot)
    cts[slot] = ct if old is None else add_values(old, ct)


def backprop(entries: list, cts: dict, ops: list) -> dict:
    """Run ``entries`` backwards from the cotangents ``cts`` (``{slot: cotangent}``);
    ``ops`` is the table of operations of the trace that recorded them (its ``ops``).

    ``entries`` is consumed (each entry is dropped once processed, freeing what it holds).
    Returns ``cts``, which then holds the cotangents of the slots the entries read but did not
    produce: the recording's inputs and the captured values.
    """
    pop = entries.pop
    while entries:
        op, vals, out, parents, slot, n = pop()
        if n:
            gs = [cts.pop(slot + k, None) for k in range(n)]
            if all(g is None for g in gs):
                continue
            g = tuple(
                zeros_like_value(o) if gi is None else gi for gi, o in zip(gs, out, strict=True)
            )
        else:
            g = cts.pop(slot, None)
            if g is None:
                continue
        prim, params = ops[op]
        if prim.__class__ is _CustomNode:
            for i, ct in prim.bwd(g).items():
                accumulate(cts, parents[i], ct)
            continue
        rules = prim.vjps
        for i, pslot in enumerate(parents):
            if pslot is None:  # a constant argument
                continue
            rule = rules[i] if i < len(rules) else None
            if rule is None:
                prim.vjp_rule(i)  # raises NotImplementedError naming the primitive
            ct = rule(g, out, *vals, **params) if params else rule(g, out, *vals)
            accumulate(cts, pslot, ct)
    return cts


def seed(cts: dict, trace: ReverseTrace, out_leaves, cotangents) -> None:
    """Add each cotangent to the slot of its output leaf (leaves ``trace`` does not trace are
    constants of the recording: their cotangents go nowhere)."""
    for o, g in zip(out_leaves, cotangents, strict=True):
        if g is not None and o.__class__ is ReverseTracer and o._trace is trace:
            accumulate(cts, o._slot, g)


def unbox(trace: ReverseTrace, x):
    """``x``'s value one level below ``trace`` if ``trace`` traces it, else ``x``."""
    if x.__class__ is ReverseTracer and x._trace is trace:
        return x._value
    return x


def higher_trace(leaves, trace):
    """The highest trace above ``trace`` (``None``: level 0) among the tracers of ``leaves``."""
    level = 0 if trace is None else trace.level
    best = None
    for x in leaves:
        if isinstance(x, Tracer) and x._trace.level > level:
            best = x._trace
            level = best.level
    return best


# --- choosing the trace of a node --------------------------------------------------------------

_SKIP = (
    str,
    bytes,
    int,
    float,
    complex,
    bool,
    type(None),
    np.ndarray,
    np.generic,
    np.dtype,
    type,
    types.ModuleType,
    types.BuiltinFunctionType,
    range,
    slice,
)
_MAX_VISITS = 2000


def closure_tracers(fun) -> list:
    """Traced values that ``fun`` holds: in its closure cells, defaults, the globals its code
    names, ``functools.partial`` arguments, a bound method's object, and the containers and
    objects those hold (a bounded walk; a miss only costs memory, see :func:`node_trace`)."""
    found = []
    seen: set[int] = set()
    stack = [fun]
    visits = 0
    while stack and visits < _MAX_VISITS:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        visits += 1
        if isinstance(obj, Tracer):
            found.append(obj)
        elif isinstance(obj, _SKIP):
            continue
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            stack.extend(obj.__defaults__ or ())
            stack.extend((obj.__kwdefaults__ or {}).values())
            g = obj.__globals__
            for name in _code_names(obj.__code__):
                if name in g:
                    stack.append(g[name])
            wrapped = getattr(obj, "__wrapped__", None)
            if wrapped is not None:
                stack.append(wrapped)
        elif isinstance(obj, functools.partial):
            stack.append(obj.func)
            stack.extend(obj.args)
            stack.extend(obj.keywords.values())
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__func__)
            stack.append(obj.__self__)
        elif isinstance(obj, list | tuple | set | frozenset):
            # through iter(): list.extend preallocates a sequence's len(), and a tuple subclass
            # may report more than it holds (a primitive's VariadicRules says 2**30: 8 GiB)
            stack.extend(iter(obj))
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        else:
            d = getattr(obj, "__dict__", None)
            if isinstance(d, dict):
                stack.extend(d.values())
            for name in getattr(type(obj), "__slots__", ()):
                try:
                    stack.append(getattr(obj, name))
                except AttributeError:
                    pass
    return found


@functools.lru_cache(maxsize=1024)
def _code_names(code) -> tuple[str, ...]:
    """Global names read by ``code`` and the code objects nested in it (lambdas, comprehensions)."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_code_names(const))
    return tuple(dict.fromkeys(names))


def node_trace(leaves, fun):
    """The trace a rematerializing node for ``fun`` applied to ``leaves`` belongs to: the
    highest trace among the arguments' tracers and the traced values ``fun`` holds, if it is
    a reverse trace; ``None`` otherwise (then ``fun`` just runs: forward mode and ``vmap``
    store nothing, and outer reverse traces record it as usual)."""
    best = None
    level = 0
    for x in leaves:
        if isinstance(x, Tracer) and x._trace.level > level:
            best = x._trace
            level = best.level
    for x in closure_tracers(fun):
        if x._trace.level > level:
            best = x._trace
            level = best.level
    return best if isinstance(best, ReverseTrace) else None
