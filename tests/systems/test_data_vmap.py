"""Every data stage maps over a batch with ds.vmap like the batched call (per-example use,
e.g. per-example gradients)."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.data import (
    AffineWarp,
    Binarize,
    LearnableBlur,
    Normalize,
    Resize,
)

STAGES = {
    "blur": LearnableBlur(0.8, radius=2),
    "blur_taps": LearnableBlur([0.6, 0.9, 1.2], channels=3, radius=2, method="taps"),
    "threshold": Binarize(0.4, 5.0),
    "normalize": Normalize(3, stats="instance"),
    "warp": AffineWarp(init=[[1.1, 0.1, 0.05], [0.02, 0.9, 0.03]]),
    "resize": Resize((4, 6)),
}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_vmap_matches_the_batched_call(name, rng):
    stage = STAGES[name]
    x = rng.random((3, 3, 5, 5))
    mapped = ds.vmap(lambda xi: stage(xi[None])[0])(x)
    np.testing.assert_allclose(mapped, stage(x), atol=1e-12)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_per_example_input_gradients(name, rng):
    stage = STAGES[name]
    x = rng.random((3, 3, 5, 5))
    loss = lambda xi: dnp.sum(stage(xi[None]) ** 2)
    per_example = ds.vmap(ds.grad(loss))(x)
    looped = np.stack([ds.grad(loss)(xi) for xi in x])
    np.testing.assert_allclose(per_example, looped, atol=1e-10)
