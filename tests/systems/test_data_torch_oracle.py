"""resize, affine_grid and grid_sample against PyTorch (values and gradients), when torch is
installed (it is not a test dependency: these tests skip without it)."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.data import affine_grid, grid_sample, resize

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_affine_grid_and_grid_sample_match_torch(padding_mode, align_corners, mode, rng):
    x = rng.random((2, 3, 5, 6))
    # generic transforms: no sample lands on a pixel centre, where the bilinear weights have
    # a kink and PyTorch and diffsys may pick different one-sided derivatives
    theta = np.array(
        [[[1.21, 0.31, 0.17], [-0.23, 0.87, -0.11]], [[0.73, 0.021, 0.41], [0.11, 1.37, 0.013]]]
    )
    grid = affine_grid(theta, (2, 3, 4, 7), align_corners=align_corners)
    tx = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(theta, requires_grad=True)
    tgrid = F.affine_grid(tt, (2, 3, 4, 7), align_corners=align_corners)
    np.testing.assert_allclose(grid, tgrid.detach().numpy(), atol=1e-12)
    out = grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    tout = F.grid_sample(
        tx, tgrid, mode=mode, padding_mode=padding_mode, align_corners=align_corners
    )
    np.testing.assert_allclose(out, tout.detach().numpy(), atol=1e-12)
    # gradients to the image and to theta, for a weighted sum of the output
    w = rng.normal(size=out.shape)
    (tout * torch.tensor(w)).sum().backward()
    gx, gt = ds.grad(
        lambda x, t: dnp.sum(
            w
            * grid_sample(
                x,
                affine_grid(t, (2, 3, 4, 7), align_corners=align_corners),
                mode=mode,
                padding_mode=padding_mode,
                align_corners=align_corners,
            )
        ),
        argnums=(0, 1),
    )(x, theta)
    np.testing.assert_allclose(gx, tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(gt, tt.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(9, 4), (2, 3), (5, 6)])
def test_resize_matches_torch_interpolate(align_corners, size, rng):
    x = rng.random((2, 3, 5, 6))
    ref = F.interpolate(torch.tensor(x), size=size, mode="bilinear", align_corners=align_corners)
    np.testing.assert_allclose(
        resize(x, size, align_corners=align_corners), ref.numpy(), atol=1e-12
    )
    ref = F.interpolate(torch.tensor(x), size=size, mode="nearest")
    np.testing.assert_allclose(resize(x, size, mode="nearest"), ref.numpy(), atol=0)
