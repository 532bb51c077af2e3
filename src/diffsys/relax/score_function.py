"""Score-function (REINFORCE) gradients for discrete sampling stages, with baselines.

For ``z ~ p_theta`` and any objective ``f`` (a black box: it need not be differentiable in
``z``), ``grad E[f(z)] = E[(f(z) - b) grad log p_theta(z)]`` for any baseline ``b`` that does not
depend on the sample it multiplies. :func:`score_function` returns a Monte-Carlo estimate of
``E[f(z)]`` whose *value* is the sample mean of ``f`` and whose *gradient* (w.r.t. the
distribution's parameters, in reverse or forward mode) is that estimator; if ``f`` also depends
differentiably on parameters, their pathwise gradient is included.

Baselines: ``None``; a constant; :class:`MovingAverageBaseline` (an exponential moving average
of past objectives, updated after each estimate: unbiased); ``"loo"``, the leave-one-out
multi-sample baseline (Kool et al. 2019: each sample's baseline is the mean of the other
samples' objectives: unbiased, needs ``n_samples >= 2``).

:func:`gradient_variance` reports the mean, variance and standard error of any gradient
estimator over independent runs, for comparing estimators and baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.custom import stop_gradient
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tracer import concrete
from ..numpy import astype, equal, mean, sum
from ._ops import log_sigmoid, log_softmax
from .sampling import RNG, as_generator, gumbel_noise
from .smooth import _dtype

Array = Any


# --- distributions with a differentiable log-probability ---------------------------------------


class Categorical:
    """``Categorical(softmax(logits))`` over the last axis (batch over leading axes).

    >>> import numpy as np
    >>> from diffsys.relax import Categorical
    >>> d = Categorical(np.log([0.25, 0.75]))
    >>> d.log_prob(np.array([0, 1])).round(4)
    array([-1.3863, -0.2877])
    """

    def __init__(self, logits: Array) -> None:
        self.logits = logits
        shape = tuple(logits.shape) if hasattr(logits, "shape") else np.shape(logits)
        if len(shape) == 0:
            raise ValueError("Categorical: logits need at least one axis (the categories)")
        self.batch_shape, self.num_categories = shape[:-1], shape[-1]

    def sample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> np.ndarray:
        """Integer samples of shape ``sample_shape + batch_shape`` (no derivative)."""
        logits = np.asarray(concrete(self.logits))
        g = gumbel_noise(
            as_generator(rng, "Categorical.sample"), tuple(sample_shape) + logits.shape
        )
        return np.argmax(logits + g, axis=-1)

    def log_prob(self, z: Array) -> Array:
        """``log p(z)`` for integer samples ``z`` (shape ``... + batch_shape``)."""
        one_hot = astype(
            equal(np.asarray(z)[..., None], np.arange(self.num_categories)), _dtype(self.logits)
        )
        return sum(one_hot * log_softmax(self.logits), axis=-1)

    def enumerate_support(self) -> np.ndarray:
        """All values of one categorical variable: ``0..k-1``."""
        return np.arange(self.num_categories)


class Bernoulli:
    """Independent ``Bernoulli(sigmoid(logits))`` variables, one per entry of ``logits``.

    >>> import numpy as np
    >>> from diffsys.relax import Bernoulli
    >>> Bernoulli(np.zeros(2)).log_prob(np.array([0.0, 1.0])).round(4)
    array([-0.6931, -0.6931])
    """

    def __init__(self, logits: Array) -> None:
        self.logits = logits
        self.batch_shape = tuple(logits.shape) if hasattr(logits, "shape") else np.shape(logits)

    def sample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> np.ndarray:
        """0/1 samples (as floats) of shape ``sample_shape + batch_shape`` (no derivative)."""
        logits = np.asarray(concrete(self.logits), dtype=np.float64)
        gen = as_generator(rng, "Bernoulli.sample")
        u = gen.uniform(size=tuple(sample_shape) + logits.shape)
        p = 1.0 / (1.0 + np.exp(-logits))
        return (u < p).astype(_dtype(self.logits))

    def log_prob(self, z: Array) -> Array:
        return z * log_sigmoid(self.logits) + (1.0 - z) * log_sigmoid(-self.logits)


class Normal:
    """``Normal(mean, std)``; its log-density is differentiable in both (score function)."""

    def __init__(self, mean: Array, std: Array) -> None:
        self.mean, self.std = mean, std
        shapes = [tuple(a.shape) if hasattr(a, "shape") else np.shape(a) for a in (mean, std)]
        self.batch_shape = np.broadcast_shapes(*shapes)

    def sample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> np.ndarray:
        gen = as_generator(rng, "Normal.sample")
        eps = gen.standard_normal(tuple(sample_shape) + self.batch_shape)
        return np.asarray(concrete(self.mean)) + np.asarray(concrete(self.std)) * eps

    def log_prob(self, z: Array) -> Array:
        from ..numpy import log

        r = (z - self.mean) / self.std
        return -0.5 * r * r - log(self.std) - 0.5 * float(np.log(2 * np.pi))


# --- baselines ----------------------------------------------------------------------------------


class MovingAverageBaseline:
    """An exponential moving average of past objective values, used as a baseline.

    The baseline for an estimate is the average *before* that estimate's samples are seen, so
    the estimator stays unbiased; :func:`score_function` updates it afterwards.
    ``value`` starts at ``initial`` (or at the first batch's mean when ``initial`` is None).
    """

    def __init__(self, decay: float = 0.9, initial: float | None = None) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"MovingAverageBaseline: decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        self.value = initial
        self.count = 0

    def update(self, values: np.ndarray) -> None:
        m = float(np.mean(values))
        self.value = m if self.value is None else self.decay * self.value + (1 - self.decay) * m
        self.count += 1

    def __repr__(self) -> str:
        return f"MovingAverageBaseline(decay={self.decay}, value={self.value})"


def baseline_values(baseline, fz: np.ndarray, name: str = "baseline") -> np.ndarray:
    """The baseline for each sample (a plain array shaped like ``fz``, the per-sample objectives
    stacked on axis 0): ``None`` (zeros), a number, ``"loo"`` (the mean of the other samples)
    or a :class:`MovingAverageBaseline` (its current value; call its ``update`` afterwards).

    >>> import numpy as np
    >>> baseline_values("loo", np.array([1.0, 2.0, 3.0]))
    array([2.5, 2. , 1.5])
    """
    if baseline is None:
        return np.zeros_like(fz)
    if isinstance(baseline, str):
        if baseline != "loo":
            raise ValueError(
                f"{name}: baseline must be None, a number, 'loo' or a "
                f"MovingAverageBaseline, got {baseline!r}"
            )
        k = fz.shape[0]
        if k < 2:
            raise ValueError(f"{name}: the leave-one-out baseline needs n_samples >= 2, got {k}")
        return (fz.sum(axis=0, keepdims=True) - fz) / (k - 1)
    if isinstance(baseline, MovingAverageBaseline):
        return np.full_like(fz, 0.0 if baseline.value is None else baseline.value)
    return np.broadcast_to(np.asarray(baseline, dtype=fz.dtype), fz.shape)


# --- the estimator -------------------------------------------------------------------------------


def score_function(
    f: Callable[[np.ndarray], Array],
    dist: Categorical | Bernoulli | Normal | Any,
    *,
    rng: RNG,
    n_samples: int = 1,
    baseline: None | float | str | MovingAverageBaseline = None,
) -> Array:
    """A Monte-Carlo estimate of ``E_{z ~ dist}[f(z)]`` with score-function gradients.

    ``f`` receives the ``n_samples`` samples stacked on axis 0 (shape ``(n_samples,) +
    dist.batch_shape``) and returns one objective per sample (shape ``(n_samples,)``). The
    result's value is ``mean(f(z))``; its gradient w.r.t. the distribution's parameters is
    ``mean((f(z_k) - b_k) grad log p(z_k))`` (the joint log-probability of each sample),
    plus ``f``'s own pathwise gradient w.r.t. any parameters it uses.

    >>> import numpy as np, diffsys as ds
    >>> from diffsys.relax import score_function, Bernoulli
    >>> f = lambda z: z[:, 0] * 3.0  # E[f] = 3 sigmoid(theta); d/dtheta = 3 s (1 - s)
    >>> g = ds.grad(lambda th: score_function(f, Bernoulli(th), rng=0, n_samples=20000,
    ...                                      baseline="loo"))(np.zeros(1))
    >>> bool(abs(g[0] - 0.75) < 0.05)
    True
    """
    name = "score_function"
    k = int(n_samples)
    if k < 1:
        raise ValueError(f"{name}: n_samples must be >= 1, got {n_samples!r}")
    z = dist.sample(as_generator(rng, name), (k,))
    fz = f(z)
    fz_shape = tuple(fz.shape) if hasattr(fz, "shape") else np.shape(fz)
    if fz_shape != (k,):
        raise ValueError(
            f"{name}: f must return one objective per sample, shape ({k},), got shape "
            f"{fz_shape} for samples of shape {np.shape(z)}"
        )
    f_plain = np.asarray(concrete(fz), dtype=np.float64)
    b = baseline_values(baseline, f_plain, name)
    logp = dist.log_prob(z)
    extra = tuple(range(1, len(tuple(logp.shape) if hasattr(logp, "shape") else np.shape(logp))))
    if extra:
        logp = sum(logp, axis=extra)  # the joint log-probability of each sample
    weights = (f_plain - b).astype(_dtype(logp))
    surrogate = mean(weights * logp)
    if isinstance(baseline, MovingAverageBaseline):
        baseline.update(f_plain)
    return mean(fz) + (surrogate - stop_gradient(surrogate))


# --- variance report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientVariance:
    """Statistics of a stochastic gradient estimator over ``n_runs`` independent runs.

    ``mean``, ``variance`` and ``std_error`` (of the mean) are pytrees like the gradient;
    ``total_variance`` sums the per-component variances (the trace of the covariance).
    """

    mean: Any
    variance: Any
    std_error: Any
    total_variance: float
    n_runs: int

    def summary(self) -> str:
        leaves = tree_flatten(self.std_error)[0]
        worst = max((float(np.max(s)) for s in leaves), default=0.0)
        return (
            f"{self.n_runs} runs: total variance {self.total_variance:.4g}, "
            f"largest standard error of the mean {worst:.3g}"
        )


def gradient_variance(
    estimate: Callable[[np.random.Generator], Any], n_runs: int = 100, seed: int = 0
) -> GradientVariance:
    """Run ``estimate(rng)`` (-> a gradient pytree) ``n_runs`` times with independent
    generators spawned from ``seed``; report the mean, variance and standard error.

    >>> import numpy as np
    >>> from diffsys.relax import gradient_variance
    >>> rep = gradient_variance(lambda rng: rng.normal(1.0, 2.0, size=3), n_runs=2000)
    >>> bool(np.allclose(rep.variance, 4.0, rtol=0.15)), rep.n_runs
    (True, 2000)
    """
    if n_runs < 2:
        raise ValueError(f"gradient_variance: n_runs must be >= 2, got {n_runs}")
    children = np.random.SeedSequence(seed).spawn(n_runs)
    samples = [estimate(np.random.default_rng(c)) for c in children]
    flat = [tree_flatten(s) for s in samples]
    treedef = flat[0][1]
    stacked = [
        np.stack([np.asarray(f[0][i], np.float64) for f in flat]) for i in range(len(flat[0][0]))
    ]
    means = [s.mean(axis=0) for s in stacked]
    variances = [s.var(axis=0, ddof=1) for s in stacked]
    stderrs = [np.sqrt(v / n_runs) for v in variances]
    total = float(np.sum([np.sum(v) for v in variances]))
    return GradientVariance(
        mean=tree_unflatten(treedef, means),
        variance=tree_unflatten(treedef, variances),
        std_error=tree_unflatten(treedef, stderrs),
        total_variance=total,
        n_runs=n_runs,
    )
