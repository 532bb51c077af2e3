"""Human-readable views of a graph: the text listing and Graphviz DOT."""

from __future__ import annotations

import numpy as np

_MAX_PARAM = 60


def _short(value, limit: int = _MAX_PARAM) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 4:
            text = np.array2string(value, separator=", ", threshold=4)
        else:
            text = f"array<{value.dtype}[{','.join(map(str, value.shape))}]>"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _const_text(value) -> str:
    if isinstance(value, bool | int | float | complex | np.generic):
        return repr(value.item() if isinstance(value, np.generic) else value)
    return _short(value)


def _ref(graph, v: int) -> str:
    info = graph.vars[v]
    if info.kind == "const":
        value = graph.consts[v]
        if np.ndim(value) == 0:
            return _const_text(value)
    return f"%{v}"


def listing(graph) -> str:
    """``str(graph)``: placeholders, constants, operations, outputs; one line each."""
    lines = []
    sig = ", ".join(a.name for a in graph.args)
    lines.append(
        f"graph {graph.name}({sig})  # {len(graph.nodes)} operations, {len(graph.consts)} constants"
    )
    for v in graph.placeholders:
        info = graph.vars[v]
        lines.append(f"  %{v} = {info.kind} {info.name!r} : {info.describe()}")
    for v, value in graph.consts.items():
        if np.ndim(value) == 0:
            continue  # scalars are written inline where they are used
        lines.append(f"  %{v} = const {_short(value)} : {graph.vars[v].describe()}")
    for node in graph.nodes:
        args = [_ref(graph, v) for v in node.inputs]
        args += [f"{k}={_short(p)}" for k, p in node.params.items()]
        outs = ", ".join(f"%{v}" for v in node.outputs)
        types = ", ".join(graph.vars[v].describe() for v in node.outputs)
        lines.append(f"  {outs} = {node.prim.name}({', '.join(args)}) : {types}")
    outs = ", ".join(_ref(graph, v) for v in graph.outputs)
    lines.append(f"  return {outs}")
    for v, value in graph.specializations[:5]:
        lines.append(f"  # specialised on %{v} == {_short(value, 30)} (Python control flow)")
    return "\n".join(lines)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_STYLE = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#cfe2ff"',
    "param": 'shape=box, style="rounded,filled", fillcolor="#ffe5b4"',
    "const": 'shape=note, style=filled, fillcolor="#eeeeee"',
}


def to_dot(graph) -> str:
    """DOT text: one node per placeholder, constant and operation, edges along data flow."""
    lines = [f"digraph {_q(graph.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    producer: dict[int, tuple[str, int | None]] = {}
    for v in graph.placeholders:
        info = graph.vars[v]
        label = f"{info.name}\n{info.describe()}"
        lines.append(f"  v{v} [label={_q(label)}, {_STYLE[info.kind]}];")
        producer[v] = (f"v{v}", None)
    for v, value in graph.consts.items():
        info = graph.vars[v]
        label = f"{_short(value, 30)}\n{info.describe()}"
        lines.append(f"  v{v} [label={_q(label)}, {_STYLE['const']}];")
        producer[v] = (f"v{v}", None)
    for k, node in enumerate(graph.nodes):
        types = ", ".join(graph.vars[v].describe() for v in node.outputs)
        params = "".join(f"\n{p}={_short(x, 30)}" for p, x in node.params.items())
        label = f"{node.prim.name}{params}\n{types}"
        lines.append(f"  n{k} [label={_q(label)}, shape=ellipse];")
        for j, v in enumerate(node.outputs):
            producer[v] = (f"n{k}", j if len(node.outputs) > 1 else None)
        for i, v in enumerate(node.inputs):
            src, j = producer[v]
            attrs = [f"headlabel={i}"] if len(node.inputs) > 1 else []
            if j is not None:
                attrs.append(f"taillabel={j}")
            attr = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"  {src} -> n{k}{attr};")
    lines.append('  output [label="output", shape=doublecircle];')
    for i, v in enumerate(graph.outputs):
        src, j = producer[v]
        lines.append(f"  {src} -> output [label={i}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
