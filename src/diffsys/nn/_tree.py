"""Pytree helpers for models: leaves by dotted name, filters, partition and combine."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..core.pytree import tree_flatten, tree_map, tree_named_leaves, tree_unflatten
from ..core.tracer import Tracer

__all__ = [
    "combine",
    "is_array",
    "is_inexact_array",
    "named_leaves",
    "partition",
]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def named_leaves(tree, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted name, leaf)`` for every leaf of ``tree``, in ``tree_leaves`` order (a
    module's leaves are named by its fields: ``"layers.0.weight"``).

    >>> dict(named_leaves({"enc": [1.0, 2.0], "w": 3.0}))
    {'enc.0': 1.0, 'enc.1': 2.0, 'w': 3.0}
    """
    return tree_named_leaves(tree, prefix)


def _value(x):
    while isinstance(x, Tracer):
        x = x._value
    return x


def is_array(x) -> bool:
    """Whether ``x`` is an array (or a traced one)."""
    return isinstance(_value(x), np.ndarray | np.generic)


def is_inexact_array(x) -> bool:
    """Whether ``x`` is a floating-point or complex array: the leaves that have gradients."""
    v = _value(x)
    return isinstance(v, np.ndarray | np.generic) and np.issubdtype(v.dtype, np.inexact)


def partition(
    tree,
    filter: Callable[[Any], bool] = is_inexact_array,  # noqa: A002 - Equinox's name
    *,
    frozen: Iterable[str] | str = (),
) -> tuple[Any, Any]:
    """Split ``tree`` into ``(selected, rest)``: two trees of its structure with ``None``
    where a leaf went to the other side.

    A leaf is selected when ``filter(leaf)`` holds and its dotted name matches none of the
    glob patterns in ``frozen``. Differentiate and optimize ``selected``; rebuild the model
    with :func:`combine`.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> net = nn.Sequential([nn.Linear(2, 2, key=0), nn.Linear(2, 1, key=1)])
    >>> params, rest = nn.partition(net, frozen="layers.0.*")
    >>> sorted(params.named_parameter_dict())
    ['layers.1.bias', 'layers.1.weight']
    >>> nn.combine(params, rest).layers[0].weight.shape
    (2, 2)
    """
    patterns = (frozen,) if isinstance(frozen, str) else tuple(frozen)
    names_leaves = list(named_leaves(tree))
    leaves, treedef = tree_flatten(tree)
    if len(names_leaves) != len(leaves):  # pragma: no cover - named_leaves mirrors flatten
        raise RuntimeError("partition: leaf names do not line up with the tree's leaves")
    keep = [
        bool(filter(leaf)) and not any(fnmatch.fnmatchcase(name, p) for p in patterns)
        for name, leaf in names_leaves
    ]
    a = [leaf if k else None for leaf, k in zip(leaves, keep, strict=True)]
    b = [None if k else leaf for leaf, k in zip(leaves, keep, strict=True)]
    return tree_unflatten(treedef, a), tree_unflatten(treedef, b)


def combine(*trees):
    """Merge trees of one structure made by :func:`partition`: at each leaf position, the
    first tree's leaf that is not ``None``."""
    if not trees:
        raise TypeError("combine: give at least one tree")

    def pick(*xs):
        for x in xs:
            if x is not None:
                return x
        return None

    return tree_map(pick, *trees, is_leaf=lambda x: x is None)
