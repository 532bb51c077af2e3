"""Differentiable isotonic regression, the kernel of soft sorting and ranking.

The block structure of the solution is found by pool-adjacent-violators on plain arrays
(:mod:`diffsys.relax._pav`, a zero-derivative step); the values are then a smooth function of
the input *given* the blocks: block means (``l2``) or block log-sum-exps (``kl``). So the
Jacobian is block-diagonal -- averaging within each block for ``l2``, softmax-weighted for
``kl`` -- and it is applied in O(n) in both modes, batched, and differentiable again (the
``l2`` Jacobian is piecewise constant, so its derivative is zero almost everywhere).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Primitive
from ..numpy import moveaxis, negative
from ._pav import isotonic_blocks, isotonic_l2_values, starts_from_values
from ._prims import align_rows, segment_logsumexp_p, segment_mean_p

Array = Any  # numpy.ndarray or a diffsys tracer


def _isotonic_l2_impl(y):
    return isotonic_l2_values(y).astype(np.result_type(y), copy=False)


# The least-squares solution as one primitive: the forward pass is SciPy's PAVA output as is;
# the derivative rules read the blocks off the solution (equal runs), a zero-derivative step.
isotonic_l2_p = Primitive("relax.isotonic_l2", _isotonic_l2_impl)
isotonic_l2_p.defvjp(lambda g, ans, y: segment_mean_p(g, starts_p(ans)))
isotonic_l2_p.defjvp(lambda t, ans, y: segment_mean_p(t, starts_p(ans)))
isotonic_l2_p.defbatch(lambda args, batched: isotonic_l2_p(args[0]))

starts_p = Primitive("relax.block_starts", starts_from_values, zero_derivative=True)
starts_p.defbatch(lambda args, batched: starts_p(args[0]))

def _centred(a) -> np.ndarray:
    """Rows of ``a`` minus their middle entry (the median of a sorted row; the first entry
    where that is -inf, 0 where both are). The blocks do not change when a row of ``s`` or
    ``w`` shifts by a constant, and PAV on centred rows does not work at the magnitude of,
    say, 1.7e12 / eps, where the differences it compares have lost their digits."""
    a = np.asarray(a)
    if not a.shape or a.shape[-1] == 0:
        return a
    k = a.shape[-1] // 2
    c = a[..., k : k + 1]
    c = np.where(np.isfinite(c), c, a[..., :1])
    c = np.where(np.isfinite(c), c, 0.0)
    with np.errstate(invalid="ignore"):
        return a - c


# The block structure alone, of the projection of ``s`` onto the permutahedron of ``w`` (for
# the projections, which combine block means of their two arguments instead of subtracting a
# PAV solution from its input): the isotonic regression of ``s - w`` (l2) or of ``(s, w)``
# (kl), on centred rows.
blocks_l2_p = Primitive(
    "relax.isotonic_blocks_l2",
    lambda s, w: isotonic_blocks(_centred(s) - _centred(w), None, "l2"),
    zero_derivative=True,
)
blocks_l2_p.defbatch(lambda args, batched: blocks_l2_p(*align_rows(args, batched)))

blocks_kl_p = Primitive(
    "relax.isotonic_blocks_kl",
    lambda y, w: isotonic_blocks(_centred(y), _centred(w), "kl"),
    zero_derivative=True,
)
blocks_kl_p.defbatch(lambda args, batched: blocks_kl_p(*align_rows(args, batched)))


def isotonic_l2(y: Array) -> Array:
    """Decreasing isotonic regression along the last axis: ``argmin_{v1>=...>=vn} ||v - y||^2``.

    Batched over leading axes; O(n) per row after the PAV pass, in value and derivatives.

    >>> import numpy as np
    >>> from diffsys.relax import isotonic_l2
    >>> isotonic_l2(np.array([3.0, 1.0, 2.0]))
    array([3. , 1.5, 1.5])
    """
    _check_rows(y, "isotonic_l2")
    return isotonic_l2_p(y)


def isotonic_kl(y: Array, w: Array) -> Array:
    """Decreasing KL isotonic regression along the last axis (Blondel et al. 2020, eq. 9):
    ``argmin_{v1>=...>=vn} sum_i exp(y_i - v_i) + exp(w_i) v_i``; ``y`` and ``w`` broadcast.

    A block's value is ``logsumexp(y_B) - logsumexp(w_B)``. ``w`` may hold ``-inf``.

    >>> import numpy as np
    >>> from diffsys.relax import isotonic_kl
    >>> isotonic_kl(np.log([1.0, 2.0]), np.zeros(2))  # one pooled block: log(3/2)
    array([0.40546511, 0.40546511])
    """
    _check_rows(y, "isotonic_kl")
    starts = blocks_kl_p(y, w)
    return segment_logsumexp_p(y, starts) - segment_logsumexp_p(w, starts)


def isotonic_regression(y: Array, *, increasing: bool = True, axis: int = -1) -> Array:
    """Least-squares isotonic regression of ``y`` along ``axis`` (unit weights), differentiable.

    >>> import numpy as np
    >>> from diffsys.relax import isotonic_regression
    >>> isotonic_regression(np.array([1.0, 3.0, 2.0]))
    array([1. , 2.5, 2.5])
    """
    _check_rows(y, "isotonic_regression")
    moved = axis not in (-1, np.ndim(y) - 1)
    if moved:
        y = moveaxis(y, axis, -1)
    out = negative(isotonic_l2(negative(y))) if increasing else isotonic_l2(y)
    return moveaxis(out, -1, axis) if moved else out


def _check_rows(y: Array, name: str) -> None:
    shape = np.shape(y) if not hasattr(y, "shape") else y.shape
    if len(shape) == 0:
        raise ValueError(f"{name}: expected an array with at least one axis, got shape ()")
    dtype = np.result_type(y) if not hasattr(y, "dtype") else y.dtype
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{name}: expected a real floating-point array, got dtype {dtype}")
