"""systems.data.psnr: the one PSNR the render demo and systems.compress share."""

from __future__ import annotations

import doctest

import numpy as np

import diffsys.systems.data.metrics as metrics
from diffsys.systems.data import psnr


def test_psnr_against_its_definition_and_peak():
    rng = np.random.default_rng(0)
    a, b = rng.random((8, 8)), rng.random((8, 8))
    mse = np.mean((a - b) ** 2)
    assert abs(psnr(a, b) - 10 * np.log10(1 / mse)) < 1e-12
    assert abs(psnr(255 * a, 255 * b, 255.0) - psnr(a, b)) < 1e-9
    assert psnr(a, a) == float("inf") and isinstance(psnr(a, b), float)
    u8 = (255 * a).astype(np.uint8)  # integer images do not wrap around
    assert abs(psnr(u8, u8 + 1, 255.0) - 10 * np.log10(255.0**2)) < 1e-9


def test_psnr_docstring():
    assert doctest.testmod(metrics).failed == 0
