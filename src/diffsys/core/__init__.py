"""The engine: tracers and trace levels, primitives, reverse and forward mode, batching,
transforms, custom rules and pytrees. Knows primitives, not NumPy names."""

from .custom import checkpoint, custom_jvp, custom_vjp, stop_gradient
from .primitive import Primitive, primitive, registry
from .pytree import (
    register_pytree_node,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_named_leaves,
    tree_structure,
    tree_unflatten,
)
from .tracer import Tracer, concrete
from .transforms import (
    elementwise_grad,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    value_and_grad,
    vjp,
    vmap,
)
from .warn import DroppedDerivativeWarning

__all__ = [
    "DroppedDerivativeWarning",
    "Primitive",
    "Tracer",
    "checkpoint",
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
    "jvp",
    "primitive",
    "register_pytree_node",
    "registry",
    "stop_gradient",
    "tree_flatten",
    "tree_leaves",
    "tree_named_leaves",
    "tree_map",
    "tree_structure",
    "tree_unflatten",
    "value_and_grad",
    "vjp",
    "vmap",
]
