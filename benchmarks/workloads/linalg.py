"""Gradient of ``slogdet(A) + trace(solve(A, B))`` with respect to A, 256 x 256 SPD A."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

N = 256


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    m = rng.standard_normal((N, N))
    a = m @ m.T / N + np.eye(N)  # symmetric positive definite, well conditioned
    return a, rng.standard_normal((N, N))


def _numpy_grad(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A^-T - (A^-1 B A^-1)^T`` from one LU factorization (scipy.linalg.lu_factor)."""
    import scipy.linalg

    lu = scipy.linalg.lu_factor(a)
    x = scipy.linalg.lu_solve(lu, b)  # A^-1 B
    # d/dA tr(A^-1 B) = -A^-T (A^-1 B)^T ; d/dA log|det A| = A^-T: both as one solve with A^T
    return scipy.linalg.lu_solve(lu, np.eye(len(a)) - x.T, trans=1)


def reference() -> tuple[np.ndarray, ...]:
    a, b = _inputs()
    ai = np.linalg.inv(a)
    return (ai.T - (ai @ b @ ai).T,)


# diffsys's solves reuse the LU factorization of the very same unchanged array (its forward
# solve, slogdet and backward solves share one). So that no factorization carries over from
# one timed call to the next, the NumPy-array frameworks get a fresh copy of A at every call
# (the copy, about 0.03 ms, is in their times; PyTorch and JAX keep no such cache).


def _numpy() -> Thunk:
    a, b = _inputs()
    return lambda: _numpy_grad(a.copy(), b)


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp

    a, b = _inputs()
    trace = getattr(dnp, "trace", None) or (lambda x: dnp.einsum("ii->", x))

    def f(x: Any) -> Any:
        return dnp.linalg.slogdet(x)[1] + trace(dnp.linalg.solve(x, b))

    g = ds.grad(f)
    return lambda: g(a.copy())


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    a, b = _inputs()
    g = autograd.grad(lambda x: anp.linalg.slogdet(x)[1] + anp.trace(anp.linalg.solve(x, b)))
    return lambda: g(a.copy())


def _torch() -> Thunk:
    torch = torch_single_thread()
    a, b = (torch.tensor(v, dtype=torch.float64) for v in _inputs())
    a.requires_grad_(True)

    def run() -> Any:
        loss = torch.linalg.slogdet(a)[1] + torch.trace(torch.linalg.solve(a, b))
        (g,) = torch.autograd.grad(loss, a)
        return g

    return run


def _jax(jit: bool) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    a, b = (jnp.asarray(v) for v in _inputs())
    g = jax.grad(lambda x: jnp.linalg.slogdet(x)[1] + jnp.trace(jnp.linalg.solve(x, b)))
    f = jax_blocking(jax.jit(g) if jit else g)
    return lambda: f(a)


WORKLOAD = Workload(
    name="linalg",
    title="Linear-algebra gradient",
    description=(
        "`grad_A [log|det A| + trace(solve(A, B))]` for a 256 x 256 symmetric positive-definite "
        "A (`M M^T / n + I`, M standard normal) and a standard-normal 256 x 256 B, float64, "
        "seed 0. The hand-written NumPy version factors A once (LU) and does two solves; "
        "diffsys also factors A once per call (its forward solve, slogdet and backward solves "
        "share the factorization of the same array). NumPy, diffsys and autograd get a fresh "
        "copy of A at every call, so no factorization carries over between timed calls (the "
        "copy is in their times). The issue sets no number: the target is ours, 1.5 x that "
        "hand-written version."
    ),
    unit="ms",
    scale=1e3,
    target=6.0,
    own_target=True,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.grad(f)` with `dnp.linalg.slogdet`, `dnp.linalg.solve`"),
        "numpy": Impl(_numpy, "one LU factorization, two solves (SciPy)"),
        "autograd": Impl(_autograd, "`autograd.grad(f)`"),
        "torch": Impl(_torch, "`torch.autograd.grad`, `torch.linalg`"),
        "jax": Impl(lambda: _jax(jit=False), "`jax.grad(f)`"),
        "jax-jit": Impl(lambda: _jax(jit=True), "the same under `jax.jit`"),
    },
)
