"""Closed-form Kullback-Leibler divergences ``KL(p || q)``, one registered function per pair.

:func:`kl_divergence` looks up the pair of types (the most specific registered pair along both
classes' MROs) and returns ``E_p[log p(x) - log q(x)]`` with shape ``broadcast(batch shapes)``.
Register another pair with ``@register_kl(P, Q)``.

>>> float(kl_divergence(Normal(0.0, 1.0), Normal(1.0, 1.0)))
0.5
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import diffsys.numpy as dnp

from ..core.tracer import concrete
from ..relax import log_sigmoid
from ..scipy import linalg as sla
from ..scipy import special as sp
from ._base import Array, Distribution
from .continuous import Beta, Exponential, Gamma, LogNormal, Normal, Uniform
from .discrete import Bernoulli, Categorical, OneHotCategorical
from .multivariate import Dirichlet, MultivariateNormal

_KL: dict[tuple[type, type], Callable] = {}


def register_kl(p_type: type, q_type: type) -> Callable[[Callable], Callable]:
    """Decorator: ``fn(p, q)`` computes ``KL(p || q)`` for ``p: p_type``, ``q: q_type``."""

    def deco(fn: Callable) -> Callable:
        _KL[(p_type, q_type)] = fn
        return fn

    return deco


def kl_divergence(p: Distribution, q: Distribution) -> Array:
    """``KL(p || q)`` in closed form (differentiable in both distributions' parameters)."""
    for pt in type(p).__mro__:
        for qt in type(q).__mro__:
            fn = _KL.get((pt, qt))
            if fn is not None:
                return fn(p, q)
    known = ", ".join(f"({a.__name__}, {b.__name__})" for a, b in _KL)
    raise NotImplementedError(
        f"kl_divergence: no closed form registered for ({type(p).__name__}, "
        f"{type(q).__name__}); known pairs: {known}. Estimate it by Monte Carlo instead: "
        "z = p.rsample(rng, (n,)); mean(p.log_prob(z) - q.log_prob(z)), or register one "
        "with @register_kl"
    )


@register_kl(Normal, Normal)
def _kl_normal(p: Normal, q: Normal) -> Array:
    r = p.scale / q.scale
    d = (p.loc - q.loc) / q.scale
    return 0.5 * (r * r + d * d - 1.0) - dnp.log(r)


@register_kl(LogNormal, LogNormal)
def _kl_lognormal(p: LogNormal, q: LogNormal) -> Array:
    return _kl_normal(p.base, q.base)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn(p: MultivariateNormal, q: MultivariateNormal) -> Array:
    k = p.event_shape[0]
    batch = tuple(np.broadcast_shapes(p.batch_shape, q.batch_shape))
    lq = dnp.broadcast_to(q.scale_tril, batch + (k, k))
    m = sla.solve_triangular(lq, dnp.broadcast_to(p.scale_tril, batch + (k, k)), lower=True)
    diff = dnp.broadcast_to(q.loc - p.loc, batch + (k,))
    y = sla.solve_triangular(lq, dnp.expand_dims(diff, -1), lower=True)[..., 0]
    trace = dnp.sum(m * m, axis=(-2, -1))
    maha = dnp.sum(y * y, axis=-1)
    logdet = dnp.sum(q._log_diag(), axis=-1) - dnp.sum(p._log_diag(), axis=-1)
    return 0.5 * (trace + maha - k) + logdet


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli(p: Bernoulli, q: Bernoulli) -> Array:
    pp = p.probs
    lp1, lp0 = log_sigmoid(p.logits), log_sigmoid(dnp.negative(p.logits))
    lq1, lq0 = log_sigmoid(q.logits), log_sigmoid(dnp.negative(q.logits))
    return pp * (lp1 - lq1) + (1.0 - pp) * (lp0 - lq0)


@register_kl(Categorical, Categorical)
def _kl_categorical(p: Categorical, q: Categorical) -> Array:
    return dnp.sum(p.probs * (p.logits - q.logits), axis=-1)


@register_kl(OneHotCategorical, OneHotCategorical)
def _kl_one_hot(p: OneHotCategorical, q: OneHotCategorical) -> Array:
    return dnp.sum(p.probs * (p.logits - q.logits), axis=-1)


@register_kl(Exponential, Exponential)
def _kl_exponential(p: Exponential, q: Exponential) -> Array:
    r = q.rate / p.rate
    return r - 1.0 - dnp.log(r)


@register_kl(Gamma, Gamma)
def _kl_gamma(p: Gamma, q: Gamma) -> Array:
    a1, b1, a2, b2 = p.concentration, p.rate, q.concentration, q.rate
    return (
        (a1 - a2) * sp.digamma(a1)
        - sp.gammaln(a1)
        + sp.gammaln(a2)
        + a2 * (dnp.log(b1) - dnp.log(b2))
        + a1 * (b2 - b1) / b1
    )


@register_kl(Beta, Beta)
def _kl_beta(p: Beta, q: Beta) -> Array:
    a1, b1, a2, b2 = p.concentration1, p.concentration0, q.concentration1, q.concentration0
    return (
        sp.betaln(a2, b2)
        - sp.betaln(a1, b1)
        + (a1 - a2) * sp.digamma(a1)
        + (b1 - b2) * sp.digamma(b1)
        + (a2 - a1 + b2 - b1) * sp.digamma(a1 + b1)
    )


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet(p: Dirichlet, q: Dirichlet) -> Array:
    a, b = p.concentration, q.concentration
    a0 = dnp.sum(a, axis=-1, keepdims=True)
    return (
        q._log_norm() - p._log_norm() + dnp.sum((a - b) * (sp.digamma(a) - sp.digamma(a0)), axis=-1)
    )


@register_kl(Uniform, Uniform)
def _kl_uniform(p: Uniform, q: Uniform) -> Array:
    inside = np.logical_and(
        np.asarray(concrete(q.low)) <= np.asarray(concrete(p.low)),
        np.asarray(concrete(p.high)) <= np.asarray(concrete(q.high)),
    )
    value = dnp.log(q.high - q.low) - dnp.log(p.high - p.low)
    return dnp.where(inside, value, np.inf)
