"""Distributions: values against SciPy, derivatives against finite differences, Monte-Carlo
moments within standard-error bounds, clear errors."""

import numpy as np
import pytest
import scipy.stats as st

import diffsys as ds
from diffsys import prob

A = np.array([0.7, 1.5, 3.0])
B = np.array([2.0, 0.8, 1.2])
X = np.array([0.3, 1.1, 2.5])
U = np.array([0.2, 0.55, 0.9])
L2 = np.array([[1.5, 0.0], [0.4, 0.7]])
COV = L2 @ L2.T


# (name, constructor from parameter arrays, parameter arrays, a point of the support, scipy frozen)
CASES = {
    "normal": (lambda a, b: prob.Normal(a, b), (A, B), X, st.norm(A, B)),
    "lognormal": (lambda a, b: prob.LogNormal(a, b), (A, B), X, st.lognorm(B, scale=np.exp(A))),
    "exponential": (lambda b: prob.Exponential(b), (B,), X, st.expon(scale=1 / B)),
    "uniform": (
        lambda a, b: prob.Uniform(a, a + b),
        (A - 1.5, B + 1.5),
        X,
        st.uniform(A - 1.5, B + 1.5),
    ),
    "gamma": (lambda a, b: prob.Gamma(a, b), (A, B), X, st.gamma(A, scale=1 / B)),
    "beta": (lambda a, b: prob.Beta(a, b), (A, B), U, st.beta(A, B)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_entropy_moments_match_scipy(name):
    make, params, x, ref = CASES[name]
    d = make(*params)
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-10)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-10)
    np.testing.assert_allclose(d.mean, ref.mean(), rtol=1e-10)
    np.testing.assert_allclose(d.variance, ref.var(), rtol=1e-10)


def test_multivariate_values_match_scipy():
    loc = np.array([0.5, -1.0])
    d = prob.MultivariateNormal(loc, scale_tril=L2)
    x = np.array([[0.1, 0.2], [1.0, -2.0]])
    ref = st.multivariate_normal(loc, COV)
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-10)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-10)
    np.testing.assert_allclose(d.covariance_matrix, COV, rtol=1e-12)
    d2 = prob.MultivariateNormal(loc, covariance_matrix=COV)
    np.testing.assert_allclose(d2.log_prob(x), ref.logpdf(x), rtol=1e-10)
    alpha = np.array([0.6, 2.0, 3.5])
    dd = prob.Dirichlet(alpha)
    p = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(dd.log_prob(p), st.dirichlet(alpha).logpdf(p), rtol=1e-10)
    np.testing.assert_allclose(dd.entropy(), st.dirichlet(alpha).entropy(), rtol=1e-10)
    np.testing.assert_allclose(dd.mean, st.dirichlet(alpha).mean(), rtol=1e-12)
    np.testing.assert_allclose(dd.variance, st.dirichlet(alpha).var(), rtol=1e-12)


def test_discrete_values_match_scipy():
    p = np.array([0.1, 0.5, 0.85])
    d = prob.Bernoulli(probs=p)
    for v in (0.0, 1.0):
        np.testing.assert_allclose(d.log_prob(np.full(3, v)), st.bernoulli(p).logpmf(v), rtol=1e-10)
    np.testing.assert_allclose(d.entropy(), st.bernoulli(p).entropy(), rtol=1e-10)
    np.testing.assert_allclose(d.variance, p * (1 - p), rtol=1e-12)
    pc = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    c = prob.Categorical(probs=pc)
    np.testing.assert_allclose(c.log_prob(np.array([2, 0])), np.log([0.5, 0.6]), rtol=1e-12)
    np.testing.assert_allclose(c.entropy(), [st.entropy(r) for r in pc], rtol=1e-12)
    assert c.batch_shape == (2,) and c.num_categories == 3


