"""diffsys keeps freed memory for reuse on glibc, unless told not to."""

import subprocess
import sys

import pytest

SNIPPET = "import diffsys._malloc as m, diffsys; print(m.tuned)"


def _tuned(env_extra: dict[str, str]) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("DIFFSYS_MALLOC_TUNING", None)
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tuned_by_default_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _tuned({}) == "True"


def test_opt_out_and_user_settings_are_respected():
    assert _tuned({"DIFFSYS_MALLOC_TUNING": "0"}) == "False"
    assert _tuned({"MALLOC_TRIM_THRESHOLD_": "131072"}) == "False"
