"""Batching: run a function once on a whole batch (``vmap``).

A :class:`BatchTracer` holds a value whose axis 0 is the batch axis; its logical shape is the
rest. Each primitive has a batching rule that computes the batched output directly (one
NumPy call on the whole batch for elementwise operations, reductions, products, indexing).
A primitive without a rule falls back to a loop over the batch, which is correct but slow.

``jacfwd`` pushes all basis tangents through a function at once as ``vmap`` of ``jvp``, and
``jacrev`` pulls all basis cotangents back at once as ``vmap`` of a VJP.
"""

from __future__ import annotations

from collections.abc import Callable

from .tracer import Trace, Tracer

_fallback_rule: list[Callable | None] = [None]


def set_fallback_rule(rule: Callable) -> None:
    """Install the loop-over-the-batch rule used for primitives without a batching rule.

    The rule needs indexing and stacking, which live in :mod:`diffsys.numpy`; it installs it.
    """
    _fallback_rule[0] = rule


class BatchTracer(Tracer):
    __slots__ = ()

    def __init__(self, trace: BatchTrace, value) -> None:
        self._trace = trace
        self._value = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self._value.shape[1:]

    def concrete(self):
        raise TypeError(
            f"a batched value (under vmap, or inside jacfwd/jacrev/hessian) of shape "
            f"{self.shape} has no single concrete value: Python control flow on it "
            "(if/while/bool/int/float) is not possible; use diffsys.numpy.where instead"
        )


class BatchTrace(Trace):
    """Maps a function over axis 0 of its batched arguments, ``size`` elements long."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def process(self, prim, args, params):
        if len(args) == 1:  # this trace is the top one, so the only argument is ours
            vals = (args[0]._value,)
            batched = (True,)
        else:
            vals = list(args)
            batched = [False] * len(args)
            for i, a in enumerate(args):
                if a.__class__ is BatchTracer and a._trace is self:
                    vals[i] = a._value
                    batched[i] = True
        rule = prim.batch_rule
        if rule is None:
            rule = _fallback_rule[0]
            if rule is None:
                raise NotImplementedError(f"primitive '{prim.name}' has no batching rule")
            out = rule(prim, self.size, vals, batched, **params)
        else:
            out = rule(vals, batched, **params)
        if prim.multiple_results:
            return [BatchTracer(self, o) for o in out]
        return BatchTracer(self, out)

    def box(self, value) -> BatchTracer:
        return BatchTracer(self, value)
