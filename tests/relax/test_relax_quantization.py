"""Soft quantization: the additive-noise proxy, soft rounding, and the measured gap."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.relax import noisy_quantize, quantization_gap, quantize, soft_round


def test_noisy_quantize_statistics_and_gradients():
    n = 40000
    step = 0.3
    x = np.linspace(-2, 2, n)
    err = noisy_quantize(x, step, rng=0) - x
    assert np.all(np.abs(err) <= step / 2)
    var = step**2 / 12
    assert abs(err.mean()) <= 4 * np.sqrt(var / n)
    # the variance of a sample variance of a uniform: (E[u^4] - var^2) / n, E[u^4] = step^4 / 80
    assert abs(err.var() - var) <= 4 * np.sqrt((step**4 / 80 - var**2) / n)
    xs = x[:5]
    np.testing.assert_array_equal(
        ds.grad(lambda x: dnp.sum(noisy_quantize(x, step, rng=1)))(xs), 1.0
    )
    u = (noisy_quantize(xs, step, rng=1) - xs) / step  # the same draw: the seed is fixed
    np.testing.assert_allclose(
        ds.grad(lambda s: dnp.sum(noisy_quantize(xs, s, rng=1)))(step), u.sum()
    )
    ds.check_grads(lambda x, s: noisy_quantize(x, s, rng=2), (xs, step), order=2)


def test_soft_round_limits_monotonicity_and_derivatives(rng):
    x = rng.uniform(-3, 3, 200)
    x = x[np.abs(x - np.floor(x) - 0.5) > 0.05]  # away from the half-integers
    gaps = [soft_round.gap(x, temperature=t) for t in (1.0, 0.3, 0.1, 0.03, 0.01, 1e-3)]
    assert all(b < a for a, b in zip(gaps, gaps[1:])) and gaps[-1] < 1e-12, gaps
    grid = np.linspace(-2, 2, 401)
    assert np.all(np.diff(soft_round(grid, temperature=0.2)) > 0)
    np.testing.assert_allclose(soft_round(grid, temperature=1e4), grid, atol=1e-6)  # T -> inf
    np.testing.assert_allclose(
        soft_round(np.arange(-2.0, 3.0), temperature=0.3), np.arange(-2.0, 3.0)
    )
    xs = np.array([-1.3, 0.2, 0.45, 1.7])
    ds.check_grads(lambda x: soft_round(x, temperature=0.4), (xs,), order=2)
    ds.check_grads(lambda t: soft_round(xs, temperature=t), (0.4,), order=1)


def test_quantization_gap_report():
    x = np.random.default_rng(0).uniform(-4, 4, 20000)
    step = 0.5
    rep = quantization_gap(x, step, rng=1, loss=lambda q: np.mean((q - x) ** 2), n_draws=8)
    # noisy - hard = (x - round x) + step u: two independent uniforms, variance step^2/12 each
    assert abs(rep.noise_mse / (step**2 / 6) - 1) < 0.03
    assert rep.noise_max <= step + 1e-12
    assert rep.ste_max == 0.0
    # distortion: rounding error and the noise both have mean square step^2 / 12
    assert abs(rep.loss_hard / (step**2 / 12) - 1) < 0.03
    assert abs(rep.loss_gap) < 0.03 * step**2 / 12
    assert rep.loss_ste == rep.loss_hard
    assert "theory ~ step^2/6" in rep.summary() and "gap" in rep.summary()
    plain = quantization_gap(x[:10], step, rng=1)
    assert np.isnan(plain.loss_gap) and "loss" not in plain.summary()


def test_straight_through_proxy_is_exact():
    x = np.random.default_rng(1).standard_normal(50)
    np.testing.assert_array_equal(quantize(x, 0.25), 0.25 * np.rint(x / 0.25))


def test_errors():
    with pytest.raises(TypeError, match="noisy_quantize: rng must be"):
        noisy_quantize(np.zeros(2), 1.0, rng="seed")
    with pytest.raises(ValueError, match="soft_round: temperature must be finite and > 0"):
        soft_round(np.zeros(2), temperature=-1.0)
