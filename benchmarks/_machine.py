"""A description of the machine and software versions, for the report header."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("diffsys", "numpy", "autograd", "torch", "jax", "jaxlib")
LOAD_KEY = "Load average (1, 5, 15 min)"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision(repo: Path) -> str:
    """``<short hash>`` of the checkout, with ``+dirty`` when ``src/`` has local changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as text."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info(repo: Path) -> dict[str, str]:
    """Ordered facts for the report: CPU, cores, load, OS, Python, package versions, date."""
    try:
        usable = str(len(os.sched_getaffinity(0)))
    except AttributeError:
        usable = "?"
    info = {
        "CPU": cpu_model(),
        "Cores": f"{os.cpu_count()} logical ({usable} usable by this process)",
        LOAD_KEY: f"{load_average()} at start",
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
    }
    for name in PACKAGES:
        info[name] = package_version(name)
    info["diffsys"] += f" (git {git_revision(repo)})"
    info["Date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return info
