"""The sorting relaxations as :class:`~diffsys.relax.Relaxation` objects, with exact hard forms.

``diffsys.relax.soft_sort``, ``soft_rank``, ``soft_topk`` and ``soft_topk_mask`` are the
functions of :mod:`diffsys.relax.sorting` wrapped as relaxations whose strength is
``regularization_strength`` (``eps``). Calling one is calling the function; ``.hard`` is the
exact operation it tends to as ``eps -> 0``:

==================  ============================================  =======================
relaxation          hard form                                     gap as ``eps -> 0``
==================  ============================================  =======================
``soft_sort``       ``sort`` (``flip``-ped when ``descending``)   -> 0
``soft_rank``       ranks 1..n (ties ranked by position)          -> 0 (no ties)
``soft_topk``       the ``k`` largest values, descending           -> 0
``soft_topk_mask``  0/1 indicator of the ``k`` largest entries    -> 0 (no tie at the k-th)
==================  ============================================  =======================

The hard sort and top-k values are differentiable (the gradient goes to the selected
entries, as NumPy's sort permutes them); the hard ranks and mask are piecewise constant (zero
derivative). So a pipeline stage built from one of these needs no hand-written hard form::

    pl.Stage("top3", relax.soft_topk_mask.partial(k=3, regularization_strength=0.1))

is a ``relaxed`` stage: the soft mask in training, the exact top-3 mask at inference, and
``pipe.mismatch`` reports the distance between the two.

>>> import numpy as np
>>> from diffsys.relax import soft_rank
>>> x = np.array([0.3, -1.0, 2.0])
>>> soft_rank.hard(x), soft_rank.gap(x, regularization_strength=10.0) > 0.5
(array([2., 1., 3.]), True)
>>> soft_rank.gap(x, regularization_strength=0.01)
0.0
"""

from __future__ import annotations

from typing import Any

from ..numpy import argsort, astype, flip, getitem, less, negative, sort
from . import sorting as _sorting
from .smooth import Relaxation
from .sorting import _check_k, _check_regularization, _check_rows, _to_last

Array = Any

__all__ = ["soft_rank", "soft_sort", "soft_topk", "soft_topk_mask"]

_STRENGTH = "regularization_strength"


def _ordinal_ranks(x: Array, descending: bool) -> Array:
    """0-based ranks along the last axis (ties by position), as integers."""
    order = argsort(negative(x) if descending else x, axis=-1, kind="stable")
    return argsort(order, axis=-1, kind="stable")


def _hard_sort(x: Array, regularization: str = "l2", *, axis: int = -1, descending=False):
    _check_regularization(regularization, "soft_sort.hard")
    x, back = _to_last(_check_rows(x, "soft_sort.hard"), axis, "soft_sort.hard")
    out = sort(x, axis=-1)
    return back(flip(out, axis=-1) if descending else out)


def _hard_rank(x: Array, regularization: str = "l2", *, axis: int = -1, descending=False):
    _check_regularization(regularization, "soft_rank.hard")
    x, back = _to_last(_check_rows(x, "soft_rank.hard"), axis, "soft_rank.hard")
    return back(astype(_ordinal_ranks(x, descending), x.dtype) + 1.0)


def _hard_topk_mask(x: Array, k: int, regularization: str = "l2", *, axis: int = -1):
    _check_regularization(regularization, "soft_topk_mask.hard")
    x, back = _to_last(_check_rows(x, "soft_topk_mask.hard"), axis, "soft_topk_mask.hard")
    k = _check_k(k, x.shape[-1], "soft_topk_mask.hard")
    return back(astype(less(_ordinal_ranks(x, descending=True), k), x.dtype))


def _hard_topk(x: Array, k: int, regularization: str = "l2", *, axis: int = -1):
    _check_regularization(regularization, "soft_topk.hard")
    x, back = _to_last(_check_rows(x, "soft_topk.hard"), axis, "soft_topk.hard")
    k = _check_k(k, x.shape[-1], "soft_topk.hard")
    out = flip(sort(x, axis=-1), axis=-1)
    return back(getitem(out, (Ellipsis, slice(0, k))))


soft_sort = Relaxation(_sorting.soft_sort, _hard_sort, strength=_STRENGTH)
soft_rank = Relaxation(_sorting.soft_rank, _hard_rank, strength=_STRENGTH)
soft_topk = Relaxation(_sorting.soft_topk, _hard_topk, strength=_STRENGTH)
soft_topk_mask = Relaxation(_sorting.soft_topk_mask, _hard_topk_mask, strength=_STRENGTH)
