"""Sampling relaxations and the score-function estimator: statistical tests with fixed seeds.

Every statistical check runs ``GROUPS`` independent :func:`gradient_variance` reports. The spread
of their means is an estimate of the standard error that does not come from the code under
test, so it checks the reported ``std_error`` and ``variance`` (within a factor of 2: 15
degrees of freedom put a false alarm far out in the tails), and it is the tolerance of the
unbiasedness check: 4 of those standard errors of the grand mean (a false alarm has
probability ~1e-3 per component, and the seeds are fixed, so a test either always passes or
always fails). An inflated reported error therefore cannot loosen the unbiasedness check.
The estimators use few samples per estimate (2 mostly), so a baseline that sees its own
sample (a bias of ``-grad / n_samples``) is 7 or more standard errors off.
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
GROUPS = 16


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in ds.tree_leaves(tree)])


def _repeated_reports(estimate, runs: int, seed: int) -> dict[str, np.ndarray]:
    """``GROUPS`` independent reports of ``runs`` runs each, their leaves flattened and stacked,
    after checking what each reports against the spread of their means."""
    reports = [
        gradient_variance(estimate, n_runs=runs, seed=seed * GROUPS + i) for i in range(GROUPS)
    ]
    assert all(r.n_runs == runs for r in reports)
    means = np.stack([_flat(r.mean) for r in reports])
    variances = np.stack([_flat(r.variance) for r in reports])
    std_errors = np.stack([_flat(r.std_error) for r in reports])
    totals = np.array([r.total_variance for r in reports])
    np.testing.assert_allclose(totals, variances.sum(axis=1), rtol=1e-12)
    spread = means.std(axis=0, ddof=1)  # how far one report's mean really moves
    reported = np.sqrt(np.mean(std_errors**2, axis=0))
    per_run = np.sqrt(np.mean(variances, axis=0) / runs)
    for name, value in [("std_error", reported), ("sqrt(variance / n_runs)", per_run)]:
        ok = (0.5 * spread <= value) & (value <= 2.0 * spread)
        assert np.all(ok), (
            f"reported {name} {value} disagrees with the spread {spread} of the means of "
            f"{GROUPS} independent reports"
        )
    return {"means": means, "variances": variances, "spread": spread}


def _assert_unbiased(estimate, exact, runs: int, seed: int) -> dict[str, np.ndarray]:
    reps = _repeated_reports(estimate, runs, seed)
    grand = reps["means"].mean(axis=0)
    err = np.abs(grand - _flat(exact))
    tol = SIGMAS * reps["spread"] / np.sqrt(GROUPS) + 1e-12
    assert np.all(err <= tol), f"mean {grand} vs exact {_flat(exact)}: {err} > {tol}"
    return reps


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

    # E[x^2] = mu^2 + s^2, E[sin x] = sin(mu) exp(-s^2/2)
    exact_mu = 2 * mu + np.cos(mu) * np.exp(-(sigma**2) / 2)
    exact_s = 2 * sigma - sigma * np.sin(mu) * np.exp(-(sigma**2) / 2)
    _assert_unbiased(estimate, (exact_mu, exact_s), runs=50, seed=0)


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
    # decay 0: the baseline is the previous estimate's mean, so one that took this estimate's
    # own samples into account would be biased by the whole -grad / n_samples
    b = MovingAverageBaseline(0.0) if baseline == "moving_average" else baseline
    # 2 samples per estimate, 16 x 100 runs: 4 standard errors are ~7% of the gradient
    _assert_unbiased(
        _categorical_estimator(theta, b, n_samples=2), _categorical_exact(theta), runs=100, seed=1
    )


@pytest.mark.parametrize("baseline", [None, 1.5, "loo", "moving_average"])
def test_score_function_gradient_is_the_estimator_with_each_baseline(baseline):
    # the gradient is mean_k (f(z_k) - b_k) (onehot(z_k) - p) for the samples f was given, with
    # b_k = 0, the constant, the mean of the other samples, or the moving average *before* the
    # batch (then updated with the batch mean)
    theta = np.array([0.2, -0.4, 0.9, 0.0])
    p = np.exp(theta) / np.exp(theta).sum()
    b = MovingAverageBaseline(0.5, initial=2.0) if baseline == "moving_average" else baseline
    average = 2.0
    for seed in range(3):
        seen = []

        def f(z):
            seen.append(z)
            return TABLE[z]

        est = lambda t: score_function(f, Categorical(t), rng=seed, n_samples=5, baseline=b)
        g = ds.grad(est)(theta)
        (z,) = seen
        fz = TABLE[z]
        if baseline is None:
            bk = np.zeros(5)
        elif baseline == "loo":
            bk = (fz.sum() - fz) / 4
        elif baseline == "moving_average":
            bk = np.full(5, average)
            average = 0.5 * average + 0.5 * fz.mean()
            assert b.value == pytest.approx(average)
        else:
            bk = np.full(5, baseline)
        expected = np.mean((fz - bk)[:, None] * (np.eye(4)[z] - p), axis=0)
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-14)


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
                _bernoulli_f, Bernoulli(t), rng=rng, n_samples=2, baseline=baseline
            )
        )(theta)

    _assert_unbiased(estimate, _bernoulli_exact(theta), runs=100, seed=2)


def test_baselines_reduce_variance():
    theta = np.array([0.2, -0.4, 0.9, 0.0])
    total = {}
    for name, b in [("none", None), ("loo", "loo"), ("ema", MovingAverageBaseline(0.9))]:
        est = _categorical_estimator(theta, b, n_samples=8, offset=10.0)
        reps = _assert_unbiased(est, _categorical_exact(theta, 10.0), runs=20, seed=3)
        total[name] = float(reps["variances"].sum(axis=1).mean())
    # the offset of 10 dominates the no-baseline variance; both baselines remove it
    assert total["loo"] < 0.1 * total["none"], total
    assert total["ema"] < 0.2 * total["none"], total
    rep = gradient_variance(_categorical_estimator(theta, "loo", n_samples=8), n_runs=20)
    assert "20 runs: total variance" in rep.summary()


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
            lambda m, s: score_function(f, Normal(m, s), rng=rng, n_samples=2, baseline="loo"),
            argnums=(0, 1),
        )(mu, sigma)

    _assert_unbiased(estimate, (2 * mu, 2 * sigma), runs=100, seed=4)


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
