"""diffsys.scipy.special: values equal SciPy's, derivatives against finite differences (both
modes, order 2), against closed forms, broadcasting, vmap, float32, and the extremes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sc

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.scipy import special as sp

SHAPES = [(), (3,), (2, 3)]


def uniform(lo, hi):
    return lambda rng, shape: np.asarray(rng.uniform(lo, hi, shape), dtype=np.float64)


def away_from_poles(rng, shape):
    """Values on both sides of zero, away from gamma's poles at 0, -1, -2, ..."""
    centers = rng.choice([-2.5, -1.5, -0.5, 0.9, 2.5], size=shape)
    return np.asarray(centers + rng.uniform(-0.3, 0.3, shape), dtype=np.float64)


# name -> (diffsys function, scipy function, sampler)
UNARY = {
    "gammasgn": (sp.gammasgn, sc.gammasgn, away_from_poles),
    "gamma": (sp.gamma, sc.gamma, uniform(0.3, 4.0)),
    "gammaln": (sp.gammaln, sc.gammaln, uniform(0.3, 4.0)),
    "digamma": (sp.digamma, sc.digamma, uniform(0.3, 4.0)),
    "psi": (sp.psi, sc.psi, uniform(0.3, 4.0)),
    "rgamma": (sp.rgamma, sc.rgamma, uniform(0.3, 4.0)),
    "erf": (sp.erf, sc.erf, uniform(-2.0, 2.0)),
    "erfc": (sp.erfc, sc.erfc, uniform(-2.0, 2.0)),
    "erfinv": (sp.erfinv, sc.erfinv, uniform(-0.9, 0.9)),
    "erfcinv": (sp.erfcinv, sc.erfcinv, uniform(0.1, 1.9)),
    "expit": (sp.expit, sc.expit, uniform(-4.0, 4.0)),
    "logit": (sp.logit, sc.logit, uniform(0.05, 0.95)),
    "log_expit": (sp.log_expit, sc.log_expit, uniform(-4.0, 4.0)),
    "ndtr": (sp.ndtr, sc.ndtr, uniform(-3.0, 3.0)),
    "log_ndtr": (sp.log_ndtr, sc.log_ndtr, uniform(-5.0, 5.0)),
    "ndtri": (sp.ndtri, sc.ndtri, uniform(0.05, 0.95)),
    "entr": (sp.entr, sc.entr, uniform(0.2, 3.0)),
    "i0": (sp.i0, sc.i0, uniform(-3.0, 3.0)),
    "i1": (sp.i1, sc.i1, uniform(-3.0, 3.0)),
    "i0e": (sp.i0e, sc.i0e, uniform(0.2, 3.0)),
    "i1e": (sp.i1e, sc.i1e, uniform(-3.0, -0.2)),
    "j0": (sp.j0, sc.j0, uniform(-5.0, 5.0)),
    "j1": (sp.j1, sc.j1, uniform(-5.0, 5.0)),
    "y0": (sp.y0, sc.y0, uniform(0.5, 5.0)),
    "y1": (sp.y1, sc.y1, uniform(0.5, 5.0)),
    "k0": (sp.k0, sc.k0, uniform(0.3, 4.0)),
    "k1": (sp.k1, sc.k1, uniform(0.3, 4.0)),
    "k0e": (sp.k0e, sc.k0e, uniform(0.3, 4.0)),
    "k1e": (sp.k1e, sc.k1e, uniform(0.3, 4.0)),
    "erfcx": (sp.erfcx, sc.erfcx, uniform(-2.0, 3.0)),
    "dawsn": (sp.dawsn, sc.dawsn, uniform(-3.0, 3.0)),
    "expi": (sp.expi, sc.expi, uniform(0.3, 3.0)),
    "exp1": (sp.exp1, sc.exp1, uniform(0.3, 3.0)),
    "loggamma": (sp.loggamma, sc.loggamma, uniform(0.3, 4.0)),
    "cosm1": (sp.cosm1, sc.cosm1, uniform(-3.0, 3.0)),
    "exp10": (sp.exp10, sc.exp10, uniform(-1.0, 1.0)),
    "exp2": (sp.exp2, sc.exp2, uniform(-2.0, 2.0)),
    "softplus": (sp.softplus, sc.softplus, uniform(-4.0, 4.0)),
    "wrightomega": (sp.wrightomega, sc.wrightomega, uniform(-2.0, 3.0)),
    "sindg": (sp.sindg, sc.sindg, uniform(-200.0, 200.0)),
    "cosdg": (sp.cosdg, sc.cosdg, uniform(-200.0, 200.0)),
    "exprel": (sp.exprel, sc.exprel, uniform(-2.0, 2.0)),
    "sinc": (sp.sinc, np.sinc, uniform(-2.0, 2.0)),
    "multigammaln": (
        lambda a: sp.multigammaln(a, 3),
        lambda a: sc.multigammaln(a, 3),
        uniform(1.2, 4.0),
    ),
    "softmax": (sp.softmax, sc.softmax, uniform(-3.0, 3.0)),
    "log_softmax": (sp.log_softmax, sc.log_softmax, uniform(-3.0, 3.0)),
    "logsumexp": (sp.logsumexp, sc.logsumexp, uniform(-3.0, 3.0)),
}


