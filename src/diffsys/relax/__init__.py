"""Relaxations and gradient estimators for discrete operations (``diffsys.relax``).

Sorting and ranking (Blondel et al. 2020): :func:`soft_sort`, :func:`soft_rank`,
:func:`soft_topk`, :func:`soft_topk_mask`, :func:`permutahedron_projection`, and the
isotonic regressions they are built on.
"""

from ._ops import log_sigmoid, log_softmax, logsumexp, sigmoid, softmax, softplus
from .isotonic import isotonic_kl, isotonic_l2, isotonic_regression
from .neuralsort import neural_sort, neural_sort_values, neuralsort_reference
from .sinkhorn import sinkhorn_plan, sinkhorn_rank, sinkhorn_sort
from .sorting import permutahedron_projection, soft_rank, soft_sort, soft_topk, soft_topk_mask

__all__ = [
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "neural_sort",
    "neural_sort_values",
    "neuralsort_reference",
    "sigmoid",
    "sinkhorn_plan",
    "sinkhorn_rank",
    "sinkhorn_sort",
    "softmax",
    "softplus",
    "isotonic_kl",
    "isotonic_l2",
    "isotonic_regression",
    "permutahedron_projection",
    "soft_rank",
    "soft_sort",
    "soft_topk",
    "soft_topk_mask",
]
