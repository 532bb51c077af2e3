"""Graph passes: dead-code elimination, common-subexpression elimination, constant folding,
and freezing arguments into constants. Each returns a new graph with the same signature
(``freeze`` drops the frozen arguments) and the same values and derivatives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.owned import frozen
from ..core.pytree import tree_flatten
from ..core.tracer import Tracer
from ._graph import Graph, GraphCallError, Node, VarInfo

IMPURE: set[str] = set()
"""Names of primitives with side effects or randomness: never merged by CSE, never folded,
never removed by DCE. diffsys's own primitives are all pure (``diffsys.numpy.random`` draws
plain values and records no primitive); add yours with :func:`mark_impure`."""


def mark_impure(primitive) -> None:
    """Declare a primitive (or its name) impure, so passes keep every call of it."""
    IMPURE.add(primitive if isinstance(primitive, str) else primitive.name)


def _impure(node: Node) -> bool:
    return node.prim.name in IMPURE


def dce(graph: Graph) -> Graph:
    """Drop the operations whose results no output (and no impure operation) needs."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if _impure(node) or any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    kept.reverse()
    return graph._rebuilt(nodes=kept)


# --- CSE ---


class _Unhashable(Exception):
    pass


def _key(x) -> Any:
    """A hashable key equal for equal parameter values (type-aware: 1, 1.0 and True differ)."""
    if x is None or x is Ellipsis:
        return x
    if isinstance(x, bool | int | str):
        return (type(x), x)
    if isinstance(x, float | complex):
        return (type(x), repr(x))
    if isinstance(x, np.generic):
        return ("np", x.dtype.str, x.tobytes())
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "O":
            raise _Unhashable
        return ("arr", x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, np.dtype):
        return ("dtype", x.str)
    if isinstance(x, type) and issubclass(x, np.generic):
        return ("stype", np.dtype(x).str)
    if isinstance(x, slice):
        return ("slice", _key(x.start), _key(x.stop), _key(x.step))
    if isinstance(x, tuple | list):
        return (type(x), tuple(_key(y) for y in x))
    if isinstance(x, dict):
        return ("dict", tuple((k, _key(v)) for k, v in sorted(x.items(), key=lambda kv: kv[0])))
    if type(x).__name__ == "Slot" and hasattr(x, "k") and hasattr(x, "shape"):
        return ("slot", x.k, tuple(x.shape))
    raise _Unhashable  # an arbitrary object (a callable...): never merged


def _const_key(value) -> Any:
    if isinstance(value, np.ndarray) and value.size > 4096:
        return None  # large arrays are not compared byte by byte
    try:
        return ("const", _key(value))
    except _Unhashable:
        return None


def cse(graph: Graph) -> Graph:
    """Merge operations with the same primitive, the same inputs and equal parameters (and
    equal small constants). Impure primitives and operations whose parameters hold arbitrary
    objects are never merged."""
    repl: dict[int, int] = {}
    placeholders = set(graph.placeholders)
    seen_consts: dict = {}
    for v, value in graph.consts.items():
        if v in placeholders:
            continue
        k = _const_key(value)
        if k is None:
            continue
        k = (k, graph.vars[v].shape, graph.vars[v].dtype.str)
        if k in seen_consts:
            repl[v] = seen_consts[k]
        else:
            seen_consts[k] = v
    seen: dict = {}
    nodes = []
    for node in graph.nodes:
        inputs = tuple(repl.get(v, v) for v in node.inputs)
        key = None
        if not _impure(node):
            try:
                key = (id(node.prim), inputs, _key(node.params))
            except _Unhashable:
                key = None
        if key is not None and key in seen:
            for old, new in zip(node.outputs, seen[key].outputs, strict=True):
                repl[old] = new
            continue
        new = Node(node.prim, inputs, node.params, node.outputs, node.views)
        if key is not None:
            seen[key] = new
        nodes.append(new)
    outputs = tuple(repl.get(v, v) for v in graph.outputs)
    return graph._rebuilt(nodes=nodes, outputs=outputs)


# --- constant folding ---


def fold_constants(graph: Graph) -> Graph:
    """Compute once the operations whose inputs are all constants; their results become
    constants. Impure primitives are not folded."""
    consts = dict(graph.consts)
    vars_ = list(graph.vars)
    nodes = []
    for node in graph.nodes:
        if _impure(node) or not all(v in consts for v in node.inputs):
            nodes.append(node)
            continue
        vals = [consts[v] for v in node.inputs]
        if any(isinstance(v, Tracer) for v in vals):
            nodes.append(node)
            continue
        with np.errstate(all="ignore"):
            out = node.prim.impl(*vals, **node.params)
        outs = list(out) if node.prim.multiple_results else [out]
        for v, o in zip(node.outputs, outs, strict=True):
            consts[v] = o
            info = vars_[v]
            vars_[v] = VarInfo("const", info.shape, info.dtype, None)
    return graph._rebuilt(nodes=nodes, consts=consts, vars=vars_)


# --- freeze ---


def freeze(graph: Graph, argnums: int | Sequence[int] | dict[int, Any]) -> Graph:
    """Turn the placeholders of arguments ``argnums`` into constants (see ``Graph.freeze``)."""
    n = len(graph.args)
    if isinstance(argnums, dict):
        given = dict(argnums)
    else:
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        given = {i: None for i in nums}
    for i in given:
        if not isinstance(i, int) or not -n <= i < n:
            raise ValueError(f"Graph.freeze: argnum {i!r} is out of range for {n} argument(s)")
    given = {i % n: v for i, v in given.items()}
    consts = dict(graph.consts)
    vars_ = list(graph.vars)
    args = []
    for i, spec in enumerate(graph.args):
        if i not in given:
            args.append(spec)
            continue
        value = given[i]
        if value is None:
            leaves = [None] * len(spec.entries)
        else:
            leaves = _leaves_for(graph, spec, value)
        for (kind, v), leaf in zip(spec.entries, leaves, strict=True):
            if kind != "var":
                continue
            info = vars_[v]
            if leaf is None:
                if v not in graph.examples:
                    raise ValueError(
                        f"Graph.freeze: no recorded value for {info.name!r}; pass the values as "
                        "a dict {argnum: value}"
                    )
                leaf = graph.examples[v]
            consts[v] = frozen(leaf)  # the caller may change its array later
            vars_[v] = VarInfo("const", info.shape, info.dtype, info.name)
    return graph._rebuilt(args=args, consts=consts, vars=vars_)


def _leaves_for(graph: Graph, spec, value) -> list:
    from ._graph import flatten_spec

    if spec.treedef is not None:
        leaves, _ = tree_flatten(value)
    else:
        leaves = []
        flatten_spec(spec.spec, value, f"Graph.freeze: argument {spec.name!r}", leaves)
    if len(leaves) != len(spec.entries):
        raise GraphCallError(
            f"Graph.freeze: argument {spec.name!r} has {len(leaves)} leaves, the graph's has "
            f"{len(spec.entries)}"
        )
    out = []
    for leaf, (kind, v) in zip(leaves, spec.entries, strict=True):
        if kind == "var":
            info = graph.vars[v]
            arr = np.asarray(leaf)
            if arr.shape != info.shape or arr.dtype != info.dtype:
                raise GraphCallError(
                    f"Graph.freeze: {info.name!r} must have shape {info.shape} and dtype "
                    f"{info.dtype}, got {arr.shape} and {arr.dtype}"
                )
            out.append(leaf)
        else:
            out.append(None)
    return out