def test_relaxed_categorical_density_integrates_to_one_and_matches_samples():
    # k = 2: y = (s, 1 - s) with s = sigmoid((l0 - l1 + g0 - g1) / T); its density in s,
    # d/ds P(sigmoid((dl + L)/T) <= s) with L standard logistic, is the Concrete density.
    logits, t = np.log(np.array([0.3, 0.7])), 0.6
    d = prob.RelaxedCategorical(t, logits=logits)
    s = np.linspace(1e-4, 1 - 1e-4, 20001)
    y = np.stack([s, 1 - s], -1)
    dens = np.exp(d.log_prob(y))
    dl = logits[0] - logits[1]
    logit_s = np.log(s) - np.log1p(-s)
    ref = st.logistic.pdf(t * logit_s - dl) * t / (s * (1 - s))
    np.testing.assert_allclose(dens, ref, rtol=1e-9)
    # and it integrates to one (in v = logit(s), where the mass sits in a finite range)
    v = np.linspace(-80, 80, 40001)
    sv = 1 / (1 + np.exp(-v))
    dens_v = np.exp(d.log_prob(np.stack([sv, 1 - sv], -1))) * sv * (1 - sv)
    assert abs(np.trapezoid(dens_v, v) - 1.0) < 1e-6


def test_relaxed_categorical_tends_to_categorical_as_temperature_falls():
    logits = np.log(np.array([0.2, 0.5, 0.3]))
    gaps = []
    for t in (1.0, 0.3, 0.05):
        y = prob.RelaxedCategorical(t, logits=logits).rsample(3, (4000,))
        gaps.append(float(np.mean(1.0 - y.max(-1))))  # distance to the nearest vertex
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.02
    # the hard sample's argmax is distributed as the categorical: frequencies vs p
    n = 20000
    y = prob.RelaxedCategorical(0.5, logits=logits, hard=True).rsample(4, (n,))
    freq = y.mean(0)
    se = np.sqrt(np.exp(logits) * (1 - np.exp(logits)) / n)
    assert np.all(np.abs(freq - np.exp(logits)) < 4 * se)


# --- Monte-Carlo moments, bounds from the standard error ------------------------------------

MC = {
    **{k: v[:2] for k, v in CASES.items()},
    "mvn": (lambda loc: prob.MultivariateNormal(loc, scale_tril=L2), (np.array([0.5, -1.0]),)),
    "dirichlet": (lambda a: prob.Dirichlet(a), (np.array([0.6, 2.0, 3.5]),)),
}


@pytest.mark.parametrize("name", sorted(MC))
def test_samples_have_the_stated_mean_and_variance(name):
    make, params = MC[name]
    d = make(*params)
    n = 40000
    z = np.asarray(d.sample(11, (n,)))
    assert z.shape == (n,) + d.batch_shape + d.event_shape
    mean, var = np.asarray(d.mean), np.asarray(d.variance)
    # standard error of the sample mean; of the sample variance from the 4th central moment
    assert np.all(np.abs(z.mean(0) - mean) < 4.5 * np.sqrt(var / n))
    m4 = np.mean((z - mean) ** 4, axis=0)
    assert np.all(np.abs(z.var(0) - var) < 4.5 * np.sqrt((m4 - var**2) / n))


def test_bernoulli_and_categorical_sample_frequencies():
    n = 40000
    p = np.array([0.1, 0.5, 0.85])
    z = prob.Bernoulli(probs=p).sample(1, (n,))
    assert np.all(np.abs(z.mean(0) - p) < 4.5 * np.sqrt(p * (1 - p) / n))
    pc = np.array([0.2, 0.3, 0.5])
    k = prob.Categorical(probs=pc).sample(2, (n,))
    freq = np.bincount(k, minlength=3) / n
    assert np.all(np.abs(freq - pc) < 4.5 * np.sqrt(pc * (1 - pc) / n))


# --- derivatives ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_entropy_and_rsample_gradients(name):
    make, params, x, _ = CASES[name]
    n = len(params)
    ds.check_grads(lambda *p: make(*p).log_prob(x), params, order=2)
    ds.check_grads(lambda *p: make(*p).entropy(), params, order=2)
    ds.check_grads(lambda *p: make(*p).mean + make(*p).variance, params, order=2)
    # rsample with a fixed seed is a deterministic function of the parameters
    ds.check_grads(lambda *p: make(*p).rsample(5, (2,)), params, order=2, rtol=1e-4)
    assert n >= 1


