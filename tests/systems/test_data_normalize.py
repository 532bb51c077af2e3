"""Normalize: fixed and per-image statistics, learnable affine, derivatives, errors."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.data import Normalize


def loss(module, x):
    y = module(x)
    return dnp.sum(y**3 * np.arange(1, y.shape[-1] + 1))


def test_fit_standardizes_each_channel(rng):
    x = rng.normal([[[[1.0]], [[-4.0]], [[10.0]]]], [[[[0.5]], [[3.0]], [[2.0]]]], (32, 3, 4, 4))
    norm = Normalize.fit(x)
    y = norm(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-12)
    shifted = norm.replace(scale=np.array([1.0, 2.0, 3.0]), shift=np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(shifted(x)[:, 1], 2 * y[:, 1] + 1)


def test_fit_constant_channel_gets_unit_std():
    x = np.ones((4, 2, 3, 3))
    x[:, 1] = np.arange(4)[:, None, None]
    norm = Normalize.fit(x)
    assert norm.std[0] == 1.0 and np.all(np.isfinite(norm(x)))


def test_instance_statistics(rng):
    x = rng.normal(5.0, 3.0, (3, 2, 6, 6))
    y = Normalize(2, stats="instance", eps=1e-12)(x)
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0, atol=1e-10)
    np.testing.assert_allclose(y.std(axis=(2, 3)), 1, atol=1e-8)


@pytest.mark.parametrize("stats", ["fixed", "instance"])
def test_gradients_order_two_both_modes(stats, rng):
    x = rng.normal(size=(2, 2, 3, 4))
    norm = Normalize(2, mean=[0.1, -0.3], std=[1.5, 0.7], stats=stats)
    norm = norm.replace(scale=np.array([1.2, 0.8]), shift=np.array([0.1, -0.2]))
    ds.check_grads(loss, (norm, x), order=2, modes=("fwd", "rev"))


def test_statistics_are_settings_not_parameters():
    norm = Normalize(3, mean=1.0, std=2.0)
    assert list(norm.named_parameter_dict()) == ["scale", "shift"]


def test_feature_vectors_and_float32(rng):
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = Normalize(3, mean=[0.0, 1.0, 2.0])(x)
    assert y.dtype == np.float32 and y.shape == (5, 3)


def test_errors_name_the_stage():
    with pytest.raises(ValueError, match=r"Normalize\(channels=3.*3 channel\(s\).*\(2, 1, 4, 4\)"):
        Normalize(3)(np.ones((2, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"Normalize\(channels=2, stats='instance'\).*spatial"):
        Normalize(2, stats="instance")(np.ones((4, 2)))
    with pytest.raises(TypeError, match=r"Normalize.*floating.*uint8"):
        Normalize(1)(np.ones((1, 1, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="Normalize: stats"):
        Normalize(1, stats="batch")
    with pytest.raises(ValueError, match="Normalize: mean must be finite and std positive"):
        Normalize(1, std=0.0)
    with pytest.raises(ValueError, match="Normalize: channels"):
        Normalize(0)
    with pytest.raises(ValueError, match="Normalize.fit"):
        Normalize.fit(np.ones(5))
