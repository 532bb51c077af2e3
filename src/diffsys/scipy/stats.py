"""``diffsys.scipy.stats``: densities and distribution functions, differentiable in the values
and in the parameters.

Signatures follow :mod:`scipy.stats` (``norm.logpdf(x, loc=0, scale=1)``,
``gamma.cdf(x, a, loc=0, scale=1)``, ...) and values agree with SciPy's. Everything is
composed of :mod:`diffsys.numpy` operations and :mod:`diffsys.scipy.special` primitives, so
derivatives of any order follow. Outside the support, ``logpdf`` is ``-inf`` and ``pdf`` 0,
as in SciPy, with zero gradient there (never NaN).

Limits: distribution functions built on the regularized incomplete beta or gamma function
(``t.cdf``, ``beta.cdf``, ``gamma.cdf``, ``chi2.cdf``, ``poisson.cdf`` and their ``sf``) are
differentiable in ``x``, ``loc`` and ``scale`` (``mu`` for Poisson) but not in the shape
parameters, whose derivatives SciPy does not provide either; asking raises
``NotImplementedError``.

>>> import diffsys as ds
>>> from diffsys.scipy import stats
>>> float(ds.grad(stats.norm.logpdf, argnums=1)(1.0, 0.0, 1.0))  # d/dloc
1.0
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.special as sc

import diffsys.numpy as dnp

from ..core.custom import stop_gradient
from ..core.primitive import Primitive
from ..numpy._util import broadcast_like, unbroadcast
from . import special as sp

__all__ = [
    "bernoulli",
    "beta",
    "binom",
    "cauchy",
    "chi2",
    "dirichlet",
    "expon",
    "gamma",
    "geom",
    "laplace",
    "logistic",
    "multivariate_normal",
    "nbinom",
    "norm",
    "poisson",
    "t",
    "uniform",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)
_LOG2 = math.log(2.0)


def _masked(inside, value, outside):
    """``value`` where ``inside``, the constant ``outside`` elsewhere (zero gradient there)."""
    return dnp.where(inside, value, outside)


def _safe(inside, z, fill=0.5):
    """``z`` where ``inside``, a harmless ``fill`` elsewhere: the masked branch of a ``where``
    must stay finite, or its zero cotangent times an infinite derivative gives NaN."""
    return dnp.where(inside, z, fill)


def _quiet(cls):
    """Wrap the public methods in ``np.errstate(divide="ignore")``: log(0) = -inf outside the
    support is a value here, as in SciPy, not a warning."""
    for name, fn in list(vars(cls).items()):
        if callable(fn) and not name.startswith("_"):

            @functools.wraps(fn)
            def quiet(*args, _fn=fn, **kwargs):
                with np.errstate(divide="ignore"):
                    return _fn(*args, **kwargs)

            setattr(cls, name, quiet)
    return cls


class _Continuous:
    """pdf/cdf/sf from logpdf/logcdf/logsf, for distributions that define those."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _quiet(cls)

    def pdf(self, x, *args, **kwargs):
        return dnp.exp(self.logpdf(x, *args, **kwargs))

    def __repr__(self) -> str:
        return f"diffsys.scipy.stats.{type(self).__name__.strip('_').lower()}"


# --- normal ---