def test_log_prob_gradient_in_the_value():
    for name in ("normal", "lognormal", "gamma", "beta", "exponential"):
        make, params, x, _ = CASES[name]
        ds.check_grads(lambda v: make(*params).log_prob(v), (x,), order=2)


def test_vector_distribution_gradients():
    loc, x = np.array([0.5, -1.0]), np.array([[0.1, 0.2], [1.0, -2.0]])
    mvn = lambda loc, tril: prob.MultivariateNormal(loc, scale_tril=tril)  # noqa: E731
    ds.check_grads(lambda a, t: mvn(a, t).log_prob(x), (loc, L2), order=2)
    ds.check_grads(lambda a, t: mvn(a, t).rsample(3, (2,)), (loc, L2), order=2)
    ds.check_grads(lambda t: mvn(loc, t).entropy(), (L2,), order=2)
    # a covariance built symmetric (cholesky reads one triangle; finite differences of a single
    # entry would leave the matrix unsymmetric)
    ds.check_grads(
        lambda s: prob.MultivariateNormal(loc, covariance_matrix=s @ s.T).log_prob(x), (L2,)
    )
    alpha, p = np.array([0.6, 2.0, 3.5]), np.array([0.2, 0.3, 0.5])
    ds.check_grads(lambda a: prob.Dirichlet(a).log_prob(p), (alpha,), order=2)
    ds.check_grads(lambda a: prob.Dirichlet(a).entropy(), (alpha,), order=2)
    ds.check_grads(lambda a: prob.Dirichlet(a).rsample(1, (2,)), (alpha,), order=2, rtol=1e-4)
    lg = np.array([0.3, -0.2, 0.5])
    ds.check_grads(lambda lg: prob.Bernoulli(logits=lg).log_prob(np.array([1.0, 0.0, 1.0])), (lg,))
    ds.check_grads(lambda lg: prob.Bernoulli(logits=lg).entropy(), (lg,))
    ds.check_grads(lambda lg: prob.Categorical(logits=lg).log_prob(np.array(2)), (lg,))
    ds.check_grads(lambda lg: prob.Categorical(logits=lg).entropy(), (lg,))
    y = np.array([0.2, 0.5, 0.3])
    rc = lambda t, lg: prob.RelaxedCategorical(t, logits=lg)  # noqa: E731
    ds.check_grads(lambda t, lg: rc(t, lg).log_prob(y), (np.array(0.7), lg), order=2)
    ds.check_grads(lambda t, lg: rc(t, lg).rsample(2, (2,)), (np.array(0.7), lg), order=2)


def test_implicit_gamma_gradient_matches_the_expectation_gradient():
    # d/da E[z] = d/da (a / b) = 1 / b: the pathwise estimator with implicit gradients is
    # unbiased; its standard error is estimated from the per-sample gradients.
    a, b, n = 0.8, 2.0, 20000

    def per_sample(a):
        return prob.Gamma(a, b).rsample(7, (n,))

    g = ds.jacfwd(per_sample)(np.float64(a))
    assert abs(g.mean() - 1 / b) < 4.5 * g.std() / np.sqrt(n)
    # Beta mean a / (a + b): d/da = b / (a + b)^2
    gb = ds.jacfwd(lambda a: prob.Beta(a, 3.0).rsample(8, (n,)))(np.float64(a))
    assert abs(gb.mean() - 3.0 / (a + 3.0) ** 2) < 4.5 * gb.std() / np.sqrt(n)


# --- batch shapes and errors ----------------------------------------------------------------


