"""Continuous distributions: Normal, LogNormal, Exponential, Uniform, Gamma, Beta.

Every density is written with :mod:`diffsys.numpy` and :mod:`diffsys.scipy.special` /
:mod:`diffsys.scipy.stats` operations, so log-densities, entropies, means and samples are
differentiable in the parameters to any order. Samplers:

- Normal, LogNormal, Exponential, Uniform: location-scale or inverse-CDF transforms of
  fixed noise (the reparameterisation trick).
- Gamma: inversion ``z = P^{-1}(alpha, u)`` with the implicit gradient (``_gamma.py``);
  Beta: ``X / (X + Y)`` of two Gamma samples (so it inherits those gradients).
"""

from __future__ import annotations

import math

import numpy as np

import diffsys.numpy as dnp

from ..scipy import special as sp
from ..scipy import stats
from ._base import RNG, Array, Distribution, as_param, broadcast, check_positive, shape_of
from ._gamma import standard_gamma

_LOG_2PI = math.log(2.0 * math.pi)
_TINY = np.finfo(np.float64).tiny


def _dtype(x) -> np.dtype:
    return np.dtype(x.dtype)


def _uniform(gen: np.random.Generator, shape, dtype) -> np.ndarray:
    """Uniform(0, 1) noise strictly inside the interval."""
    return gen.uniform(_TINY, 1.0, size=shape).astype(dtype)


class Normal(Distribution):
    """``Normal(loc, scale)``; ``scale`` is the standard deviation.

    >>> import numpy as np
    >>> d = Normal(0.0, 2.0)
    >>> float(d.log_prob(0.0).round(6)), d.rsample(0, (3,)).shape
    (-1.612086, (3,))
    """

    has_rsample = True

    def __init__(self, loc: Array, scale: Array) -> None:
        self.loc = as_param("Normal", "loc", loc)
        self.scale = as_param("Normal", "scale", scale)
        check_positive("Normal", "scale", self.scale)
        self.batch_shape = broadcast("Normal", loc=self.loc, scale=self.scale)

    def _params(self):
        return {"loc": self.loc, "scale": self.scale}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        eps = self._gen(rng, "rsample").standard_normal(self._shape(sample_shape))
        return self.loc + self.scale * eps.astype(_dtype(self.loc))

    def log_prob(self, value: Array) -> Array:
        return stats.norm.logpdf(value, self.loc, self.scale)

    def entropy(self) -> Array:
        return dnp.broadcast_to(0.5 + 0.5 * _LOG_2PI + dnp.log(self.scale), self.batch_shape)

    @property
    def mean(self) -> Array:
        return dnp.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self) -> Array:
        return dnp.broadcast_to(self.scale * self.scale, self.batch_shape)


class LogNormal(Distribution):
    """``exp(Normal(loc, scale))``.

    >>> round(float(LogNormal(0.0, 1.0).mean), 6)  # exp(1/2)
    1.648721
    """

    has_rsample = True

    def __init__(self, loc: Array, scale: Array) -> None:
        self.base = Normal(loc, scale)
        self.loc, self.scale = self.base.loc, self.base.scale
        self.batch_shape = self.base.batch_shape

    def _params(self):
        return {"loc": self.loc, "scale": self.scale}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        return dnp.exp(self.base.rsample(rng, sample_shape))

    def log_prob(self, value: Array) -> Array:
        return _lognormal_lp(value, self.loc, self.scale)

    def entropy(self) -> Array:
        return self.base.entropy() + dnp.broadcast_to(self.loc, self.batch_shape)

    @property
    def mean(self) -> Array:
        return dnp.exp(self.base.mean + 0.5 * self.base.variance)

    @property
    def variance(self) -> Array:
        s2 = self.base.variance
        return dnp.expm1(s2) * dnp.exp(2.0 * self.base.mean + s2)


def _lognormal_lp(x, loc, scale):
    inside = dnp.greater(x, 0)
    xs = dnp.where(inside, x, 1.0)
    log_x = dnp.log(xs)
    value = stats.norm.logpdf(log_x, loc, scale) - log_x
    return dnp.where(inside, value, -np.inf)


class Exponential(Distribution):
    """``Exponential(rate)``: density ``rate exp(-rate x)`` on ``x >= 0``.

    >>> float(Exponential(2.0).mean)
    0.5
    """

    has_rsample = True

    def __init__(self, rate: Array) -> None:
        self.rate = as_param("Exponential", "rate", rate)
        check_positive("Exponential", "rate", self.rate)
        self.batch_shape = shape_of(self.rate)

    def _params(self):
        return {"rate": self.rate}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        e = self._gen(rng, "rsample").standard_exponential(self._shape(sample_shape))
        return e.astype(_dtype(self.rate)) / self.rate

    def log_prob(self, value: Array) -> Array:
        return stats.expon.logpdf(value, 0.0, 1.0 / self.rate)

    def entropy(self) -> Array:
        return 1.0 - dnp.log(self.rate)

    @property
    def mean(self) -> Array:
        return 1.0 / self.rate

    @property
    def variance(self) -> Array:
        return 1.0 / (self.rate * self.rate)


