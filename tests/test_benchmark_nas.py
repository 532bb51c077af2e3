"""The nas_darts_step and augment_match_step workloads: diffsys (and PyTorch, when installed)
agree with the references (a hand-written NumPy adjoint of the supernet; central
differences of the relaxed policy)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from workloads import WORKLOADS  # noqa: E402
from workloads._common import relative_error, to_numpy  # noqa: E402

_REFERENCES: dict = {}


def _reference(name):
    if name not in _REFERENCES:
        _REFERENCES[name] = WORKLOADS[name].reference()
    return _REFERENCES[name]


@pytest.mark.parametrize(
    "name, framework",
    [
        (name, framework)
        for name in ("nas_darts_step", "augment_match_step")
        for framework in ("diffsys", "torch", "numpy")
        if framework in WORKLOADS[name].impls
    ],
)
def test_workload_matches_its_reference(name, framework):
    w = WORKLOADS[name]
    if framework == "torch":
        pytest.importorskip("torch")
    want = _reference(name)
    got = to_numpy(w.impls[framework].build()())
    assert relative_error(got, want) <= w.tolerance
    assert all(float(abs(a).max()) > 0 for a in want)  # every gradient is exercised
