"""Sampling relaxations and the score-function estimator: statistical tests with fixed seeds.

Unbiasedness is tested against exact gradients of small enumerable expectations, with a
tolerance of 4 standard errors of the Monte-Carlo mean (a false alarm has probability ~1e-4
per component, and the seeds are fixed, so a test either always passes or always fails).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.relax import (
    Bernoulli,
    Categorical,
    MovingAverageBaseline,
    Normal,
    gradient_variance,
    gumbel_softmax,
    normal_rsample,
    relaxed_bernoulli,
    score_function,
)

SIGMAS = 4.0


def _assert_unbiased(report, exact):
    err = np.abs(np.asarray(report.mean) - exact)
    tol = SIGMAS * np.asarray(report.std_error) + 1e-12
    assert np.all(err <= tol), f"mean {report.mean} vs exact {exact}: {err} > {tol}"


# --- reparameterized samplers ---------------------------------------------------------------


def test_gumbel_softmax_hard_samples_have_the_categorical_law():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    rng = np.random.default_rng(0)
    n = 20000
    batch = np.broadcast_to(logits, (n, 4))
    y = gumbel_softmax(batch, 0.5, rng=rng, hard=True)
    np.testing.assert_array_equal(y.sum(-1), 1.0)
    assert set(np.unique(y)) == {0.0, 1.0}
    freq = y.mean(0)
    p = np.exp(logits)
    assert np.all(np.abs(freq - p) <= SIGMAS * np.sqrt(p * (1 - p) / n))


def test_gumbel_softmax_soft_limits_and_gradients():
    logits = np.array([[0.3, -1.0, 2.0], [0.0, 0.5, -0.5]])
    soft = gumbel_softmax(logits, 1.0, rng=3)
    np.testing.assert_allclose(soft.sum(-1), 1.0)
    assert np.all(soft > 0)
    cold = gumbel_softmax(logits, 1e-3, rng=3)
    hard = gumbel_softmax(logits, 1e-3, rng=3, hard=True)
    np.testing.assert_allclose(cold, hard, atol=1e-8)  # same noise: the limit is the hard sample
    # a fixed seed gives fixed noise, so the sample is a smooth function of logits and T
    ds.check_grads(lambda l: gumbel_softmax(l, 0.7, rng=5), (logits,), order=2)
    ds.check_grads(lambda t: gumbel_softmax(logits, t, rng=5), (0.7,), order=1)
    g = ds.grad(lambda l: dnp.sum(gumbel_softmax(l, 0.7, rng=5, hard=True) * np.arange(3.0)))
    want = ds.grad(lambda l: dnp.sum(gumbel_softmax(l, 0.7, rng=5) * np.arange(3.0)))
    np.testing.assert_allclose(g(logits), want(logits))  # straight-through: soft gradient


def test_relaxed_bernoulli():
    logits = np.array([-1.0, 0.0, 2.0])
    n = 20000
    z = relaxed_bernoulli(np.broadcast_to(logits, (n, 3)), 0.3, rng=1, hard=True)
    p = 1 / (1 + np.exp(-logits))
    assert np.all(np.abs(z.mean(0) - p) <= SIGMAS * np.sqrt(p * (1 - p) / n))
    soft = relaxed_bernoulli(logits, 0.5, rng=2)
    assert np.all((soft > 0) & (soft < 1))
    np.testing.assert_array_equal(
        relaxed_bernoulli(logits, 1e-4, rng=2).round(),
        relaxed_bernoulli(logits, 0.5, rng=2, hard=True),
    )
    ds.check_grads(lambda l: relaxed_bernoulli(l, 0.5, rng=2), (logits,), order=2)


def test_normal_rsample_pathwise_gradient_is_unbiased():
    mu, sigma = np.array([0.5, -1.0]), np.array([1.5, 0.3])

    def estimate(rng):  # d/d(mu, sigma) of E[x^2 + sin(x)], 64 samples per run
        f = lambda mu, sigma: dnp.mean(
            dnp.sum(
                normal_rsample(mu, sigma, rng=rng, sample_shape=(64,)) ** 2
                + dnp.sin(normal_rsample(mu, sigma, rng=rng, sample_shape=(64,))),
                axis=-1,
            )
        )
        return ds.grad(f, argnums=(0, 1))(mu, sigma)

    rep = gradient_variance(estimate, n_runs=200, seed=0)
    # E[x^2] = mu^2 + s^2, E[sin x] = sin(mu) exp(-s^2/2)
    exact_mu = 2 * mu + np.cos(mu) * np.exp(-(sigma**2) / 2)
    exact_s = 2 * sigma - sigma * np.sin(mu) * np.exp(-(sigma**2) / 2)
    _assert_unbiased(type(rep)(rep.mean[0], rep.variance[0], rep.std_error[0], 0.0, 200), exact_mu)
    _assert_unbiased(type(rep)(rep.mean[1], rep.variance[1], rep.std_error[1], 0.0, 200), exact_s)


def test_rng_must_be_explicit():
    with pytest.raises(TypeError, match="gumbel_softmax: rng must be a numpy.random.Generator"):
        gumbel_softmax(np.zeros(3), rng=None)
    with pytest.raises(ValueError, match="relaxed_bernoulli: temperature must be finite and > 0"):
        relaxed_bernoulli(np.zeros(3), 0.0, rng=0)


# --- score function: exact gradients by enumeration -------------------------------------------

TABLE = np.array([1.0, -2.0, 0.5, 3.0])


def _categorical_exact(theta, offset=0.0):
    return ds.grad(
        lambda t: dnp.sum(
            dnp.exp(t - dnp.max(t)) / dnp.sum(dnp.exp(t - dnp.max(t))) * (TABLE + offset)
        )
    )(theta)


def _categorical_estimator(theta, baseline, n_samples, offset=0.0):
    f = lambda z: TABLE[z] + offset

    def estimate(rng):
        return ds.grad(
            lambda t: score_function(
                f, Categorical(t), rng=rng, n_samples=n_samples, baseline=baseline
            )
        )(theta)

    return estimate


@pytest.mark.parametrize("baseline", [None, "loo", 1.5, "moving_average"])
def test_categorical_score_function_is_unbiased(baseline):
    theta = np.array([0.2, -0.4, 0.9, 0.0])
    b = MovingAverageBaseline(0.8) if baseline == "moving_average" else baseline
    # 256 samples per run, 400 runs: 4 standard errors are ~2% of the gradient
    rep = gradient_variance(_categorical_estimator(theta, b, n_samples=256), n_runs=400, seed=1)
    _assert_unbiased(rep, _categorical_exact(theta))


def _bernoulli_f(z):
    z0, z1, z2 = z[..., 0], z[..., 1], z[..., 2]
    return (z0 + 2 * z1 - z2) ** 2 + 3 * z0 * z2 + 5.0


def _bernoulli_exact(theta):
    states = np.array(list(itertools.product([0.0, 1.0], repeat=3)))

    def expectation(t):
        logp = dnp.sum(Bernoulli(t).log_prob(states), axis=-1)
        return dnp.sum(dnp.exp(logp) * _bernoulli_f(states))

    return ds.grad(expectation)(theta)


@pytest.mark.parametrize("baseline", [None, "loo"])
def test_bernoulli_score_function_is_unbiased(baseline):
    theta = np.array([0.3, -1.2, 0.8])

    def estimate(rng):
        return ds.grad(
            lambda t: score_function(
                _bernoulli_f, Bernoulli(t), rng=rng, n_samples=6, baseline=baseline
            )
        )(theta)

    rep = gradient_variance(estimate, n_runs=400, seed=2)
    _assert_unbiased(rep, _bernoulli_exact(theta))


def test_baselines_reduce_variance():
    theta = np.array([0.2, -0.4, 0.9, 0.0])
    reports = {}
    for name, b in [("none", None), ("loo", "loo"), ("ema", MovingAverageBaseline(0.9))]:
        est = _categorical_estimator(theta, b, n_samples=8, offset=10.0)
        reports[name] = gradient_variance(est, n_runs=300, seed=3)
        _assert_unbiased(reports[name], _categorical_exact(theta, 10.0))
    # the offset of 10 dominates the no-baseline variance; both baselines remove it
    assert reports["loo"].total_variance < 0.1 * reports["none"].total_variance, reports
    assert reports["ema"].total_variance < 0.2 * reports["none"].total_variance, reports
    assert "runs: total variance" in reports["loo"].summary()


def test_score_function_value_pathwise_part_and_forward_mode():
    theta = np.array([0.1, 0.4, -0.3, 0.2])
    w = 0.7

    def est(t, w, rng):
        return score_function(
            lambda z: w * TABLE[z] + w**2, Categorical(t), rng=rng, n_samples=4000, baseline="loo"
        )

    value = est(theta, w, 0)
    p = np.exp(theta) / np.exp(theta).sum()
    assert abs(value - (w * p @ TABLE + w**2)) < 0.1
    # pathwise gradient w.r.t. w (f depends on it directly): E[TABLE] + 2w
    gw = ds.grad(lambda w: est(theta, w, 0))(w)
    assert abs(gw - (p @ TABLE + 2 * w)) < 0.1
    # forward mode gives the same directional derivative as reverse mode
    v = np.array([1.0, -0.5, 0.25, 0.0])
    _, tangent = ds.jvp(lambda t: est(t, w, 7), (theta,), (v,))
    np.testing.assert_allclose(tangent, ds.grad(lambda t: est(t, w, 7))(theta) @ v)


def test_continuous_score_function():
    mu, sigma = 0.4, 0.8

    def estimate(rng):
        f = lambda x: x**2
        return ds.grad(
            lambda m, s: score_function(f, Normal(m, s), rng=rng, n_samples=16, baseline="loo"),
            argnums=(0, 1),
        )(mu, sigma)

    rep = gradient_variance(estimate, n_runs=300, seed=4)
    _assert_unbiased(type(rep)(rep.mean[0], 0, rep.std_error[0], 0, 300), 2 * mu)
    _assert_unbiased(type(rep)(rep.mean[1], 0, rep.std_error[1], 0, 300), 2 * sigma)


def test_score_function_errors():
    f = lambda z: TABLE[z]
    with pytest.raises(ValueError, match="leave-one-out baseline needs n_samples >= 2"):
        score_function(f, Categorical(np.zeros(4)), rng=0, n_samples=1, baseline="loo")
    with pytest.raises(ValueError, match=r"f must return one objective per sample, shape \(3,\)"):
        score_function(lambda z: TABLE[z][:, None], Categorical(np.zeros(4)), rng=0, n_samples=3)
    with pytest.raises(ValueError, match="baseline must be None, a number, 'loo'"):
        score_function(f, Categorical(np.zeros(4)), rng=0, n_samples=3, baseline="mean")
    with pytest.raises(ValueError, match="decay must be in"):
        MovingAverageBaseline(1.0)