def test_batch_shapes_broadcast():
    d = prob.Normal(np.zeros((3, 1)), np.ones(4))
    assert d.batch_shape == (3, 4)
    assert d.rsample(0, (5,)).shape == (5, 3, 4)
    assert d.log_prob(np.zeros(4)).shape == (3, 4)
    m = prob.MultivariateNormal(np.zeros((3, 2)), scale_tril=L2)
    assert m.batch_shape == (3,) and m.rsample(0, (5,)).shape == (5, 3, 2)
    assert m.log_prob(np.zeros((5, 3, 2))).shape == (5, 3)
    assert prob.Dirichlet(np.ones((4, 3))).rsample(0, (2,)).shape == (2, 4, 3)
    assert prob.RelaxedCategorical(0.5, logits=np.zeros((4, 3))).rsample(0, (2,)).shape == (2, 4, 3)


def test_bad_parameters_give_clear_errors():
    with pytest.raises(
        ValueError, match=r"Normal: parameter 'scale' must be positive.*index \(1,\)"
    ):
        prob.Normal(0.0, np.array([1.0, -1.0]))
    with pytest.raises(
        ValueError, match=r"Normal: parameter shapes do not broadcast: loc \(3,\), scale \(2,\)"
    ):
        prob.Normal(np.zeros(3), np.ones(2))
    with pytest.raises(
        TypeError, match=r"Gamma: parameter 'concentration' must be a real floating.*complex"
    ):
        prob.Gamma(np.array([1 + 1j]), 1.0)
    with pytest.raises(
        ValueError, match=r"MultivariateNormal: scale_tril must have shape \(\.\.\., 2, 2\)"
    ):
        prob.MultivariateNormal(np.zeros(2), scale_tril=np.eye(3))
    with pytest.raises(ValueError, match="not positive definite"):
        prob.MultivariateNormal(np.zeros(2), covariance_matrix=-np.eye(2))
    with pytest.raises(ValueError, match="Bernoulli: give exactly one of probs= or logits="):
        prob.Bernoulli()
    with pytest.raises(ValueError, match=r"Categorical: probs must lie in \[0, 1\]"):
        prob.Categorical(probs=np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="Categorical: logits/probs need at least one axis"):
        prob.Categorical(logits=0.0)
    with pytest.raises(NotImplementedError, match="Bernoulli has no reparameterised sampler"):
        prob.Bernoulli(logits=0.0).rsample(0)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        prob.Normal(0.0, 1.0).rsample("seed")


def test_parameters_may_be_traced_integers_become_float():
    assert prob.Normal(0, 1).log_prob(0.0).dtype == np.float64
    g = ds.grad(lambda s: prob.Normal(0.0, s).log_prob(2.0))(np.float64(1.0))
    assert np.isclose(g, 3.0)  # -1/s + x^2/s^3


def test_one_hot_categorical_straight_through():
    logits = np.log(np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]))
    d = prob.OneHotCategorical(logits=logits, temperature=0.5)
    n = 20000
    z = d.rsample(5, (n,))
    assert z.shape == (n, 2, 3) and np.all(z.sum(-1) == 1) and np.all((z == 0) | (z == 1))
    p = np.exp(logits)
    assert np.all(np.abs(z.mean(0) - p) < 4.5 * np.sqrt(p * (1 - p) / n))
    np.testing.assert_allclose(d.log_prob(np.eye(3)[[2, 0]]), np.log([0.3, 0.6]), rtol=1e-12)
    np.testing.assert_allclose(d.entropy(), prob.Categorical(logits=logits).entropy(), rtol=1e-12)
    ds.check_grads(lambda lg: prob.OneHotCategorical(logits=lg).log_prob(np.eye(3)[1]), (logits,))
    ds.check_grads(lambda lg: prob.OneHotCategorical(logits=lg).entropy(), (logits,))
    # the straight-through gradient is the relaxed sample's gradient (same noise)
    relaxed = ds.jacrev(lambda lg: prob.RelaxedCategorical(0.5, logits=lg).rsample(9))(logits)
    hard = ds.jacrev(lambda lg: prob.OneHotCategorical(logits=lg, temperature=0.5).rsample(9))(
        logits
    )
    np.testing.assert_allclose(hard, relaxed, rtol=1e-12)
