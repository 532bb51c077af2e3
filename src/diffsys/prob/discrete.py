"""Discrete distributions (Bernoulli, Categorical) and the relaxed categorical (Gumbel-softmax).

Discrete samples carry no derivative (``has_rsample = False``): their gradients come from the
score function (:func:`diffsys.relax.score_function`, or :class:`diffsys.prob.Trace_ELBO` for
sample sites). :class:`RelaxedCategorical` is the Concrete / Gumbel-softmax distribution
(Maddison et al. 2017; Jang et al. 2017): its samples lie inside the simplex, are
reparameterised through :func:`diffsys.relax.gumbel_softmax` and tend to one-hot categorical
samples as ``temperature -> 0``.
"""

from __future__ import annotations

import math

import numpy as np

import diffsys.numpy as dnp

from ..core.tracer import concrete
from ..relax import gumbel_noise, gumbel_softmax, log_sigmoid, log_softmax, logsumexp, sigmoid
from ._base import RNG, Array, Distribution, as_param, check_positive, shape_of


def _logits_from(dist: str, probs, logits, *, simplex: bool) -> Array:
    if (probs is None) == (logits is None):
        raise ValueError(f"{dist}: give exactly one of probs= or logits=")
    if logits is not None:
        return as_param(dist, "logits", logits)
    probs = as_param(dist, "probs", probs)
    p = np.asarray(concrete(probs))
    if np.any(p < 0) or np.any(p > 1) or not np.all(np.isfinite(p)):
        raise ValueError(
            f"{dist}: probs must lie in [0, 1], got values in [{p.min()}, {p.max()}] "
            f"(shape {p.shape}); pass unnormalised scores as logits= instead"
        )
    if simplex:
        return dnp.log(probs)
    return dnp.log(probs) - dnp.log1p(dnp.negative(probs))


def _check_events(dist: str, logits) -> tuple[tuple[int, ...], int]:
    shape = shape_of(logits)
    if len(shape) == 0:
        raise ValueError(
            f"{dist}: logits/probs need at least one axis (the categories), got a scalar; "
            "for two outcomes use Bernoulli or pass np.array([l0, l1])"
        )
    return shape[:-1], shape[-1]


class Bernoulli(Distribution):
    """Independent ``Bernoulli(p)`` variables, from ``probs=`` or ``logits=`` (``p =
    sigmoid(logits)``).

    >>> float(Bernoulli(probs=0.25).log_prob(1.0).round(6)), float(Bernoulli(logits=0.0).mean)
    (-1.386294, 0.5)
    """

    is_discrete = True

    def __init__(self, probs: Array | None = None, logits: Array | None = None) -> None:
        self.logits = _logits_from("Bernoulli", probs, logits, simplex=False)
        self.batch_shape = shape_of(self.logits)

    def _params(self):
        return {"logits": self.logits}

    @property
    def probs(self) -> Array:
        return sigmoid(self.logits)

    def sample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-np.asarray(concrete(self.logits), dtype=np.float64)))
        u = self._gen(rng, "sample").uniform(size=self._shape(sample_shape))
        return (u < p).astype(np.dtype(self.logits.dtype))

    def log_prob(self, value: Array) -> Array:
        return value * log_sigmoid(self.logits) + (1.0 - value) * log_sigmoid(
            dnp.negative(self.logits)
        )

    def entropy(self) -> Array:
        p = self.probs
        return dnp.negative(
            p * log_sigmoid(self.logits) + (1.0 - p) * log_sigmoid(dnp.negative(self.logits))
        )

    def enumerate_support(self) -> np.ndarray:
        return np.array([0.0, 1.0])

    @property
    def mean(self) -> Array:
        return self.probs

    @property
    def variance(self) -> Array:
        p = self.probs
        return p * (1.0 - p)


class Categorical(Distribution):
    """``Categorical(p)`` over the last axis of ``probs=`` or ``logits=`` (batch over the
    leading axes); samples are integer indices.

    >>> import numpy as np
    >>> d = Categorical(probs=np.array([0.25, 0.75]))
    >>> d.log_prob(np.array([0, 1])).round(4), float(d.entropy().round(4))
    (array([-1.3863, -0.2877]), 0.5623)
    """

    is_discrete = True

    def __init__(self, probs: Array | None = None, logits: Array | None = None) -> None:
        raw = _logits_from("Categorical", probs, logits, simplex=True)
        self.batch_shape, self.num_categories = _check_events("Categorical", raw)
        self.logits = log_softmax(raw, axis=-1)

    def _params(self):
        return {"logits": self.logits}

    @property
    def probs(self) -> Array:
        return dnp.exp(self.logits)

    def sample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> np.ndarray:
        logits = np.asarray(concrete(self.logits))
        shape = tuple(sample_shape) + logits.shape
        return np.argmax(logits + gumbel_noise(self._gen(rng, "sample"), shape), axis=-1)

    def log_prob(self, value: Array) -> Array:
        v = np.asarray(concrete(value))
        if v.dtype.kind not in "iub" and not np.all(v == np.round(v)):
            raise TypeError(
                f"Categorical.log_prob: values must be integer category indices, got dtype "
                f"{v.dtype} with shape {v.shape}"
            )
        one_hot = np.equal(v[..., None], np.arange(self.num_categories))
        return dnp.sum(dnp.where(one_hot, self.logits, 0.0), axis=-1)

    def entropy(self) -> Array:
        return dnp.negative(dnp.sum(self.probs * self.logits, axis=-1))

    def enumerate_support(self) -> np.ndarray:
        return np.arange(self.num_categories)


