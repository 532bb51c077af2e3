"""ColorJitter: reparameterized random jitter with learnable ranges; relaxed/hard; errors."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.data import ColorJitter, jitter_factors


def reference(x, ranges, u):
    """The jitter written directly in NumPy (no clip)."""
    B = x.shape[0]
    f = 1 + np.asarray(ranges)[:, None] * u
    x = x * f[0].reshape(B, 1, 1, 1)
    luma = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    gray = (x * luma).sum(axis=1, keepdims=True) if x.shape[1] == 3 else x
    m = gray.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - m) * f[1].reshape(B, 1, 1, 1) + m
    if x.shape[1] == 3:
        gray = (x * luma).sum(axis=1, keepdims=True)
        x = (x - gray) * f[2].reshape(B, 1, 1, 1) + gray
    return x


def test_hard_with_key_matches_a_numpy_reference_and_relaxed_is_close(rng):
    x = rng.uniform(0.2, 0.8, size=(4, 3, 5, 5))
    jit = ColorJitter(brightness=0.3, contrast=0.2, saturation=0.4)
    ref = np.clip(reference(x, [0.3, 0.2, 0.4], jitter_factors(7, 4)), 0, 1)
    np.testing.assert_allclose(jit.hard(x, key=7), ref, atol=1e-12)
    relaxed = jit(x, key=7)  # smooth clip: within temperature * log 2 of the hard clip
    assert np.max(np.abs(relaxed - ref)) <= 0.02 * np.log(2) + 1e-12
    np.testing.assert_array_equal(jit(x, key=7), jit.relaxed(x, key=7))  # same key, same draw
    assert not np.allclose(jit(x, key=7), jit(x, key=8))


def test_hard_without_key_is_the_inference_identity(rng):
    x = rng.uniform(0, 1, size=(2, 3, 4, 4))
    np.testing.assert_array_equal(ColorJitter().hard(x), x)


def test_gray_images_skip_saturation(rng):
    x = rng.uniform(0.2, 0.8, size=(3, 1, 4, 4))
    jit = ColorJitter(brightness=0.1, contrast=0.3, saturation=0.5)
    ref = reference(x, [0.1, 0.3, 0.5], jitter_factors(1, 3))
    np.testing.assert_allclose(jit.hard(x, key=1), np.clip(ref, 0, 1), atol=1e-12)
    g = ds.grad(lambda m: dnp.sum(m(x, key=1) ** 2))(jit)
    assert g.log_range[2] == 0.0 and g.log_range[0] != 0.0


@pytest.mark.parametrize("channels", [1, 3])
def test_relaxed_gradients_order_two_both_modes(channels, rng):
    x = rng.uniform(0.05, 0.95, size=(2, channels, 3, 3))
    jit = ColorJitter(brightness=0.4, contrast=0.3, saturation=0.5, temperature=0.1)

    def loss(m, x):
        y = m(x, key=3)
        return dnp.sum(y * y * np.arange(1, 4))

    ds.check_grads(loss, (jit, x), order=2, modes=("fwd", "rev"))


def test_ranges_learn_to_shrink_when_jitter_hurts(rng):
    x = rng.uniform(0.3, 0.7, size=(8, 3, 4, 4))
    jit = ColorJitter(0.3, 0.3, 0.3)
    loss = lambda m, key: dnp.mean((m(x, key=key) - x) ** 2)
    start = np.array(jit.ranges)
    for step in range(60):
        g = ds.grad(loss)(jit, step)
        step_size = 0.1 / (np.abs(g.log_range) + 1e-3)  # sign descent
        jit = jit.replace(log_range=jit.log_range - step_size * g.log_range)
    assert np.all(np.array(jit.ranges) < 0.5 * start)


def test_float32_and_generator_keys(rng):
    x = rng.uniform(0, 1, size=(2, 3, 4, 4)).astype(np.float32)
    jit = ColorJitter()
    y = jit(x, key=np.random.default_rng(0))
    assert y.dtype == np.float32 and jit.hard(x, key=0).dtype == np.float32


def test_errors_name_the_stage():
    x = np.ones((2, 3, 4, 4))
    with pytest.raises(TypeError, match="ColorJitter: the relaxed .* needs a key"):
        ColorJitter()(x)
    with pytest.raises(TypeError, match="ColorJitter: rng must be a numpy.random.Generator"):
        ColorJitter()(x, key="seed")
    with pytest.raises(ValueError, match=r"ColorJitter: expected 1 \(gray\) or 3 \(RGB\)"):
        ColorJitter().hard(np.ones((2, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"ColorJitter.*\(B, C, H, W\)"):
        ColorJitter().hard(np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="ColorJitter: brightness, contrast and saturation"):
        ColorJitter(brightness=0.0)
    with pytest.raises(ValueError, match="ColorJitter: low must be < high"):
        ColorJitter(low=1.0, high=0.0)
