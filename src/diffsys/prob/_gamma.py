"""The standard Gamma sampler with implicit reparameterisation gradients.

A Gamma(alpha, 1) sample is drawn by inversion, ``z = P^{-1}(alpha, u)`` with ``u ~
Uniform(0, 1)`` and ``P`` the regularized lower incomplete gamma function (the CDF). Holding
``u`` fixed, the implicit function theorem on ``P(alpha, z) = u`` gives the derivative of the
sample (Figurnov et al. 2018, "Implicit reparameterization gradients")::

    dz/dalpha = -(dP/dalpha)(alpha, z) / p(z; alpha),     dz/du = 1 / p(z; alpha)

SciPy has no ``dP/dalpha``; it is summed here from the series
``P(a, x) = sum_n exp((a + n) log x - x - lgamma(a + n + 1))``, differentiated term by term:
``dP/da = sum_n term_n (log x - digamma(a + n + 1))``. The sum is written with diffsys
operations, so the rule is itself differentiable (second derivatives of samples follow).
Beta and Dirichlet samples are ratios of Gamma samples and inherit these gradients.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special as sc

import diffsys.numpy as dnp

from ..core.primitive import Primitive
from ..core.tracer import concrete
from ..scipy import special as sp


def _series_terms(x_max: float) -> int:
    """Enough series terms for every ``x <= x_max``: the terms peak near ``n = x - a`` and fall
    off like a Poisson tail, below 1e-17 of the peak after ``~8 sqrt(x)`` more terms."""
    return int(math.ceil(x_max + 8.0 * math.sqrt(max(x_max, 0.0)) + 40.0))


def dgammainc_da(a, x):
    """``d/da P(a, x)`` for the regularized lower incomplete gamma ``P`` (elementwise; ``a`` and
    ``x`` of one shape; ``x >= 0``). Differentiable in both arguments."""
    x_max = float(np.max(concrete(x), initial=0.0))
    n = np.arange(_series_terms(x_max), dtype=np.float64)
    positive = dnp.greater(x, 0.0)
    x_safe = dnp.where(positive, x, 1.0)
    log_x = dnp.expand_dims(dnp.log(x_safe), -1)
    a_n = dnp.expand_dims(a, -1) + n + 1.0
    log_terms = (a_n - 1.0) * log_x - dnp.expand_dims(x_safe, -1) - sp.gammaln(a_n)
    total = dnp.sum(dnp.exp(log_terms) * (log_x - sp.digamma(a_n)), axis=-1)
    return dnp.where(positive, total, 0.0)


def _log_density(z, alpha):
    return (alpha - 1.0) * dnp.log(z) - z - sp.gammaln(alpha)


def _dz_dalpha(ans, alpha):
    return dnp.negative(dgammainc_da(alpha, ans)) * dnp.exp(dnp.negative(_log_density(ans, alpha)))


_TINY = np.finfo(np.float64).tiny


def _standard_gamma_impl(alpha, u):
    z = sc.gammaincinv(alpha, u)
    return np.maximum(z, _TINY).astype(np.result_type(alpha, np.float32))


standard_gamma_p = Primitive("prob.standard_gamma", _standard_gamma_impl)
standard_gamma_p.defvjp(
    lambda g, ans, alpha, u: g * _dz_dalpha(ans, alpha),
    lambda g, ans, alpha, u: g * dnp.exp(dnp.negative(_log_density(ans, alpha))),
)
standard_gamma_p.defjvp(
    lambda t, ans, alpha, u: t * _dz_dalpha(ans, alpha),
    lambda t, ans, alpha, u: t * dnp.exp(dnp.negative(_log_density(ans, alpha))),
)


def standard_gamma(alpha, u):
    """``Gamma(alpha, 1)`` quantile at ``u`` (``alpha`` and ``u`` broadcast to one shape),
    differentiable in ``alpha`` by the implicit rule above.

    >>> import numpy as np
    >>> float(standard_gamma(np.array(1.0), np.array(1 - np.exp(-2.0))).round(12))  # Exp(1)
    2.0
    """
    shape = np.broadcast_shapes(np.shape(concrete(alpha)), np.shape(u))
    return standard_gamma_p(dnp.broadcast_to(alpha, shape), np.broadcast_to(u, shape))
