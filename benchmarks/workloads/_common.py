"""Functions shared by the workloads: the test functions and result conversion."""

from __future__ import annotations

from typing import Any

import numpy as np


def torch_single_thread() -> Any:
    """Import PyTorch pinned to one thread (intra- and inter-op) and return the module."""
    import torch

    torch.set_num_threads(1)
    if torch.get_num_interop_threads() != 1:  # settable once per process, before any work
        torch.set_num_interop_threads(1)
    return torch


def jax_float64() -> Any:
    """Import JAX with float64 enabled (all workloads are float64) and return the module."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    return jax


def jax_blocking(fn: Any) -> Any:
    """Wrap a JAX function so each call waits for its (asynchronously dispatched) result."""
    import jax

    return lambda *args: jax.block_until_ready(fn(*args))


def rosenbrock_terms(x: Any) -> Any:
    """The terms of the extended Rosenbrock function; any array type with operators."""
    return 100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2


def rosenbrock_hessian_bands(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact (tridiagonal) Hessian of the Rosenbrock function: diagonal, off-diagonal."""
    diag = np.zeros_like(x)
    diag[:-1] += 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    diag[1:] += 200.0
    return diag, -400.0 * x[:-1]


def to_numpy(result: Any) -> tuple[np.ndarray, ...]:
    """Flatten a framework's result (array, scalar, or tuple of them) to float64 arrays."""
    if isinstance(result, tuple | list):
        return tuple(a for r in result for a in to_numpy(r))
    if hasattr(result, "detach"):  # torch.Tensor
        result = result.detach().cpu().numpy()
    return (np.asarray(result, dtype=np.float64),)


def relative_error(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> float:
    """Largest norm-wise relative error ``max|got - want| / max|want|`` over the parts."""
    if len(got) != len(want):
        return float("inf")
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        if g.shape != w.shape:
            return float("inf")
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        err = float(np.max(np.abs(g - w))) if w.size else 0.0
        worst = max(worst, err / scale if scale > 0 else err)
    return worst
