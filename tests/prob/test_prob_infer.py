"""Handlers, the ELBO estimator and SVI: conjugate models against their exact posteriors, the
score-function gradient against the exact (enumerated) ELBO gradient, Bayesian logistic
regression against an independent NUTS reference."""

import json
import pathlib

import numpy as np
import pytest
from logreg_reference import PRIOR_SCALE, data, numpyro_nuts

import diffsys as ds
from diffsys import optim, prob
from diffsys.relax import MovingAverageBaseline, gradient_variance

HERE = pathlib.Path(__file__).parent


# --- handlers -------------------------------------------------------------------------------


def _model():
    a = prob.sample("a", prob.Normal(0.0, 1.0))
    return prob.sample("b", prob.Normal(a, 0.5))


def test_trace_seed_condition_replay_substitute():
    tr = prob.trace(prob.seed(_model, rng=0)).get_trace()
    assert list(tr) == ["a", "b"] and not tr["b"]["is_observed"]
    tr2 = prob.trace(prob.seed(_model, rng=0)).get_trace()
    assert tr2["a"]["value"] == tr["a"]["value"]  # same seed, same draws
    cond = prob.trace(prob.seed(prob.condition(_model, {"b": 2.0}), rng=1)).get_trace()
    assert cond["b"]["value"] == 2.0 and cond["b"]["is_observed"]
    rep = prob.trace(prob.seed(prob.replay(_model, tr), rng=5)).get_trace()
    assert rep["a"]["value"] == tr["a"]["value"] and rep["b"]["value"] == tr["b"]["value"]
    lp = prob.log_density(cond)
    a = cond["a"]["value"]
    assert np.isclose(lp, prob.Normal(0.0, 1.0).log_prob(a) + prob.Normal(a, 0.5).log_prob(2.0))

    def uses_param():
        return prob.param("w", np.ones(2), prob.constraints.positive)

    assert np.array_equal(uses_param(), np.ones(2))  # bare: the initial value
    assert prob.substitute(uses_param, {"w": 3.0})() == 3.0
    with prob.seed(rng=0):  # context-manager form
        assert np.shape(prob.sample("z", prob.Normal(np.zeros(3), 1.0))) == (3,)


def test_handler_errors_name_the_site():
    with pytest.raises(RuntimeError, match=r"sample\('a', Normal\): no random generator"):
        _model()

    def twice():
        prob.sample("x", prob.Normal(0.0, 1.0))
        prob.sample("x", prob.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="site name 'x' used twice"):
        prob.trace(prob.seed(twice, rng=0)).get_trace()
    with pytest.raises(TypeError, match=r"sample\('x'\): expected a prob distribution"):
        prob.sample("x", "normal")

    def guide_missing():
        prob.param("m", 0.0)

    svi = prob.SVI(_model, guide_missing, optim.adam(0.1))
    state = svi.init(0)
    with pytest.raises(ValueError, match="latent sample site 'a' has no guide site"):
        svi.update(state)


def test_scale_multiplies_log_densities_in_the_elbo():
    def model(x):
        with prob.scale(factor=3.0):
            prob.sample("x", prob.Normal(0.0, 1.0), obs=x)

    tr = prob.trace(model).get_trace(0.5)
    assert np.isclose(prob.log_density(tr), 3.0 * prob.Normal(0.0, 1.0).log_prob(0.5))

    def noop_guide(x):
        prob.param("unused", 0.0)

    loss = prob.Trace_ELBO().loss({}, model, noop_guide, 0.5, rng=0)
    assert np.isclose(loss, -3.0 * prob.Normal(0.0, 1.0).log_prob(0.5))
    with pytest.raises(ValueError, match="factor must be positive"):
        prob.scale(factor=0.0)


# --- constraints ------------------------------------------------------------------------------


def test_constraints_round_trip_and_gradients():
    c = prob.constraints
    for con, x in [
        (c.positive, np.array([0.5, 2.0])),
        (c.unit_interval, np.array([0.2, 0.9])),
        (c.simplex, np.array([0.2, 0.3, 0.5])),
        (c.lower_cholesky, np.array([[1.5, 0.0], [0.3, 0.4]])),
    ]:
        np.testing.assert_allclose(con.transform(con.inverse(x)), x, rtol=1e-12)
        ds.check_grads(con.transform, (con.inverse(x),), order=2)


