"""Thread pinning shared by the runner and its child processes.

The variables must be in the environment before NumPy, PyTorch or JAX is imported, so the
runner passes them to every child and the child applies them again before any import.
"""

from __future__ import annotations

import os

THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def apply_thread_env() -> None:
    """Force the single-thread settings into ``os.environ`` (call before numeric imports)."""
    os.environ.update(THREAD_ENV)


def child_env() -> dict[str, str]:
    """The environment for a child process: the current one plus the thread pinning."""
    env = dict(os.environ)
    env.update(THREAD_ENV)
    return env
