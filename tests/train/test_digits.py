"""Acceptance: the digits examples reach their accuracy targets with fixed seeds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import digits_cnn  # noqa: E402
import digits_mlp  # noqa: E402


def test_mlp_on_digits_reaches_97_percent():
    _, acc = digits_mlp.run(epochs=25, seed=0, verbose=False)
    assert acc >= 0.97


def test_cnn_on_digits_reaches_98_percent():
    _, acc = digits_cnn.run(epochs=12, seed=0, verbose=False)
    assert acc >= 0.98