# --- conjugate models: the optimised guide matches the exact posterior within 1% --------------

STEPS = 2000
DECAY = optim.exponential_decay(0.05, 0.001, STEPS)  # down to 5e-5 at the end


def test_normal_normal_posterior_within_one_percent():
    x = np.random.default_rng(0).normal(1.5, 1.0, size=20)
    mu0, s0, sigma = 0.0, 3.0, 1.0

    def model(x):
        mu = prob.sample("mu", prob.Normal(mu0, s0))
        prob.sample("x", prob.Normal(mu, sigma), obs=x)

    def guide(x):
        m = prob.param("m", 0.0)
        s = prob.param("s", 1.0, prob.constraints.positive)
        prob.sample("mu", prob.Normal(m, s))

    prec = 1 / s0**2 + len(x) / sigma**2
    post_sd = prec**-0.5
    post_mean = (mu0 / s0**2 + x.sum() / sigma**2) / prec
    res = prob.SVI(model, guide, optim.adam(DECAY), prob.Trace_ELBO(num_particles=4)).run(
        0, STEPS, x
    )
    assert abs(res.params["m"] / post_mean - 1) < 0.01
    assert abs(res.params["s"] / post_sd - 1) < 0.01
    # the loss is -ELBO, and at the exact posterior ELBO = log evidence
    assert res.losses[-200:].mean() < res.losses[:50].mean()


def test_beta_bernoulli_posterior_within_one_percent():
    # the guide is a Beta: its samples are reparameterised through implicit Gamma gradients
    flips = (np.random.default_rng(1).uniform(size=40) < 0.3).astype(float)
    a0, b0 = 2.0, 2.0

    def model(flips):
        p = prob.sample("p", prob.Beta(a0, b0))
        prob.sample("flips", prob.Bernoulli(probs=p), obs=flips)

    def guide(flips):
        a = prob.param("a", 1.0, prob.constraints.positive)
        b = prob.param("b", 1.0, prob.constraints.positive)
        prob.sample("p", prob.Beta(a, b))

    k, n = flips.sum(), len(flips)
    exact = prob.Beta(a0 + k, b0 + n - k)
    # the concentration a + b grows slowly under noisy gradients: a larger first step
    decay = optim.exponential_decay(0.2, 0.0005, STEPS)
    res = prob.SVI(model, guide, optim.adam(decay), prob.Trace_ELBO(num_particles=4)).run(
        0, STEPS, flips
    )
    fit = prob.Beta(res.params["a"], res.params["b"])
    assert abs(fit.mean / exact.mean - 1) < 0.01
    assert abs(fit.stddev / exact.stddev - 1) < 0.01


# --- discrete latents: score-function gradients -------------------------------------------


def _mixture():
    x = np.array([0.9, -0.4, 0.2])

    def model():
        z = prob.sample("z", prob.Bernoulli(probs=0.3))
        prob.sample("x", prob.Normal(2.0 * z - 1.0, 1.0), obs=x)

    def guide():
        q = prob.param("q", 0.5, prob.constraints.unit_interval)
        prob.sample("z", prob.Bernoulli(probs=q))

    def exact_elbo(u):
        q = prob.constraints.unit_interval.transform(u)
        total = 0.0
        for z, w in ((1.0, q), (0.0, 1.0 - q)):
            lp = prob.Bernoulli(probs=0.3).log_prob(z) + ds.numpy.sum(
                prob.Normal(2 * z - 1.0, 1.0).log_prob(x)
            )
            total = total + w * (lp - ds.numpy.log(w))
        return total

    return model, guide, exact_elbo


@pytest.mark.parametrize("baseline", [None, "loo", "moving"])
def test_score_function_gradient_is_unbiased(baseline):
    model, guide, exact_elbo = _mixture()
    u = np.float64(-1.0)  # q = 0.27, far from q* = 0.63: d(-ELBO)/du = -0.305
    exact = -ds.grad(exact_elbo)(u)
    assert exact < -0.3
    base = MovingAverageBaseline(0.9) if baseline == "moving" else baseline
    elbo = prob.Trace_ELBO(num_particles=4, baseline=base)

    def estimate(rng):
        def loss(v):
            params = {"q": prob.constraints.unit_interval.transform(v)}
            return elbo.loss(params, model, guide, rng=rng)

        return ds.grad(loss)(u)

    rep = gradient_variance(estimate, n_runs=1000, seed=2)
    assert abs(rep.mean - exact) < 4.5 * rep.std_error


