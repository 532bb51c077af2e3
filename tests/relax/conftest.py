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


def find_fixture(name: str) -> Path | None:
    """``shared/fixtures/<name>``: from ``$DIFFSYS_FIXTURES``, else the first ``shared/fixtures``
    (or ``fixtures`` beside a ``shared``-less checkout) found walking up from this file."""
    env = os.environ.get("DIFFSYS_FIXTURES")
    if env:
        path = Path(env) / name
        return path if path.is_file() else None
    for parent in Path(__file__).resolve().parents:
        path = parent / "shared" / "fixtures" / name
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="session")
def soft_sort_reference() -> dict:
    """The torchsort reference values for soft_rank / soft_sort (skips when absent)."""
    path = find_fixture("soft_sort_reference.json")
    if path is None:
        pytest.skip(
            "soft_sort_reference.json not found: set DIFFSYS_FIXTURES to the folder holding it "
            "(it lives in shared/fixtures beside the repository)"
        )
    with open(path) as f:
        return json.load(f)
