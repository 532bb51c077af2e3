"""A mass-spring chain simulated for 1000 steps, differentiated end to end (time and memory).

64 unit masses in 3-D, joined in a chain by 63 springs of stiffness ``k_i`` and rest length 1,
advanced by semi-implicit Euler (``v += dt * F(x); x += dt * v``, ``dt = 0.01``) for 1000
steps from ``x0`` with initial velocities ``v0``. The loss is the squared distance of the final
positions to a target; every framework returns ``(loss, dloss/dk, dloss/dv0)``.

Four workloads share the problem (``mass_spring*``), one per way diffsys runs the loop: a
Python loop under ``value_and_grad`` (peers: hand-written NumPy adjoint, autograd, PyTorch,
``jax.jit`` of ``lax.scan``), ``ds.scan`` storing everything, ``ds.scan`` with the sqrt
checkpointing policy (peer: PyTorch with ``torch.utils.checkpoint`` on sqrt(T) segments) and
``ds.scan`` with graph replay. Peak memory is measured for every row (see ``_memory_*``).
"""

from __future__ import annotations

import math

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

N = 64  # masses
T = 1000  # steps
DT = 0.01
REST = 1.0
SEGMENT = math.isqrt(T - 1) + 1  # sqrt policy: segments of ceil(sqrt(T)) steps


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x0 = np.zeros((N, 3))
    x0[:, 0] = np.arange(N) * REST
    x0 += 0.1 * rng.standard_normal((N, 3))
    v0 = 0.1 * rng.standard_normal((N, 3))
    k = 10.0 + rng.random(N - 1)
    target = x0 + np.array([0.5, 0.2, -0.1])
    return x0, v0, k, target


# --- the hand-written adjoint (and the reference) ---------------------------------------------


def _numpy_value_and_grad(x0, v0, k, target):
    """Forward pass storing the positions; backward pass by hand."""
    kc = k[:, None]
    x, v = x0, v0
    xs = []
    for _ in range(T):
        xs.append(x)
        d = x[1:] - x[:-1]
        length = np.sqrt(np.sum(d * d, axis=1, keepdims=True))
        f = kc * (length - REST) / length * d
        F = np.zeros_like(x)
        F[:-1] += f
        F[1:] -= f
        v = v + DT * F
        x = x + DT * v
    diff = x - target
    loss = np.sum(diff * diff)
    gx = 2.0 * diff
    gv = np.zeros_like(v)
    gk = np.zeros_like(k)
    for x in reversed(xs):
        gv = gv + DT * gx  # x_{t+1} = x_t + dt v_{t+1}
        g_f = DT * (gv[:-1] - gv[1:])  # v_{t+1} = v_t + dt F(x_t)
        d = x[1:] - x[:-1]
        length = np.sqrt(np.sum(d * d, axis=1, keepdims=True))
        s = kc * (length - REST) / length
        g_s = np.sum(g_f * d, axis=1, keepdims=True)
        gk += g_s[:, 0] * (length[:, 0] - REST) / length[:, 0]
        g_d = s * g_f + (g_s * kc * REST / length**3) * d
        gx = gx.copy()
        gx[1:] += g_d
        gx[:-1] -= g_d
    return loss, gk, gv


def reference() -> tuple[np.ndarray, ...]:
    loss, gk, gv = _numpy_value_and_grad(*_inputs())
    return np.asarray(loss), gk, gv


def _numpy() -> Thunk:
    args = _inputs()
    return lambda: _numpy_value_and_grad(*args)


# --- one step, written once for the array libraries with NumPy's API --------------------------


def _step(xp, x, v, kc, zero):
    """One semi-implicit Euler step; ``kc`` is ``k[:, None]``, ``zero`` a (1, 3) zero row."""
    d = x[1:] - x[:-1]
    length = xp.sqrt(xp.sum(d * d, axis=1, keepdims=True))
    f = kc * (length - REST) / length * d
    F = xp.concatenate([f, zero]) - xp.concatenate([zero, f])
    v = v + DT * F
    return x + DT * v, v


def _loss(xp, x, target):
    diff = x - target
    return xp.sum(diff * diff)


# --- diffsys -------------------------------------------------------------------------------------


def _diffsys(simulate) -> Thunk:
    """``value_and_grad`` of the loss in (k, v0); ``simulate(ds, dnp, x0, kc, v0, zero)`` runs the
    T steps from ``x0`` and returns the final positions."""
    import diffsys as ds
    import diffsys.numpy as dnp

    x0, v0, k, target = _inputs()
    zero = np.zeros((1, 3))

    def loss(k, v0):
        kc = dnp.reshape(k, (N - 1, 1))
        return _loss(dnp, simulate(ds, dnp, x0, kc, v0, zero), target)

    f = ds.value_and_grad(loss, argnums=(0, 1))
    return lambda: f(k, v0)


