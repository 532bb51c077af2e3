"""Shared fixtures for the diffsys.systems tests."""

from __future__ import annotations

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A Generator seeded from the test's id: reproducible, different per parameter set."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
