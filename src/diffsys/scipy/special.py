"""``diffsys.scipy.special``: SciPy's special functions as differentiable primitives.

Each function runs :mod:`scipy.special` on plain arrays (so values are SciPy's, bit for bit)
and has VJP and JVP rules written with diffsys operations, so derivatives of any order
follow (``digamma' = polygamma(1, .)``, ``i0' = i1``, ...). Integer orders (``n`` of
``polygamma``, ``jn``, ``yn``; ``v`` of ``iv``) and the shape parameters of ``betainc`` and
``gammainc`` are not differentiated: asking for those derivatives raises
``NotImplementedError`` naming the argument.

>>> import diffsys as ds
>>> from diffsys.scipy import special
>>> float(ds.grad(special.gammaln)(3.0))  # digamma(3)
0.9227843350984671
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special as sc

import diffsys.numpy as dnp

from ..core.custom import stop_gradient
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ..numpy._softmax import log_softmax_cotangent, log_softmax_tangent, softmax_weights
from ..numpy._util import (
    align_batched,
    broadcast_like,
    def_axes_batch,
    def_elementwise_batch,
    dtype_of,
    ndim_of,
    normalize_axes,
    reshape_p,
    shape_of,
    unbroadcast,
)

_SQRT_PI_2 = math.sqrt(math.pi) / 2.0
_TWO_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LOG_PI = math.log(math.pi)

# --- construction helpers ----------------------------------------------------------------------


def _unary(name: str, fn, deriv) -> Primitive:
    """Elementwise ``fn(x)`` with derivative ``deriv(ans, x)``."""
    prim = Primitive(f"scipy.special.{name}", fn)
    prim.defvjp(lambda g, ans, x: g * deriv(ans, x))
    prim.defjvp(lambda t, ans, x: t * deriv(ans, x))
    def_elementwise_batch(prim)
    return prim


def _binary(name: str, fn, dx, dy) -> Primitive:
    """Broadcasting ``fn(x, y)`` with partials ``dx(ans, x, y)``, ``dy(ans, x, y)``
    (``None``: not differentiable in that argument)."""
    prim = Primitive(f"scipy.special.{name}", fn)
    vjps, jvps = [], []
    for d in (dx, dy):
        if d is None:
            vjps.append(None)
            jvps.append(None)
            continue
        if d is dx:
            vjps.append(lambda g, ans, x, y, d=d: unbroadcast(g * d(ans, x, y), x))
        else:
            vjps.append(lambda g, ans, x, y, d=d: unbroadcast(g * d(ans, x, y), y))
        jvps.append(lambda t, ans, x, y, d=d: broadcast_like(t * d(ans, x, y), ans))
    prim.defvjp(*vjps)
    prim.defjvp(*jvps)
    def_elementwise_batch(prim)
    return prim


def _ternary_in_x(name: str, fn, dx) -> Primitive:
    """Broadcasting ``fn(a, b, x)`` differentiable in ``x`` only, with ``dx(ans, a, b, x)``."""
    prim = Primitive(f"scipy.special.{name}", fn)
    prim.defvjp(None, None, lambda g, ans, a, b, x: unbroadcast(g * dx(ans, a, b, x), x))
    prim.defjvp(None, None, lambda t, ans, a, b, x: broadcast_like(t * dx(ans, a, b, x), ans))
    def_elementwise_batch(prim)
    return prim


# --- gamma family ------------------------------------------------------------------------------

polygamma = _binary("polygamma", sc.polygamma, None, lambda ans, n, x: polygamma(dnp.add(n, 1), x))
# polygamma: polygamma(n, x): the n-th derivative of digamma (differentiable in x).
digamma = _unary("digamma", sc.digamma, lambda ans, x: polygamma(1, x))
psi = digamma
gammaln = _unary("gammaln", sc.gammaln, lambda ans, x: digamma(x))
gamma = _unary("gamma", sc.gamma, lambda ans, x: ans * digamma(x))
rgamma = _unary("rgamma", sc.rgamma, lambda ans, x: dnp.negative(ans * digamma(x)))
gammasgn = Primitive("scipy.special.gammasgn", sc.gammasgn, zero_derivative=True)
gammasgn.__doc__ = (
    "The sign of the gamma function, piecewise constant (zero derivative): "
    "gamma(x) = gammasgn(x) * exp(gammaln(x))."
)
def_elementwise_batch(gammasgn)


def _dbeta_a(ans, a, b):
    return ans * (digamma(a) - digamma(a + b))


def _dbeta_b(ans, a, b):
    return ans * (digamma(b) - digamma(a + b))


beta = _binary("beta", sc.beta, _dbeta_a, lambda ans, a, b: _dbeta_a(ans, b, a))
betaln = _binary(
    "betaln",
    sc.betaln,
    lambda ans, a, b: digamma(a) - digamma(a + b),
    lambda ans, a, b: digamma(b) - digamma(a + b),
)


def multigammaln(a, d: int):
    """Log of the multivariate gamma function of dimension ``d`` (differentiable in ``a``)."""
    d = int(d)
    if not isinstance(a, Tracer) and np.any(np.less_equal(a, 0.5 * (d - 1))):
        raise ValueError(f"multigammaln: condition a > (d-1)/2 = {0.5 * (d - 1)} not met")
    out = 0.25 * d * (d - 1) * _LOG_PI
    for j in range(d):
        out = out + gammaln(a - 0.5 * j)
    return out


betainc = _ternary_in_x(
    "betainc",
    sc.betainc,
    lambda ans, a, b, x: dnp.exp(xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - betaln(a, b)),
)
# betainc: Regularized incomplete beta I_x(a, b) (differentiable in x).


def _dgammainc(ans, a, x):
    return dnp.exp(xlogy(a - 1.0, x) - x - gammaln(a))


gammainc = _binary("gammainc", sc.gammainc, None, _dgammainc)
gammaincc = _binary(
    "gammaincc", sc.gammaincc, None, lambda ans, a, x: dnp.negative(_dgammainc(ans, a, x))
)

# --- error function and normal distribution ------------------------------------------------------

erf = _unary("erf", sc.erf, lambda ans, x: _TWO_SQRT_PI * dnp.exp(dnp.negative(x * x)))
erfc = _unary("erfc", sc.erfc, lambda ans, x: -_TWO_SQRT_PI * dnp.exp(dnp.negative(x * x)))
erfinv = _unary("erfinv", sc.erfinv, lambda ans, x: _SQRT_PI_2 * dnp.exp(ans * ans))
erfcinv = _unary("erfcinv", sc.erfcinv, lambda ans, x: -_SQRT_PI_2 * dnp.exp(ans * ans))


def _log_npdf(x):
    return -0.5 * (x * x) - _LOG_SQRT_2PI


ndtr = _unary("ndtr", sc.ndtr, lambda ans, x: dnp.exp(_log_npdf(x)))
def _log_ndtr_slope(ans, x):
    """pdf / cdf. Left of 0 as sqrt(2 / pi) / erfcx(-x / sqrt 2), accurate far out (about
    -x), to every order (erfcx' is accurate for large arguments); exp(log pdf - log cdf)
    there loses the difference of two numbers of size x**2 / 2 (3% off in float32 at x =
    -1000, the second derivative nowhere near). Right of 0 exp(log pdf - log cdf) is exact
    (log cdf is small), where erfcx(-x / sqrt 2) overflows."""
    left = dnp.less(x, 0.0)
    xl = dnp.where(left, x, 0.0)  # each branch sees only the arguments it is accurate for
    xr = dnp.where(left, 0.0, x)
    return dnp.where(
        left,
        math.sqrt(2.0 / math.pi) / erfcx(dnp.negative(xl) * math.sqrt(0.5)),
        dnp.exp(_log_npdf(xr) - log_ndtr(xr)),
    )


log_ndtr = _unary("log_ndtr", sc.log_ndtr, _log_ndtr_slope)
ndtri = _unary("ndtri", sc.ndtri, lambda ans, x: _SQRT_2PI * dnp.exp(0.5 * (ans * ans)))

# --- logistic ------------------------------------------------------------------------------------

# expit(x) expit(-x), not ans (1 - ans): exact in the right tail too, where 1 - ans rounds to 0.
expit = _unary("expit", sc.expit, lambda ans, x: ans * expit(dnp.negative(x)))
logit = _unary("logit", sc.logit, lambda ans, x: dnp.reciprocal(x * (1.0 - x)))
log_expit = _unary("log_expit", sc.log_expit, lambda ans, x: expit(dnp.negative(x)))

# --- x log y and entropies ---------------------------------------------------------------------


def _safe_div(x, y):
    """x / y, and 0 where x == 0 (so 0 * log 0 terms have zero derivative in y)."""
    zero = dnp.equal(x, 0)
    return dnp.where(zero, 0.0, x / dnp.where(zero, 1.0, y))


xlogy = _binary("xlogy", sc.xlogy, lambda ans, x, y: dnp.log(y), lambda ans, x, y: _safe_div(x, y))
xlog1py = _binary(
    "xlog1py",
    sc.xlog1py,
    lambda ans, x, y: dnp.log1p(y),
    lambda ans, x, y: _safe_div(x, 1.0 + y),
)
entr = _unary("entr", sc.entr, lambda ans, x: dnp.negative(1.0 + dnp.log(x)))
def _log_ratio(x, y):
    """log(x / y), as log1p((x - y) / y) where x / y is near 1 (log of a rounded ratio near 1
    has lost the digits of its small result)."""
    r = x / y
    close = dnp.less(dnp.abs(r - 1.0), 0.5)
    near = dnp.log1p(dnp.where(close, (x - y) / y, 0.0))  # each branch on valid arguments
    return dnp.where(close, near, dnp.log(dnp.where(close, 1.0, r)))


rel_entr = _binary(
    "rel_entr",
    sc.rel_entr,
    lambda ans, x, y: 1.0 + _log_ratio(x, y),
    lambda ans, x, y: dnp.negative(x / y),
)
kl_div = _binary(
    "kl_div",
    sc.kl_div,
    lambda ans, x, y: _log_ratio(x, y),
    lambda ans, x, y: (y - x) / y,  # not 1 - x / y, which cancels where x is near y
)

# --- Bessel functions ------------------------------------------------------------------------


def _half_sum(f, v, z, sign=1.0):
    """(f(v - 1, z) + sign * f(v + 1, z)) / 2, the recurrence for Bessel derivatives."""
    return 0.5 * (f(v - 1.0, z) + sign * f(v + 1.0, z))


iv = _binary("iv", sc.iv, None, lambda ans, v, z: _half_sum(iv, v, z))
# iv: Modified Bessel function of the first kind I_v(z) (differentiable in z).
ive = _binary(
    "ive",
    sc.ive,
    None,
    lambda ans, v, z: _half_sum(ive, v, z) - dnp.sign(z) * ans,
)
# ive: Exponentially scaled I_v(z) * exp(-|z|) (differentiable in real z).
i0 = _unary("i0", sc.i0, lambda ans, x: i1(x))
i1 = _unary("i1", sc.i1, lambda ans, x: 0.5 * (i0(x) + iv(2.0, x)))
i0e = _unary("i0e", sc.i0e, lambda ans, x: i1e(x) - dnp.sign(x) * ans)
i1e = _unary("i1e", sc.i1e, lambda ans, x: 0.5 * (i0e(x) + ive(2.0, x)) - dnp.sign(x) * ans)

jv = _binary("jv", sc.jv, None, lambda ans, v, z: _half_sum(jv, v, z, -1.0))
# jv: Bessel function of the first kind J_v(z) (differentiable in z).
jn = _binary("jn", sc.jn, None, lambda ans, n, z: _half_sum(jv, n, z, -1.0))
# jn: Bessel function of the first kind of integer order J_n(z) (differentiable in z).
j0 = _unary("j0", sc.j0, lambda ans, x: dnp.negative(j1(x)))
j1 = _unary("j1", sc.j1, lambda ans, x: 0.5 * (j0(x) - jv(2.0, x)))
yv = _binary("yv", sc.yv, None, lambda ans, v, z: _half_sum(yv, v, z, -1.0))
# yv: Bessel function of the second kind Y_v(z) (differentiable in z).
yn = _binary("yn", sc.yn, None, lambda ans, n, z: _half_sum(yv, n, z, -1.0))
# yn: Bessel function of the second kind of integer order Y_n(z) (differentiable in z).
y0 = _unary("y0", sc.y0, lambda ans, x: dnp.negative(y1(x)))
y1 = _unary("y1", sc.y1, lambda ans, x: 0.5 * (y0(x) - yv(2.0, x)))

k0 = _unary("k0", sc.k0, lambda ans, x: dnp.negative(k1(x)))
k1 = _unary("k1", sc.k1, lambda ans, x: -0.5 * (k0(x) + kv(2.0, x)))
k0e = _unary("k0e", sc.k0e, lambda ans, x: ans - k1e(x))
k1e = _unary("k1e", sc.k1e, lambda ans, x: ans - 0.5 * (k0e(x) + kve(2.0, x)))
kv = _binary("kv", sc.kv, None, lambda ans, v, z: -_half_sum(kv, v, z))
# kv: modified Bessel function of the second kind K_v(z) (differentiable in z)
kve = _binary("kve", sc.kve, None, lambda ans, v, z: ans - _half_sum(kve, v, z))
# kve: exponentially scaled K_v(z) * exp(z) (differentiable in z)

# --- more elementary and special functions ---------------------------------------------------

# erfcx' = 2 x erfcx(x) - 2 / sqrt(pi) = (2 / sqrt(pi)) h(x), h(x) = sqrt(pi) x erfcx(x) - 1.
# For large x, h ~ -1 / (2 x**2) is a difference of two numbers near 1 (relative error
# eps * 2 x**2, 100% in float32 at x = 1000, and again at every order), so there h is its
# asymptotic series in w = 1 / (2 x**2): sum_k (-1)^k (2k - 1)!! w^k, 20 terms past x = 8
# (the truncation error is below 1e-16 relative), differentiable to any order as it stands.
_ERFCX_SERIES_FROM = 8.0
_ERFCX_SERIES = [(-1.0) ** k * math.prod(range(1, 2 * k, 2)) for k in range(1, 21)]


def _erfcx_h(x):
    far = dnp.greater_equal(x, _ERFCX_SERIES_FROM)
    near_x = dnp.where(far, 0.0, x)  # each branch sees only arguments it is accurate for
    far_x = dnp.where(far, x, _ERFCX_SERIES_FROM)
    w = 0.5 / (far_x * far_x)
    series = 0.0
    for c in reversed(_ERFCX_SERIES):
        series = (series + c) * w
    return dnp.where(far, series, math.sqrt(math.pi) * near_x * erfcx(near_x) - 1.0)


erfcx = _unary("erfcx", sc.erfcx, lambda ans, x: _TWO_SQRT_PI * _erfcx_h(x))
dawsn = _unary("dawsn", sc.dawsn, lambda ans, x: 1.0 - 2.0 * x * ans)
expi = _unary("expi", sc.expi, lambda ans, x: dnp.exp(x) / x)
exp1 = _unary("exp1", sc.exp1, lambda ans, x: dnp.negative(dnp.exp(dnp.negative(x)) / x))
loggamma = _unary("loggamma", sc.loggamma, lambda ans, x: digamma(x))
cosm1 = _unary("cosm1", sc.cosm1, lambda ans, x: dnp.negative(dnp.sin(x)))
exp10 = _unary("exp10", sc.exp10, lambda ans, x: ans * math.log(10.0))
exp2 = _unary("exp2", sc.exp2, lambda ans, x: ans * math.log(2.0))
softplus = _unary("softplus", sc.softplus, lambda ans, x: expit(x))
wrightomega = _unary("wrightomega", sc.wrightomega, lambda ans, x: ans / (1.0 + ans))
zeta = _binary("zeta", sc.zeta, None, lambda ans, x, q: dnp.negative(x * zeta(x + 1.0, q)))
# zeta(x, q): the Hurwitz zeta function (differentiable in q)
powm1 = _binary(
    "powm1",
    sc.powm1,
    lambda ans, x, y: y * dnp.power(x, y - 1.0),
    lambda ans, x, y: (ans + 1.0) * dnp.log(x),
)

# --- sinc-like helpers ---------------------------------------------------------------------------

_DEG = math.pi / 180.0
sindg = _unary("sindg", sc.sindg, lambda ans, x: _DEG * cosdg(x))
cosdg = _unary("cosdg", sc.cosdg, lambda ans, x: -_DEG * sindg(x))
exprel = _unary(
    "exprel",
    sc.exprel,
    # (e^x (x - 1) + 1) / x^2 = (e^x - exprel(x)) / x; its limit at 0 is 1/2.
    lambda ans, x: _exprel_slope(ans, x),
)


def _exprel_slope(ans, x):
    small = dnp.less(dnp.abs(x), 1e-4)
    safe = dnp.where(small, 1.0, x)
    series = 0.5 + x / 3.0 + x * x / 8.0
    return dnp.where(small, series, (dnp.exp(safe) - exprel(safe)) / safe)


# --- logsumexp and softmax ----------------------------------------------------------------------


def _keep_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _expand(ans, shape, axes, keepdims):
    """``ans`` reshaped to keepdims form so that it broadcasts against the input."""
    if keepdims:
        return ans
    return reshape_p(ans, shape=_keep_shape(shape, axes))


def _lse_impl(a, axis, keepdims):
    if not axis:  # no reduction (a 0-d input): log(exp(a)), shaped like a
        return np.reshape(sc.logsumexp(a), np.shape(a))
    return sc.logsumexp(a, axis=axis, keepdims=keepdims)


def _constant(x):
    return stop_gradient(x) if isinstance(x, Tracer) else x


def _lse_weights(ans, a, axis, keepdims):
    """softmax weights exp(a - logsumexp(a)), differentiable in ``a`` by the softmax's own
    accurate rules (``numpy/_softmax.py``); ``ans`` only supplies the value."""
    return softmax_weights(a, _constant(_expand(ans, shape_of(a), axis, keepdims)), axis=axis)


_lse = Primitive("scipy.special.logsumexp", _lse_impl)
_lse.defvjp(
    lambda g, ans, a, axis, keepdims: (
        _expand(g, shape_of(a), axis, keepdims) * _lse_weights(ans, a, axis, keepdims)
    )
)
_lse.defjvp(
    lambda t, ans, a, axis, keepdims: dnp.sum(
        t * _lse_weights(ans, a, axis, keepdims), axis=axis, keepdims=keepdims
    )
)


def _lse_batch(args, batched, axis, keepdims):
    return _lse(args[0], axis=tuple(x + 1 for x in axis), keepdims=keepdims)


_lse.defbatch(_lse_batch)


# With weights b: log|sum b e^a| and its sign s. d/da = s b e^(a - ans), d/db = s e^(a - ans).
def _lse_b_full(a, b, axis, keepdims):
    """SciPy's (log|sum b e^a|, sign); with no reduction axes shaped like the broadcast."""
    if not axis:
        out, sign = sc.logsumexp(a, b=b, return_sign=True)
        shape = np.broadcast_shapes(np.shape(a), np.shape(b))
        return np.reshape(out, shape), np.reshape(sign, shape)
    return sc.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True)