class RelaxedCategorical(Distribution):
    """The Concrete (Gumbel-softmax) distribution on the simplex: samples
    ``softmax((logits + G) / temperature)``, ``G`` standard Gumbel noise.

    ``rsample`` is :func:`diffsys.relax.gumbel_softmax` (``hard=True``: one-hot values with the
    relaxed gradient, straight-through). ``log_prob`` is the Concrete density of Maddison et al.
    (2017, eq. 1), with respect to Lebesgue measure on the first ``k - 1`` coordinates:

        log p(y) = log((k-1)!) + (k-1) log T + sum_i (l_i - (T+1) log y_i)
                   - k logsumexp_i(l_i - T log y_i)

    >>> import numpy as np
    >>> d = RelaxedCategorical(0.5, logits=np.zeros(3))
    >>> y = d.rsample(0)
    >>> y.shape, round(float(y.sum()), 12)
    ((3,), 1.0)
    """

    has_rsample = True

    def __init__(
        self,
        temperature: float | Array,
        probs: Array | None = None,
        logits: Array | None = None,
        *,
        hard: bool = False,
    ) -> None:
        self.temperature = as_param("RelaxedCategorical", "temperature", temperature)
        check_positive("RelaxedCategorical", "temperature", self.temperature)
        raw = _logits_from("RelaxedCategorical", probs, logits, simplex=True)
        self.batch_shape, k = _check_events("RelaxedCategorical", raw)
        self.event_shape = (k,)
        self.logits = log_softmax(raw, axis=-1)
        self.hard = bool(hard)

    def _params(self):
        return {"logits": self.logits, "temperature": self.temperature}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        logits = dnp.broadcast_to(self.logits, self._shape(sample_shape))
        return gumbel_softmax(
            logits, self.temperature, rng=self._gen(rng, "rsample"), hard=self.hard
        )

    def log_prob(self, value: Array) -> Array:
        k = self.event_shape[0]
        t = self.temperature
        log_y = dnp.log(dnp.maximum(value, np.finfo(np.float64).tiny))
        return (
            math.lgamma(k)
            + (k - 1) * dnp.log(t)
            + dnp.sum(self.logits - (t + 1.0) * log_y, axis=-1)
            - k * logsumexp(self.logits - t * log_y, axis=-1)
        )

    @property
    def mean(self) -> Array:
        raise NotImplementedError(
            "RelaxedCategorical has no closed-form mean; estimate it from rsample()"
        )


class OneHotCategorical(Distribution):
    """``Categorical(p)`` with one-hot samples, and a straight-through Gumbel-softmax
    ``rsample`` (Jang et al. 2017): the value is an exact one-hot categorical sample, the
    derivative is that of the relaxed sample ``softmax((logits + G) / temperature)`` (biased,
    low-variance; the bias shrinks with the temperature). ``log_prob``, ``entropy`` and the KL
    are the categorical ones (``sum(value * log p)`` for one-hot values).

    >>> import numpy as np
    >>> d = OneHotCategorical(probs=np.array([0.25, 0.75]), temperature=0.5)
    >>> d.rsample(0).sum(), float(d.log_prob(np.array([0.0, 1.0])).round(4))
    (np.float64(1.0), -0.2877)
    """

    has_rsample = True
    is_discrete = True

    def __init__(
        self,
        probs: Array | None = None,
        logits: Array | None = None,
        *,
        temperature: float | Array = 1.0,
    ) -> None:
        raw = _logits_from("OneHotCategorical", probs, logits, simplex=True)
        self.batch_shape, k = _check_events("OneHotCategorical", raw)
        self.event_shape = (k,)
        self.logits = log_softmax(raw, axis=-1)
        self.temperature = as_param("OneHotCategorical", "temperature", temperature)
        check_positive("OneHotCategorical", "temperature", self.temperature)

    def _params(self):
        return {"logits": self.logits}

    @property
    def probs(self) -> Array:
        return dnp.exp(self.logits)

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        logits = dnp.broadcast_to(self.logits, self._shape(sample_shape))
        return gumbel_softmax(logits, self.temperature, rng=self._gen(rng, "rsample"), hard=True)

    def log_prob(self, value: Array) -> Array:
        return dnp.sum(value * self.logits, axis=-1)

    def entropy(self) -> Array:
        return dnp.negative(dnp.sum(self.probs * self.logits, axis=-1))

    @property
    def mean(self) -> Array:
        return self.probs

    @property
    def variance(self) -> Array:
        p = self.probs
        return p * (1.0 - p)
