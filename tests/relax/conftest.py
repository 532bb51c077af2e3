"""Shared fixtures for the diffsys.relax tests: seeded generators and the reference vectors."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A Generator seeded from the test's id: reproducible, and different per parameter set.

    Set ``DIFFSYS_TEST_SEED`` to draw other (equally reproducible) inputs.
    """
    salt = os.environ.get("DIFFSYS_TEST_SEED", "")
    return np.random.default_rng(zlib.crc32((salt + request.node.nodeid).encode()))


DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def soft_sort_reference() -> dict:
    """The torchsort reference values for soft_rank / soft_sort, kept in ``tests/relax/data``.

    A copy of ``shared/fixtures/soft_sort_reference.json`` (computed with torchsort 0.1.10 in
    float64), stored in the repository so that every clone runs the check.
    """
    with open(DATA / "soft_sort_reference.json") as f:
        return json.load(f)
