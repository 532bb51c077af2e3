"""Reverse mode by graph extension.

A :class:`ReverseTrace` records every primitive applied to its tracers on a *tape*, in the
order they run. A node on the tape is a tuple ``(op, vals, out, parents, slot, n)``: ``op``
indexes the trace's table of operations (:attr:`ReverseTrace.ops`, pairs ``(primitive,
params)`` with ``params`` ``None`` when there are none, shared by all nodes of the same
operation), ``vals`` and ``parents`` are tuples. A node of plain values thus holds nothing
the garbage collector tracks, and the collector stops tracking it at its first pass instead
of walking a long tape again and again (on a 17,000-operation tape those full passes cost
about 10 ms per ``grad``).

Eager tracing creates nodes in topological order, so the backward pass is a single walk of
the tape in reverse: no graph search, no sorting. Each value owns a *slot* in the cotangent
list; a node reads the cotangent of its output slot and adds its VJP rules' results into its
parents' slots.

VJP rules are written with :mod:`diffsys.numpy`, so when the backward pass runs on tracers of
an outer transform it is recorded by that transform: derivatives of derivatives follow.
When no outer transform is active the rules see plain arrays and run at NumPy speed.
"""

from __future__ import annotations

import numpy as np

from .ad_util import add_values, zeros_like_value
from .owned import mutable
from .tracer import _NO_PARAMS, Trace, Tracer

_new = object.__new__


class ReverseTracer(Tracer):
    __slots__ = ("_slot",)

    def __init__(self, trace: ReverseTrace, value, slot: int) -> None:
        self._trace = trace
        self._value = value
        self._slot = slot


