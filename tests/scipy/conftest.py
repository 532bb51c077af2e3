"""Shared fixtures for the diffsys.scipy tests."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A Generator seeded from the test's id: reproducible, and different per parameter set.

    Set ``DIFFSYS_TEST_SEED`` to draw other (equally reproducible) inputs.
    """
    salt = os.environ.get("DIFFSYS_TEST_SEED", "")
    return np.random.default_rng(zlib.crc32((salt + request.node.nodeid).encode()))
