"""Liveness-based memory planning: the peak bytes a replay allocates, predicted from the graph.

The plan follows the executor exactly (:mod:`diffsys.graph._exec`): before an operation runs,
the values still needed later are alive; the operation allocates its outputs (a view, such as
a reshape, allocates nothing and keeps its base alive); then the values read for the last
time are released. Placeholders and constants exist before the call and are not counted;
outputs are (they are allocated by the call and still alive at its end).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._exec import liveness


@dataclass(frozen=True)
class MemoryPlan:
    """Predicted peak bytes allocated by one replay of a graph.

    ``forward_peak_bytes``: running the graph itself. ``forward_backward_peak_bytes``:
    running the graph of ``value_and_grad`` of it, the loss being the graph's output when it
    is a real scalar (else the sum of its floating-point outputs), differentiated with
    respect to every floating-point placeholder; ``None`` when there is nothing to
    differentiate. A graph traced from ``value_and_grad`` already holds its backward pass:
    its ``forward_peak_bytes`` is the figure to read.
    """

    forward_peak_bytes: int
    forward_backward_peak_bytes: int | None
    placeholder_bytes: int
    constant_bytes: int
    output_bytes: int
    timeline: tuple[int, ...] = field(repr=False)  # live bytes after each operation

    def __str__(self) -> str:
        fb = self.forward_backward_peak_bytes
        return (
            f"forward peak {_mib(self.forward_peak_bytes)}, forward+backward peak "
            f"{'n/a' if fb is None else _mib(fb)} (placeholders {_mib(self.placeholder_bytes)}, "
            f"constants {_mib(self.constant_bytes)} not counted)"
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:.3f} MiB"


def peak_bytes(graph) -> tuple[int, tuple[int, ...]]:
    """The predicted peak of bytes allocated during one replay, and live bytes per step."""
    external = set(graph.placeholders) | set(graph.consts)
    root: dict[int, int | None] = {}  # variable -> the allocation it lives in (None: external)
    refs: dict[int, int] = {}  # allocation -> live variables in it
    size: dict[int, int] = {}
    for v in external:
        root[v] = None
    last = liveness(graph)
    outputs = set(graph.outputs)
    live = 0
    peak = 0
    timeline = []

    def release(v):
        nonlocal live
        r = root[v]
        if r is None:
            return
        refs[r] -= 1
        if refs[r] == 0:
            live -= size.pop(r)
            del refs[r]

    for k, node in enumerate(graph.nodes):
        alloc = 0
        for v, view in zip(node.outputs, node.views, strict=True):
            if view is not None:
                r = root[node.inputs[view]]
            else:
                r = v
                size[r] = graph.vars[v].nbytes
                refs[r] = 0
                alloc += size[r]
            root[v] = r
            if r is not None:
                refs[r] += 1
        live += alloc
        peak = max(peak, live)
        for v in dict.fromkeys(node.inputs):
            if last.get(v) == k and v not in outputs:
                release(v)
        for v in node.outputs:
            if v not in last and v not in outputs:
                release(v)
        timeline.append(live)
    return peak, tuple(timeline)


def _backward_graph(graph):
    from ..core.transforms import value_and_grad
    from ..numpy import real
    from ..numpy import sum as dsum
    from ._trace import trace

    float_in = [
        i
        for i, v in enumerate(graph.placeholders)
        if np.issubdtype(graph.vars[v].dtype, np.inexact)
    ]
    float_out = [
        j for j, v in enumerate(graph.outputs) if np.issubdtype(graph.vars[v].dtype, np.inexact)
    ]
    if not float_in or not float_out:
        return None

    def loss(*leaves):
        outs = graph.call_flat(list(leaves))
        total = None
        for j in float_out:
            o = outs[j]
            if np.issubdtype(graph.vars[graph.outputs[j]].dtype, np.complexfloating):
                o = real(o)
            term = o if np.shape(o) == () else dsum(o)
            total = term if total is None else total + term
        return total

    examples = []
    for v in graph.placeholders:
        x = graph.examples.get(v)
        if x is None:
            info = graph.vars[v]
            x = np.ones(info.shape, dtype=info.dtype)
        examples.append(x)
    with np.errstate(all="ignore"):
        return trace(value_and_grad(loss, argnums=tuple(float_in)), name=f"{graph.name}_vjp")(
            *examples
        )


def memory_plan(graph) -> MemoryPlan:
    """The :class:`MemoryPlan` of ``graph``."""
    fwd, timeline = peak_bytes(graph)
    bwd_graph = _backward_graph(graph)
    fb = None if bwd_graph is None else peak_bytes(bwd_graph)[0]
    return MemoryPlan(
        forward_peak_bytes=fwd,
        forward_backward_peak_bytes=fb,
        placeholder_bytes=sum(graph.vars[v].nbytes for v in graph.placeholders),
        constant_bytes=sum(graph.vars[v].nbytes for v in graph.consts),
        output_bytes=sum(graph.vars[v].nbytes for v in set(graph.outputs)),
        timeline=timeline,
    )
