"""The runtime_dispatch workload: its hand-written NumPy adjoint (the reference) agrees with
diffsys's gradient of ``smooth_dispatch`` and with PyTorch's when installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from workloads import WORKLOADS  # noqa: E402
from workloads._common import relative_error, to_numpy  # noqa: E402


@pytest.mark.parametrize("framework", ["diffsys", "torch"])
def test_runtime_dispatch_matches_the_hand_written_adjoint(framework):
    w = WORKLOADS["runtime_dispatch"]
    if framework == "torch":
        pytest.importorskip("torch")
    want = w.reference()
    got = to_numpy(w.impls[framework].build()())
    assert relative_error(got, want) <= w.tolerance
    assert float(abs(want[1]).max()) > 0