def test_loo_baseline_reduces_the_variance():
    model, guide, _ = _mixture()
    u = np.float64(0.4)

    def var(baseline):
        elbo = prob.Trace_ELBO(num_particles=4, baseline=baseline)
        f = lambda rng: ds.grad(  # noqa: E731
            lambda v: elbo.loss(
                {"q": prob.constraints.unit_interval.transform(v)}, model, guide, rng=rng
            )
        )(u)
        return gradient_variance(f, n_runs=800, seed=3).total_variance

    assert var("loo") < 0.5 * var(None)


def test_svi_learns_a_discrete_posterior():
    model, guide, exact_elbo = _mixture()
    # exact posterior q* = p(z = 1 | x), from the enumerated joint
    x = np.array([0.9, -0.4, 0.2])
    joint = [
        np.log(p) + prob.Normal(2 * z - 1.0, 1.0).log_prob(x).sum()
        for z, p in ((1.0, 0.3), (0.0, 0.7))
    ]
    q_star = 1 / (1 + np.exp(joint[1] - joint[0]))
    decay = optim.exponential_decay(0.05, 0.001, 1500)
    svi = prob.SVI(model, guide, optim.adam(decay), prob.Trace_ELBO(4, baseline="loo"))
    res = svi.run(0, 1500)
    assert abs(res.params["q"] - q_star) < 0.01


# --- Bayesian logistic regression against NUTS ---------------------------------------------


def _logreg():
    x, y = data()
    d = x.shape[1]

    def model(x, y):
        w = prob.sample("w", prob.Normal(np.zeros(d), PRIOR_SCALE))
        prob.sample("y", prob.Bernoulli(logits=x @ w), obs=y)

    def guide(x, y):
        loc = prob.param("loc", np.zeros(d))
        tril = prob.param("tril", 0.1 * np.eye(d), prob.constraints.lower_cholesky)
        prob.sample("w", prob.MultivariateNormal(loc, scale_tril=tril))

    return model, guide, x, y


def test_bayesian_logistic_regression_matches_nuts():
    ref = json.loads((HERE / "logreg_nuts.json").read_text())
    model, guide, x, y = _logreg()
    decay = optim.exponential_decay(0.05, 0.001, 1500)
    svi = prob.SVI(model, guide, optim.adam(decay), prob.Trace_ELBO(num_particles=2))
    res = svi.run(0, 1500, x, y)
    mean, sd = np.asarray(ref["mean"]), np.asarray(ref["std"])
    # the Gaussian variational posterior: its mean within 10% of a posterior sd of NUTS'
    assert np.all(np.abs(res.params["loc"] - mean) < 0.1 * sd)
    # importance sampling with the fitted guide as proposal is consistent for the exact
    # posterior mean: within 4.5 combined standard errors (ours and NUTS')
    q = prob.MultivariateNormal(res.params["loc"], scale_tril=res.params["tril"])
    n = 40000
    w = q.sample(7, (n,))
    logp = prob.Normal(0.0, 1.0).log_prob(w).sum(-1) + prob.Bernoulli(logits=w @ x.T).log_prob(
        y
    ).sum(-1)
    logw = logp - q.log_prob(w)
    iw = np.exp(logw - logw.max())
    iw /= iw.sum()
    is_mean = iw @ w
    ess = 1 / np.sum(iw**2)
    se = np.sqrt((iw[:, None] * (w - is_mean) ** 2).sum(0) / ess)
    assert ess > 0.5 * n  # the fitted guide is close to the posterior
    combined = np.sqrt(se**2 + np.asarray(ref["mc_std_error"]) ** 2)
    assert np.all(np.abs(is_mean - mean) < 4.5 * combined)


def test_logreg_reference_recomputes_with_numpyro():
    pytest.importorskip("numpyro")
    ref = json.loads((HERE / "logreg_nuts.json").read_text())
    new = numpyro_nuts(num_warmup=300, num_samples=1500, num_chains=1, seed=1)
    se = np.sqrt(np.asarray(new["mc_std_error"]) ** 2 + np.asarray(ref["mc_std_error"]) ** 2)
    assert np.all(np.abs(np.asarray(new["mean"]) - np.asarray(ref["mean"])) < 4.5 * se)