class ReverseTrace(Trace):
    """Records primitives applied to its tracers for one reverse-mode transform."""

    __slots__ = ("tape", "nslots", "ops", "_op_index")
    differentiates = True

    def __init__(self) -> None:
        super().__init__()
        self.tape: list[tuple] = []
        self.nslots = 0
        self.ops: list = []  # (primitive or custom node, params or None), indexed by nodes
        self._op_index: dict = {}  # primitive, or (primitive, id(params)) -> index in ops

    def op_index(self, prim, params) -> int:
        """The index in :attr:`ops` of ``prim`` with ``params`` (added on first use).

        A parameter dict is told apart by identity (it stays alive in :attr:`ops`): the
        wrappers of busy primitives hand the same dict to every call with equal parameters.
        """
        key = (prim, id(params)) if params else prim
        index = self._op_index.get(key)
        if index is None:
            index = self._op_index[key] = len(self.ops)
            self.ops.append((prim, params or None))
        return index

    def add_op(self, node, params: dict | None = None) -> int:
        """Add a one-off operation (a custom rule's closure, a checked node of anomaly mode)
        to :attr:`ops`; its index."""
        self.ops.append((node, params))
        return len(self.ops) - 1

    def new_input(self, value) -> ReverseTracer:
        slot = self.nslots
        self.nslots = slot + 1
        return ReverseTracer(self, value, slot)

    def process(self, prim, args, params):
        # The hot path of the engine: keep it free of anything generic.
        if prim.zero_derivative:
            return prim(*[a._value if _is_mine(self, a) else a for a in args], **params)
        lower = False  # does any unwrapped value still carry an outer (lower-level) trace?
        if len(args) == 1:  # this trace is the top one, so the only argument is ours
            a = args[0]
            v = a._value
            vals = (v,)
            parents = (a._slot,)
            lower = isinstance(v, Tracer)
        elif len(args) == 2 and not prim.multiple_results:
            return self.process2(prim, args[0], args[1], params)
        else:
            vals = list(args)
            parents = [None] * len(args)
            for i, a in enumerate(args):
                if a.__class__ is ReverseTracer and a._trace is self:
                    v = vals[i] = a._value
                    parents[i] = a._slot
                else:
                    v = a
                if not lower and isinstance(v, Tracer):
                    lower = True
        if lower:
            out = prim(*vals, **params)
        else:  # plain values: call the implementation directly (no keywords: a bit faster)
            out = prim.impl(*vals, **params) if params else prim.impl(*vals)
        slot = self.nslots
        op = self.op_index(prim, params)
        if prim.multiple_results:
            n = len(out)
            self.nslots = slot + n
            self.tape.append((op, tuple(vals), out, tuple(parents), slot, n))
            return [ReverseTracer(self, o, slot + k) for k, o in enumerate(out)]
        self.nslots = slot + 1
        self.tape.append((op, tuple(vals), out, tuple(parents), slot, 0))
        tracer = _new(ReverseTracer)  # inlined __init__: this line runs once per traced op
        tracer._trace = self
        tracer._value = out
        tracer._slot = slot
        return tracer

    def process1(self, prim, a):
        """``process`` for one argument (ours, since this is the top trace), no parameters."""
        if prim.special:
            return self.process(prim, (a,), _NO_PARAMS)
        v = a._value
        out = prim(v) if isinstance(v, Tracer) else prim.impl(v)
        slot = self.nslots
        self.nslots = slot + 1
        op = self._op_index.get(prim)
        if op is None:
            op = self.op_index(prim, None)
        self.tape.append((op, (v,), out, (a._slot,), slot, 0))
        tracer = _new(ReverseTracer)
        tracer._trace = self
        tracer._value = out
        tracer._slot = slot
        return tracer

    def process2(self, prim, a, b, params=_NO_PARAMS):
        """``process`` for two arguments (arithmetic operators call it directly)."""
        if prim.special:
            return self.process(prim, (a, b), params)
        if a.__class__ is ReverseTracer and a._trace is self:
            va = a._value
            if b.__class__ is ReverseTracer and b._trace is self:
                vb = b._value
                parents = (a._slot, b._slot)
            else:
                vb = b
                parents = (a._slot, None)
        else:
            va = a
            vb = b._value
            parents = (None, b._slot)
        if isinstance(va, Tracer) or isinstance(vb, Tracer):
            out = prim(va, vb, **params)
        else:
            out = prim.impl(va, vb, **params) if params else prim.impl(va, vb)
        slot = self.nslots
        self.nslots = slot + 1
        op = self._op_index.get(prim) if not params else None
        if op is None:
            op = self.op_index(prim, params)
        self.tape.append((op, (va, vb), out, parents, slot, 0))
        tracer = _new(ReverseTracer)
        tracer._trace = self
        tracer._value = out
        tracer._slot = slot
        return tracer

    def record_custom(self, prim, vals, out, parents, bwd, multiple_results):
        """Record a node whose VJP is ``bwd(g) -> {argnum: cotangent}`` (custom rules);
        ``parents`` lists ``(argnum, slot)`` for the arguments this trace traces."""
        slots = [None] * len(vals)
        for i, s in parents:
            slots[i] = s
        parents = slots
        slot = self.nslots
        op = self.add_op(_CustomNode(prim, bwd))
        if multiple_results:
            n = len(out)
            self.nslots = slot + n
            self.tape.append((op, tuple(vals), out, tuple(parents), slot, n))
            return [ReverseTracer(self, o, slot + k) for k, o in enumerate(out)]
        self.nslots = slot + 1
        self.tape.append((op, tuple(vals), out, tuple(parents), slot, 0))
        return ReverseTracer(self, out, slot)

    def own_constants(self) -> None:
        """Give the tape private copies of the constant arrays it reads that code outside
        could still change: writeable ndarrays an operation took as a constant operand or
        in its parameters (a closure's array, an index array), not made by the trace. Run
        once when a backward pass may come later (a ``vjp`` function), so that it sees the
        values the forward pass saw. The traced values are the trace's own already.

        One walk of the tape; a constant used by many nodes is copied once."""
        memo: dict[int, tuple] = {}  # id -> (replacement, original: keeps the id unique)
        tape = self.tape
        for k, node in enumerate(tape):
            parents = node[3]
            if None not in parents:
                continue
            vals = node[1]
            new = None
            for i, p in enumerate(parents):
                if p is not None:
                    continue
                v = vals[i]
                if not isinstance(v, _CONTAINERS):  # Python numbers, np.generic, functions
                    continue
                entry = memo.get(id(v))
                if entry is None:
                    entry = memo[id(v)] = (_owned(v, memo), v)
                if entry[0] is not v:
                    if new is None:
                        new = list(vals)
                    new[i] = entry[0]
            if new is not None:
                tape[k] = (node[0], tuple(new)) + node[2:]
        ops = self.ops
        for k, (prim, params) in enumerate(ops):
            if params:
                new_params = {key: _owned(v, memo) for key, v in params.items()}
                if any(new_params[key] is not v for key, v in params.items()):
                    ops[k] = (prim, new_params)

    def backward(
        self, seeds: list[tuple[int, object]], n_inputs: int, consume: bool = False
    ) -> list:
        """Run the tape backwards from ``(slot, cotangent)`` seeds; cotangents of inputs.

        With ``consume``, each node is dropped from the tape once processed, so the values
        it holds are freed during the pass (for one-shot gradients; ``vjp`` functions that
        may be called again keep the tape).
        """
        cts: list = [None] * self.nslots
        for slot, ct in seeds:
            old = cts[slot]
            cts[slot] = ct if old is None else add_values(old, ct)
        # Nodes are popped from the end: from the tape itself when consuming (each node and
        # the values it holds are freed once processed), else from a copy of it.
        stack = self.tape if consume else list(self.tape)
        pop = stack.pop
        ops = self.ops
        while stack:
            op, vals, out, parents, slot, n = pop()
            if n:
                gs = cts[slot : slot + n]
                if all(g is None for g in gs):
                    continue
                g = tuple(
                    zeros_like_value(o) if gi is None else gi for gi, o in zip(gs, out, strict=True)
                )
                cts[slot : slot + n] = [None] * n
            else:
                g = cts[slot]
                if g is None:
                    continue
                cts[slot] = None  # free the cotangent as soon as it is consumed
            prim, params = ops[op]
            if prim.__class__ is _CustomNode:
                if consume:
                    ops[op] = None  # used once: free the rule's closure (its residuals)
                for i, ct in prim.bwd(g).items():
                    pslot = parents[i]
                    old = cts[pslot]
                    cts[pslot] = ct if old is None else add_values(old, ct)
                continue
            rules = prim.vjps
            for i, pslot in enumerate(parents):
                if pslot is None:  # a constant argument
                    continue
                try:
                    rule = rules[i]
                except IndexError:
                    rule = None
                if rule is None:
                    prim.vjp_rule(i)  # raises NotImplementedError naming the primitive
                ct = rule(g, out, *vals, **params) if params else rule(g, out, *vals)
                old = cts[pslot]
                cts[pslot] = ct if old is None else add_values(old, ct)
        return cts[:n_inputs]


class _CustomNode:
    """Stands in for a primitive on the tape when the VJP is a closure (custom rules,
    checkpoint); ``prim`` is the registered primitive the node belongs to."""

    __slots__ = ("prim", "bwd")

    def __init__(self, prim, bwd):
        self.prim = prim
        self.bwd = bwd

    @property
    def name(self) -> str:
        return self.prim.name


_CONTAINERS = (np.ndarray, tuple, list)


def _owned(v, memo: dict):
    """``v`` with every array in it that is :func:`mutable` replaced by a copy (one copy
    per array: ``memo`` maps ids to ``(copy, original)``); tuples and lists are searched."""
    if isinstance(v, np.ndarray):
        if not mutable(v):
            return v
        entry = memo.get(id(v))
        if entry is None:
            entry = memo[id(v)] = (v.copy(), v)
        return entry[0]
    if isinstance(v, tuple | list) and v:
        new = [_owned(x, memo) for x in v]
        if any(a is not b for a, b in zip(new, v, strict=True)):
            return type(v)(new) if type(v) in (tuple, list) else v
    return v


def _is_mine(trace, a) -> bool:
    return a.__class__ is ReverseTracer and a._trace is trace
