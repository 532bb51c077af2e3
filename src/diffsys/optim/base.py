"""Optimizers as data: a :class:`GradientTransformation` is an ``(init, update)`` pair.

``init(params) -> state``; ``update(grads, state, params=None) -> (updates, state)``.
Transformations compose with :func:`chain`; :func:`apply_updates` adds the updates to the
parameters. States are pytrees (NamedTuples of arrays), so they can be saved, restored and
differentiated through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .. import numpy as dnp
from ..core.pytree import tree_leaves, tree_map

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "apply_updates",
    "chain",
    "global_norm",
    "identity",
    "tree_zeros_like",
]

Params = Any
Updates = Any
OptState = Any


class GradientTransformation(NamedTuple):
    """A pair of pure functions: ``init(params) -> state`` and
    ``update(grads, state, params=None) -> (updates, new_state)``.

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.sgd(0.1)
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({"w": np.array([1.0, 1.0])}, state, params)
    >>> optim.apply_updates(params, updates)
    {'w': array([0.9, 1.9])}
    """

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


def identity() -> GradientTransformation:
    """Leaves the gradients unchanged."""
    return GradientTransformation(lambda params: EmptyState(), lambda g, s, p=None: (g, s))


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` in order; the state is the tuple of their states.

    >>> from diffsys import optim
    >>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))
    """
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(
                f"chain: argument {i} is a {type(t).__name__}, not a GradientTransformation"
            )

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        if len(state) != len(transforms):
            raise ValueError(
                f"chain: the state has {len(state)} parts for {len(transforms)} transformations"
            )
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf by leaf, keeping each parameter's dtype."""

    def add(p, u):
        out = p + u
        dtype = getattr(p, "dtype", None)
        if dtype is not None and getattr(out, "dtype", dtype) != dtype:
            out = dnp.astype(out, dtype)
        return out

    return tree_map(add, params, updates)  # None (partitioned-out) leaves are empty nodes


def tree_zeros_like(tree) -> Any:
    """Zeros shaped and typed like each leaf (plain arrays)."""
    return tree_map(lambda x: np.zeros(np.shape(x), dtype=_dtype(x)), tree)


def _dtype(x) -> np.dtype:
    d = getattr(x, "dtype", None)
    return np.result_type(x) if d is None else d


def global_norm(tree) -> Any:
    """The 2-norm of all leaves together, ``sqrt(sum_i sum(leaf_i ** 2))``."""
    leaves = [x for x in tree_leaves(tree) if x is not None]
    if not leaves:
        return np.float64(0.0)
    total = sum(dnp.sum(x * x) for x in leaves)
    return dnp.sqrt(total)
