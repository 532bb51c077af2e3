"""``diffsys.systems.augment``: data augmentation policies learned by gradient (Faster
AutoAugment, DADA) on a validation loss.

- :mod:`.ops`: :data:`OPERATIONS` (rotate, shear, translate, scale through
  ``systems.data``'s affine grid sampling; ``systems.data``'s Gaussian blur; brightness,
  contrast), each with a magnitude in ``[0, 1]``; :func:`apply_policy`, the relaxed policy
  (Gumbel-softmax operation choice, relaxed Bernoulli application) as a
  ``relax.Relaxation`` whose hard form is the exact sampled policy on the same noise;
  :func:`mmd`, the kernel distance the ``match`` objective minimises.
- :mod:`.exact`: :func:`sample_decisions`, :func:`transform_image`,
  :func:`apply_policy_exact`: the policy image by image in NumPy/SciPy (the reference).
- :mod:`.modules`: :class:`AugmentPolicy` (``relaxed``/``hard``).
- :mod:`.train`: :func:`search_policy` (bilevel, through
  :func:`diffsys.optim.unrolled_hypergradient`), :func:`train_classifier`.
- :mod:`.stages`: :func:`policy_stage` (kind ``relaxed``).

See docs/augment.md.
"""

from .exact import apply_policy_exact, sample_decisions, transform_image
from .modules import AugmentPolicy
from .ops import (
    LIMITS,
    OPERATIONS,
    PolicyNoise,
    apply_operation,
    apply_policy,
    draw_noise,
    mmd,
)
from .stages import policy_stage
from .train import PolicySearch, search_policy, train_classifier

__all__ = [
    "LIMITS",
    "OPERATIONS",
    "AugmentPolicy",
    "PolicyNoise",
    "PolicySearch",
    "apply_operation",
    "apply_policy",
    "apply_policy_exact",
    "draw_noise",
    "mmd",
    "policy_stage",
    "sample_decisions",
    "search_policy",
    "train_classifier",
    "transform_image",
]
