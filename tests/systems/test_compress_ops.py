"""systems.compress, differentiable layer: the learned CDF, bin likelihoods, quantisation
proxies and the rate-distortion loss (derivatives against finite differences)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsys as ds
import diffsys.numpy as dnp

compress = pytest.importorskip("diffsys.systems.compress")
from diffsys.systems.compress import (  # noqa: E402
    FactorizedPrior,
    factorized_cdf,
    factorized_likelihood,
    factorized_logits,
    factorized_quantile,
    quantize_latents,
    rate_bits,
    rate_distortion_loss,
)


def random_params(rng, channels=2, filters=(3, 3)):
    """Parameters anywhere in their space (negative raw matrices and factors included)."""
    widths = (1, *filters, 1)
    layers = range(len(widths) - 1)
    mats = tuple(rng.normal(size=(channels, widths[k + 1], widths[k])) for k in layers)
    biases = tuple(rng.normal(size=(channels, widths[k + 1], 1)) for k in range(len(widths) - 1))
    factors = tuple(
        3 * rng.normal(size=(channels, widths[k + 1], 1)) for k in range(len(widths) - 2)
    )
    return mats, biases, factors


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_cdf_is_monotone_and_a_distribution_for_any_parameters(seed):
    rng = np.random.default_rng(seed)
    params = random_params(rng, channels=3)
    grid = np.linspace(-30, 30, 2001)[:, None].repeat(3, axis=1)
    cdf = factorized_cdf(params, grid)
    assert np.all((cdf >= 0) & (cdf <= 1))
    assert np.all(np.diff(cdf, axis=0) >= -1e-15)
    density = ds.elementwise_grad(lambda y: factorized_cdf(params, y))(grid)
    assert np.all(density >= -1e-15)
    lik = factorized_likelihood(params, grid, bound=None)
    assert np.all(lik >= 0)


def test_cdf_logits_and_likelihood_derivatives_order_2(rng):
    params = random_params(rng)
    y = rng.normal(size=(4, 2)) * 2
    ds.check_grads(lambda p, y: factorized_logits(p, y), (params, y), order=2)
    ds.check_grads(lambda p, y: factorized_cdf(p, y), (params, y), order=2)
    ds.check_grads(lambda p, y: factorized_likelihood(p, y, bound=None), (params, y), order=2)
    # the bounded likelihood above its bound, and the rate in bits
    ds.check_grads(lambda p, y: rate_bits(factorized_likelihood(p, y)), (params, y), order=2)


def test_likelihood_is_the_cdf_difference_and_sums_to_one(rng):
    prior = FactorizedPrior(3, key=1)
    y = rng.normal(size=(50, 3)) * 4
    lik = factorized_likelihood(prior.params, y, bound=None)
    ref = factorized_cdf(prior.params, y + 0.5) - factorized_cdf(prior.params, y - 0.5)
    np.testing.assert_allclose(lik, ref, rtol=1e-9, atol=1e-15)
    grid = np.arange(-200.0, 201.0)[:, None] + np.array([0.0, 0.3, -0.2])
    np.testing.assert_allclose(factorized_likelihood(prior.params, grid, bound=None).sum(0), 1.0)


def test_sign_trick_keeps_the_far_right_tail():
    """Where both CDF values round to 1, the plain difference is 0; the reflected one is not."""
    prior = FactorizedPrior(1, key=0)
    y = np.array([[400.0]])  # logits ~ 40: CDF = 1 - 4e-18 on both sides
    naive = factorized_cdf(prior.params, y + 0.5) - factorized_cdf(prior.params, y - 0.5)
    lo = factorized_logits(prior.params, y - 0.5)
    hi = factorized_logits(prior.params, y + 0.5)
    ref = 1 / (1 + np.exp(lo)) - 1 / (1 + np.exp(hi))  # 1 - CDF(y - 1/2) - (1 - CDF(y + 1/2))
    assert naive[0, 0] == 0.0 and ref[0, 0] > 1e-30
    np.testing.assert_allclose(factorized_likelihood(prior.params, y, bound=None), ref, rtol=1e-9)


def test_likelihood_bound_keeps_rate_finite_and_gradient_alive():
    prior = FactorizedPrior(1, key=0)
    far = np.array([[500.0]])
    assert factorized_likelihood(prior.params, far)[0, 0] == 1e-9
    assert np.isclose(float(rate_bits(factorized_likelihood(prior.params, far))), -np.log2(1e-9))
    # the rate's gradient w.r.t. the density's parameters still flows (a plain clamp: zero)
    g = ds.grad(lambda p: rate_bits(factorized_likelihood(p, far)))(prior.params)
    assert any(np.any(leaf != 0) for leaf in ds.tree_leaves(g))


def test_quantile_inverts_the_cdf(rng):
    params = random_params(rng, channels=3)
    for p in (1e-9, 0.1, 0.5, 0.97):
        q = factorized_quantile(params, p)
        np.testing.assert_allclose(factorized_cdf(params, q[None, :])[0], p, rtol=1e-6)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
        factorized_quantile(params, 1.0)


def test_quantize_latents_modes(rng):
    y = rng.normal(size=(200, 3)) * 3
    med = np.array([0.2, -0.4, 0.0])
    hard, hard2 = quantize_latents(y, med, "round")
    np.testing.assert_array_equal(hard, np.rint(y - med) + med)
    assert hard is hard2
    noisy, _ = quantize_latents(y, med, "noise", rng=0)
    assert np.all(np.abs(noisy - y) <= 0.5)
    for_rate, for_decoder = quantize_latents(y, med, "mixed", rng=0)
    np.testing.assert_array_equal(for_rate, noisy)  # same seed, same draw
    np.testing.assert_array_equal(for_decoder, hard)
    ste, _ = quantize_latents(y, med, "ste")
    np.testing.assert_array_equal(ste, hard)


def test_straight_through_rounding_passes_the_decoder_gradient(rng):
    """d/dy f(round(y - m) + m) is f'(rounded) with the straight-through estimator."""
    y = rng.normal(size=(5, 2))
    med = np.array([0.3, -0.1])
    f = lambda v: dnp.sum(dnp.sin(v) * v)
    g = ds.grad(lambda y: f(quantize_latents(y, med, "ste")[1]))(y)
    hard = np.rint(y - med) + med
    np.testing.assert_allclose(g, ds.grad(f)(hard))
    ds.check_grads(lambda y: f(quantize_latents(y, med, "noise", rng=3)[1]), (y,), order=2)