def _lse_b_impl(a, b, axis, keepdims, signed):
    out, sign = _lse_b_full(a, b, axis, keepdims)
    if not signed:  # as SciPy without return_sign: NaN where the sum is negative
        out = np.where(sign < 0, np.nan, out)[()]
    return out


def _lse_sign_impl(a, b, axis, keepdims):
    return _lse_b_full(a, b, axis, keepdims)[1]


_lse_sign = Primitive("scipy.special.logsumexp_sign", _lse_sign_impl, zero_derivative=True)


def _lse_b_factor(ans, a, b, axis, keepdims, signed=False):
    shape = np.broadcast_shapes(shape_of(a), shape_of(b))
    s = _lse_sign(a, b, axis=axis, keepdims=True)
    return s * dnp.exp(a - _expand(ans, shape, axis, keepdims))


def _lse_b_g(g, a, b, axis, keepdims, signed=False):
    return _expand(g, np.broadcast_shapes(shape_of(a), shape_of(b)), axis, keepdims)


_lse_b = Primitive("scipy.special.logsumexp_b", _lse_b_impl)
_lse_b.defvjp(
    lambda g, ans, a, b, axis, keepdims, signed: unbroadcast(
        _lse_b_g(g, a, b, axis, keepdims) * b * _lse_b_factor(ans, a, b, axis, keepdims), a
    ),
    lambda g, ans, a, b, axis, keepdims, signed: unbroadcast(
        _lse_b_g(g, a, b, axis, keepdims) * _lse_b_factor(ans, a, b, axis, keepdims), b
    ),
)
_lse_b.defjvp(
    lambda t, ans, a, b, axis, keepdims, signed: dnp.sum(
        t * b * _lse_b_factor(ans, a, b, axis, keepdims), axis=axis, keepdims=keepdims
    ),
    lambda t, ans, a, b, axis, keepdims, signed: dnp.sum(
        t * _lse_b_factor(ans, a, b, axis, keepdims), axis=axis, keepdims=keepdims
    ),
)


