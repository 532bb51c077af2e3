"""The compiler_relaxed_schedule workload: its hand-written NumPy adjoint (the reference)
agrees with diffsys's gradient of ``relaxed_schedule_cost`` and with every installed peer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from workloads import WORKLOADS  # noqa: E402
from workloads._common import relative_error, to_numpy  # noqa: E402


@pytest.mark.parametrize("framework", ["diffsys", "torch", "autograd", "jax-jit"])
def test_compiler_relaxed_schedule_matches_the_hand_written_adjoint(framework):
    w = WORKLOADS["compiler_relaxed_schedule"]
    module = {"torch": "torch", "autograd": "autograd", "jax-jit": "jax"}.get(framework)
    if module:
        pytest.importorskip(module)
    want = w.reference()
    got = to_numpy(w.impls[framework].build()())
    assert len(got) == len(want) == 6
    assert relative_error(got, want) <= w.tolerance
    assert all(float(abs(g).max()) > 0 for g in want[1:])
