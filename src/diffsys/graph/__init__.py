"""Graph IR: trace a function once, replay it fast, transform, optimize, save and load it.

>>> import diffsys as ds, diffsys.numpy as dnp
>>> g = ds.trace(ds.value_and_grad(lambda x: dnp.sum(dnp.sin(x))))(dnp.zeros(3))
>>> value, grad = g(dnp.zeros(3))
>>> grad
array([1., 1., 1.])

See docs/graph.md.
"""

from ._graph import ArgSpec, Graph, GraphCallError, GraphvizNotFoundError, Node, VarInfo
from ._jit import JitCacheInfo, Jitted, jit
from ._memory import MemoryPlan
from ._passes import IMPURE, mark_impure
from ._serialize import GraphLoadError, GraphSaveError, load_graph
from ._trace import GraphSpecializationWarning, GraphTraceError, trace

__all__ = [
    "ArgSpec",
    "Graph",
    "GraphCallError",
    "GraphLoadError",
    "GraphSaveError",
    "GraphSpecializationWarning",
    "GraphTraceError",
    "GraphvizNotFoundError",
    "IMPURE",
    "JitCacheInfo",
    "Jitted",
    "MemoryPlan",
    "Node",
    "VarInfo",
    "jit",
    "load_graph",
    "mark_impure",
    "trace",
]
