"""Splitting a parameter pytree into differentiable leaves (primitive operands) and the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tracer import Tracer


def _is_diff(leaf) -> bool:
    if isinstance(leaf, Tracer):
        return True
    if isinstance(leaf, float):
        return True
    return isinstance(leaf, np.ndarray | np.floating) and np.issubdtype(leaf.dtype, np.inexact)


@dataclass(frozen=True, eq=False)
class ParamSplit:
    """How to rebuild a parameter pytree from its differentiable leaves."""

    treedef: Any
    positions: tuple[int, ...]  # where the differentiable leaves go
    static: tuple  # every leaf, with the differentiable ones as placeholders

    def rebuild(self, diff_leaves) -> Any:
        leaves = list(self.static)
        for pos, leaf in zip(self.positions, diff_leaves, strict=True):
            leaves[pos] = leaf
        return tree_unflatten(self.treedef, leaves)


def split_params(params) -> tuple[ParamSplit, list]:
    """``(split, diff_leaves)``: floating-point arrays, Python floats and tracers are
    differentiable operands; everything else (ints, bools, strings, None) stays static."""
    leaves, treedef = tree_flatten(params)
    positions, diff = [], []
    static = list(leaves)
    for i, leaf in enumerate(leaves):
        if _is_diff(leaf):
            positions.append(i)
            diff.append(np.asarray(leaf) if isinstance(leaf, float) else leaf)
            static[i] = None
    return ParamSplit(treedef, tuple(positions), tuple(static)), diff