def _diffsys_eager() -> Thunk:
    def simulate(ds, dnp, x, kc, v, zero):
        for _ in range(T):
            x, v = _step(dnp, x, v, kc, zero)
        return x

    return _diffsys(simulate)


def _diffsys_scan(checkpoint) -> Thunk:
    def simulate(ds, dnp, x0, kc, v0, zero):
        def step(carry, _):  # reads kc from its closure: ds.scan differentiates it
            return _step(dnp, *carry, kc, zero), None

        (x, _), _ = ds.scan(step, (x0, v0), length=T, checkpoint=checkpoint)
        return x

    return _diffsys(simulate)


def _diffsys_replay() -> Thunk:
    def simulate(ds, dnp, x0, kc, v0, zero):
        def step(carry, _):  # reads kc from its closure: a lifted input of the step's graphs
            return _step(dnp, *carry, kc, zero), None

        (x, _), _ = ds.scan(step, (x0, v0), length=T, replay=True)
        return x

    return _diffsys(simulate)


# --- peers ---------------------------------------------------------------------------------------


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    x0, v0, k, target = _inputs()
    zero = np.zeros((1, 3))

    def loss(k, v0):
        kc = anp.reshape(k, (N - 1, 1))
        x, v = x0, v0
        for _ in range(T):
            x, v = _step(anp, x, v, kc, zero)
        return _loss(anp, x, target)

    f = autograd.value_and_grad(loss, argnum=(0, 1))

    def run():
        value, (gk, gv) = f(k, v0)
        return value, gk, gv

    return run


class _TorchOps:
    """The NumPy names ``_step`` uses, on PyTorch tensors."""

    def __init__(self, torch) -> None:
        self.sqrt = torch.sqrt
        self.concatenate = torch.cat
        self._torch = torch

    def sum(self, x, axis=None, keepdims=False):
        return self._torch.sum(x, dim=axis, keepdim=keepdims)


def _torch(checkpointed: bool) -> Thunk:
    torch = torch_single_thread()
    from torch.utils.checkpoint import checkpoint

    x0, v0, k, target = _inputs()
    tp = _TorchOps(torch)
    tx0, ttarget = torch.tensor(x0), torch.tensor(target)
    zero = torch.zeros((1, 3), dtype=torch.float64)
    tk = torch.tensor(k, requires_grad=True)
    tv0 = torch.tensor(v0, requires_grad=True)

    def segment(x, v, kc, steps):
        for _ in range(steps):
            x, v = _step(tp, x, v, kc, zero)
        return x, v

    def run():
        kc = tk[:, None]
        x, v = tx0, tv0
        if checkpointed:
            for start in range(0, T, SEGMENT):
                steps = min(SEGMENT, T - start)
                x, v = checkpoint(segment, x, v, kc, steps, use_reentrant=False)
        else:
            x, v = segment(x, v, kc, T)
        value = _loss(torch, x, ttarget)
        gk, gv = torch.autograd.grad(value, (tk, tv0))
        return value.detach(), gk, gv

    run.memory = lambda: _torch_memory(run)
    return run


def _jax() -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    x0, v0, k, target = _inputs()
    zero = jnp.zeros((1, 3))

    def loss(k, v0):
        kc = k[:, None]

        def step(carry, _):
            return _step(jnp, *carry, kc, zero), None

        (x, _), _ = jax.lax.scan(step, (jnp.asarray(x0), v0), length=T)
        return _loss(jnp, x, target)

    f = jax_blocking(jax.jit(jax.value_and_grad(loss, argnums=(0, 1))))
    jk, jv0 = jnp.asarray(k), jnp.asarray(v0)

    def run():
        value, (gk, gv) = f(jk, jv0)
        return value, gk, gv

    run.memory = lambda: _jax_memory(jax, loss, jk, jv0)
    return run


# --- peak memory -----------------------------------------------------------------------------


