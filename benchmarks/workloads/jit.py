"""``ds.jit`` against eager diffsys: the MLP step, the overhead chain and the HVP, jitted.

Each workload is its eager twin (``mlp_step_f64``, ``overhead``, ``hvp``) with the function
wrapped in ``ds.jit``; the targets are relative to the eager diffsys row of the same run
(the MLP step no slower, the chain and the HVP at least twice as fast). The first call traces
and optimizes the graph: the report's "first call" column is the compile time. The builders
import ``diffsys.nn`` beforehand (tracing names pytree leaves with it), so a one-time module
import is not counted as compile time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import hvp, mlp_step, overhead
from ._common import jax_blocking, jax_float64, rosenbrock_terms
from ._spec import Impl, Thunk, Workload

# --- the MLP step ----------------------------------------------------------------------------


def _mlp_diffsys(dtype, backend: str = "numpy") -> Thunk:
    import diffsys as ds
    from diffsys import nn, optim

    params, x, y = mlp_step._inputs(dtype)
    model = nn.Sequential(
        [
            nn.Linear(784, 512, key=0, dtype=dtype),
            nn.tanh,
            nn.Linear(512, 512, key=0, dtype=dtype),
            nn.tanh,
            nn.Linear(512, 10, key=0, dtype=dtype),
        ]
    )
    model = ds.tree_unflatten(ds.tree_structure(model), params)
    opt = optim.sgd(mlp_step.LR)
    opt_state = opt.init(model)

    @ds.jit(backend=backend)
    def step(model, opt_state, x, y):
        _, grads = ds.value_and_grad(lambda m, x, y: nn.cross_entropy(m(x), y))(model, x, y)
        updates, opt_state = opt.update(grads, opt_state, model)
        return optim.apply_updates(model, updates), opt_state, grads

    def run():  # gradients and updated parameters, as mlp_step's reference
        new, _, grads = step(model, opt_state, x, y)
        return tuple(ds.tree_leaves(grads)) + tuple(ds.tree_leaves(new))

    return run


def _mlp_jax(dtype) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    params, x, y = mlp_step._inputs(dtype)

    def loss(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        h = jnp.tanh(x @ w1.T + b1)
        h = jnp.tanh(h @ w2.T + b2)
        logp = jax.nn.log_softmax(h @ w3.T + b3)
        return -jnp.mean(logp[jnp.arange(len(y)), y])

    @jax.jit
    def step(params, x, y):
        g = jax.grad(loss)(params, x, y)
        return tuple(g) + tuple(p - mlp_step.LR * gp for p, gp in zip(params, g, strict=True))

    f = jax_blocking(step)
    params = tuple(jnp.asarray(p) for p in params)
    x, y = jnp.asarray(x), jnp.asarray(y)
    return lambda: f(params, x, y)


MLP_F64 = Workload(
    name="jit_mlp_step_f64",
    title="ds.jit: MLP training step, float64",
    description=(
        "The `mlp_step_f64` workload (one SGD step of an MLP 784-512-512-10, tanh, softmax "
        "cross-entropy with integer labels, batch 256) with the whole step (`value_and_grad`, "
        "`optim.sgd` update, `optim.apply_updates`) inside `ds.jit`: the model, optimizer "
        "state, inputs and labels are arguments, the updated model comes back as a "
        "`Sequential`. The replay runs the same NumPy calls as eager mode without tracers or "
        "tape: the target is to be no slower than eager diffsys in the same run."
    ),
    unit="ms",
    scale=1e3,
    target=mlp_step.WORKLOAD_F64.target,
    relative_target=("mlp_step_f64", "diffsys", 1.0),
    reference=mlp_step._reference(np.float64),
    impls={
        "diffsys": Impl(lambda: _mlp_diffsys(np.float64), "`ds.jit` of the step"),
        "diffsys-numba": Impl(
            lambda: _mlp_diffsys(np.float64, "numba"), '`ds.jit(..., backend="numba")`'
        ),
        "numpy": Impl(lambda: mlp_step._numpy(np.float64), "hand-written backward"),
        "jax-jit": Impl(lambda: _mlp_jax(np.float64), "`jax.jit` of the step"),
    },
)


# --- the overhead chain ------------------------------------------------------------------------


def _overhead_diffsys(backend: str = "numpy") -> Thunk:
    import diffsys as ds
    import diffsys.nn  # noqa: F401 - a one-time import, not compile time
    import diffsys.numpy as dnp

    f = ds.jit(ds.value_and_grad(lambda x: dnp.sum(overhead._chain(dnp.sin, x))), backend=backend)
    x = overhead._x0()
    return lambda: f(x)


OVERHEAD = Workload(
    name="jit_overhead",
    title="ds.jit: per-primitive overhead",
    description=(
        "The `overhead` workload (`value_and_grad` of a chain of "
        f"{overhead.STEPS} × `x = sin(x) * 1.0001 + 0.01` on 8 float64 values) wrapped in "
        "`ds.jit`: traced and optimized on the first call, then each call looks the "
        "signature up and replays the graph. Time per call divided by "
        f"{overhead.PRIMITIVES} primitives, as in `overhead`; the target is at least twice "
        "as fast as eager diffsys in the same run."
    ),
    unit="µs / primitive",
    scale=1e6 / overhead.PRIMITIVES,
    target=overhead.WORKLOAD.target / 2,
    relative_target=("overhead", "diffsys", 0.5),
    reference=overhead.reference,
    impls={
        "diffsys": Impl(_overhead_diffsys, "`ds.jit(ds.value_and_grad(f))(x)`"),
        "diffsys-numba": Impl(
            lambda: _overhead_diffsys("numba"), '`ds.jit(..., backend="numba")`: fused loops'
        ),
        "numpy": Impl(overhead._numpy, "forward loop storing `cos(x)`, backward loop"),
        "jax-jit": Impl(lambda: overhead._jax(jit=True), "`jax.jit(jax.value_and_grad(f))(x)`"),
    },
)


# --- the HVP ---------------------------------------------------------------------------------


def _hvp_diffsys(backend: str = "numpy") -> Thunk:
    import diffsys as ds
    import diffsys.nn  # noqa: F401 - a one-time import, not compile time
    import diffsys.numpy as dnp

    def f(x: Any) -> Any:
        return dnp.sum(rosenbrock_terms(x))

    product = ds.jit(lambda x, v: ds.hvp(f, (x,), (v,)), backend=backend)
    x, v = hvp._inputs()
    return lambda: product(x, v)


HVP = Workload(
    name="jit_hvp",
    title="ds.jit: Hessian-vector product",
    description=(
        f"The `hvp` workload (`H(x) @ v` of the extended Rosenbrock function, n = {hvp.N:,}, "
        "forward-over-reverse) with `ds.hvp` inside `ds.jit`: the graph holds the values and "
        "tangents of the backward pass as plain NumPy calls, replayed without the two trace "
        "levels. The target is at least twice as fast as eager diffsys in the same run."
    ),
    unit="ms",
    scale=1e3,
    target=hvp.WORKLOAD.target / 2,
    relative_target=("hvp", "diffsys", 0.5),
    reference=hvp.reference,
    impls={
        "diffsys": Impl(_hvp_diffsys, "`ds.jit(lambda x, v: ds.hvp(f, (x,), (v,)))`"),
        "diffsys-numba": Impl(lambda: _hvp_diffsys("numba"), '`ds.jit(..., backend="numba")`'),
        "numpy": Impl(hvp._numpy, "exact tridiagonal product"),
        "jax-jit": Impl(lambda: hvp._jax(jit=True), "`jax.jit` of `jax.jvp(jax.grad(f))`"),
    },
)

WORKLOADS = (OVERHEAD, HVP, MLP_F64)
