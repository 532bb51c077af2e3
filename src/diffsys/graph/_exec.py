"""The replay executor: a graph compiled to a flat list of instructions over a slot list.

Every variable gets a *slot* in one list. Placeholders take the first slots (filled at each
call), constants the next ones (preloaded in a template that each call copies), then the
intermediates, allocated like registers: an operation's output reuses the slot of an input
that dies there, so overwriting it releases the dead value; other values that die are cleared
right after their last use. No dict and no generic code runs per operation on plain arrays:

- ``(0, impl, a, None, o, frees)``: ``s[o] = impl(s[a])``
- ``(1, impl, a, b, o, frees)``: ``s[o] = impl(s[a], s[b])``
- ``(2, impl, (a, ...), params, o, frees)``: ``s[o] = impl(*ins, **params)``
- ``(3, impl, (a, ...), params, (o, ...), frees)``: several results

On tracers (``grad`` of a graph, ``vmap`` ...) the same list runs with the primitives in
place of their implementations, so every operation goes through the ordinary dispatch and is
recorded by the transforms.

On plain arrays, a program of at most ``STRAIGHT_LINE_LIMIT`` instructions is also turned
into one straight-line Python function (:func:`straight_line`): each slot becomes a local
variable, each instruction one line (``r5 = f3(r1, r2)``), so the loop's tuple unpacking,
dispatch on the kind and list indexing disappear (about 15% of a replay of small arrays).
The function's text is built from integers only (slot and instruction numbers): names,
primitives, parameters and constants of the graph never appear in it (they are passed in as
values), so even a graph loaded from an untrusted file puts none of its content in code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

STRAIGHT_LINE_LIMIT = 20000


class Program(NamedTuple):
    code: tuple  # the instructions
    template: list  # the slots after the placeholders: constants preloaded, the rest None
    n_inputs: int  # placeholders fill slots 0 .. n_inputs - 1
    out_slots: tuple[int, ...]
    slot_of: dict  # variable -> slot (for inspection and tests)


def liveness(graph) -> dict[int, int]:
    """For each variable read by an operation, the index of the last operation reading it
    (graph outputs and constants never die: they are absent)."""
    last: dict[int, int] = {}
    for k, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[v] = k
    for v in graph.outputs:
        last.pop(v, None)
    for v in graph.consts:
        last.pop(v, None)
    return last


def compile_program(graph, dispatch: bool = False) -> Program:
    """The instruction list of ``graph`` (``dispatch``: call primitives, not ``impl``)."""
    placeholders = graph.placeholders
    slot_of: dict[int, int] = {}
    for k, v in enumerate(placeholders):
        slot_of[v] = k
    n_inputs = len(placeholders)
    template: list = []
    for v, value in graph.consts.items():
        slot_of[v] = n_inputs + len(template)
        template.append(value)
    nslots = n_inputs + len(template)
    free: list[int] = []  # slots of dead values, reusable
    last = liveness(graph)
    outputs = set(graph.outputs)
    code = []
    for k, node in enumerate(graph.nodes):
        prim = node.prim
        ins = tuple(slot_of[v] for v in node.inputs)
        # Values read for the last time here: their slots are free after this operation.
        dying = []
        for v in dict.fromkeys(node.inputs):
            if last.get(v) == k and v not in outputs:
                dying.append(slot_of[v])
        out_slots = []
        for v in node.outputs:
            if dying:
                s = dying.pop(0)  # overwriting it releases the dead input
            elif free:
                s = free.pop()
            else:
                s = nslots
                nslots += 1
                template.append(None)
            slot_of[v] = s
            out_slots.append(s)
        frees = list(dying)
        free.extend(dying)
        # Outputs nobody reads (no dead-code elimination was run) are dropped at once.
        for v, s in zip(node.outputs, out_slots, strict=True):
            if v not in last and v not in outputs:
                frees.append(s)
                free.append(s)
        f = prim if dispatch else prim.impl
        params = node.params
        fr = tuple(frees) or None
        if prim.multiple_results:
            code.append((3, f, ins, params, tuple(out_slots), fr))
        elif params or len(ins) > 2 or not ins:
            code.append((2, f, ins, params, out_slots[0], fr))
        elif len(ins) == 1:
            code.append((0, f, ins[0], None, out_slots[0], fr))
        else:
            code.append((1, f, ins[0], ins[1], out_slots[0], fr))
    out_slots = tuple(slot_of[v] for v in graph.outputs)
    return Program(tuple(code), template, n_inputs, out_slots, slot_of)


def run(program: Program, inputs: list) -> list:
    """Run ``program`` on the placeholder values ``inputs``; the flat output values."""
    s = inputs + program.template
    for kind, f, a, b, o, fr in program.code:
        if kind == 1:
            s[o] = f(s[a], s[b])
        elif kind == 0:
            s[o] = f(s[a])
        elif kind == 2:
            s[o] = f(*[s[i] for i in a], **b)
        else:
            res = f(*[s[i] for i in a], **b)
            for i, r in zip(o, res, strict=True):
                s[i] = r
        if fr:
            for i in fr:
                s[i] = None
    return [s[i] for i in program.out_slots]


def straight_line(program: Program) -> Callable[[list], list]:
    """``program`` as one Python function of the slot list (see the module docstring)."""
    env: dict = {}
    nslots = program.n_inputs + len(program.template)
    regs = [f"r{int(i)}" for i in range(nslots)]
    lines = ["def replay(s):"]
    if nslots:
        lines.append(f"    {', '.join(regs)}{',' if nslots == 1 else ''} = s")
    lines.append("    del s")
    for k, (kind, f, a, b, o, fr) in enumerate(program.code):
        k = int(k)
        env[f"f{k}"] = f
        if kind == 1:
            lines.append(f"    r{int(o)} = f{k}(r{int(a)}, r{int(b)})")
        elif kind == 0:
            lines.append(f"    r{int(o)} = f{k}(r{int(a)})")
        else:
            args = [f"r{int(i)}" for i in a]
            if b:
                env[f"p{k}"] = b
                args.append(f"**p{k}")
            call = f"f{k}({', '.join(args)})"
            if kind == 2:
                lines.append(f"    r{int(o)} = {call}")
            else:
                outs = ", ".join(f"r{int(i)}" for i in o)
                lines.append(f"    ({outs},) = {call}")
        if fr:
            lines.append("    " + "; ".join(f"r{int(i)} = None" for i in fr))
    lines.append(f"    return [{', '.join(f'r{int(i)}' for i in program.out_slots)}]")
    source = "\n".join(lines) + "\n"
    namespace = dict(env)
    exec(compile(source, "<diffsys.graph replay>", "exec"), namespace)  # noqa: S102
    fn = namespace["replay"]
    fn.source = source
    return fn