class Uniform(Distribution):
    """``Uniform(low, high)`` on ``[low, high)``.

    >>> float(Uniform(0.0, 4.0).entropy().round(6))  # log 4
    1.386294
    """

    has_rsample = True

    def __init__(self, low: Array, high: Array) -> None:
        self.low = as_param("Uniform", "low", low)
        self.high = as_param("Uniform", "high", high)
        check_positive("Uniform", "high - low", _concrete(self.high) - _concrete(self.low))
        self.batch_shape = broadcast("Uniform", low=self.low, high=self.high)

    def _params(self):
        return {"low": self.low, "high": self.high}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        u = self._gen(rng, "rsample").uniform(size=self._shape(sample_shape))
        return self.low + (self.high - self.low) * u.astype(_dtype(self.low))

    def log_prob(self, value: Array) -> Array:
        inside = dnp.logical_and(dnp.greater_equal(value, self.low), dnp.less(value, self.high))
        width = self.high - self.low
        return dnp.where(inside, dnp.negative(dnp.log(width)) + 0.0 * value, -np.inf)

    def entropy(self) -> Array:
        return dnp.log(self.high - self.low)

    @property
    def mean(self) -> Array:
        return 0.5 * (self.low + self.high)

    @property
    def variance(self) -> Array:
        w = self.high - self.low
        return w * w / 12.0


def _concrete(x):
    from ..core.tracer import concrete

    return np.asarray(concrete(x))


class Gamma(Distribution):
    """``Gamma(concentration, rate)``: density ``rate^a x^(a-1) exp(-rate x) / Gamma(a)``.

    ``rsample`` is reparameterised by inversion with implicit gradients (see ``_gamma.py``).

    >>> float(Gamma(3.0, 2.0).mean), float(Gamma(3.0, 2.0).variance)
    (1.5, 0.75)
    """

    has_rsample = True

    def __init__(self, concentration: Array, rate: Array = 1.0) -> None:
        self.concentration = as_param("Gamma", "concentration", concentration)
        self.rate = as_param("Gamma", "rate", rate)
        check_positive("Gamma", "concentration", self.concentration)
        check_positive("Gamma", "rate", self.rate)
        self.batch_shape = broadcast("Gamma", concentration=self.concentration, rate=self.rate)

    def _params(self):
        return {"concentration": self.concentration, "rate": self.rate}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        shape = self._shape(sample_shape)
        u = _uniform(self._gen(rng, "rsample"), shape, np.float64)
        alpha = dnp.broadcast_to(self.concentration, shape)
        return standard_gamma(alpha, u) / self.rate

    def log_prob(self, value: Array) -> Array:
        return stats.gamma.logpdf(value * self.rate, self.concentration) + dnp.log(self.rate)

    def entropy(self) -> Array:
        a = self.concentration
        return a - dnp.log(self.rate) + sp.gammaln(a) + (1.0 - a) * sp.digamma(a)

    @property
    def mean(self) -> Array:
        return self.concentration / self.rate

    @property
    def variance(self) -> Array:
        return self.concentration / (self.rate * self.rate)


class Beta(Distribution):
    """``Beta(concentration1, concentration0)`` on ``[0, 1]`` (``a``, ``b`` in the usual notation).

    ``rsample`` is ``X / (X + Y)``, ``X ~ Gamma(a)``, ``Y ~ Gamma(b)`` (implicit gradients).

    >>> float(Beta(2.0, 6.0).mean)
    0.25
    """

    has_rsample = True

    def __init__(self, concentration1: Array, concentration0: Array) -> None:
        self.concentration1 = as_param("Beta", "concentration1", concentration1)
        self.concentration0 = as_param("Beta", "concentration0", concentration0)
        check_positive("Beta", "concentration1", self.concentration1)
        check_positive("Beta", "concentration0", self.concentration0)
        self.batch_shape = broadcast(
            "Beta", concentration1=self.concentration1, concentration0=self.concentration0
        )

    def _params(self):
        return {"concentration1": self.concentration1, "concentration0": self.concentration0}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        shape = self._shape(sample_shape)
        gen = self._gen(rng, "rsample")
        x = standard_gamma(
            dnp.broadcast_to(self.concentration1, shape), _uniform(gen, shape, float)
        )
        y = standard_gamma(
            dnp.broadcast_to(self.concentration0, shape), _uniform(gen, shape, float)
        )
        return x / (x + y)

    def log_prob(self, value: Array) -> Array:
        return stats.beta.logpdf(value, self.concentration1, self.concentration0)

    def entropy(self) -> Array:
        a, b = self.concentration1, self.concentration0
        return (
            sp.betaln(a, b)
            - (a - 1.0) * sp.digamma(a)
            - (b - 1.0) * sp.digamma(b)
            + (a + b - 2.0) * sp.digamma(a + b)
        )

    @property
    def mean(self) -> Array:
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self) -> Array:
        a, b = self.concentration1, self.concentration0
        s = a + b
        return a * b / (s * s * (s + 1.0))