def pos(lo, hi):
    return uniform(lo, hi)


def integer(values):
    return lambda rng, shape: np.asarray(rng.choice(values, size=shape), dtype=np.float64)


# name -> (function, scipy function, sampler x, sampler y, differentiable argnums)
BINARY = {
    "beta": (sp.beta, sc.beta, pos(0.5, 3.0), pos(0.5, 3.0), (0, 1)),
    "betaln": (sp.betaln, sc.betaln, pos(0.5, 3.0), pos(0.5, 3.0), (0, 1)),
    "xlogy": (sp.xlogy, sc.xlogy, uniform(-2.0, 2.0), pos(0.3, 3.0), (0, 1)),
    "xlog1py": (sp.xlog1py, sc.xlog1py, uniform(-2.0, 2.0), pos(-0.5, 3.0), (0, 1)),
    "rel_entr": (sp.rel_entr, sc.rel_entr, pos(0.2, 3.0), pos(0.2, 3.0), (0, 1)),
    "kl_div": (sp.kl_div, sc.kl_div, pos(0.2, 3.0), pos(0.2, 3.0), (0, 1)),
    "polygamma": (sp.polygamma, sc.polygamma, integer([0, 1, 2]), pos(0.5, 3.0), (1,)),
    "gammainc": (sp.gammainc, sc.gammainc, pos(0.5, 3.0), pos(0.2, 4.0), (1,)),
    "gammaincc": (sp.gammaincc, sc.gammaincc, pos(0.5, 3.0), pos(0.2, 4.0), (1,)),
    "iv": (sp.iv, sc.iv, pos(-1.5, 2.5), pos(0.3, 3.0), (1,)),
    "ive": (sp.ive, sc.ive, pos(-1.5, 2.5), pos(0.3, 3.0), (1,)),
    "jv": (sp.jv, sc.jv, pos(-1.5, 2.5), pos(0.3, 5.0), (1,)),
    "jn": (sp.jn, sc.jn, integer([0, 1, 2, 3]), pos(-5.0, 5.0), (1,)),
    "yv": (sp.yv, sc.yv, pos(-1.5, 2.5), pos(0.5, 5.0), (1,)),
    "yn": (sp.yn, sc.yn, integer([0, 1, 2, 3]), pos(0.5, 5.0), (1,)),
    "kv": (sp.kv, sc.kv, pos(-1.5, 2.5), pos(0.3, 3.0), (1,)),
    "kve": (sp.kve, sc.kve, pos(-1.5, 2.5), pos(0.3, 3.0), (1,)),
    "zeta": (sp.zeta, sc.zeta, pos(1.5, 4.0), pos(0.5, 3.0), (1,)),
    "powm1": (sp.powm1, sc.powm1, pos(0.5, 2.0), pos(-2.0, 2.0), (0, 1)),
}

SHAPE_PAIRS = [((), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3))]


def _binary_args(rng, name, sx, sy):
    _, _, sx_fn, sy_fn, argnums = BINARY[name]
    return sx_fn(rng, sx), sy_fn(rng, sy), argnums


