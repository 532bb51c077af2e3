"""The benchmark report states what was measured: each workload's dtype and tolerance, whose
target it is, what the checks compare, and timed calls that start from the same state."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _report  # noqa: E402
from workloads import WORKLOADS  # noqa: E402
from workloads._common import relative_error, to_numpy  # noqa: E402

FLOAT32 = ("mlp_step_f32", "cnn_step")
# float64 workloads whose reference is a central difference (bilinear resampling inside: no
# complex step, no closed form), so it is accurate to about 1e-7, not 1e-8; the report
# states their tolerance beside the float32 ones
FINITE_DIFFERENCE_REFERENCE = {"augment_match_step": 1e-6}


def test_float32_workloads_say_so_and_their_tolerance():
    for name, w in WORKLOADS.items():
        assert w.dtype == ("float32" if name in FLOAT32 else "float64"), name
        if name in FINITE_DIFFERENCE_REFERENCE:
            assert w.tolerance == FINITE_DIFFERENCE_REFERENCE[name], name
            continue
        assert (w.tolerance > 1e-8) == (w.dtype == "float32"), name
    method = _report._method(list(WORKLOADS.values()))
    assert "≤ 1e-8 for the float64 workloads" in method
    for name in FLOAT32:
        assert f"`{name}` (float32, ≤ 1e-4)" in method
        line = _report._check_line(WORKLOADS[name])
        assert "computes in float32" in line and "≤ 1e-4" in line
    for name, tol in FINITE_DIFFERENCE_REFERENCE.items():
        assert f"`{name}` (float64, ≤ {_report._tol(tol)})" in method
    assert "All arithmetic is float64" not in method
    assert "computes in float64" in _report._check_line(WORKLOADS["overhead"])


def test_own_targets_are_not_called_the_issues():
    own = {n for n, w in WORKLOADS.items() if w.own_target}
    assert {"linalg", "fft", "neuralsort_forward", "mass_spring_scan"} <= own
    assert "overhead" not in own and "mlp_step_f64" not in own
    for name, w in WORKLOADS.items():
        if w.series is not None:
            continue
        line = _report._target_line(w, None, {})
        if name in own:
            assert "the project's own; no issue sets one" in line and "issue)" not in line
        else:
            assert "(from the issue)" in line


@pytest.mark.parametrize("name", FLOAT32 + ("mlp_step_f64",))
def test_training_step_checks_compare_gradients(name):
    w = WORKLOADS[name]
    want = w.reference()
    got = to_numpy(w.impls["numpy"].build()())
    assert relative_error(got, want) <= w.tolerance
    # the outputs are the gradients, then the updated parameters (same shapes, in order)
    half = len(want) // 2
    assert len(want) == 2 * half and [g.shape for g in want[:half]] == [
        p.shape for p in want[half:]
    ]
    # a gradient 10x the tolerance off must fail the check, whatever the update hides
    wrong = tuple(g * (1 + 10 * w.tolerance) for g in got[:half]) + got[half:]
    assert relative_error(wrong, want) > w.tolerance


def test_linalg_factors_a_once_per_timed_call(monkeypatch):
    # diffsys caches the LU of an unchanged array: a timed call must not reuse the previous
    # call's factorization (NumPy's version factors at every call)
    import scipy.linalg

    calls = []
    original = scipy.linalg.lu_factor
    monkeypatch.setattr(
        scipy.linalg, "lu_factor", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    for framework in ("diffsys", "numpy"):
        thunk = WORKLOADS["linalg"].impls[framework].build()
        thunk()
        calls.clear()
        thunk()
        thunk()
        assert len(calls) == 2, (framework, len(calls))
    assert np.isfinite(relative_error(to_numpy(thunk()), WORKLOADS["linalg"].reference()))


@pytest.mark.parametrize("name", ["jit_mlp_step_f64", "jit_hvp", "jit_overhead"])
def test_jit_workloads_return_what_their_reference_returns(name):
    """A ds.jit workload must compute what its eager twin's reference computes (the MLP
    step's reference returns gradients and updated parameters): a check that differs in
    structure reports a mismatch (relative error inf) and times nothing meaningful."""
    w = WORKLOADS[name]
    got = to_numpy(w.impls["diffsys"].build()())
    assert relative_error(got, w.reference()) <= w.tolerance


def test_decision_tables_become_the_reports_last_section():
    import run

    text = "# Decisions (issue 21)\n\n`python benchmarks/decisions.py`, today\n\n## Runtime\n|a|\n"
    section = run.decisions_section(text)
    lines = section.splitlines()
    assert lines[0] == "## Decisions (issue 21)" and "### Runtime" in lines
    assert "docs/benchmarks-decisions.md" in lines[2] and "|a|" in lines
    assert run.DECISIONS.name == "benchmarks-decisions.md"
