"""resize, affine_grid, grid_sample, Resize and AffineWarp: values against SciPy and
closed forms, derivatives to the image and the warp parameters, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import optim
from diffsys.systems.data import AffineWarp, Resize, affine_grid, grid_sample, resize

# A transform whose sampling points avoid pixel centres (the bilinear weights have kinks
# there, where finite differences do not apply).
THETA = np.array([[1.11, 0.213, 0.0537], [-0.097, 0.93, 0.0311]])

# PyTorch's padding modes against scipy.ndimage.map_coordinates (order 1)
SCIPY_MODE = {
    ("zeros", False): "grid-constant",
    ("zeros", True): "grid-constant",
    ("border", False): "nearest",
    ("border", True): "nearest",
    ("reflection", False): "reflect",  # about the outer pixel edges
    ("reflection", True): "mirror",  # about the corner pixel centres
}


def pixel_coords(grid, H, W, align_corners):
    gx, gy = grid[..., 0], grid[..., 1]
    if align_corners:
        return (gy + 1) / 2 * (H - 1), (gx + 1) / 2 * (W - 1)
    return ((gy + 1) * H - 1) / 2, ((gx + 1) * W - 1) / 2


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_matches_scipy_map_coordinates(padding_mode, align_corners, rng):
    x = rng.random((2, 3, 5, 6))
    grid = rng.uniform(-1.6, 1.6, size=(2, 4, 7, 2))
    out = grid_sample(x, grid, padding_mode=padding_mode, align_corners=align_corners)
    assert out.shape == (2, 3, 4, 7)
    mode = SCIPY_MODE[(padding_mode, align_corners)]
    for b in range(2):
        r, c = pixel_coords(grid[b], 5, 6, align_corners)
        for ch in range(3):
            ref = ndimage.map_coordinates(x[b, ch], [r, c], order=1, mode=mode, cval=0.0)
            np.testing.assert_allclose(out[b, ch], ref, atol=1e-12)


def test_grid_sample_nearest(rng):
    x = rng.random((1, 1, 4, 5))
    grid = rng.uniform(-0.9, 0.9, size=(1, 3, 3, 2))
    out = grid_sample(x, grid, mode="nearest", align_corners=True)
    r, c = pixel_coords(grid[0], 4, 5, True)
    np.testing.assert_allclose(out[0, 0], x[0, 0][np.rint(r).astype(int), np.rint(c).astype(int)])


def test_identity_warp_and_integer_translation(rng):
    x = rng.random((2, 1, 5, 6))
    np.testing.assert_allclose(AffineWarp()(x), x, atol=1e-12)
    np.testing.assert_allclose(AffineWarp(align_corners=True)(x), x, atol=1e-12)
    # x' = x + 2/W in normalized units is one pixel to the right: out[..., j] = x[..., j + 1]
    shift = AffineWarp(init=[[1, 0, 2 / 6], [0, 1, 0]])(x)
    np.testing.assert_allclose(shift[..., :-1], x[..., 1:], atol=1e-12)
    np.testing.assert_allclose(shift[..., -1], 0, atol=1e-12)  # zeros padding


def test_affine_grid_closed_form():
    grid = affine_grid(THETA[None], (1, 1, 3, 4), align_corners=False)
    xs = (2 * np.arange(4) + 1) / 4 - 1
    ys = (2 * np.arange(3) + 1) / 3 - 1
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(grid[0, i, j], THETA @ [xs[j], ys[i], 1.0])


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_warp_gradients_to_image_and_theta_order_two(padding_mode, align_corners, rng):
    x = rng.random((2, 2, 4, 5))
    warp = AffineWarp(init=THETA, padding_mode=padding_mode, align_corners=align_corners)

    def loss(m, x):
        y = m(x)
        return dnp.sum(y * y * np.arange(1, 6))

    ds.check_grads(loss, (warp, x), order=2, modes=("fwd", "rev"))


def test_per_sample_transforms_from_a_localisation_network(rng):
    x = rng.random((3, 1, 6, 6))
    thetas = np.stack([THETA, np.eye(2, 3), THETA * 0.9])
    warp = AffineWarp()
    out = warp.warp(x, thetas)
    np.testing.assert_allclose(out[1], x[1], atol=1e-12)
    thetas = np.stack([THETA, THETA * 1.07, THETA * 0.9])  # no sample on a pixel centre
    ds.check_grads(lambda t: dnp.sum(warp.warp(x, t) ** 2), (thetas,), order=2)


def test_learning_a_translation_aligns_images():
    # A smooth blob moved by a fraction of a pixel: minimizing over the translation of the
    # warp recovers it; the full affine warp also aligns it (it may rotate the round blob).
    yy, xx = np.mgrid[0:12, 0:12]
    blob = lambda cx, cy: np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 6.0)[None, None]
    source, target = blob(5.0, 6.0), blob(6.3, 5.4)
    warp = AffineWarp(padding_mode="border")
    theta = lambda t: dnp.concatenate([np.eye(2), dnp.reshape(t, (2, 1))], axis=1)
    loss_t = lambda t: dnp.sum((warp.warp(source, theta(t)) - target) ** 2)
    res = optim.minimize(loss_t, np.zeros(2), method="BFGS")
    # out(x) = source(x + t): a target moved by +1.3 px in x needs t = -1.3 px = -1.3 * 2/12
    np.testing.assert_allclose(res.x, [-1.3 * 2 / 12, 0.6 * 2 / 12], atol=0.02)
    loss = lambda m: dnp.sum((m(source) - target) ** 2)
    full = optim.minimize(loss, warp, method="BFGS")
    assert float(loss(full.x)) < 0.02 * float(loss(warp))


@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_matches_grid_sample_with_border_padding(align_corners, rng):
    x = rng.random((2, 3, 5, 7))
    for size in [(8, 11), (3, 4), (5, 7), (1, 2)]:
        if align_corners and 1 in size:
            continue
        grid = affine_grid(np.eye(2, 3), size, align_corners=align_corners)
        ref = grid_sample(
            x, np.repeat(grid, 2, axis=0), padding_mode="border", align_corners=align_corners
        )
        np.testing.assert_allclose(resize(x, size, align_corners=align_corners), ref, atol=1e-12)


def test_resize_values_and_gradients(rng):
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    np.testing.assert_allclose(resize(x, (2, 6))[0, 0, 0], [0, 0.25, 0.75, 1.25, 1.75, 2])
    np.testing.assert_allclose(resize(x, (1, 3), mode="nearest")[0, 0], [[0, 1, 2]])
    x = rng.random((2, 1, 4, 5))
    ds.check_grads(lambda x: dnp.sum(resize(x, (7, 3)) ** 2), (x,), order=2, modes=("fwd", "rev"))
    layer = Resize(6)
    assert layer(x).shape == (2, 1, 6, 6) and layer.size == (6, 6)
    assert resize(x.astype(np.float32), (3, 3)).dtype == np.float32


def test_errors_name_the_function_or_stage():
    with pytest.raises(ValueError, match=r"grid_sample: grid must have shape \(B, h, w, 2\)"):
        grid_sample(np.ones((2, 1, 3, 3)), np.zeros((1, 3, 3, 2)))
    with pytest.raises(ValueError, match="grid_sample: padding_mode"):
        grid_sample(np.ones((1, 1, 3, 3)), np.zeros((1, 3, 3, 2)), padding_mode="wrap")
    with pytest.raises(ValueError, match=r"AffineWarp.*\(B, C, H, W\)"):
        AffineWarp()(np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"AffineWarp.*floating.*int64"):
        AffineWarp()(np.ones((1, 1, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"AffineWarp: init must be a finite \(2, 3\)"):
        AffineWarp(init=np.eye(3))
    with pytest.raises(ValueError, match=r"affine_grid: theta must have shape"):
        affine_grid(np.ones((2, 3, 3)), (2, 2))
    with pytest.raises(ValueError, match=r"Resize\(size=\(4, 4\)\).*\(B, C, H, W\)"):
        Resize(4)(np.ones((4, 4)))
    with pytest.raises(ValueError, match="resize: size"):
        resize(np.ones((1, 1, 2, 2)), (0, 3))
    with pytest.raises(ValueError, match="Resize: mode"):
        Resize(3, mode="bicubic")