def _diff_fn(f, x, y, argnums):
    """f as a function of its differentiable arguments only."""
    if argnums == (0, 1):
        return f, (x, y)
    return (lambda b: f(x, b)), (y,)


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_unary_values_equal_scipy(rng, name, shape):
    f, ref, sample = UNARY[name]
    x = sample(rng, shape)
    out = f(x)
    assert not isinstance(out, ds.Tracer)
    np.testing.assert_allclose(out, ref(x), rtol=1e-14, atol=1e-300)
    assert np.shape(out) == np.shape(ref(x))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_values_equal_scipy(rng, name):
    f, ref, *_ = BINARY[name]
    x, y, _ = _binary_args(rng, name, (2, 1), (1, 3))
    np.testing.assert_array_equal(f(x, y), ref(x, y))


# --- derivatives against finite differences --------------------------------------------------


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_unary_grads(rng, name, shape):
    f, _, sample = UNARY[name]
    x = sample(rng, shape)
    if name in ("sindg", "cosdg"):
        ds.check_grads(f, (x,), order=2, eps=1e-4)
    else:
        ds.check_grads(f, (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("sx,sy", SHAPE_PAIRS, ids=str)
def test_binary_grads(rng, name, sx, sy):
    f, _, *_ = BINARY[name]
    x, y, argnums = _binary_args(rng, name, sx, sy)
    fun, args = _diff_fn(f, x, y, argnums)
    ds.check_grads(fun, args, order=2, modes=("fwd", "rev"))


def test_betainc_in_x(rng):
    a, b = rng.uniform(0.5, 3.0, (2, 3)), rng.uniform(0.5, 3.0, (3,))
    x = rng.uniform(0.1, 0.9, (2, 3))
    np.testing.assert_array_equal(sp.betainc(a, b, x), sc.betainc(a, b, x))
    ds.check_grads(lambda t: sp.betainc(a, b, t), (x,), order=2)
    with pytest.raises(NotImplementedError, match="betainc"):
        ds.grad(lambda s: dnp.sum(sp.betainc(s, b, x)))(a)


def test_shape_parameters_are_not_differentiable():
    with pytest.raises(NotImplementedError, match="gammainc"):
        ds.grad(lambda a: sp.gammainc(a, 1.0))(2.0)
    with pytest.raises(NotImplementedError, match="iv"):
        ds.grad(lambda v: sp.iv(v, 1.0))(2.0)


def test_higher_order_derivatives_in_closed_form():
    x = np.array([0.7, 1.5, 3.2])
    d = ds.elementwise_grad
    np.testing.assert_allclose(d(sp.gammaln)(x), sc.digamma(x), rtol=1e-14)
    np.testing.assert_allclose(d(d(sp.gammaln))(x), sc.polygamma(1, x), rtol=1e-14)
    np.testing.assert_allclose(d(d(d(sp.gammaln)))(x), sc.polygamma(2, x), rtol=1e-14)
    np.testing.assert_allclose(d(sp.i0)(x), sc.i1(x), rtol=1e-14)
    np.testing.assert_allclose(d(sp.j0)(x), -sc.j1(x), rtol=1e-14)
    np.testing.assert_allclose(d(sp.erf)(x), 2 / np.sqrt(np.pi) * np.exp(-(x**2)), rtol=1e-14)
    np.testing.assert_allclose(d(lambda z: sp.iv(2.0, z))(x), sc.ivp(2.0, x), rtol=1e-12)
    np.testing.assert_allclose(d(lambda z: sp.jv(1.5, z))(x), sc.jvp(1.5, x), rtol=1e-12)
    np.testing.assert_allclose(d(lambda z: sp.yn(2, z))(x), sc.yvp(2, x), rtol=1e-12)
    np.testing.assert_allclose(d(lambda z: sp.kv(0.7, z))(x), sc.kvp(0.7, x), rtol=1e-12)
    np.testing.assert_allclose(d(d(sp.k0))(x), sc.kvp(0, x, n=2), rtol=1e-12)
    np.testing.assert_allclose(d(d(lambda z: sp.iv(1.5, z)))(x), sc.ivp(1.5, x, n=2), rtol=1e-12)
    np.testing.assert_allclose(d(lambda q: sp.zeta(3.0, q))(x), -3.0 * sc.zeta(4.0, x), rtol=1e-14)
    np.testing.assert_allclose(d(sp.i1)(np.array([0.0])), [0.5], rtol=1e-15)
    # the Taylor branches at 0
    np.testing.assert_allclose(d(sp.sinc)(np.array([0.0])), [0.0], atol=1e-300)
    np.testing.assert_allclose(d(d(sp.sinc))(np.array([0.0])), [-(np.pi**2) / 3], rtol=1e-14)
    np.testing.assert_allclose(d(sp.exprel)(np.array([0.0])), [0.5], rtol=1e-15)


# --- extremes: finite and correct ----------------------------------------------------------------


def test_expit_and_log_ndtr_at_extremes():
    x = np.array([-1e3, -50.0, 50.0, 1e3])
    g = ds.elementwise_grad(sp.expit)(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, sc.expit(x) * sc.expit(-x), rtol=1e-12, atol=1e-300)
    h = ds.elementwise_grad(ds.elementwise_grad(sp.expit))(x)
    assert np.all(np.isfinite(h))
    g = ds.elementwise_grad(sp.log_ndtr)(x)
    assert np.all(np.isfinite(g))
    # Mills ratio: d/dx log Phi(x) -> -x - 1/x + 2/x^3 for x -> -inf, -> 0 for x -> +inf
    # (exp of a difference of two numbers near -5e5: about 1e-11 relative error is inherent)
    np.testing.assert_allclose(g[0], 1e3 + 1e-3 - 2e-9, rtol=1e-10)
    np.testing.assert_allclose(g[1], 50.0 + 1 / 50 - 2 / 50**3, rtol=1e-7)
    assert g[3] == 0.0 and 0.0 <= g[2] < 1e-300
    h = ds.elementwise_grad(ds.elementwise_grad(sp.log_ndtr))(x)
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h[0], -1.0, rtol=1e-5)
    g = ds.elementwise_grad(sp.log_expit)(x)
    np.testing.assert_allclose(g, [1.0, 1.0, sc.expit(-50.0), 0.0], rtol=1e-14, atol=1e-300)


def test_logsumexp_softmax_at_extremes():
    x = np.array([1e3, 1e3 - 1.0, -1e3])
    g = ds.grad(sp.logsumexp)(x)
    np.testing.assert_allclose(g, sc.softmax(x), rtol=1e-13)
    np.testing.assert_allclose(ds.grad(lambda a: sp.softmax(a)[0])(x).sum(), 0.0, atol=1e-13)
    hess = ds.hessian(sp.logsumexp)(x)
    p = sc.softmax(x)
    np.testing.assert_allclose(hess, np.diag(p) - np.outer(p, p), rtol=1e-12, atol=1e-300)
    ls = ds.jacfwd(sp.log_softmax)(x)
    assert np.all(np.isfinite(ls))
    np.testing.assert_allclose(ls, np.eye(3) - p, rtol=1e-12)


# --- logsumexp's options -------------------------------------------------------------------------

LSE_CASES = [
    ((3, 4), None, False),
    ((3, 4), 0, False),
    ((3, 4), 1, True),
    ((2, 3, 4), (0, 2), False),
    ((2, 3, 4), -1, True),
    ((), None, False),
]


@pytest.mark.parametrize("shape,axis,keepdims", LSE_CASES, ids=str)
def test_logsumexp_axis_keepdims(rng, shape, axis, keepdims):
    a = rng.standard_normal(shape)
    out = sp.logsumexp(a, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out, sc.logsumexp(a, axis=axis, keepdims=keepdims), rtol=1e-15)
    ds.check_grads(lambda x: sp.logsumexp(x, axis=axis, keepdims=keepdims), (a,), order=2)
    for fn, ref in ((sp.softmax, sc.softmax), (sp.log_softmax, sc.log_softmax)):
        np.testing.assert_allclose(fn(a, axis=axis), ref(a, axis=axis), rtol=1e-14, atol=1e-15)
        ds.check_grads(lambda x, fn=fn: fn(x, axis=axis), (a,), order=2)


@pytest.mark.parametrize("shape,axis,keepdims", LSE_CASES[:5], ids=str)
def test_logsumexp_with_b_and_sign(rng, shape, axis, keepdims):
    a = rng.standard_normal(shape)
    b = rng.uniform(0.2, 2.0, shape[-1:]) * np.array([1.0, -1.0] * 2)[: shape[-1]]
    out, sign = sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True)
    ref, ref_sign = sc.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    np.testing.assert_array_equal(sign, ref_sign)
    if np.min(np.abs(np.exp(out))) < 1e-3:  # a near-cancelling sum: finite differences are poor
        pytest.skip("near-zero weighted sum")
    signed = lambda x, w: sp.logsumexp(x, axis, w, keepdims, return_sign=True)[0]  # noqa: E731
    ds.check_grads(signed, (a, b), order=2)
    unsigned = lambda x, w: sp.logsumexp(x, axis=axis, b=w, keepdims=keepdims)  # noqa: E731
    ds.check_grads(unsigned, (a, np.abs(b)), order=2)
    # without return_sign a negative sum gives NaN, as in SciPy
    neg = sp.logsumexp(a, axis=axis, b=-np.abs(b), keepdims=keepdims)
    assert np.all(np.isnan(neg))

    # the signed value is differentiable as a whole: s * exp(out) == sum(b * exp(a))
    def signed_sum(x):
        value, s = sp.logsumexp(x, axis=axis, b=b, return_sign=True)
        return dnp.sum(s * dnp.exp(value))

    g = ds.grad(signed_sum)(a)
    np.testing.assert_allclose(g, np.broadcast_to(b, shape) * np.exp(a), rtol=1e-12)


