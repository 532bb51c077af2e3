"""Soft sorting, ranking and top-k as projections onto permutahedra (Blondel et al. 2020).

The permutahedron ``P(w)`` is the convex hull of all permutations of ``w``. Projecting
``z`` onto it (Euclidean, ``l2``; or in KL geometry, ``kl``) is a sort of ``z`` followed by an
isotonic regression and the inverse permutation::

    P(z, w) = z - v(s - w)[inverse permutation],   s = z sorted descending, w sorted descending

so one call costs O(n log n) for the sort and O(n) for everything else, forward and backward.
With ``rho = (n, n-1, ..., 1)`` and a regularization strength ``eps``:

- ``soft_rank(x)  = P(x / eps, rho)``         (ascending ranks: the smallest gets ~1)
- ``soft_sort(x)  = -P(rho / eps, -x)``       (ascending values)
- ``soft_topk_mask(x, k) = P(x / eps, (1,...,1, 0,...,0))``  (k ones: a relaxed top-k indicator)

As ``eps -> 0`` they become the hard rank, sort and top-k indicator; as ``eps -> inf`` they
collapse to the mean rank / the mean value. The conventions (ascending, ``kl`` variants)
match torchsort and the reference implementation of the paper.

Exactness in floating point. Given the blocks ``B`` of the isotonic regression, the
projection is ``mean_B(w) + (s - mean_B(s))`` (``l2``) or ``(s - lse_B(s)) + lse_B(w)``
(``kl``): computed in these forms, a block of one element gives ``w_i`` exactly, however large
``s`` is (``s - v(s - w)`` gave ``s - fl(s - w)``, 0 at ``x / eps = 1e30``). The ranks are
shift-invariant, so rows are centred on their median before the division by ``eps``
(``1.7e12 + x`` ranks as ``x`` does, instead of PAV and log-sum-exps at magnitude ``1e15``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tracer import Tracer
from ..numpy import exp, getitem, moveaxis, negative
from ._prims import permute_p, project_blocks_p, row_middle_p, sort_perm_p
from .isotonic import blocks_kl_p, blocks_l2_p

Array = Any  # numpy.ndarray or a diffsys tracer

_REGULARIZATIONS = ("l2", "kl")


# --- the projection -------------------------------------------------------------------------------


def _project_sorted_w(z: Array, w: Array, regularization: str, z_sorted: bool = False) -> Array:
    """Projection of ``z`` onto ``P(w)`` along the last axis; ``w`` sorted descending.

    ``l2``: Euclidean projection. ``kl``: the log-space KL projection ``P_E`` of the paper
    (``exp`` of the result lies in ``P(exp(w))``).
    """
    if z_sorted:
        s = z
    else:
        perm = sort_perm_p(z, descending=True)
        s = permute_p(z, perm)
    # s - v with v the isotonic regression of (s, w), written so that nothing of size s is
    # subtracted from something of size s - w (see the module docstring): a block's output is
    # the block's w-mean plus the deviations of s from its own mean (l2), or the block's
    # log-softmax of s plus the log-sum-exp of w (kl). PAV runs on centred rows.
    starts = (blocks_l2_p if regularization == "l2" else blocks_kl_p)(s, w)
    out = project_blocks_p(s, w, starts, kind=regularization)
    return out if z_sorted else permute_p(out, perm, inverse=True)


def _centred_sorted(x: Array, eps: float | Array):
    """``(s - median) / eps`` with ``s`` the rows of ``x`` sorted descending, and the sorting
    permutation. The median is held constant: the projections that use this are
    shift-invariant, so their derivatives do not depend on it."""
    perm = sort_perm_p(x, descending=True)
    s = permute_p(x, perm)
    return (s - row_middle_p(s)) / eps, perm


def permutahedron_projection(z: Array, w: Array, regularization: str = "l2") -> Array:
    """Project ``z`` onto the permutahedron of ``w`` (the hull of ``w``'s permutations).

    Along the last axis, batched over leading axes; ``z`` and ``w`` broadcast. ``l2``: the
    Euclidean projection. ``kl``: ``log argmin_{mu in P(exp(w))} KL(mu, exp(z))``.

    >>> import numpy as np
    >>> from diffsys.relax import permutahedron_projection
    >>> permutahedron_projection(np.array([0.0, 10.0, 5.0]), np.array([3.0, 2.0, 1.0]))
    array([1., 3., 2.])
    """
    _check_regularization(regularization, "permutahedron_projection")
    _check_rows(z, "permutahedron_projection")
    w_sorted = permute_p(w, sort_perm_p(w, descending=True))
    return _project_sorted_w(z, w_sorted, regularization)


# --- public operations ----------------------------------------------------------------------------


def soft_rank(
    x: Array,
    regularization: str = "l2",
    regularization_strength: float | Array = 1.0,
    *,
    axis: int = -1,
    descending: bool = False,
) -> Array:
    """Differentiable ranks of ``x`` along ``axis``: 1 for the smallest, n for the largest.

    ``regularization``: ``"l2"`` (piecewise linear in ``x``) or ``"kl"`` (smooth).
    ``regularization_strength`` (``eps`` > 0, may be traced): towards 0 the exact ranks,
    large values pull every rank towards ``(n + 1) / 2``. ``descending=True`` ranks the
    largest first. O(n log n) per row forward, O(n) backward; batched over other axes.

    >>> import numpy as np
    >>> from diffsys.relax import soft_rank
    >>> soft_rank(np.array([3.0, 1.0, 2.0]), regularization_strength=0.1)
    array([3., 1., 2.])
    """
    name = "soft_rank"
    _check_regularization(regularization, name)
    x, eps = _check_rows(x, name), _check_strength(regularization_strength, name)
    x, back = _to_last(x, axis, name)
    n = x.shape[-1]
    theta, perm = _centred_sorted(negative(x) if descending else x, eps)
    rho = np.arange(n, 0, -1, dtype=x.dtype)
    if regularization == "l2":
        out = _project_sorted_w(theta, rho, "l2", z_sorted=True)
    else:
        out = exp(_project_sorted_w(theta, np.log(rho), "kl", z_sorted=True))
    return back(permute_p(out, perm, inverse=True))


def soft_sort(
    x: Array,
    regularization: str = "l2",
    regularization_strength: float | Array = 1.0,
    *,
    axis: int = -1,
    descending: bool = False,
) -> Array:
    """Differentiable sort of ``x`` along ``axis`` (ascending unless ``descending=True``).

    ``regularization``: ``"l2"`` or ``"kl"``; ``regularization_strength`` (``eps`` > 0, may
    be traced): towards 0 the exact sort, large values pull every output towards the mean.
    O(n log n) per row forward, O(n) backward; batched over other axes.

    >>> import numpy as np
    >>> from diffsys.relax import soft_sort
    >>> soft_sort(np.array([3.0, 1.0, 2.0]), regularization_strength=0.1)
    array([1., 2., 3.])
    """
    name = "soft_sort"
    _check_regularization(regularization, name)
    x, eps = _check_rows(x, name), _check_strength(regularization_strength, name)
    x, back = _to_last(x, axis, name)
    n = x.shape[-1]
    z = np.arange(n, 0, -1, dtype=x.dtype) / eps  # already sorted descending
    sorted_x = permute_p(x, sort_perm_p(x, descending=descending))
    if descending:  # P(rho / eps, x): the descending soft sort of the paper
        out = _project_sorted_w(z, sorted_x, regularization, z_sorted=True)
    else:  # -P(rho / eps, -x), with -x sorted descending = -(x sorted ascending)
        out = negative(_project_sorted_w(z, negative(sorted_x), regularization, z_sorted=True))
    return back(out)


def soft_topk_mask(
    x: Array,
    k: int,
    regularization: str = "l2",
    regularization_strength: float | Array = 1.0,
    *,
    axis: int = -1,
) -> Array:
    """A relaxed indicator of the ``k`` largest entries of ``x`` along ``axis``.

    The projection of ``x / eps`` onto the permutahedron of ``(1,..,1, 0,..,0)`` (k ones),
    i.e. onto ``{m in [0, 1]^n : sum(m) = k}``: entries lie in [0, 1] and sum to ``k``.
    ``l2`` gives exact 0/1 away from the boundary (sparse); ``kl`` gives
    ``min(1, c * exp(x / eps))`` (dense). O(n log n) forward, O(n) backward.

    >>> import numpy as np
    >>> from diffsys.relax import soft_topk_mask
    >>> soft_topk_mask(np.array([0.1, 3.0, 2.0, -1.0]), 2, regularization_strength=0.1)
    array([0., 1., 1., 0.])
    """
    name = "soft_topk_mask"
    _check_regularization(regularization, name)
    x, eps = _check_rows(x, name), _check_strength(regularization_strength, name)
    x, back = _to_last(x, axis, name)
    n = x.shape[-1]
    k = _check_k(k, n, name)
    w = np.zeros(n, dtype=x.dtype)
    w[:k] = 1.0
    theta, perm = _centred_sorted(x, eps)
    if regularization == "l2":
        out = _project_sorted_w(theta, w, "l2", z_sorted=True)
    else:
        with np.errstate(divide="ignore"):
            logw = np.log(w)
        out = exp(_project_sorted_w(theta, logw, "kl", z_sorted=True))
    return back(permute_p(out, perm, inverse=True))


def soft_topk(
    x: Array,
    k: int,
    regularization: str = "l2",
    regularization_strength: float | Array = 1.0,
    *,
    axis: int = -1,
) -> Array:
    """The ``k`` largest values of ``x`` along ``axis``, soft-sorted in descending order.

    The first ``k`` entries of ``soft_sort(x, descending=True)``; the result has size ``k``
    along ``axis``. O(n log n) forward, O(n) backward.

    >>> import numpy as np
    >>> from diffsys.relax import soft_topk
    >>> soft_topk(np.array([0.1, 3.0, 2.0, -1.0]), 2, regularization_strength=0.01)
    array([3., 2.])
    """
    name = "soft_topk"
    _check_regularization(regularization, name)
    x, _ = _check_rows(x, name), _check_strength(regularization_strength, name)
    x, back = _to_last(x, axis, name)
    k = _check_k(k, x.shape[-1], name)
    out = soft_sort(x, regularization, regularization_strength, descending=True)
    return back(getitem(out, (Ellipsis, slice(0, k))))


# --- argument checks ----------------------------------------------------------------------------


def _check_regularization(regularization: str, name: str) -> None:
    if regularization not in _REGULARIZATIONS:
        raise ValueError(
            f"{name}: regularization must be one of {_REGULARIZATIONS}, got {regularization!r}"
        )


def _check_rows(x: Array, name: str) -> Array:
    """``x`` as a floating-point array or tracer with at least one axis."""
    if not isinstance(x, Tracer):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
            x = x.astype(np.float64)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected an array with at least one axis, got shape ()")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{name}: expected real floating-point values, got dtype {x.dtype} "
            f"(shape {tuple(x.shape)})"
        )
    return x


def _check_strength(eps: float | Array, name: str) -> float | Array:
    if isinstance(eps, Tracer):
        if eps.ndim != 0:
            raise ValueError(
                f"{name}: regularization_strength must be a scalar, got shape {eps.shape}"
            )
        return eps
    value = np.asarray(eps)
    if value.ndim != 0 or not np.isfinite(value) or not value > 0:
        raise ValueError(
            f"{name}: regularization_strength must be a finite scalar > 0, got {eps!r}"
        )
    return float(value)


def _check_k(k: int, n: int, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"{name}: k must be an int, got {type(k).__name__}")
    if not 1 <= k <= n:
        raise ValueError(f"{name}: k must satisfy 1 <= k <= n = {n} (the axis length), got {k}")
    return int(k)


def _to_last(x: Array, axis: int, name: str):
    """``x`` with ``axis`` moved last, and the function that moves a result's last axis back."""
    ndim = x.ndim
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for shape {tuple(x.shape)}")
    axis %= ndim
    if axis == ndim - 1:
        return x, lambda out: out
    return moveaxis(x, axis, -1), lambda out: moveaxis(out, -1, axis)


__all__ = [
    "permutahedron_projection",
    "soft_rank",
    "soft_sort",
    "soft_topk",
    "soft_topk_mask",
]
