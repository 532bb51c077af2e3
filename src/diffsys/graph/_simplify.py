"""Algebraic simplification: rewrites that give the same values and derivatives with fewer
operations. They target what differentiation leaves in a graph (a VJP graph of a step is
replayed thousands of times by ``scan(..., replay=True)``):

- ``broadcast_to(x)`` read only by broadcasting arithmetic (``add``, ``subtract``,
  ``multiply``, ``divide``) whose other operand already has the broadcast shape: the
  arithmetic reads ``x`` itself and broadcasts it (``sum``'s VJP followed by a product).
- ``add_any(a, scatter_zeros(v, idx))``, the scatter read only there: ``index_add(a, v,
  idx)``, which adds ``v`` into a copy of ``a`` instead of building a zero array and adding
  it whole (the VJP of ``x[idx]`` meeting another cotangent of ``x``).

Values are equal bit for bit except the sign of a zero (``-0.0 + 0.0`` is ``0.0``; the
rewritten graph keeps ``-0.0`` where nothing was added). The dead operations the rewrites
leave are removed by :func:`~diffsys.graph._passes.dce`.
"""

from __future__ import annotations

from ._graph import Graph, Node

_BROADCASTING = frozenset({"add", "subtract", "multiply", "divide"})


def simplify(graph: Graph) -> Graph:
    """``graph`` with the rewrites above applied (see :meth:`Graph.simplify`)."""
    nodes = list(graph.nodes)
    readers = _readers(nodes)
    protected = set(graph.outputs)
    producer = {v: k for k, node in enumerate(nodes) for v in node.outputs}
    for node in list(nodes):
        if node.prim.name == "broadcast_to":
            _read_unbroadcast(graph, nodes, readers, protected, node)
    for k, node in enumerate(nodes):
        if node.prim.name == "add_any":
            nodes[k] = _as_index_add(graph, nodes, readers, protected, producer, node)
    return graph._rebuilt(nodes=nodes)


def _readers(nodes: list[Node]) -> dict[int, list[tuple[int, int]]]:
    """For each variable, the ``(node index, input position)`` pairs that read it."""
    readers: dict[int, list[tuple[int, int]]] = {}
    for k, node in enumerate(nodes):
        for j, v in enumerate(node.inputs):
            readers.setdefault(v, []).append((k, j))
    return readers


def _read_unbroadcast(graph, nodes, readers, protected, node) -> None:
    """Let every reader of ``node``'s output read its input instead, when all qualify."""
    (out,) = node.outputs
    (x,) = node.inputs
    uses = readers.get(out, [])
    if not uses or out in protected:
        return
    shape = graph.vars[out].shape
    for k, j in uses:
        reader = nodes[k]
        if reader.prim.name not in _BROADCASTING or len(reader.inputs) != 2:
            return
        other = reader.inputs[1 - j]
        if other == out or graph.vars[other].shape != shape:
            return  # the result would lose the broadcast shape
    for k, j in uses:
        reader = nodes[k]
        inputs = list(reader.inputs)
        inputs[j] = x
        nodes[k] = Node(reader.prim, tuple(inputs), reader.params, reader.outputs, reader.views)
        readers.setdefault(x, []).append((k, j))
    readers[out] = []


def _as_index_add(graph, nodes, readers, protected, producer, node) -> Node:
    """``add_any(a, scatter_zeros(v))`` as ``index_add(a, v)`` when it qualifies."""
    from ..numpy._indexing import Slot, index_add_p

    for j in (1, 0):
        s, a = node.inputs[j], node.inputs[1 - j]
        k = producer.get(s)
        if k is None or s in protected or len(readers.get(s, [])) != 1:
            continue
        scatter = nodes[k]
        if scatter.prim.name != "scatter_zeros":
            continue
        idx = scatter.params["idx"]
        if any(isinstance(i, Slot) for i in idx) or a == s:
            continue
        if tuple(graph.vars[a].shape) != tuple(scatter.params["shape"]):
            continue
        (v,) = scatter.inputs
        return Node(index_add_p, (a, v), {"idx": idx}, node.outputs, (None,))
    return node
