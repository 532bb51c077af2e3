"""Reparameterized (pathwise) sampling: Gumbel-softmax, relaxed Bernoulli, normal.

Randomness is always explicit: every sampler takes ``rng``, a ``numpy.random.Generator`` or an
integer seed; there is no global random state. The noise is drawn as a plain array (it has
no derivative) and the sample is a differentiable function of the parameters and the noise.

- :func:`gumbel_softmax` (Jang et al. 2017; Maddison et al. 2017, "Concrete"):
  ``softmax((logits + G) / T)`` with ``G`` standard Gumbel noise; ``hard=True`` returns the
  one-hot ``argmax`` with the relaxed sample's gradient (straight-through Gumbel-softmax).
- :func:`relaxed_bernoulli` (binary Concrete): ``sigmoid((logits + L) / T)`` with ``L``
  standard logistic noise; ``hard=True`` thresholds at 1/2 (straight-through).
- :func:`normal_rsample`: ``mean + std * eps``, ``eps ~ N(0, 1)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numpy import astype, greater
from ._ops import sigmoid
from .smooth import _check_temperature, _dtype
from .smooth import softmax as _softmax_relaxation
from .straight_through import straight_through

Array = Any
RNG = np.random.Generator | int | np.random.SeedSequence


def as_generator(rng: RNG, name: str = "sampler") -> np.random.Generator:
    """``rng`` as a ``numpy.random.Generator`` (an int or SeedSequence seeds a new one)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer | np.random.SeedSequence) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(
        f"{name}: rng must be a numpy.random.Generator or an int seed (randomness is explicit "
        f"in diffsys), got {type(rng).__name__}; e.g. rng=np.random.default_rng(0)"
    )


def _shape(x) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def gumbel_noise(rng: RNG, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """Standard Gumbel samples ``-log(-log(U))``, ``U ~ Uniform(0, 1)`` (never infinite)."""
    gen = as_generator(rng, "gumbel_noise")
    u = gen.uniform(np.finfo(np.float64).tiny, 1.0, size=shape)
    return (-np.log(-np.log(u))).astype(dtype)


def logistic_noise(rng: RNG, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """Standard logistic samples ``log(U) - log(1 - U)``."""
    gen = as_generator(rng, "logistic_noise")
    u = gen.uniform(np.finfo(np.float64).tiny, 1.0, size=shape)
    return (np.log(u) - np.log1p(-u)).astype(dtype)


def gumbel_softmax(
    logits: Array,
    temperature: float | Array = 1.0,
    *,
    rng: RNG,
    hard: bool = False,
    axis: int = -1,
) -> Array:
    """A relaxed one-hot sample from ``Categorical(softmax(logits))`` along ``axis``.

    ``hard=True``: the exact one-hot sample (``argmax(logits + G)``, distributed as the
    categorical) in value, the relaxed sample's derivative (straight-through).

    >>> import numpy as np
    >>> from diffsys.relax import gumbel_softmax
    >>> y = gumbel_softmax(np.log([0.2, 0.5, 0.3]), 0.5, rng=0)
    >>> y.shape, round(float(y.sum()), 12)
    ((3,), 1.0)
    >>> gumbel_softmax(np.log([0.2, 0.5, 0.3]), 0.5, rng=0, hard=True)
    array([1., 0., 0.])
    """
    _check_temperature(temperature, "gumbel_softmax")
    g = gumbel_noise(as_generator(rng, "gumbel_softmax"), _shape(logits), _dtype(logits))
    perturbed = logits + g
    if hard:
        return _softmax_relaxation.straight_through(perturbed, temperature, axis)
    return _softmax_relaxation(perturbed, temperature, axis)


def relaxed_bernoulli(
    logits: Array,
    temperature: float | Array = 1.0,
    *,
    rng: RNG,
    hard: bool = False,
) -> Array:
    """A relaxed sample in (0, 1) from ``Bernoulli(sigmoid(logits))`` (binary Concrete).

    ``hard=True``: the exact 0/1 sample in value, the relaxed sample's derivative.

    >>> import numpy as np
    >>> from diffsys.relax import relaxed_bernoulli
    >>> relaxed_bernoulli(np.zeros(4), 0.1, rng=1, hard=True)
    array([1., 1., 0., 1.])
    """
    _check_temperature(temperature, "relaxed_bernoulli")
    noise = logistic_noise(as_generator(rng, "relaxed_bernoulli"), _shape(logits), _dtype(logits))
    z = (logits + noise) / temperature
    if hard:
        dtype = _dtype(logits)
        return straight_through(lambda z: astype(greater(z, 0), dtype), sigmoid)(z)
    return sigmoid(z)


def normal_rsample(
    mean: Array,
    std: Array,
    *,
    rng: RNG,
    sample_shape: tuple[int, ...] = (),
) -> Array:
    """``mean + std * eps`` with ``eps ~ N(0, 1)`` of shape ``sample_shape + broadcast shape``.

    Differentiable in ``mean`` and ``std`` (the reparameterization trick).

    >>> import numpy as np
    >>> from diffsys.relax import normal_rsample
    >>> normal_rsample(np.zeros(2), np.ones(2), rng=0, sample_shape=(3,)).shape
    (3, 2)
    """
    shape = tuple(sample_shape) + np.broadcast_shapes(_shape(mean), _shape(std))
    eps = as_generator(rng, "normal_rsample").standard_normal(shape).astype(_dtype(mean))
    return mean + std * eps
