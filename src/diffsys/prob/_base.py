"""The :class:`Distribution` base class and parameter checks shared by every distribution."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tracer import Tracer, concrete
from ..relax.sampling import RNG, as_generator

Array = Any

__all__ = ["Distribution", "as_generator", "RNG"]


def shape_of(x) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def as_param(dist: str, name: str, value) -> Array:
    """``value`` as a floating-point parameter: tracers pass through, Python numbers, lists and
    integer arrays become float64 arrays; anything else is a TypeError naming the field."""
    if isinstance(value, Tracer):
        dtype = np.dtype(value.dtype)
    else:
        value = np.asarray(value)
        dtype = value.dtype
        if dtype.kind in "iu":
            value = value.astype(np.float64)
            dtype = value.dtype
    if dtype.kind != "f":
        raise TypeError(
            f"{dist}: parameter {name!r} must be a real floating-point array (or a number), got "
            f"dtype {dtype} with shape {shape_of(value)}"
        )
    return value


def check_positive(dist: str, name: str, value) -> None:
    """ValueError naming ``dist`` and ``name`` when a (concrete) entry is <= 0 or not finite."""
    v = np.asarray(concrete(value))
    bad = ~(v > 0) | ~np.isfinite(v)
    if np.any(bad):
        where = np.argwhere(bad)[0] if v.ndim else ()
        got = float(v[tuple(where)])
        raise ValueError(
            f"{dist}: parameter {name!r} must be positive and finite, got {got} at "
            f"index {tuple(int(i) for i in where)} (shape {v.shape}); parameterise it through "
            "exp or softplus of an unconstrained value"
        )


def broadcast(dist: str, **params) -> tuple[int, ...]:
    """The broadcast of the parameters' shapes, or a ValueError listing them."""
    shapes = {k: shape_of(v) for k, v in params.items()}
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        listed = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(
            f"{dist}: parameter shapes do not broadcast: {listed}; give them shapes that "
            "broadcast as NumPy arrays do (add length-1 axes with x[..., None])"
        ) from None


class Distribution:
    """A batch of independent distributions of one family.

    ``batch_shape`` indexes independent distributions; ``event_shape`` is the shape of one draw
    (``()`` for scalar families, ``(k,)`` for Dirichlet, Categorical-relaxed or multivariate
    normal samples). ``log_prob(x)`` sums over the event axes only, so its shape is
    ``sample_shape + batch_shape``.

    Randomness is explicit: ``sample(rng, sample_shape)`` and ``rsample(rng, sample_shape)``
    take a ``numpy.random.Generator`` or an int seed. ``sample`` returns a plain array (no
    derivative); ``rsample`` (only where ``has_rsample``) is a differentiable function of the
    parameters (the reparameterisation trick), so ``grad`` of a Monte-Carlo average of
    ``f(rsample(...))`` estimates the gradient of the expectation.
    """

    has_rsample = False
    is_discrete = False
    batch_shape: tuple[int, ...] = ()
    event_shape: tuple[int, ...] = ()

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        raise NotImplementedError(
            f"{type(self).__name__} has no reparameterised sampler (rsample); use sample() with "
            "a score-function estimator (prob.Trace_ELBO does this for such sites)"
        )

    def sample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> np.ndarray:
        """Samples of shape ``sample_shape + batch_shape + event_shape``, without derivative."""
        return np.asarray(concrete(self.rsample(rng, sample_shape)))

    def log_prob(self, value: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__}.log_prob")

    def entropy(self) -> Array:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form entropy")

    @property
    def mean(self) -> Array:
        raise NotImplementedError(f"{type(self).__name__} has no mean")

    @property
    def variance(self) -> Array:
        raise NotImplementedError(f"{type(self).__name__} has no variance")

    @property
    def stddev(self) -> Array:
        from ..numpy import sqrt

        return sqrt(self.variance)

    def _shape(self, sample_shape) -> tuple[int, ...]:
        return tuple(sample_shape) + tuple(self.batch_shape) + tuple(self.event_shape)

    def _gen(self, rng: RNG, what: str) -> np.random.Generator:
        return as_generator(rng, f"{type(self).__name__}.{what}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}{list(shape_of(v))}" for k, v in self._params().items())
        return f"{type(self).__name__}({fields}, batch_shape={self.batch_shape})"

    def _params(self) -> dict[str, Array]:
        return {}