class _Norm(_Continuous):
    def logpdf(self, x, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        return -0.5 * (z * z) - dnp.log(scale) - _LOG_SQRT_2PI

    def cdf(self, x, loc=0.0, scale=1.0):
        return sp.ndtr((x - loc) / scale)

    def logcdf(self, x, loc=0.0, scale=1.0):
        return sp.log_ndtr((x - loc) / scale)

    def sf(self, x, loc=0.0, scale=1.0):
        return sp.ndtr((loc - x) / scale)

    def logsf(self, x, loc=0.0, scale=1.0):
        return sp.log_ndtr((loc - x) / scale)

    def ppf(self, q, loc=0.0, scale=1.0):
        return loc + scale * sp.ndtri(q)


norm = _Norm()

# --- Student's t ---


class _T(_Continuous):
    def logpdf(self, x, df, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        half = 0.5 * (df + 1.0)
        return (
            sp.gammaln(half)
            - sp.gammaln(0.5 * df)
            - 0.5 * (dnp.log(df) + _LOG_PI)
            - dnp.log(scale)
            - half * dnp.log1p(z * z / df)
        )

    def cdf(self, x, df, loc=0.0, scale=1.0):
        return _stdtr(df, (x - loc) / scale)

    def sf(self, x, df, loc=0.0, scale=1.0):
        return _stdtr(df, (loc - x) / scale)

    def logcdf(self, x, df, loc=0.0, scale=1.0):
        return dnp.log(self.cdf(x, df, loc, scale))

    def logsf(self, x, df, loc=0.0, scale=1.0):
        return dnp.log(self.sf(x, df, loc, scale))


t = _T()

# The t distribution function as SciPy computes it (stdtr), with the density as its derivative
# in z (composed of diffsys operations, so it differentiates again); not differentiable in df.
_stdtr = sp._binary("stdtr", sc.stdtr, None, lambda ans, df, z: dnp.exp(t.logpdf(z, df)))

# --- beta, gamma, chi-squared --------------------------------------------------------------------


class _Beta(_Continuous):
    def logpdf(self, x, a, b, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        inside = dnp.logical_and(dnp.greater_equal(z, 0), dnp.less_equal(z, 1))
        zs = _safe(inside, z)
        value = sp.xlogy(a - 1.0, zs) + sp.xlog1py(b - 1.0, -zs) - sp.betaln(a, b)
        return _masked(inside, value - dnp.log(scale), -np.inf)

    def cdf(self, x, a, b, loc=0.0, scale=1.0):
        z = dnp.clip((x - loc) / scale, 0.0, 1.0)
        return sp.betainc(a, b, z)

    def sf(self, x, a, b, loc=0.0, scale=1.0):
        return 1.0 - self.cdf(x, a, b, loc, scale)

    def logcdf(self, x, a, b, loc=0.0, scale=1.0):
        return dnp.log(self.cdf(x, a, b, loc, scale))

    def logsf(self, x, a, b, loc=0.0, scale=1.0):
        return dnp.log(self.sf(x, a, b, loc, scale))


beta = _Beta()


class _Gamma(_Continuous):
    def logpdf(self, x, a, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        inside = dnp.greater_equal(z, 0)
        zs = _safe(inside, z)
        value = sp.xlogy(a - 1.0, zs) - zs - sp.gammaln(a) - dnp.log(scale)
        return _masked(inside, value, -np.inf)

    def cdf(self, x, a, loc=0.0, scale=1.0):
        return sp.gammainc(a, dnp.maximum((x - loc) / scale, 0.0))

    def sf(self, x, a, loc=0.0, scale=1.0):
        return sp.gammaincc(a, dnp.maximum((x - loc) / scale, 0.0))

    def logcdf(self, x, a, loc=0.0, scale=1.0):
        return dnp.log(self.cdf(x, a, loc, scale))

    def logsf(self, x, a, loc=0.0, scale=1.0):
        return dnp.log(self.sf(x, a, loc, scale))


gamma = _Gamma()


class _Chi2(_Continuous):
    """Chi-squared with ``df`` degrees of freedom: gamma(df/2, scale=2)."""

    def logpdf(self, x, df, loc=0.0, scale=1.0):
        return gamma.logpdf(x, 0.5 * df, loc, 2.0 * scale)

    def cdf(self, x, df, loc=0.0, scale=1.0):
        return gamma.cdf(x, 0.5 * df, loc, 2.0 * scale)

    def sf(self, x, df, loc=0.0, scale=1.0):
        return gamma.sf(x, 0.5 * df, loc, 2.0 * scale)

    def logcdf(self, x, df, loc=0.0, scale=1.0):
        return gamma.logcdf(x, 0.5 * df, loc, 2.0 * scale)

    def logsf(self, x, df, loc=0.0, scale=1.0):
        return gamma.logsf(x, 0.5 * df, loc, 2.0 * scale)


chi2 = _Chi2()

# --- logistic, Laplace, Cauchy, exponential, uniform ---


class _Logistic(_Continuous):
    def logpdf(self, x, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        return sp.log_expit(z) + sp.log_expit(-z) - dnp.log(scale)

    def cdf(self, x, loc=0.0, scale=1.0):
        return sp.expit((x - loc) / scale)

    def sf(self, x, loc=0.0, scale=1.0):
        return sp.expit((loc - x) / scale)

    def logcdf(self, x, loc=0.0, scale=1.0):
        return sp.log_expit((x - loc) / scale)

    def logsf(self, x, loc=0.0, scale=1.0):
        return sp.log_expit((loc - x) / scale)

    def ppf(self, q, loc=0.0, scale=1.0):
        return loc + scale * sp.logit(q)


logistic = _Logistic()


class _Laplace(_Continuous):
    def logpdf(self, x, loc=0.0, scale=1.0):
        return -dnp.abs((x - loc) / scale) - dnp.log(2.0 * scale)

    def _halves(self, x, loc, scale):
        z = (x - loc) / scale
        # exp of the non-positive part only, so the unselected branch stays finite
        low = 0.5 * dnp.exp(dnp.minimum(z, 0.0))
        high = 0.5 * dnp.exp(-dnp.maximum(z, 0.0))
        return z, low, high

    def cdf(self, x, loc=0.0, scale=1.0):
        z, low, high = self._halves(x, loc, scale)
        return dnp.where(dnp.less(z, 0), low, 1.0 - high)

    def sf(self, x, loc=0.0, scale=1.0):
        z, low, high = self._halves(x, loc, scale)
        return dnp.where(dnp.less(z, 0), 1.0 - low, high)

    def logcdf(self, x, loc=0.0, scale=1.0):
        z, low, high = self._halves(x, loc, scale)
        return dnp.where(dnp.less(z, 0), dnp.minimum(z, 0.0) - _LOG2, dnp.log1p(-high))

    def logsf(self, x, loc=0.0, scale=1.0):
        z, low, high = self._halves(x, loc, scale)
        return dnp.where(dnp.less(z, 0), dnp.log1p(-low), -dnp.maximum(z, 0.0) - _LOG2)

    def ppf(self, q, loc=0.0, scale=1.0):
        low = dnp.less_equal(q, 0.5)
        q_low = dnp.where(low, q, 0.25)  # keep the unselected logs finite
        q_high = dnp.where(low, 0.75, q)
        z = dnp.where(low, dnp.log(2.0 * q_low), -dnp.log(2.0 - 2.0 * q_high))
        return loc + scale * z


laplace = _Laplace()


class _Cauchy(_Continuous):
    def logpdf(self, x, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        return -_LOG_PI - dnp.log(scale) - dnp.log1p(z * z)

    def cdf(self, x, loc=0.0, scale=1.0):
        return 0.5 + dnp.arctan((x - loc) / scale) / math.pi

    def sf(self, x, loc=0.0, scale=1.0):
        return 0.5 - dnp.arctan((x - loc) / scale) / math.pi

    def logcdf(self, x, loc=0.0, scale=1.0):
        return dnp.log(self.cdf(x, loc, scale))

    def logsf(self, x, loc=0.0, scale=1.0):
        return dnp.log(self.sf(x, loc, scale))

    def ppf(self, q, loc=0.0, scale=1.0):
        return loc + scale * dnp.tan(math.pi * (q - 0.5))


cauchy = _Cauchy()


class _Expon(_Continuous):
    def logpdf(self, x, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        inside = dnp.greater_equal(z, 0)
        return _masked(inside, -z - dnp.log(scale), -np.inf)

    def cdf(self, x, loc=0.0, scale=1.0):
        return -dnp.expm1(-dnp.maximum((x - loc) / scale, 0.0))

    def sf(self, x, loc=0.0, scale=1.0):
        return dnp.exp(self.logsf(x, loc, scale))

    def logcdf(self, x, loc=0.0, scale=1.0):
        return dnp.log(self.cdf(x, loc, scale))

    def logsf(self, x, loc=0.0, scale=1.0):
        return -dnp.maximum((x - loc) / scale, 0.0)

    def ppf(self, q, loc=0.0, scale=1.0):
        return loc - scale * dnp.log1p(-q)


expon = _Expon()


class _Uniform(_Continuous):
    """Uniform on ``[loc, loc + scale]``."""

    def logpdf(self, x, loc=0.0, scale=1.0):
        z = (x - loc) / scale
        inside = dnp.logical_and(dnp.greater_equal(z, 0), dnp.less_equal(z, 1))
        return _masked(inside, -dnp.log(scale) + 0.0 * z, -np.inf)

    def cdf(self, x, loc=0.0, scale=1.0):
        return dnp.clip((x - loc) / scale, 0.0, 1.0)

    def sf(self, x, loc=0.0, scale=1.0):
        return 1.0 - self.cdf(x, loc, scale)

    def logcdf(self, x, loc=0.0, scale=1.0):
        return dnp.log(self.cdf(x, loc, scale))

    def logsf(self, x, loc=0.0, scale=1.0):
        return dnp.log(self.sf(x, loc, scale))

    def ppf(self, q, loc=0.0, scale=1.0):
        return loc + scale * q


uniform = _Uniform()

# --- Poisson ---


@_quiet
class _Poisson:
    """Poisson with mean ``mu`` (differentiable in ``mu``; ``k`` is a count)."""

    def logpmf(self, k, mu, loc=0):
        k = dnp.subtract(k, loc)
        valid = dnp.logical_and(dnp.greater_equal(k, 0), dnp.equal(k, dnp.floor(k)))
        ks = _safe(valid, k, 0.0)
        value = sp.xlogy(ks, mu) - sp.gammaln(ks + 1.0) - mu
        return _masked(valid, value, -np.inf)

    def pmf(self, k, mu, loc=0):
        return dnp.exp(self.logpmf(k, mu, loc))

    def cdf(self, k, mu, loc=0):
        k = dnp.floor(dnp.subtract(k, loc))
        valid = dnp.greater_equal(k, 0)
        return _masked(valid, sp.gammaincc(_safe(valid, k, 0.0) + 1.0, mu), 0.0)

    def sf(self, k, mu, loc=0):
        k = dnp.floor(dnp.subtract(k, loc))
        valid = dnp.greater_equal(k, 0)
        return _masked(valid, sp.gammainc(_safe(valid, k, 0.0) + 1.0, mu), 1.0)

    def logcdf(self, k, mu, loc=0):
        return dnp.log(self.cdf(k, mu, loc))

    def logsf(self, k, mu, loc=0):
        return dnp.log(self.sf(k, mu, loc))

    def __repr__(self) -> str:
        return "diffsys.scipy.stats.poisson"


poisson = _Poisson()


def _count(k, loc, lo=0):
    """``k - loc``, whether it is an integer >= lo, and a safe stand-in where it is not."""
    k = dnp.subtract(k, loc)
    valid = dnp.logical_and(dnp.greater_equal(k, lo), dnp.equal(k, dnp.floor(k)))
    return k, valid, _safe(valid, k, float(lo))


@_quiet
class _Bernoulli:
    """Bernoulli with success probability ``p`` (differentiable in ``p``)."""

    def logpmf(self, k, p, loc=0):
        k, valid, ks = _count(k, loc)
        valid = dnp.logical_and(valid, dnp.less_equal(k, 1))
        ks = _safe(valid, k, 0.0)
        return _masked(valid, sp.xlogy(ks, p) + sp.xlog1py(1.0 - ks, -p), -np.inf)

    def pmf(self, k, p, loc=0):
        return dnp.exp(self.logpmf(k, p, loc))

    def cdf(self, k, p, loc=0):
        k = dnp.floor(dnp.subtract(k, loc))
        below = dnp.less(k, 0)
        return dnp.where(below, 0.0, dnp.where(dnp.less(k, 1), 1.0 - p, 1.0 + 0.0 * p))

    def sf(self, k, p, loc=0):
        return 1.0 - self.cdf(k, p, loc)

    def __repr__(self) -> str:
        return "diffsys.scipy.stats.bernoulli"


bernoulli = _Bernoulli()


@_quiet
class _Binom:
    """Binomial with ``n`` trials and success probability ``p`` (differentiable in ``p``)."""

    def logpmf(self, k, n, p, loc=0):
        k, valid, ks = _count(k, loc)
        valid = dnp.logical_and(valid, dnp.less_equal(k, n))
        ks = _safe(valid, k, 0.0)
        comb = sp.gammaln(n + 1.0) - sp.gammaln(ks + 1.0) - sp.gammaln(n - ks + 1.0)
        return _masked(valid, comb + sp.xlogy(ks, p) + sp.xlog1py(n - ks, -p), -np.inf)

    def pmf(self, k, n, p, loc=0):
        return dnp.exp(self.logpmf(k, n, p, loc))

    def cdf(self, k, n, p, loc=0):
        k = dnp.floor(dnp.subtract(k, loc))
        inside = dnp.logical_and(dnp.greater_equal(k, 0), dnp.less(k, n))
        ks = _safe(inside, k, 0.0)
        # P(K <= k) = I_{1-p}(n - k, k + 1)
        value = sp.betainc(_safe(inside, n - ks, 1.0), ks + 1.0, 1.0 - p)
        return dnp.where(inside, value, dnp.where(dnp.less(k, 0), 0.0, 1.0))

    def sf(self, k, n, p, loc=0):
        return 1.0 - self.cdf(k, n, p, loc)

    def __repr__(self) -> str:
        return "diffsys.scipy.stats.binom"


binom = _Binom()


@_quiet
class _Geom:
    """Geometric: trials up to the first success, ``k >= 1`` (differentiable in ``p``)."""

    def logpmf(self, k, p, loc=0):
        k, valid, ks = _count(k, loc, lo=1)
        return _masked(valid, sp.xlog1py(ks - 1.0, -p) + dnp.log(p), -np.inf)

    def pmf(self, k, p, loc=0):
        return dnp.exp(self.logpmf(k, p, loc))

    def logsf(self, k, p, loc=0):
        k = dnp.maximum(dnp.floor(dnp.subtract(k, loc)), 0.0)
        return sp.xlog1py(k, -p)

    def sf(self, k, p, loc=0):
        return dnp.exp(self.logsf(k, p, loc))

    def cdf(self, k, p, loc=0):
        return -dnp.expm1(self.logsf(k, p, loc))

    def __repr__(self) -> str:
        return "diffsys.scipy.stats.geom"


geom = _Geom()


@_quiet
class _NBinom:
    """Negative binomial: failures before the ``n``-th success with probability ``p``
    (differentiable in ``n`` for the pmf, and in ``p``)."""

    def logpmf(self, k, n, p, loc=0):
        k, valid, ks = _count(k, loc)
        comb = sp.gammaln(n + ks) - sp.gammaln(n) - sp.gammaln(ks + 1.0)
        return _masked(valid, comb + n * dnp.log(p) + sp.xlog1py(ks, -p), -np.inf)

    def pmf(self, k, n, p, loc=0):
        return dnp.exp(self.logpmf(k, n, p, loc))

    def cdf(self, k, n, p, loc=0):
        k = dnp.floor(dnp.subtract(k, loc))
        valid = dnp.greater_equal(k, 0)
        # P(K <= k) = I_p(n, k + 1)
        return _masked(valid, sp.betainc(n, _safe(valid, k, 0.0) + 1.0, p), 0.0)

    def sf(self, k, n, p, loc=0):
        return 1.0 - self.cdf(k, n, p, loc)

    def __repr__(self) -> str:
        return "diffsys.scipy.stats.nbinom"


nbinom = _NBinom()

# --- Dirichlet ---


class _Dirichlet:
    """Dirichlet with concentration ``alpha`` of shape ``(K,)``; ``x`` has the components on
    its first axis (shape ``(K,)`` or ``(K, N)``), as in SciPy."""

    def logpdf(self, x, alpha):
        alpha = dnp.asarray(alpha)
        if alpha.ndim != 1:
            raise ValueError(f"dirichlet: alpha must be 1-d, got shape {alpha.shape}")
        k = alpha.shape[0]
        if dnp.shape(x)[0] != k:
            raise ValueError(
                f"dirichlet: x has {dnp.shape(x)[0]} components on axis 0, alpha has {k}"
            )
        a = dnp.reshape(alpha, (k,) + (1,) * (dnp.ndim(x) - 1))
        lnb = dnp.sum(sp.gammaln(alpha)) - sp.gammaln(dnp.sum(alpha))
        return dnp.sum(sp.xlogy(a - 1.0, x), axis=0) - lnb

    def pdf(self, x, alpha):
        return dnp.exp(self.logpdf(x, alpha))

    def __repr__(self) -> str:
        return "diffsys.scipy.stats.dirichlet"


dirichlet = _Dirichlet()

# --- multivariate normal ---
# Two small linear-algebra primitives (diffsys.numpy has no linalg here): a linear solve and
# the log-determinant of a symmetric positive-definite matrix. Their rules use solves, never
# inverses, and are written with these same primitives, so they differentiate again.


def _mT(a):
    return dnp.swapaxes(a, -1, -2)


_solve = Primitive("scipy.stats.solve", lambda a, b: np.linalg.solve(a, b))
# b is a matrix (or a stack); stacks broadcast, so the cotangents are un-broadcast.
_solve.defvjp(
    lambda g, ans, a, b: unbroadcast(dnp.negative(dnp.matmul(_solve(_mT(a), g), _mT(ans))), a),
    lambda g, ans, a, b: unbroadcast(_solve(_mT(a), g), b),
)
_solve.defjvp(
    lambda t, ans, a, b: dnp.negative(_solve(a, dnp.matmul(t, ans))),
    lambda t, ans, a, b: broadcast_like(_solve(a, t), ans),
)
# Batched operands carry the batch on axis 0 and stacks broadcast: one call does the batch.
_solve.defbatch(lambda args, batched: _solve(*args))


def _logdet_impl(a):
    # The value is log det(a) of the matrix as given (so the rules, which are those of a
    # general log-determinant, hold for non-symmetric perturbations too); Cholesky checks
    # positive definiteness.
    try:
        np.linalg.cholesky(a)
    except np.linalg.LinAlgError as err:
        raise np.linalg.LinAlgError(
            f"multivariate_normal: cov of shape {np.shape(a)} is not positive definite"
        ) from err
    return np.linalg.slogdet(a)[1]


def _eye_like(a):
    return dnp.eye(a.shape[-1], dtype=a.dtype)


_logdet = Primitive("scipy.stats.logdet_spd", _logdet_impl)
_logdet.defvjp(
    lambda g, ans, a: dnp.reshape(g, tuple(g.shape) + (1, 1)) * _mT(_solve(a, _eye_like(a)))
)
_logdet.defjvp(lambda t, ans, a: dnp.sum(_solve(a, t) * _eye_like(a), axis=(-2, -1)))
_logdet.defbatch(lambda args, batched: _logdet(args[0]))


# --- singular covariances (allow_singular=True): SciPy's pseudo-inverse and pseudo-determinant


def _psd_cutoff(s):
    """SciPy's cutoff for negligible eigenvalues ``s`` of a PSD matrix (last axis)."""
    factor = 1e3 if s.dtype == np.float32 else 1e6
    return factor * np.finfo(s.dtype).eps * np.max(np.abs(s), axis=-1, keepdims=True)


def _psd_rcond(dtype) -> float:
    """The same cutoff relative to the largest eigenvalue (``pinv``'s ``rcond``)."""
    return (1e3 if np.dtype(dtype) == np.float32 else 1e6) * float(np.finfo(dtype).eps)


def _logpdet_impl(a):
    s = np.linalg.eigvalsh(a)
    eps = _psd_cutoff(s)
    if np.any(s < -eps):
        raise ValueError(
            f"multivariate_normal: cov of shape {np.shape(a)} is not symmetric positive "
            "semidefinite"
        )
    kept = s > eps
    return np.sum(np.log(np.where(kept, s, 1.0)), axis=-1)


def _pinv_psd(a):
    return dnp.linalg.pinv(a, rcond=_psd_rcond(a.dtype), hermitian=True)


# log pdet(A) = sum of the logs of the eigenvalues above the cutoff; at constant rank its
# derivative is tr(A^+ dA) (the pseudo-inverse's rules give the next orders).
_logpdet = Primitive("scipy.stats.logpdet_psd", _logpdet_impl)
_logpdet.defvjp(lambda g, ans, a: dnp.reshape(g, tuple(g.shape) + (1, 1)) * _mT(_pinv_psd(a)))
_logpdet.defjvp(lambda t, ans, a: dnp.sum(_mT(_pinv_psd(a)) * t, axis=(-2, -1)))
_logpdet.defbatch(lambda args, batched: _logpdet(args[0]))


def _singular_terms(flat, cov):
    """Mahalanobis terms, log pseudo-determinant and rank of a PSD ``cov`` as SciPy's
    ``allow_singular=True`` (``-inf`` density off the support), for rows ``flat``. ``cov``
    is read from its lower triangle, as SciPy's ``eigh`` reads it."""
    cov = dnp.tril(cov) + _mT(dnp.tril(cov, -1))
    s, u = dnp.linalg.eigh(stop_gradient(cov))  # values only: rank and support
    null = dnp.astype(s <= _psd_cutoff_traced(s), s.dtype)
    rank = dnp.sum(1.0 - null)
    off = dnp.sum(dnp.matmul(stop_gradient(flat), u * null) ** 2, axis=-1)  # off the range
    in_support = off < (1e3 * _psd_cutoff_traced(s)[..., 0]) ** 2
    quad = dnp.sum(dnp.matmul(flat, _pinv_psd(cov)) * flat, axis=-1)
    return quad, _logpdet(cov), rank, in_support


def _psd_cutoff_traced(s):
    factor = 1e3 if dnp.result_type(s) == np.float32 else 1e6
    return factor * float(np.finfo(s.dtype).eps) * dnp.max(dnp.abs(s), axis=-1, keepdims=True)


class _MultivariateNormal:
    """Multivariate normal with ``mean`` of shape ``(d,)`` and ``cov`` of shape ``(d, d)``;
    ``x`` has the dimension on its last axis. Differentiable in ``x``, ``mean`` and ``cov``
    (the gradient in ``cov`` is the symmetric one: ``cov`` is used as given, not
    symmetrized).

    With ``allow_singular=True`` a singular (positive semidefinite) ``cov`` is allowed, as
    in SciPy: the density is that of the degenerate normal on the range of ``cov``
    (pseudo-inverse, pseudo-determinant, SciPy's cutoff for zero eigenvalues) and ``-inf``
    off it. ``cov`` is then read from its lower triangle, as SciPy does, and derivatives
    are those of that function at fixed rank (the pseudo-inverse's)."""

    def logpdf(self, x, mean=None, cov=1.0, allow_singular: bool = False):
        x = dnp.asarray(x)
        d = x.shape[-1] if x.ndim else 1
        if mean is None:
            mean = np.zeros(d)
        cov = dnp.asarray(cov)
        if cov.ndim == 0:
            cov = cov * dnp.eye(d)
        elif cov.ndim == 1:
            cov = cov * dnp.eye(d)
        if cov.shape != (d, d):
            raise ValueError(f"multivariate_normal: cov has shape {cov.shape}, need ({d}, {d})")
        diff = x - mean
        flat = dnp.reshape(diff, (-1, d))
        if allow_singular:
            quad, logdet, rank, in_support = _singular_terms(flat, cov)
            out = -0.5 * (quad + logdet) - rank * _LOG_SQRT_2PI
            out = dnp.where(in_support, out, -np.inf)
        else:
            sol = _solve(cov, _mT(flat))  # (d, n)
            quad = dnp.sum(_mT(flat) * sol, axis=0)
            out = -0.5 * (quad + _logdet(cov)) - d * _LOG_SQRT_2PI
        return dnp.reshape(out, dnp.shape(diff)[:-1])

    def pdf(self, x, mean=None, cov=1.0, allow_singular: bool = False):
        return dnp.exp(self.logpdf(x, mean, cov, allow_singular))

    def __repr__(self) -> str:
        return "diffsys.scipy.stats.multivariate_normal"


multivariate_normal = _MultivariateNormal()
