"""LearnableBlur: values against SciPy, derivatives by finite differences, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import optim
from diffsys.systems.data import PADDING_MODES, LearnableBlur, gaussian_blur, gaussian_kernel

# NumPy's pad names against scipy.ndimage's mode names
SCIPY_MODE = {
    "reflect": "mirror",
    "symmetric": "reflect",
    "edge": "nearest",
    "wrap": "wrap",
    "zeros": "constant",
}


def weighted_energy(module, x):
    """A loss whose gradient is not symmetric in the pixels."""
    y = module(x)
    w = np.arange(1, y.shape[-1] + 1, dtype=np.float64)
    return dnp.sum(y * y * w)


@pytest.mark.parametrize("padding", PADDING_MODES)
@pytest.mark.parametrize("method", ["matrix", "taps"])
def test_matches_scipy_gaussian_filter(padding, method, rng):
    x = rng.random((2, 3, 6, 9))
    blur = LearnableBlur(sigma=0.9, radius=3, padding=padding, method=method)
    ref = ndimage.gaussian_filter(
        x, sigma=(0, 0, 0.9, 0.9), mode=SCIPY_MODE[padding], truncate=3 / 0.9
    )
    np.testing.assert_allclose(blur(x), ref, atol=1e-12)


def test_radius_larger_than_image_reflects_repeatedly(rng):
    x = rng.random((1, 1, 3, 4))
    for padding in PADDING_MODES:
        y = LearnableBlur(sigma=2.0, radius=7, padding=padding)(x)
        ref = ndimage.gaussian_filter(
            x, sigma=(0, 0, 2.0, 2.0), mode=SCIPY_MODE[padding], truncate=7 / 2.0
        )
        np.testing.assert_allclose(y, ref, atol=1e-12)


def test_per_channel_sigma_blurs_each_channel_with_its_own_width(rng):
    x = rng.random((2, 2, 7, 7))
    blur = LearnableBlur(sigma=[0.6, 1.4], channels=2, radius=4)
    y = blur(x)
    for c, s in enumerate([0.6, 1.4]):
        ref = ndimage.gaussian_filter(x[:, c], sigma=(0, s, s), mode="mirror", truncate=4 / s)
        np.testing.assert_allclose(y[:, c], ref, atol=1e-12)
    assert blur.sigma.shape == (2,)


def test_kernel_is_normalized_and_sigma_positive():
    sigma = np.array([0.1, 1.0, 5.0])
    w = gaussian_kernel(sigma, 3)
    # the sampled Gaussian exp(-k^2 / (2 sigma^2)) over k = -3..3, divided by its sum
    k = np.arange(-3, 4)
    taps = np.exp(-(k**2) / (2 * sigma[:, None] ** 2))
    np.testing.assert_allclose(w, taps / taps.sum(axis=-1, keepdims=True), rtol=1e-12, atol=0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0)
    # a weighted average: no negative tap, symmetric, falling away from the centre tap
    assert np.all(w >= 0)
    np.testing.assert_array_equal(w, w[:, ::-1])
    assert np.all(np.diff(w[:, 3:], axis=-1) < 0)
    blur = LearnableBlur(sigma=0.7)
    assert np.isclose(float(blur.sigma), 0.7)
    assert blur.radius == 3  # ceil(3 * max(sigma, 1))
    big = blur.replace(log_sigma=np.array(-50.0))  # a tiny sigma is the identity, not a NaN
    x = np.random.default_rng(0).random((1, 1, 4, 4))
    np.testing.assert_allclose(big(x), x)


@pytest.mark.parametrize("method", ["matrix", "taps"])
@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_gradients_order_two_both_modes(method, padding, rng):
    x = rng.random((2, 1, 5, 6))
    blur = LearnableBlur(sigma=0.8, radius=2, padding=padding, method=method)
    ds.check_grads(weighted_energy, (blur, x), order=2, modes=("fwd", "rev"))


def test_gradients_per_channel(rng):
    x = rng.random((2, 2, 4, 5))
    blur = LearnableBlur(sigma=[0.7, 1.1], channels=2, radius=2)
    ds.check_grads(weighted_energy, (blur, x), order=2, modes=("fwd", "rev"))


def test_sigma_gradient_sign_denoising():
    # Blurring pure noise lowers its energy: d energy / d log_sigma < 0.
    x = np.random.default_rng(0).normal(size=(4, 1, 8, 8))
    g = ds.grad(lambda b: dnp.sum(b(x) ** 2))(LearnableBlur(sigma=0.8))
    assert float(g.log_sigma) < 0
    # Fitting the blur of a clean image to a blurred target recovers its width.
    clean = np.zeros((1, 1, 9, 9))
    clean[0, 0, 4, 4] = 1.0
    target = LearnableBlur(sigma=1.3, radius=4)(clean)
    blur = LearnableBlur(sigma=0.5, radius=4)
    loss = lambda b: dnp.sum((b(clean) - target) ** 2)
    res = optim.minimize(loss, blur, method="BFGS")
    assert abs(float(res.x.sigma) - 1.3) < 1e-4


def test_float32_stays_float32(rng):
    x = rng.random((2, 1, 5, 5)).astype(np.float32)
    for method in ("matrix", "taps"):
        blur = LearnableBlur(sigma=1.0, method=method)
        y = blur(x)
        assert y.dtype == np.float32
        gx = ds.grad(lambda x: dnp.sum(blur(x) ** 2))(x)
        assert gx.dtype == np.float32
        np.testing.assert_allclose(y, blur(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_auto_method_uses_taps_on_large_images(rng):
    x = rng.random((1, 1, 70, 80))
    a = gaussian_blur(x, np.array(1.5), 5, "edge", "auto")
    b = gaussian_blur(x, np.array(1.5), 5, "edge", "matrix")
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_works_under_vmap_and_jit_free_transforms(rng):
    x = rng.random((3, 1, 5, 5))
    blur = LearnableBlur(sigma=0.9, radius=2)
    per_example = ds.vmap(lambda xi: blur(xi[None])[0])(x)
    np.testing.assert_allclose(per_example, blur(x), atol=1e-12)


@pytest.mark.parametrize(
    "x, err, match",
    [
        (np.zeros((8, 8)), ValueError, r"LearnableBlur.*\(B, C, H, W\).*\(8, 8\)"),
        (np.zeros((2, 8, 8)), ValueError, r"LearnableBlur.*add a batch axis"),
        (np.zeros((1, 1, 4, 4), dtype=np.int64), TypeError, r"LearnableBlur.*floating.*int64"),
        (np.zeros((1, 1, 4, 4), dtype=bool), TypeError, r"LearnableBlur.*floating.*bool"),
        ("image", TypeError, r"LearnableBlur.*floating"),
    ],
)
def test_bad_inputs_name_the_stage(x, err, match):
    with pytest.raises(err, match=match):
        LearnableBlur(sigma=1.0)(x)


def test_bad_channel_count_and_settings():
    with pytest.raises(
        ValueError, match=r"LearnableBlur.*channels=2.*2 channel\(s\).*\(1, 3, 4, 4\)"
    ):
        LearnableBlur(sigma=1.0, channels=2)(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="LearnableBlur: sigma must be positive"):
        LearnableBlur(sigma=0.0)
    with pytest.raises(ValueError, match="LearnableBlur: sigma must be a scalar"):
        LearnableBlur(sigma=[1.0, 2.0])
    with pytest.raises(
        ValueError, match=r"LearnableBlur: sigma must be a scalar or have shape \(3,\)"
    ):
        LearnableBlur(sigma=[1.0, 2.0], channels=3)
    with pytest.raises(ValueError, match="LearnableBlur: radius"):
        LearnableBlur(radius=0)
    with pytest.raises(ValueError, match="LearnableBlur: padding"):
        LearnableBlur(padding="circular")
    with pytest.raises(ValueError, match="LearnableBlur: method"):
        LearnableBlur(method="fft")