def test_logsumexp_return_sign_without_b():
    out, sign = sp.logsumexp(np.array([-np.inf, -np.inf]), return_sign=True)
    assert out == -np.inf and sign == 0.0
    out, sign = sp.logsumexp(np.array([1.0, 2.0]), return_sign=True)
    assert sign == 1.0 and out == sc.logsumexp([1.0, 2.0])


# --- batching and dtypes -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gammaln", "digamma", "log_ndtr", "i1e", "softmax", "logsumexp"])
def test_vmap_equals_stacking(rng, name):
    f, _, sample = UNARY[name]
    x = sample(rng, (4, 3))
    np.testing.assert_allclose(ds.vmap(f)(x), np.stack([f(r) for r in x]), rtol=1e-15)
    jac = ds.jacfwd(f)(x[0])
    np.testing.assert_allclose(jac, ds.jacrev(f)(x[0]), rtol=1e-12, atol=1e-15)


def test_vmap_binary_and_weighted_logsumexp(rng):
    n = np.array([0.0, 1.0, 2.0])
    x = rng.uniform(0.5, 3.0, (4, 3))
    np.testing.assert_allclose(ds.vmap(lambda r: sp.polygamma(n, r))(x), sc.polygamma(n, x))
    np.testing.assert_allclose(ds.vmap(lambda r: sp.jn(2, r))(x), sc.jn(2, x))
    b = np.array([1.0, -0.5, 2.0])
    out = ds.vmap(lambda r: sp.logsumexp(r, b=b))(x)
    np.testing.assert_allclose(out, sc.logsumexp(x, b=b, axis=1), rtol=1e-14)
    out = ds.vmap(lambda w: sp.logsumexp(x[0], b=w, return_sign=True)[1])(x - 1.5)
    np.testing.assert_array_equal(out, sc.logsumexp(x[0], b=x - 1.5, axis=1, return_sign=True)[1])


