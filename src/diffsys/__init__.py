"""diffsys: end-to-end differentiable systems over NumPy.

>>> import diffsys as ds
>>> import diffsys.numpy as dnp
>>> ds.grad(lambda x: dnp.sum(dnp.sin(x) ** 2))(dnp.array([0.0, 1.0]))
array([0.        , 0.90929743])
"""

from . import (
    _malloc,
    debug,
    numpy,  # noqa: F401 - installs tracer methods and the NumPy surface
    scan,  # callable: ds.scan(step, init, xs) (see diffsys.scan)
)
from .check import GradientCheckError, check_grads
from .core import (
    DroppedDerivativeWarning,
    Primitive,
    Tracer,
    checkpoint,
    concrete,
    custom_jvp,
    custom_vjp,
    elementwise_grad,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    primitive,
    register_pytree_node,
    stop_gradient,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_named_leaves,
    tree_structure,
    tree_unflatten,
    value_and_grad,
    vjp,
    vmap,
)
from .core.custom import checkpoint_policies
from .graph import Graph, jit, load_graph, trace
from .scan import scan_policies

__version__ = "0.1.0"

_malloc.tune_at_import()

__all__ = [
    "DroppedDerivativeWarning",
    "Graph",
    "GradientCheckError",
    "Primitive",
    "Tracer",
    "check_grads",
    "checkpoint",
    "checkpoint_policies",
    "concrete",
    "custom_jvp",
    "custom_vjp",
    "elementwise_grad",
    "grad",
    "hessian",
    "hvp",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jit",
    "jvp",
    "load_graph",
    "primitive",
    "register_pytree_node",
    "scan",
    "scan_policies",
    "stop_gradient",
    "tree_flatten",
    "tree_leaves",
    "tree_named_leaves",
    "tree_map",
    "tree_structure",
    "trace",
    "tree_unflatten",
    "value_and_grad",
    "vjp",
    "vmap",
]