def _jax_memory(jax, loss, k, v0) -> int:
    """XLA's own account of the compiled program: arguments, outputs and temporaries."""
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(k, v0).compile()
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def _torch_memory(thunk: Thunk) -> int:
    """PyTorch's CPU allocations are not seen by tracemalloc: replay the allocations and frees
    its profiler records (``profile_memory=True``: each operation's own, and ``[memory]``
    events outside operations) in time order; the peak of their running sum."""
    import torch

    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        thunk()
    events = [e for e in prof.events() if e.self_cpu_memory_usage]
    events.sort(key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:
        live += e.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


# --- the workloads ---------------------------------------------------------------------------


_PROBLEM = (
    f"{N} unit masses in 3-D joined in a chain by {N - 1} springs (stiffness k_i, rest length "
    f"{REST:g}), semi-implicit Euler, dt = {DT}, {T} steps; loss = squared distance of the final "
    "positions to a target; `(loss, dloss/dk, dloss/dv0)`. "
)
_MEMORY = (
    "Peak memory: tracemalloc's peak during one call, above what was allocated before it "
    "(NumPy, diffsys, autograd); PyTorch: the peak of the running sum of its profiler's CPU "
    "allocation events; JAX: XLA's memory analysis of the compiled program (arguments, "
    "outputs and temporaries)."
)

_PEERS = {
    "numpy": Impl(_numpy, "forward storing positions, hand-written adjoint"),
    "autograd": Impl(_autograd, "Python loop, `autograd.value_and_grad`"),
    "torch": Impl(lambda: _torch(False), "Python loop, `torch.autograd.grad`"),
    "jax-jit": Impl(_jax, "`jax.jit(jax.value_and_grad(...))` of `lax.scan`"),
}

WORKLOAD_EAGER = Workload(
    name="mass_spring",
    title="Mass-spring chain, 1000 steps: Python loop",
    description=_PROBLEM
    + "diffsys runs the loop in Python under `ds.value_and_grad` (every step traced and "
    "stored). " + _MEMORY,
    unit="ms",
    scale=1e3,
    target=120.0,
    reference=reference,
    impls={"diffsys": Impl(_diffsys_eager, "Python loop, `ds.value_and_grad`"), **_PEERS},
    issue_refs={"numpy": 29.8, "torch": 182.0, "autograd": 765.0, "jax-jit": 1.76},
    memory=True,
)

WORKLOAD_SCAN = Workload(
    name="mass_spring_scan",
    title="Mass-spring chain: ds.scan storing everything",
    description=_PROBLEM
    + "`ds.scan(step, (x0, v0), length=1000)` with `checkpoint=None`: every intermediate value "
    "of every step is kept for the backward pass (the no-checkpoint baseline of "
    "`mass_spring_sqrt`); the step reads `k` from its closure. " + _MEMORY,
    unit="ms",
    scale=1e3,
    target=120.0,
    reference=reference,
    impls={"diffsys": Impl(lambda: _diffsys_scan(None), "`ds.scan`, `checkpoint=None`")},
    memory=True,
    own_target=True,  # the issue's 120 ms is for the eager loop; this baseline borrows it
)

WORKLOAD_SQRT = Workload(
    name="mass_spring_sqrt",
    title="Mass-spring chain: ds.scan with the sqrt checkpointing policy",
    description=_PROBLEM
    + f'`ds.scan(..., checkpoint="sqrt")`: snapshots every {SEGMENT} steps; the backward pass '
    "rebuilds a segment's carries from its snapshot and records one step at a time. PyTorch: "
    f"`torch.utils.checkpoint` around segments of {SEGMENT} steps. Targets: peak memory "
    "≤ 0.7 MiB and ≤ 1/10 of `mass_spring_scan`'s, time ≤ 2.5 × its time. " + _MEMORY,
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("mass_spring_scan", "diffsys", 2.5),
    reference=reference,
    impls={
        "diffsys": Impl(lambda: _diffsys_scan("sqrt"), '`ds.scan`, `checkpoint="sqrt"`'),
        "torch": Impl(lambda: _torch(True), f"`torch.utils.checkpoint` per {SEGMENT}-step segment"),
    },
    issue_refs={},
    memory=True,
    memory_target=0.7,
    relative_memory_target=("mass_spring_scan", "diffsys", 0.1),
)

WORKLOAD_REPLAY = Workload(
    name="mass_spring_replay",
    title="Mass-spring chain: ds.scan with graph replay",
    description=_PROBLEM
    + "`ds.scan(..., replay=True)`: the step is traced once with `ds.trace` and its graph's VJP "
    "once more; both are replayed on plain arrays at every step (every step's residuals kept, "
    "nothing recomputed). The step reads `k` from its closure: `k` is a lifted input of the "
    "graphs, its cotangent summed over the steps. " + _MEMORY,
    unit="ms",
    scale=1e3,
    target=45.0,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys_replay, "`ds.scan(..., replay=True)`"),
        "numpy": _PEERS["numpy"],
        "jax-jit": _PEERS["jax-jit"],
    },
    issue_refs={"numpy": 29.8, "jax-jit": 1.76},
    memory=True,
)

WORKLOADS = (WORKLOAD_EAGER, WORKLOAD_SCAN, WORKLOAD_SQRT, WORKLOAD_REPLAY)