@pytest.mark.parametrize("name", ["gammaln", "erf", "expit", "log_ndtr", "i0e", "softmax"])
def test_float32_is_preserved(rng, name):
    f, _, sample = UNARY[name]
    x = sample(rng, (3,)).astype(np.float32)
    assert f(x).dtype == np.float32
    g = ds.grad(lambda a: dnp.sum(f(a)))(x)
    assert g.dtype == np.float32
    _, t = ds.jvp(f, (x,), (np.ones(3, np.float32),))
    assert t.dtype == np.float32


def test_gammasgn_with_gammaln_is_gamma(rng):
    """gamma = gammasgn * exp(gammaln) on both sides of zero, differentiable through
    gammaln (gammasgn is piecewise constant), under vmap too."""
    x = away_from_poles(rng, (3, 4))
    f = lambda x: sp.gammasgn(x) * dnp.exp(sp.gammaln(x))  # noqa: E731
    np.testing.assert_allclose(ds.vjp(f, x)[0], sc.gamma(x), rtol=1e-13)
    ds.check_grads(f, (x,), order=2)
    np.testing.assert_array_equal(ds.grad(lambda x: dnp.sum(sp.gammasgn(x)))(x), 0.0)
    np.testing.assert_array_equal(ds.vmap(sp.gammasgn)(x), sc.gammasgn(x))
