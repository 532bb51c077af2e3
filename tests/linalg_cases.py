"""Matrix builders and checks shared by the numpy.linalg and scipy.linalg tests (this
folder is on ``sys.path``: see conftest.py)."""

from __future__ import annotations

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp


def rnd(rng, *shape):
    return rng.standard_normal(shape)


def spd(rng, *shape):
    """A symmetric positive definite matrix stack."""
    a = rng.standard_normal(shape)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def well(rng, *shape):
    """A well-conditioned (not symmetric) square matrix stack."""
    return rng.standard_normal(shape) + 3 * np.eye(shape[-1])


def sym(a):
    return (a + dnp.swapaxes(a, -1, -2)) / 2


def check_vmap_equals_stacking(f, which, rng):
    """``vmap(f)`` over a batch of 4 equals stacking ``f`` on each item. ``which[i]`` says
    whether argument i (a 3x3 well-conditioned matrix, then a 3x2 matrix) is batched."""
    stacked = [well(rng, 4, 3, 3), rnd(rng, 4, 3, 2)][: len(which)]
    args = [s if w else s[0] for s, w in zip(stacked, which, strict=True)]
    in_axes = tuple(0 if w else None for w in which)
    got = ds.vmap(f, in_axes=in_axes)(*args)
    want = np.stack(
        [f(*[a[i] if w else a for a, w in zip(args, which, strict=True)]) for i in range(4)]
    )
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
