"""The PyTorch DDP peer of the dp_round workloads (benchmarks/workloads/distributed.py):
two gloo ranks give the reference loss and gradients, and end when closed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from workloads import WORKLOADS  # noqa: E402
from workloads._common import relative_error, to_numpy  # noqa: E402


def test_ddp_peer_matches_the_reference_and_stops():
    pytest.importorskip("torch")  # the oracle/bench extras; CI installs it
    w = WORKLOADS["dp_round_dask2"]
    thunk = w.impls["torch"].build()
    try:
        first = to_numpy(thunk())
        again = to_numpy(thunk())  # the ranks serve round after round
    finally:
        thunk.close()
    want = w.reference()
    assert relative_error(first, want) <= w.tolerance
    assert relative_error(again, want) <= w.tolerance
    assert [p.poll() for p in thunk.ranks] == [0, 0]  # both ranks ended cleanly
