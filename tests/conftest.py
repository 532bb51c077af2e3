"""Shared by every test folder: this folder is on ``sys.path`` (the test folders are not
packages), so test modules import the shared helpers here, e.g. ``from doc_samples import
Guide``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


# --- oracle tests must run in CI -----------------------------------------------------------------
# Tests that compare with PyTorch skip (pytest.importorskip) where torch is not installed, which
# keeps them optional locally. Under CI=true such a skip fails the run: CI installs the `oracle`
# extra, so a skip there means the oracle stopped running, not that it is unavailable.

ORACLE_MODULES = ("torch", "dask.distributed", "tslearn", "numba")  # all in `test`
_oracle_skips: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _note_oracle_skip(report) -> None:
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    if any(f"'{name}'" in reason for name in ORACLE_MODULES):
        _oracle_skips.append(f"{report.nodeid}: {reason}")


def pytest_collectreport(report) -> None:
    _note_oracle_skip(report)  # a module-level importorskip skips the whole file


def pytest_runtest_logreport(report) -> None:
    _note_oracle_skip(report)


def pytest_sessionfinish(session, exitstatus) -> None:
    if not (_oracle_skips and _in_ci()):
        return
    listing = "\n".join(f"  {line}" for line in _oracle_skips)
    sys.stderr.write(
        f"\nCI=true but {len(_oracle_skips)} oracle test(s) or file(s) skipped for want of "
        f"{' / '.join(ORACLE_MODULES)}:\n{listing}\n"
        'install the oracle extra (pip install -e ".[oracle]") so they run\n'
    )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
