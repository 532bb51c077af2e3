"""Hessian-vector product of the extended Rosenbrock function, n = 10,000."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import (
    jax_blocking,
    jax_float64,
    rosenbrock_hessian_bands,
    rosenbrock_terms,
    torch_single_thread,
)
from ._spec import Impl, Thunk, Workload

N = 10_000


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal(N), rng.standard_normal(N)


def _numpy_hvp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The exact product with the tridiagonal Hessian."""
    diag, off = rosenbrock_hessian_bands(x)
    hv = diag * v
    hv[:-1] += off * v[1:]
    hv[1:] += off * v[:-1]
    return hv


def reference() -> tuple[np.ndarray, ...]:
    return (_numpy_hvp(*_inputs()),)


def _numpy() -> Thunk:
    x, v = _inputs()
    return lambda: _numpy_hvp(x, v)


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp

    def f(x: Any) -> Any:
        return dnp.sum(rosenbrock_terms(x))

    x, v = _inputs()
    return lambda: ds.hvp(f, (x,), (v,))


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    grad_f = autograd.grad(lambda x: anp.sum(rosenbrock_terms(x)))
    x, v = _inputs()
    return lambda: autograd.make_jvp(grad_f)(x)(v)[1]


def _torch() -> Thunk:
    torch = torch_single_thread()
    x, v = (torch.tensor(a, dtype=torch.float64) for a in _inputs())
    x.requires_grad_(True)

    def run() -> Any:
        (g,) = torch.autograd.grad(torch.sum(rosenbrock_terms(x)), x, create_graph=True)
        (hv,) = torch.autograd.grad(g, x, v)
        return hv

    return run


def _jax(jit: bool) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    grad_f = jax.grad(lambda x: jnp.sum(rosenbrock_terms(x)))

    def hvp(x: Any, v: Any) -> Any:
        return jax.jvp(grad_f, (x,), (v,))[1]

    f = jax_blocking(jax.jit(hvp) if jit else hvp)
    x, v = (jnp.asarray(a) for a in _inputs())
    return lambda: f(x, v)


WORKLOAD = Workload(
    name="hvp",
    title="Hessian-vector product",
    description=(
        "`H(x) @ v` for the extended Rosenbrock function "
        "`f(x) = sum(100*(x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)`, "
        f"n = {N:,}, float64, x and v standard normal (seed 0). Forward-over-reverse where the "
        "framework offers it; PyTorch uses double backward, its fastest sensible form "
        "(`torch.func.jvp(torch.func.grad(f))` and `torch.autograd.functional.hvp` measured "
        "slower here). "
        "What bounds diffsys: about 42 NumPy calls on 10^4 values (the backward pass under "
        "forward mode computes values and tangents) plus about 110 dispatches through two "
        "trace levels; with glibc's default allocator (`DIFFSYS_MALLOC_TUNING=0`) page "
        "faults on fresh arrays made the same call 3x slower (1.9 ms)."
    ),
    unit="ms",
    scale=1e3,
    target=0.25,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.hvp(f, (x,), (v,))`"),
        "numpy": Impl(_numpy, "exact tridiagonal product"),
        "autograd": Impl(_autograd, "`autograd.make_jvp(autograd.grad(f))(x)(v)`"),
        "torch": Impl(_torch, "`torch.autograd.grad` twice, `create_graph=True`"),
        "jax": Impl(lambda: _jax(jit=False), "`jax.jvp(jax.grad(f), (x,), (v,))`"),
        "jax-jit": Impl(lambda: _jax(jit=True), "the same under `jax.jit`"),
    },
    issue_refs={"autograd": 0.68, "torch": 1.79},
)
