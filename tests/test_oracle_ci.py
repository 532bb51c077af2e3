"""Under CI=true a PyTorch oracle test that skips fails the run (tests/conftest.py); locally it
may skip. Checked by running a small pytest session with the real conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

ORACLE_TESTS = '''
import sys
import pytest

sys.modules["torch"] = None  # as if torch were not installed: importing it fails
torch = pytest.importorskip("torch")


def test_matches_torch():
    pass
'''

ORACLE_TEST_IN_FUNCTION = '''
import sys
import pytest


def test_sgd_matches_torch():
    sys.modules["torch"] = None
    pytest.importorskip("torch")
'''

OTHER_SKIP = '''
import pytest


def test_something_else():
    pytest.skip("not on this platform")
'''


def _session(tmp_path, files: dict[str, str], ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )


ORACLES = {"test_oracle_module.py": ORACLE_TESTS, "test_oracle_fn.py": ORACLE_TEST_IN_FUNCTION}


@pytest.mark.parametrize("ci", ["true", "1"])
def test_an_oracle_skip_fails_under_ci(tmp_path, ci):
    proc = _session(tmp_path, ORACLES, ci)
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, proc.stdout + proc.stderr
    assert "2 oracle test(s) or file(s) skipped" in proc.stderr, proc.stderr
    assert "test_oracle_module.py" in proc.stderr and "test_sgd_matches_torch" in proc.stderr
    assert 'pip install -e ".[oracle]"' in proc.stderr


def test_an_oracle_skip_is_allowed_locally(tmp_path):
    for ci in (None, "false"):
        proc = _session(tmp_path, ORACLES, ci)
        assert proc.returncode == pytest.ExitCode.OK, proc.stdout + proc.stderr
        assert "2 skipped" in proc.stdout and "oracle" not in proc.stderr


def test_other_skips_are_allowed_under_ci(tmp_path):
    proc = _session(tmp_path, {"test_other.py": OTHER_SKIP}, "true")
    assert proc.returncode == pytest.ExitCode.OK, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout
