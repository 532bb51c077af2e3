"""Closed-form KL divergences: against Monte-Carlo estimates (standard-error bounds), zero at
p = q, derivatives against finite differences."""

import numpy as np
import pytest

import diffsys as ds
from diffsys import prob

L1 = np.array([[1.2, 0.0], [0.3, 0.8]])
L2 = np.array([[0.9, 0.0], [-0.2, 1.1]])

# name: (p(params), q(params), params)
PAIRS = {
    "normal": (lambda a: prob.Normal(a[0], a[1]), lambda b: prob.Normal(b[0], b[1])),
    "lognormal": (lambda a: prob.LogNormal(a[0], a[1]), lambda b: prob.LogNormal(b[0], b[1])),
    "exponential": (lambda a: prob.Exponential(a[1]), lambda b: prob.Exponential(b[1])),
    "gamma": (lambda a: prob.Gamma(a[1] + 1, a[1]), lambda b: prob.Gamma(b[1] + 0.5, b[1] * 2)),
    "beta": (lambda a: prob.Beta(a[1], a[1] + 1), lambda b: prob.Beta(b[1] * 2, b[1])),
    "bernoulli": (lambda a: prob.Bernoulli(logits=a[0]), lambda b: prob.Bernoulli(logits=b[0])),
    "categorical": (lambda a: prob.Categorical(logits=a), lambda b: prob.Categorical(logits=b)),
    "one_hot": (
        lambda a: prob.OneHotCategorical(logits=a),
        lambda b: prob.OneHotCategorical(logits=b),
    ),
    "dirichlet": (lambda a: prob.Dirichlet(a + 1.5), lambda b: prob.Dirichlet(b + 1.0)),
    "uniform": (
        lambda a: prob.Uniform(a[0], a[0] + a[1]),
        lambda b: prob.Uniform(b[0] - 1.0, b[0] + 1.5 + b[1]),
    ),
    "mvn": (
        lambda a: prob.MultivariateNormal(a[:2], scale_tril=L1 * a[1]),
        lambda b: prob.MultivariateNormal(b[:2], scale_tril=L2),
    ),
}
PA = np.array([0.3, 0.9, 1.2])
PB = np.array([-0.2, 1.4, 0.4])


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_kl_matches_monte_carlo(name):
    make_p, make_q = PAIRS[name]
    p, q = make_p(PA), make_q(PB)
    kl = np.asarray(prob.kl_divergence(p, q))
    n = 100000
    z = p.sample(3, (n,))
    d = np.asarray(p.log_prob(z) - q.log_prob(z))
    assert np.all(np.abs(d.mean(0) - kl) < 4.5 * d.std(0) / np.sqrt(n) + 1e-12)
    np.testing.assert_allclose(prob.kl_divergence(p, make_p(PA)), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_kl_gradients(name):
    make_p, make_q = PAIRS[name]
    ds.check_grads(lambda a, b: prob.kl_divergence(make_p(a), make_q(b)), (PA, PB), order=2)


def test_kl_batches_and_unknown_pairs():
    p = prob.Normal(np.zeros((3, 1)), 1.0)
    q = prob.Normal(np.ones(4), 2.0)
    assert prob.kl_divergence(p, q).shape == (3, 4)
    assert np.isinf(prob.kl_divergence(prob.Uniform(0.0, 2.0), prob.Uniform(0.5, 1.0)))
    with pytest.raises(
        NotImplementedError, match=r"no closed form registered for \(Gamma, Normal\)"
    ):
        prob.kl_divergence(prob.Gamma(1.0, 1.0), prob.Normal(0.0, 1.0))


def test_register_kl_extends_the_registry():
    class Shifted(prob.Normal):
        pass

    # a subclass uses its parent's pair until its own is registered
    assert np.isclose(prob.kl_divergence(Shifted(0.0, 1.0), prob.Normal(1.0, 1.0)), 0.5)

    @prob.register_kl(Shifted, prob.Normal)
    def _kl(p, q):
        return 42.0

    assert prob.kl_divergence(Shifted(0.0, 1.0), prob.Normal(1.0, 1.0)) == 42.0