def test_noise_proxy_gradient_is_unbiased_for_the_expected_rate(rng):
    """E_u[-log2 L(y + u)], u ~ U(-1/2, 1/2): the mean of the per-draw gradients matches the
    finite difference of the expectation computed by quadrature."""
    prior = FactorizedPrior(1, key=2)
    nodes, weights = np.polynomial.legendre.leggauss(64)
    u, w = nodes / 2, weights / 2  # on [-1/2, 1/2], weights sum to 1

    def expected_rate(y0):
        v = (y0 + u)[:, None]
        return float(np.sum(w * -np.log2(factorized_likelihood(prior.params, v, bound=None)[:, 0])))

    n = 20000
    for y0 in (-1.3, 0.4, 2.2):
        # n independent draws at once: element i's gradient is draw i's gradient
        y = np.full((n, 1), y0)
        draws = ds.grad(
            lambda y: rate_bits(prior.likelihood(quantize_latents(y, 0.0, "noise", rng=5)[0]))
        )(y)[:, 0]
        h = 1e-5
        fd = (expected_rate(y0 + h) - expected_rate(y0 - h)) / (2 * h)
        se = np.std(draws) / np.sqrt(n)
        assert abs(np.mean(draws) - fd) < 4 * se + 1e-6, (y0, np.mean(draws), fd, se)
        assert se < 0.05 * abs(fd)  # the check has power: the gradient is far from 0


def test_rate_distortion_loss_values_and_derivatives(rng):
    x = rng.uniform(size=(3, 4))
    x_hat = rng.uniform(size=(3, 4))
    lik = rng.uniform(0.1, 0.9, size=(3, 2))
    loss, bpp, mse = rate_distortion_loss(x, x_hat, lik, 0.01)
    assert np.isclose(bpp, -np.log2(lik).sum() / 12)
    assert np.isclose(mse, np.mean((x - x_hat) ** 2))
    assert np.isclose(loss, bpp + 0.01 * 255**2 * mse)
    ds.check_grads(lambda xh, lk: rate_distortion_loss(x, xh, lk, 0.01)[0], (x_hat, lik), order=2)


def test_errors_name_the_op_shapes_and_dtypes():
    prior = FactorizedPrior(3, key=0)
    with pytest.raises(ValueError, match=r"factorized_logits: latents must have shape \(N, C\) "
                       r"with C = 3.*got shape \(4, 2\)"):
        factorized_logits(prior.params, np.zeros((4, 2)))
    with pytest.raises(TypeError, match="floating point, got dtype int64"):
        factorized_likelihood(prior.params, np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="mode must be one of"):
        quantize_latents(np.zeros((1, 3)), np.zeros(3), "floor")
    with pytest.raises(ValueError, match="needs rng="):
        quantize_latents(np.zeros((1, 3)), np.zeros(3), "noise")
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3\) and \(3, 2\)"):
        rate_distortion_loss(np.zeros((2, 3)), np.zeros((3, 2)), np.ones((2, 1)), 0.1)