def _batch_to_common_rank(args, batched):
    """Batched arguments (batch on axis 0) and unbatched ones, all of the same rank 1 + r
    where r is the broadcast core rank; unbatched ones get a leading 1."""
    args = align_batched(args, batched)
    rank = max(ndim_of(a) - b for a, b in zip(args, batched, strict=True))
    out = []
    for a, b in zip(args, batched, strict=True):
        if not b:
            s = shape_of(a)
            a = reshape_p(a, shape=(1,) * (rank + 1 - len(s)) + tuple(s))
        out.append(a)
    return out


def _lse_b_batch(args, batched, axis, keepdims, signed):
    a, b = _batch_to_common_rank(args, batched)
    return _lse_b(a, b, axis=tuple(x + 1 for x in axis), keepdims=keepdims, signed=signed)


def _lse_sign_batch(args, batched, axis, keepdims):
    a, b = _batch_to_common_rank(args, batched)
    return _lse_sign(a, b, axis=tuple(x + 1 for x in axis), keepdims=keepdims)


_lse_b.defbatch(_lse_b_batch)
_lse_sign.defbatch(_lse_sign_batch)


def logsumexp(a, axis=None, b=None, keepdims: bool = False, return_sign: bool = False):
    """``log(sum(b * exp(a), axis))`` computed stably, as :func:`scipy.special.logsumexp`.

    Differentiable in ``a`` and ``b``; the gradient in ``a`` is the softmax, finite for any
    finite input. With ``return_sign`` gives ``(log|s|, sign(s))`` (the sign has zero
    derivative).

    >>> import numpy as np
    >>> float(logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    if b is None:
        axes = normalize_axes(axis, ndim_of(a), "logsumexp")
        out = _lse(a, axis=axes, keepdims=bool(keepdims))
        if return_sign:
            one = np.ones((), dtype=dtype_of(a))
            return out, _lse_sign(a, one, axis=axes, keepdims=bool(keepdims))
        return out
    shape = np.broadcast_shapes(shape_of(a), shape_of(b))
    axes = normalize_axes(axis, len(shape), "logsumexp")
    out = _lse_b(a, b, axis=axes, keepdims=bool(keepdims), signed=bool(return_sign))
    if return_sign:
        return out, _lse_sign(a, b, axis=axes, keepdims=bool(keepdims))
    return out


def softmax(x, axis=None):
    """``exp(x) / sum(exp(x), axis)``, stably (as :func:`scipy.special.softmax`).

    Its derivatives stay accurate where one entry dominates (``p (t - <p, t>)`` with the
    tangent shifted by its value at the maximum).
    """
    axes = normalize_axes(axis, ndim_of(x), "softmax")
    return softmax_weights(x, _constant(_lse(x, axis=axes, keepdims=True)), axis=axes)


def _log_softmax_impl(x, axis):
    if not axis:  # no reduction (a 0-d input): x - x
        return np.zeros_like(x)
    return sc.log_softmax(x, axis=axis)


_log_softmax = Primitive("scipy.special.log_softmax", _log_softmax_impl)
_log_softmax.defvjp(lambda g, ans, x, axis: log_softmax_cotangent(dnp.exp(ans), x, g, axis))
_log_softmax.defjvp(lambda t, ans, x, axis: log_softmax_tangent(dnp.exp(ans), x, t, axis))
def_axes_batch(_log_softmax)


def log_softmax(x, axis=None):
    """``x - logsumexp(x, axis)`` (as :func:`scipy.special.log_softmax`).

    Its derivative ``t - <softmax(x), t>`` stays accurate at a dominant entry, where it is
    small (``1 - p_max`` computed from ``p_max`` would have lost its digits).
    """
    axes = normalize_axes(axis, ndim_of(x), "log_softmax")
    return _log_softmax(x, axis=axes)


def sinc(x):
    """The normalized sinc ``sin(pi x) / (pi x)`` (1 at 0), as :func:`numpy.sinc`."""
    return _sinc(x)


def _sinc_slope(ans, x):
    # (cos(pi x) - sinc(x)) / x, with its Taylor series near 0 (-pi^2 x / 3 + pi^4 x^3 / 30).
    small = dnp.less(dnp.abs(x), 1e-3)
    safe = dnp.where(small, 1.0, x)
    p2 = math.pi**2
    series = x * (-p2 / 3.0 + (p2 * p2 / 30.0) * x * x)
    return dnp.where(small, series, (dnp.cos(math.pi * safe) - _sinc(safe)) / safe)


_sinc = _unary("sinc", np.sinc, _sinc_slope)

__all__ = [
    "beta",
    "betainc",
    "betaln",
    "cosdg",
    "cosm1",
    "dawsn",
    "digamma",
    "entr",
    "erf",
    "erfc",
    "erfcinv",
    "erfcx",
    "erfinv",
    "exp1",
    "exp10",
    "exp2",
    "expi",
    "expit",
    "exprel",
    "gamma",
    "gammainc",
    "gammaincc",
    "gammaln",
    "gammasgn",
    "i0",
    "i0e",
    "i1",
    "i1e",
    "iv",
    "ive",
    "j0",
    "j1",
    "jn",
    "jv",
    "k0",
    "k0e",
    "k1",
    "k1e",
    "kl_div",
    "kv",
    "kve",
    "log_expit",
    "log_ndtr",
    "log_softmax",
    "loggamma",
    "logit",
    "logsumexp",
    "multigammaln",
    "ndtr",
    "ndtri",
    "polygamma",
    "powm1",
    "psi",
    "rel_entr",
    "rgamma",
    "sinc",
    "sindg",
    "softmax",
    "softplus",
    "wrightomega",
    "xlog1py",
    "xlogy",
    "y0",
    "y1",
    "yn",
    "yv",
    "zeta",
]
