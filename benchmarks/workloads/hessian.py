"""Full Hessian of the extended Rosenbrock function, n = 100."""

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

N = 100


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(N)


def _numpy_hessian(x: np.ndarray) -> np.ndarray:
    """The exact dense Hessian, built from its three bands."""
    diag, off = rosenbrock_hessian_bands(x)
    return np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)


def reference() -> tuple[np.ndarray, ...]:
    return (_numpy_hessian(_x()),)


def _numpy() -> Thunk:
    x = _x()
    return lambda: _numpy_hessian(x)


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp

    h = ds.hessian(lambda x: dnp.sum(rosenbrock_terms(x)))
    x = _x()
    return lambda: h(x)


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    h = autograd.hessian(lambda x: anp.sum(rosenbrock_terms(x)))
    x = _x()
    return lambda: h(x)


def _torch() -> Thunk:
    torch = torch_single_thread()
    from torch.autograd.functional import hessian

    def f(x: Any) -> Any:
        return torch.sum(rosenbrock_terms(x))

    x = torch.tensor(_x(), dtype=torch.float64)
    return lambda: hessian(f, x, vectorize=True)


def _jax(jit: bool) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    h = jax.hessian(lambda x: jnp.sum(rosenbrock_terms(x)))
    h = jax_blocking(jax.jit(h) if jit else h)
    x = jnp.asarray(_x())
    return lambda: h(x)


WORKLOAD = Workload(
    name="hessian",
    title="Full Hessian",
    description=(
        "The dense Hessian of the extended Rosenbrock function, n = 100, float64, "
        "x standard normal (seed 0). PyTorch uses `torch.autograd.functional.hessian` with "
        "`vectorize=True`, faster here than `torch.func.hessian` and the unvectorized loop. "
        "diffsys computes `jacfwd(jacrev(f))`: one vmap over all 100 basis tangents of one "
        "jvp of one VJP, so about 58 NumPy calls on (100, 99) batches plus about 110 "
        "dispatches through three trace levels bound it."
    ),
    unit="ms",
    scale=1e3,
    target=0.5,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.hessian(f)(x)`"),
        "numpy": Impl(_numpy, "exact tridiagonal Hessian, densified"),
        "autograd": Impl(_autograd, "`autograd.hessian(f)(x)`"),
        "torch": Impl(_torch, "`torch.autograd.functional.hessian(f, x, vectorize=True)`"),
        "jax": Impl(lambda: _jax(jit=False), "`jax.hessian(f)(x)`"),
        "jax-jit": Impl(lambda: _jax(jit=True), "`jax.jit(jax.hessian(f))(x)`"),
    },
    issue_refs={"autograd": 9.95, "torch": 1.90},
)
