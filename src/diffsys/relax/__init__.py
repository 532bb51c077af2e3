"""Relaxations and gradient estimators for discrete operations (``diffsys.relax``).

Sorting and ranking (Blondel et al. 2020): :func:`soft_sort`, :func:`soft_rank`,
:func:`soft_topk`, :func:`soft_topk_mask`, :func:`permutahedron_projection`, and the
isotonic regressions they are built on.
"""

from .isotonic import isotonic_kl, isotonic_l2, isotonic_regression
from .sorting import permutahedron_projection, soft_rank, soft_sort, soft_topk, soft_topk_mask

__all__ = [
    "isotonic_kl",
    "isotonic_l2",
    "isotonic_regression",
    "permutahedron_projection",
    "soft_rank",
    "soft_sort",
    "soft_topk",
    "soft_topk_mask",
]
