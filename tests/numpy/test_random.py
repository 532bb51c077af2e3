"""diffsys.numpy.random: NumPy's values (same streams for the same seeds), plain arrays even
inside transforms, and a clear TypeError when a traced value is passed as a parameter."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import diffsys as ds
import diffsys.numpy as dnp

R = dnp.random


def test_default_rng_matches_numpy():
    g = R.default_rng(42)
    assert isinstance(g, np.random.Generator) and isinstance(g, R.Generator)
    ref = np.random.default_rng(42)
    np.testing.assert_array_equal(g.standard_normal((2, 3)), ref.standard_normal((2, 3)))
    np.testing.assert_array_equal(g.uniform(1.0, 2.0, 4), ref.uniform(1.0, 2.0, 4))
    np.testing.assert_array_equal(g.integers(0, 10, 5), ref.integers(0, 10, 5))
    assert all(isinstance(c, R.Generator) for c in g.spawn(2))
    assert R.default_rng(g) is g
    # SciPy accepts it as a random_state
    assert scipy.stats.norm.rvs(size=2, random_state=R.default_rng(0)).shape == (2,)


def test_legacy_functions_match_numpy():
    R.seed(3)
    a = R.normal(1.0, 2.0, size=3)
    np.random.seed(3)
    np.testing.assert_array_equal(a, np.random.normal(1.0, 2.0, size=3))
    for name in ("rand", "randn", "uniform", "choice", "permutation", "poisson", "beta"):
        assert callable(getattr(R, name))


def test_draws_inside_transforms_are_plain_values():
    seen = []

    def f(s):
        eps = R.default_rng(0).standard_normal(3)
        seen.append(type(eps))
        return dnp.sum(1.0 + s * eps)  # reparameterization

    g = ds.grad(f)(2.0)
    assert seen == [np.ndarray]
    np.testing.assert_allclose(g, np.random.default_rng(0).standard_normal(3).sum())


@pytest.mark.parametrize(
    "call",
    [
        lambda t: R.normal(loc=t),
        lambda t: R.normal(0.0, t, size=2),
        lambda t: R.default_rng(0).normal(t, 1.0),
        lambda t: R.default_rng(0).uniform(low=[0.0, t]),
        lambda t: R.default_rng(t),
        lambda t: R.permutation(t),
    ],
)
def test_traced_parameter_is_refused(call):
    with pytest.raises(TypeError, match="(?i)reparameteriz"):
        ds.grad(lambda t: dnp.sum(call(t) * 0.0) + t)(1.0)
    with pytest.raises(TypeError, match="random"):
        ds.jvp(lambda t: call(t), (1.0,), (1.0,))
