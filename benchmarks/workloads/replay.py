"""Replay: the overhead workload's value_and_grad, traced once into a graph and replayed."""

from __future__ import annotations

from ._common import jax_blocking, jax_float64
from ._spec import Impl, Thunk, Workload
from .overhead import PRIMITIVES, STEPS, _chain, _numpy, _x0, reference


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp

    x = _x0()
    graph = ds.trace(ds.value_and_grad(lambda x: dnp.sum(_chain(dnp.sin, x))))(x)
    return lambda: graph(x)


def _jax_jit() -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    f = jax_blocking(jax.jit(jax.value_and_grad(lambda x: jnp.sum(_chain(jnp.sin, x)))))
    x = jnp.asarray(_x0())
    return lambda: f(x)


WORKLOAD = Workload(
    name="replay",
    title="Graph replay",
    description=(
        f"The `overhead` workload ({STEPS} × `x = sin(x) * 1.0001 + 0.01` on a float64 array "
        "of shape (8,), then the sum), its `value_and_grad` traced once with `ds.trace` "
        "(forward and backward pass in one graph, traced outside the timing) and replayed "
        f"on plain arrays. Time per call divided by {PRIMITIVES} forward primitives, as in "
        "`overhead`. The graph holds 6000 operations (the 3001 forward ones, then per step "
        "`cos` and two multiplications), the same NumPy calls as the hand-written version; "
        "what bounds the replay is NumPy's own cost per call at this size (about 0.5–0.8 µs) "
        "plus one step of the executor's loop (a tuple unpack and slot reads and writes)."
    ),
    unit="µs / primitive",
    scale=1e6 / PRIMITIVES,
    target=1.2,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.trace(ds.value_and_grad(f))(x)` once, then `graph(x)`"),
        "numpy": Impl(_numpy, "forward loop storing `cos(x)`, backward loop"),
        "jax-jit": Impl(_jax_jit, "`jax.jit(jax.value_and_grad(f))(x)`"),
    },
    issue_refs={"numpy": 1.13, "jax-jit": 0.19},
)
