"""Sorting and ranking by entropic optimal transport (Cuturi, Teboul & Vert 2019,
"Differentiable Ranks and Sorting using Optimal Transport").

The n inputs (uniform weights ``1/n``) are transported onto m sorted targets (weights
``1/m``, default ``linspace(0, 1, m)``) with squared-distance cost and entropic regularization
``epsilon``; the plan ``P`` (n x m) is computed by log-domain Sinkhorn iterations. Then::

    soft sort:  S_j = m * sum_i P_ij x_i          (ascending, m values)
    soft rank:  R_i = n * sum_j P_ij * n * (j / m) (1..n; j is 1-based)

As ``epsilon -> 0`` (with enough iterations) ``P`` tends to the sorting permutation / n.
Cost: O(n_iter * n * m) time per row; derivatives are taken through the unrolled iterations
(reverse mode stores every iterate: O(n_iter * n * m) memory). Prefer :func:`soft_sort` /
:func:`soft_rank` (O(n log n), exact derivatives) unless the transport plan itself is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numpy import arange, exp, matmul, mean, sqrt, sum
from ._ops import logsumexp, sigmoid

Array = Any


def _squash(x: Array) -> Array:
    """Standardize along the last axis, then map into (0, 1) with a sigmoid (as in the paper)."""
    centred = x - mean(x, axis=-1, keepdims=True)
    scale = sqrt(mean(centred * centred, axis=-1, keepdims=True) + 1e-12)
    return sigmoid(centred / scale)


def sinkhorn_plan(
    x: Array,
    epsilon: float = 1e-2,
    *,
    targets: Array | None = None,
    n_iter: int = 100,
    squash: bool = True,
) -> Array:
    """The entropic transport plan from the entries of ``x`` (last axis) onto sorted targets.

    Returns ``P`` of shape ``x.shape + (m,)``: rows sum to ``1/n``, columns to ``1/m``
    (columns exactly, rows up to the Sinkhorn tolerance). ``squash`` first maps ``x`` into
    (0, 1) (standardize + sigmoid) so that ``epsilon`` is scale-free.

    >>> import numpy as np
    >>> from diffsys.relax import sinkhorn_plan
    >>> P = sinkhorn_plan(np.array([2.0, 0.0, 1.0]), epsilon=1e-3, n_iter=200)
    >>> (3 * P).round(2)
    array([[0., 0., 1.],
           [1., 0., 0.],
           [0., 1., 0.]])
    """
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    if len(shape) == 0:
        raise ValueError("sinkhorn_plan: expected an array with at least one axis, got shape ()")
    if not (np.isscalar(epsilon) and epsilon > 0):
        raise ValueError(f"sinkhorn_plan: epsilon must be a float > 0, got {epsilon!r}")
    if int(n_iter) < 1:
        raise ValueError(f"sinkhorn_plan: n_iter must be >= 1, got {n_iter!r}")
    n = shape[-1]
    y = np.linspace(0.0, 1.0, n) if targets is None else targets
    m = y.shape[-1]
    xs = _squash(x) if squash else x
    cost = (xs[..., :, None] - y) ** 2  # (..., n, m)
    log_a, log_b = -float(np.log(n)), -float(np.log(m))
    k = -cost / epsilon  # the log kernel
    f = None
    g = 0.0 * k[..., 0, :]
    for _ in range(int(n_iter)):
        f = -epsilon * logsumexp(k + g[..., None, :] / epsilon + log_b, axis=-1)
        g = -epsilon * logsumexp(k + f[..., :, None] / epsilon + log_a, axis=-2)
    return exp(k + (f[..., :, None] + g[..., None, :]) / epsilon + (log_a + log_b))


def sinkhorn_sort(
    x: Array, epsilon: float = 1e-2, *, n_iter: int = 100, squash: bool = True
) -> Array:
    """Soft ascending sort of ``x`` along the last axis by entropic optimal transport.

    >>> import numpy as np
    >>> from diffsys.relax import sinkhorn_sort
    >>> sinkhorn_sort(np.array([2.0, 0.0, 1.0]), epsilon=1e-3, n_iter=200).round(3)
    array([0., 1., 2.])
    """
    P = sinkhorn_plan(x, epsilon, n_iter=n_iter, squash=squash)
    m = P.shape[-1]
    return m * matmul(x[..., None, :], P)[..., 0, :]


def sinkhorn_rank(
    x: Array, epsilon: float = 1e-2, *, n_iter: int = 100, squash: bool = True
) -> Array:
    """Soft ascending ranks (1..n) of ``x`` along the last axis by entropic optimal transport.

    >>> import numpy as np
    >>> from diffsys.relax import sinkhorn_rank
    >>> sinkhorn_rank(np.array([2.0, 0.0, 1.0]), epsilon=1e-3, n_iter=200).round(3)
    array([3., 1., 2.])
    """
    P = sinkhorn_plan(x, epsilon, n_iter=n_iter, squash=squash)
    n, m = P.shape[-2], P.shape[-1]
    cum_b = arange(1, m + 1, dtype=P.dtype) / m
    return (n * n) * sum(P * cum_b, axis=-1)
