"""diffsys.scipy.stats: values equal scipy.stats', derivatives in values and parameters
against finite differences (both modes, order 2), outside the support, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as ss

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.scipy import stats as st

METHODS = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def _case(rng, name):
    """(x, shape parameters, loc, scale, argnums of shape parameters that cdf/sf cannot
    differentiate) for each continuous distribution, inside the support."""
    u = rng.uniform(0.15, 0.85, (2, 3))
    if name == "norm":
        return 4 * u - 2, (), 0.3, 1.4, ()
    if name == "t":
        return 4 * u - 2, (np.array([2.5, 4.0, 7.0]),), 0.2, 1.3, (1,)
    if name == "beta":
        return 0.8 * u + 0.1, (np.array(2.0), np.array([1.5, 3.0, 0.8])), -0.05, 1.1, (1, 2)
    if name == "gamma":
        return 3 * u, (np.array([0.8, 2.5, 4.0]),), -0.1, 1.2, (1,)
    if name == "chi2":
        return 3 * u, (np.array([1.5, 3.0, 5.0]),), -0.1, 0.9, (1,)
    if name in ("logistic", "laplace", "cauchy"):
        return 4 * u - 2, (), 0.1, 0.7, ()
    if name == "expon":
        return 3 * u, (), -0.2, 0.8, ()
    if name == "uniform":
        return u, (), -0.1, 1.2, ()
    raise KeyError(name)


CONTINUOUS = ["norm", "t", "beta", "gamma", "chi2", "logistic", "laplace", "cauchy", "expon"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", [*CONTINUOUS, "uniform"])
def test_values_equal_scipy(rng, name, method):
    x, shapes, loc, scale, _ = _case(rng, name)
    # also points outside the support of the bounded distributions
    x = np.concatenate([x, np.array([[-3.0, 0.5, 9.0]])])
    with warnings.catch_warnings():  # -inf outside the support is a value, not a warning
        warnings.simplefilter("error")
        ours = getattr(getattr(st, name), method)(x, *shapes, loc, scale)
    with np.errstate(all="ignore"):
        ref = getattr(getattr(ss, name), method)(x, *shapes, loc=loc, scale=scale)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-300)
    assert np.shape(ours) == np.shape(ref)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", CONTINUOUS)
def test_grads_in_values_and_parameters(rng, name, method):
    x, shapes, loc, scale, not_in_cdf = _case(rng, name)
    args = (x, *shapes, np.asarray(loc), np.asarray(scale))
    if method in ("logpdf", "pdf"):
        diff = tuple(range(len(args)))
    else:  # shape parameters of the incomplete-beta/gamma based functions are held fixed
        diff = tuple(i for i in range(len(args)) if i not in not_in_cdf)

    def f(*ys):
        full = list(args)
        for i, y in zip(diff, ys, strict=True):
            full[i] = y
        return getattr(getattr(st, name), method)(*full)

    ds.check_grads(f, tuple(args[i] for i in diff), order=2, modes=("fwd", "rev"))


def test_uniform_grads(rng):
    x = rng.uniform(0.1, 0.9, (3,))
    for method in ("cdf", "sf", "logcdf", "logsf", "logpdf"):
        ds.check_grads(getattr(st.uniform, method), (x, np.array(-0.1), np.array(1.2)), order=2)
    g = ds.grad(lambda s: dnp.sum(st.uniform.logpdf(x, 0.0, s)))(2.0)
    assert g == -3 / 2.0


def test_gradients_outside_the_support_are_zero_not_nan():
    x = np.array([-1.0, 0.5, 2.0])
    for f in (
        lambda s: st.gamma.logpdf(x, 2.0, 0.0, s),
        lambda s: st.beta.logpdf(x, 2.0, 3.0, 0.0, s),
        lambda s: st.expon.logpdf(x, 0.0, s),
        lambda s: st.chi2.pdf(x, 3.0, 0.0, s),
        lambda s: st.laplace.cdf(1e3 * x, 0.0, s),
        lambda s: st.laplace.logsf(1e3 * x, 0.0, s),
    ):
        jac = ds.jacfwd(f)(1.0)
        assert np.all(np.isfinite(jac)), jac
        np.testing.assert_array_equal(ds.jacrev(f)(1.0), jac)
    g = ds.grad(lambda s: dnp.sum(dnp.where(x > 0, st.gamma.logpdf(x, 2.0, 0.0, s), 0.0)))(1.0)
    assert np.isfinite(g)


def test_norm_tails_are_stable():
    x = np.array([-1e3, -40.0, 40.0, 1e3])
    g = ds.elementwise_grad(st.norm.logcdf)(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g[0], 1e3, rtol=1e-5)
    g = ds.elementwise_grad(st.norm.logsf)(x)
    np.testing.assert_allclose(g[3], -1e3, rtol=1e-5)
    ds.check_grads(st.norm.ppf, (np.array([0.1, 0.5, 0.9]), np.array(0.5), np.array(2.0)))


def test_shape_parameters_of_cdfs_raise():
    with pytest.raises(NotImplementedError, match="gammainc"):
        ds.grad(lambda a: st.gamma.cdf(1.0, a))(2.0)
    with pytest.raises(NotImplementedError, match="stdtr"):
        ds.grad(lambda df: st.t.cdf(1.0, df))(3.0)
    with pytest.raises(NotImplementedError, match="betainc"):
        ds.grad(lambda a: st.beta.cdf(0.5, a, 2.0))(3.0)


def test_poisson(rng):
    k = np.array([0.0, 1.0, 2.0, 5.0, -1.0, 1.5, 7.0])
    mu = np.array(2.3)
    for method in ("logpmf", "pmf", "cdf", "sf", "logcdf", "logsf"):
        with np.errstate(all="ignore"):
            ref = getattr(ss.poisson, method)(k, mu)
        np.testing.assert_allclose(getattr(st.poisson, method)(k, mu), ref, rtol=1e-12)
        valid = k[[0, 1, 2, 3, 6]]
        ds.check_grads(lambda m, method=method: getattr(st.poisson, method)(valid, m), (mu,))
    # d/dmu log p(k; mu) = k / mu - 1, and exactly 0 where k is not a count
    g = ds.elementwise_grad(lambda m: st.poisson.logpmf(k, m))(np.full(7, 2.3))
    np.testing.assert_allclose(g, np.where((k >= 0) & (k % 1 == 0), k / 2.3 - 1, 0.0))


def test_dirichlet(rng):
    alpha = np.array([1.5, 2.0, 3.0])
    x = rng.dirichlet(alpha, 4).T  # (K, N)
    np.testing.assert_allclose(st.dirichlet.logpdf(x, alpha), ss.dirichlet.logpdf(x, alpha))
    np.testing.assert_allclose(st.dirichlet.pdf(x[:, 0], alpha), ss.dirichlet.pdf(x[:, 0], alpha))
    ds.check_grads(st.dirichlet.logpdf, (x, alpha), order=2)
    # d/dalpha_i = log x_i + digamma(sum alpha) - digamma(alpha_i), against closed form
    from scipy.special import digamma

    g = ds.grad(lambda a: st.dirichlet.logpdf(x[:, 0], a))(alpha)
    np.testing.assert_allclose(
        g, np.log(x[:, 0]) + digamma(alpha.sum()) - digamma(alpha), rtol=1e-13
    )
    with pytest.raises(ValueError, match="components"):
        st.dirichlet.logpdf(x[:2], alpha)


@pytest.mark.parametrize("xshape", [(3,), (4, 3), (2, 2, 3)], ids=str)
def test_multivariate_normal(rng, xshape):
    a = rng.standard_normal((3, 3))
    cov = a @ a.T + np.eye(3)
    mean = rng.standard_normal(3)
    x = rng.standard_normal(xshape)
    ref = ss.multivariate_normal.logpdf(x, mean, cov)
    np.testing.assert_allclose(st.multivariate_normal.logpdf(x, mean, cov), ref, rtol=1e-12)
    np.testing.assert_allclose(
        st.multivariate_normal.pdf(x, mean, cov), ss.multivariate_normal.pdf(x, mean, cov)
    )
    ds.check_grads(st.multivariate_normal.logpdf, (x, mean, cov), order=2)
    # closed forms: d/dmean = cov^-1 (x - mean); d/dcov = (S^-1 d d^T S^-1 - S^-1) / 2
    x0 = x.reshape(-1, 3)[0]
    gm, gc = ds.grad(st.multivariate_normal.logpdf, argnums=(1, 2))(x0, mean, cov)
    inv = np.linalg.inv(cov)
    d = x0 - mean
    np.testing.assert_allclose(gm, inv @ d, rtol=1e-12)
    np.testing.assert_allclose(gc, 0.5 * (inv @ np.outer(d, d) @ inv - inv), rtol=1e-10)


def test_multivariate_normal_diagonal_cov_and_vmap(rng):
    x = rng.standard_normal((5, 2))
    np.testing.assert_allclose(
        st.multivariate_normal.logpdf(x, np.zeros(2), np.array([1.5, 0.5])),
        ss.multivariate_normal.logpdf(x, np.zeros(2), np.diag([1.5, 0.5])),
    )
    covs = np.stack([np.eye(2) * s for s in (0.5, 1.0, 2.0)])
    out = ds.vmap(lambda c: st.multivariate_normal.logpdf(x[0], np.zeros(2), c))(covs)
    np.testing.assert_allclose(
        out, [ss.multivariate_normal.logpdf(x[0], np.zeros(2), c) for c in covs], rtol=1e-13
    )
    with pytest.raises(np.linalg.LinAlgError):
        st.multivariate_normal.logpdf(x, np.zeros(2), -np.eye(2))


def test_vmap_and_float32(rng):
    x = rng.uniform(0.2, 0.8, (4, 3)).astype(np.float32)
    out = ds.vmap(lambda r: st.gamma.logpdf(r, 2.0, 0.0, 1.5))(x)
    np.testing.assert_allclose(out, ss.gamma.logpdf(x, 2.0, scale=1.5), rtol=1e-5)
    g = ds.grad(lambda r: dnp.sum(st.norm.logpdf(r, 0.0, 1.0)))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, -x, rtol=1e-6)


@pytest.mark.parametrize("name", ["norm", "logistic", "laplace", "cauchy", "expon", "uniform"])
def test_ppf(rng, name):
    q = np.array([0.05, 0.3, 0.45, 0.62, 0.97])  # not 0.5: the kink of laplace.ppf
    dist = getattr(st, name)
    np.testing.assert_allclose(
        dist.ppf(q, 0.2, 1.3), getattr(ss, name).ppf(q, 0.2, 1.3), rtol=1e-13
    )
    ds.check_grads(dist.ppf, (q, np.array(0.2), np.array(1.3)), order=2)
    # the inverse of the cdf, and its derivative the reciprocal density
    np.testing.assert_allclose(dist.cdf(dist.ppf(q, 0.2, 1.3), 0.2, 1.3), q, rtol=1e-12)
    slope = ds.elementwise_grad(lambda p: dist.ppf(p, 0.2, 1.3))(q)
    np.testing.assert_allclose(slope, 1.0 / dist.pdf(dist.ppf(q, 0.2, 1.3), 0.2, 1.3))


DISCRETE = {
    "bernoulli": ((0.3,), ["logpmf", "pmf", "cdf", "sf"]),
    "binom": ((10.0, 0.3), ["logpmf", "pmf", "cdf", "sf"]),
    "geom": ((0.3,), ["logpmf", "pmf", "cdf", "sf", "logsf"]),
    "nbinom": ((3.5, 0.4), ["logpmf", "pmf", "cdf", "sf"]),
}


@pytest.mark.parametrize("name", sorted(DISCRETE))
def test_discrete(name):
    params, methods = DISCRETE[name]
    k = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 1.5, 10.0, 11.0])
    inside = np.array([0.0, 1.0, 2.0, 3.0]) if name != "bernoulli" else np.array([0.0, 1.0])
    if name == "geom":
        inside = inside + 1.0
    dist = getattr(st, name)
    for method in methods:
        with np.errstate(all="ignore"):
            ref = getattr(getattr(ss, name), method)(k, *params)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_allclose(getattr(dist, method)(k, *params), ref, rtol=1e-12)
        # differentiable in p (the last parameter); in n too for the negative binomial pmf
        *rest, p = params

        def in_p(pp, method=method, rest=tuple(rest)):
            return getattr(dist, method)(inside, *rest, pp)

        ds.check_grads(in_p, (np.array(p),), order=2)
        if name == "nbinom" and method in ("logpmf", "pmf"):
            ds.check_grads(lambda nn: dist.logpmf(inside, nn, p), (np.array(3.5),), order=2)
    g = ds.grad(lambda pp: dnp.sum(dist.logpmf(k, *params[:-1], pp)))(params[-1])
    assert np.isfinite(g)


def test_multivariate_normal_hessians_use_batched_solves(rng):
    d = 4
    a = rng.standard_normal((d, d))
    cov = a @ a.T + np.eye(d)
    mean, x = rng.standard_normal(d), rng.standard_normal((3, d))
    loss = lambda c: dnp.sum(st.multivariate_normal.logpdf(x, mean, c))  # noqa: E731
    hess = ds.hessian(loss)(cov)
    grad = ds.grad(loss)
    for i, j in [(0, 0), (1, 2), (3, 1)]:
        e = np.zeros((d, d))
        e[i, j] = 1e-6
        np.testing.assert_allclose(
            (grad(cov + e) - grad(cov - e)) / 2e-6, hess[:, :, i, j], rtol=1e-5, atol=1e-7
        )
    hm = ds.hessian(lambda m: dnp.sum(st.multivariate_normal.logpdf(x, m, cov)))(mean)
    np.testing.assert_allclose(hm, -3 * np.linalg.inv(cov), rtol=1e-12)
    jf = ds.jacfwd(lambda c: st.multivariate_normal.logpdf(x, mean, c))(cov)
    np.testing.assert_allclose(
        jf, ds.jacrev(lambda c: st.multivariate_normal.logpdf(x, mean, c))(cov)
    )


def test_multivariate_normal_allow_singular(rng):
    """A rank-deficient cov with allow_singular=True: SciPy's degenerate density (pseudo-
    inverse and -determinant on the range, -inf off it); derivatives at fixed rank match
    finite differences along the support; a full-rank cov gives the usual density."""
    a = rng.standard_normal((3, 2))
    cov = a @ a.T  # rank 2
    mean = rng.standard_normal(3)
    z = rng.standard_normal((4, 2))
    x = mean + z @ a.T  # on the support
    x[0] += np.linalg.svd(a)[0][:, 2]  # off it
    mvn = st.multivariate_normal

    def f(x, m, c):
        return mvn.logpdf(x, m, c, allow_singular=True)

    ref = ss.multivariate_normal.logpdf(x, mean, cov, allow_singular=True)
    assert np.isneginf(ref[0])
    np.testing.assert_allclose(ds.vjp(f, x, mean, cov)[0], ref, rtol=1e-10)
    np.testing.assert_allclose(
        mvn.pdf(x, mean, cov, allow_singular=True),
        ss.multivariate_normal.pdf(x, mean, cov, allow_singular=True),
        rtol=1e-10,
    )
    with pytest.raises(np.linalg.LinAlgError):
        ds.grad(lambda m: dnp.sum(mvn.logpdf(x[1:], m, cov)))(mean)

    def on_support(a, m, z):
        at = dnp.swapaxes(a, 0, 1)
        return f(m + dnp.matmul(z, at), m, dnp.matmul(a, at))

    ds.check_grads(on_support, (a, mean, z), order=2)
    # A full-rank cov: the usual density, its derivatives, SciPy's lower-triangle reading.
    full = cov + np.eye(3) + np.triu(rng.standard_normal((3, 3)), 1)
    xs = rng.standard_normal((4, 3))
    np.testing.assert_allclose(
        ds.vjp(f, xs, mean, full)[0],
        ss.multivariate_normal.logpdf(xs, mean, full, allow_singular=True),
        rtol=1e-12,
    )
    ds.check_grads(f, (xs, mean, full), order=2)
    # vmap over covariances of different ranks
    covs = np.stack([cov, cov + np.eye(3)])
    got = ds.vmap(lambda c: f(x[1], mean, c))(covs)
    want = [ss.multivariate_normal.logpdf(x[1], mean, c, allow_singular=True) for c in covs]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    with pytest.raises(ValueError, match="semidefinite"):
        ds.grad(lambda m: dnp.sum(f(xs, m, -np.eye(3))))(mean)
