"""Ready-made optimizers, each a ``chain`` of transformations (Optax's aliases)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.pytree import tree_map
from .base import GradientTransformation, chain, identity
from .transforms import (
    ScalarOrSchedule,
    add_decayed_weights,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_trust_ratio,
    trace,
)

__all__ = ["adagrad", "adam", "adamw", "decay_mask_ndim", "lamb", "lion", "rmsprop", "sgd"]


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Stochastic gradient descent, with PyTorch's momentum and (L2) weight decay.

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.sgd(0.1, momentum=0.9, nesterov=True)
    >>> state = opt.init(np.zeros(2))
    """
    if nesterov and not momentum:
        raise ValueError("sgd: nesterov=True needs a momentum > 0")
    return chain(
        add_decayed_weights(weight_decay) if weight_decay else identity(),
        trace(momentum, nesterov) if momentum else identity(),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> GradientTransformation:
    """Adam (Kingma & Ba)."""
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    mask: Any = None,
) -> GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter), as in Optax:
    ``p -= lr * (adam_direction + weight_decay * p)``."""
    return chain(
        scale_by_adam(b1, b2, eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
) -> GradientTransformation:
    """RMSProp (PyTorch's form: ``eps`` outside the square root)."""
    return chain(scale_by_rms(decay, eps, momentum), scale_by_learning_rate(learning_rate))


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
) -> GradientTransformation:
    """Adagrad."""
    return chain(
        scale_by_adagrad(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate)
    )


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """LAMB (You et al. 2020): Adam's direction plus decoupled weight decay, rescaled per
    parameter leaf by the trust ratio ``||p|| / ||direction||`` (1 where a norm is zero):
    ``p -= lr * ||p|| / ||r + wd p|| * (r + wd p)`` with ``r`` the bias-corrected
    ``m / (sqrt(v) + eps)``. Defaults as in Optax.

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.lamb(1e-2, weight_decay=1e-2, mask=optim.decay_mask_ndim)
    >>> state = opt.init({"w": np.ones((2, 2)), "b": np.zeros(2)})
    """
    return chain(
        scale_by_adam(b1, b2, eps),
        add_decayed_weights(weight_decay, mask) if weight_decay else identity(),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al. 2023): sign updates with decoupled weight decay."""
    return chain(
        scale_by_lion(b1, b2),
        add_decayed_weights(weight_decay, mask) if weight_decay else identity(),
        scale_by_learning_rate(learning_rate),
    )


def decay_mask_ndim(params, min_ndim: int = 2):
    """A weight-decay mask: ``True`` for leaves with at least ``min_ndim`` axes (weight
    matrices and kernels), ``False`` for biases and normalization scales."""
    return tree_map(lambda p: np.bool_(np.ndim(p) >= min_ndim), params)
