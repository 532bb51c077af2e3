"""Per-primitive overhead: value_and_grad of a 1000-step elementwise chain on 8 floats."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

STEPS = 1000
PRIMITIVES = 3 * STEPS + 1  # sin, multiply, add per step, plus the final sum


def _x0() -> np.ndarray:
    return np.linspace(0.1, 1.0, 8)


def _chain(sin: Any, x: Any) -> Any:
    for _ in range(STEPS):
        x = sin(x) * 1.0001 + 0.01
    return x


def _numpy_value_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Hand-written reverse mode: the forward pass stores cos(x), the backward pass loops."""
    cosines = []
    for _ in range(STEPS):
        cosines.append(np.cos(x))
        x = np.sin(x) * 1.0001 + 0.01
    value = x.sum()
    g = np.ones_like(x)
    for c in reversed(cosines):
        g = g * 1.0001 * c
    return value, g


def reference() -> tuple[np.ndarray, ...]:
    value, g = _numpy_value_and_grad(_x0())
    return np.asarray(value), g


def _numpy() -> Thunk:
    x = _x0()
    return lambda: _numpy_value_and_grad(x)


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp

    f = ds.value_and_grad(lambda x: dnp.sum(_chain(dnp.sin, x)))
    x = _x0()
    return lambda: f(x)


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    f = autograd.value_and_grad(lambda x: anp.sum(_chain(anp.sin, x)))
    x = _x0()
    return lambda: f(x)


def _torch() -> Thunk:
    torch = torch_single_thread()
    x = torch.tensor(_x0(), dtype=torch.float64, requires_grad=True)

    def run() -> tuple[Any, Any]:
        x.grad = None
        value = torch.sum(_chain(torch.sin, x))
        value.backward()
        return value.detach(), x.grad

    return run


def _jax(jit: bool) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    f = jax.value_and_grad(lambda x: jnp.sum(_chain(jnp.sin, x)))
    f = jax_blocking(jax.jit(f) if jit else f)
    x = jnp.asarray(_x0())
    return lambda: f(x)


WORKLOAD = Workload(
    name="overhead",
    title="Per-primitive overhead",
    description=(
        f"`value_and_grad` of `sum(chain(x))`, where `chain` applies {STEPS} times "
        "`x = sin(x) * 1.0001 + 0.01` to a float64 array of shape (8,). "
        f"Time per call (forward + backward) divided by {PRIMITIVES} primitives "
        f"({3 * STEPS} chain operations + the sum). "
        "What bounds diffsys: NumPy itself costs about 0.65 µs per operation forward and "
        "0.6 µs backward at this size (the hand-written row); recording an operation in "
        "CPython (operator dispatch, one tape tuple, one tracer object) costs at least "
        "0.45 µs in a minimal recorder, and diffsys's recorder adds its checks for nesting "
        "levels and special primitives on top."
    ),
    unit="µs / primitive",
    scale=1e6 / PRIMITIVES,
    target=2.5,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.value_and_grad(f)(x)`"),
        "numpy": Impl(_numpy, "forward loop storing `cos(x)`, backward loop"),
        "autograd": Impl(_autograd, "`autograd.value_and_grad(f)(x)`"),
        "torch": Impl(_torch, "`requires_grad` tensor, `.backward()`"),
        "jax": Impl(lambda: _jax(jit=False), "`jax.value_and_grad(f)(x)`"),
        "jax-jit": Impl(lambda: _jax(jit=True), "`jax.jit(jax.value_and_grad(f))(x)`"),
    },
    issue_refs={"numpy": 1.13, "torch": 5.7, "autograd": 11.7},
)
