"""16 balls on a billiards table, 1000 steps, differentiated w.r.t. their initial velocities.

The scene of ``diffsys.systems.physics`` that issue 15 names for speed and memory: 16 balls
of radius 0.05 in a 4 x 4 rack on a 2 x 1 table with four cushions (half-plane colliders),
contacts between every two balls (120 pairs) and with the cushions by the smooth penalty law
(``k w softplus(p / w)``, contact damping gated by ``sigmoid(p / w)``), rolling resistance as
linear drag, semi-implicit Euler, ``dt = 1e-3``, 1000 steps. The loss is the squared distance
of the final positions to a target; every framework returns ``(loss, dloss/dv0)``.

diffsys runs ``systems.physics.simulate`` (``ds.scan`` with graph replay, storing everything,
or with the sqrt checkpointing policy); the peer is the same equations written in PyTorch
eager (``index_add`` scatters; ``torch.utils.checkpoint`` on sqrt(T) segments for the sqrt
row) and ``jax.jit`` of ``lax.scan`` (``jax.checkpoint`` segments for the sqrt row). Both
workloads run the issue's 1000 steps (PyTorch's checkpointed row takes about a minute in
all, timing and profiled memory run, on an idle machine). The
reference is the NumPy forward pass differentiated by complex steps (exact to rounding).
Peak memory is measured for every row, as in ``mass_spring`` (whose PyTorch memory probe is
reused here).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload
from .mass_spring import _torch_memory

N = 16
T = 1000
T_SQRT = T  # the length for the checkpointed row too
DT = 1e-3
RADIUS = 0.05
TABLE = (2.0, 1.0)
K_CONTACT, C_CONTACT, WIDTH, DRAG = 2e4, 2.0, 2e-3, 0.4


def _segment(steps: int) -> int:
    """The segment length of sqrt checkpointing: about sqrt(steps)."""
    return math.isqrt(steps - 1) + 1


SEGMENT = _segment(T_SQRT)
NORMALS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
OFFSETS = np.array([0.0, -TABLE[0], 0.0, -TABLE[1]])
PAIR_I, PAIR_J = np.triu_indices(N, k=1)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij"), -1).reshape(N, 2)
    x0 = np.array([0.9, 0.3]) + 0.12 * grid + 0.005 * rng.standard_normal((N, 2))
    v0 = 0.5 * rng.standard_normal((N, 2))
    target = x0 + np.array([0.3, 0.1])
    return x0, v0, target


# --- the NumPy forward pass and the reference ---------------------------------------------


def _softplus(z):
    return np.log1p(np.exp(z))  # complex-safe (the reference runs on complex numbers)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _numpy_forces(x, v):
    f = -DRAG * v
    depth = RADIUS + OFFSETS - x @ NORMALS.T  # (N, 4)
    vn = v @ NORMALS.T
    fn = K_CONTACT * WIDTH * _softplus(depth / WIDTH) - C_CONTACT * vn * _sigmoid(depth / WIDTH)
    f = f + fn @ NORMALS
    d = x[PAIR_J] - x[PAIR_I]
    dist = np.sqrt(np.sum(d * d, axis=1))
    e = d / dist[:, None]
    depth = 2 * RADIUS - dist
    rate = np.sum((v[PAIR_J] - v[PAIR_I]) * e, axis=1)
    fn = K_CONTACT * WIDTH * _softplus(depth / WIDTH) - C_CONTACT * rate * _sigmoid(depth / WIDTH)
    push = fn[:, None] * e
    np.add.at(f, PAIR_J, push)
    np.subtract.at(f, PAIR_I, push)
    return f


def _numpy_loss(x0, v0, target, steps):
    x, v = x0, v0
    for _ in range(steps):
        v = v + DT * _numpy_forces(x, v)  # unit masses
        x = x + DT * v
    return np.sum((x - target) ** 2)


@functools.cache
def reference(steps: int = T) -> tuple[np.ndarray, ...]:
    """The loss, and its gradient by complex-step differentiation of the NumPy forward pass:
    ``dL/dv_k = Im L(v + i h e_k) / h`` is exact to rounding for an analytic ``L`` (no
    subtraction), so the reference is independent of every framework. Cached: 32 rollouts."""
    x0, v0, target = _inputs()
    h = 1e-30
    grad = np.zeros_like(v0)
    for idx in np.ndindex(v0.shape):
        v = v0.astype(complex)
        v[idx] += 1j * h
        grad[idx] = _numpy_loss(x0, v, target, steps).imag / h
    return np.asarray(_numpy_loss(x0, v0, target, steps).real), grad


# --- diffsys ---------------------------------------------------------------------------------


def world():
    """The scene as a ``systems.physics.World`` (unit masses, no gravity: a top view)."""
    from diffsys.systems.physics import World

    planes = [(n, b) for n, b in zip(NORMALS, OFFSETS, strict=True)]
    return World(
        mass=np.ones(N),
        radius=RADIUS,
        gravity=[0.0, 0.0],
        drag=DRAG,
        planes=planes,
        contact_stiffness=K_CONTACT,
        contact_damping=C_CONTACT,
        contact_smoothing=WIDTH,
        collide=True,
        dt=DT,
    )


def _diffsys(checkpoint, steps: int) -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp
    from diffsys.systems.physics import State, simulate

    x0, v0, target = _inputs()
    w = world()

    def loss(v0):
        end, _ = simulate(w, State(x0, v0), steps=steps, checkpoint=checkpoint, record=None)
        return dnp.sum((end.position - target) ** 2)

    f = ds.value_and_grad(loss)
    return lambda: f(v0)


# --- PyTorch eager ---------------------------------------------------------------------------


def _torch(checkpointed: bool, steps: int) -> Thunk:
    torch = torch_single_thread()
    from torch.utils.checkpoint import checkpoint

    x0, v0, target = _inputs()
    normals, offsets = torch.tensor(NORMALS), torch.tensor(OFFSETS)
    pi, pj = torch.tensor(PAIR_I), torch.tensor(PAIR_J)
    tx0, ttarget = torch.tensor(x0), torch.tensor(target)
    tv0 = torch.tensor(v0, requires_grad=True)
    softplus, sigmoid = torch.nn.functional.softplus, torch.sigmoid

    def forces(x, v):
        f = -DRAG * v
        depth = RADIUS + offsets - x @ normals.T
        vn = v @ normals.T
        fn = K_CONTACT * WIDTH * softplus(depth / WIDTH) - C_CONTACT * vn * sigmoid(depth / WIDTH)
        f = f + fn @ normals
        d = x[pj] - x[pi]
        dist = torch.sqrt(torch.sum(d * d, dim=1))
        e = d / dist[:, None]
        depth = 2 * RADIUS - dist
        rate = torch.sum((v[pj] - v[pi]) * e, dim=1)
        fn = K_CONTACT * WIDTH * softplus(depth / WIDTH) - C_CONTACT * rate * sigmoid(depth / WIDTH)
        push = fn[:, None] * e
        return f.index_add(0, pj, push).index_add(0, pi, -push)

    def segment(x, v, n):
        for _ in range(n):
            v = v + DT * forces(x, v)
            x = x + DT * v
        return x, v

    def run():
        x, v = tx0, tv0
        if checkpointed:
            length = _segment(steps)
            for start in range(0, steps, length):
                x, v = checkpoint(segment, x, v, min(length, steps - start), use_reentrant=False)
        else:
            x, v = segment(x, v, steps)
        value = torch.sum((x - ttarget) ** 2)
        (g,) = torch.autograd.grad(value, (tv0,))
        return value.detach(), g

    run.memory = lambda: _torch_memory(run)
    return run


# --- JAX: jax.jit of lax.scan -----------------------------------------------------------------


def _jax(checkpointed: bool, steps: int) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    x0, v0, target = _inputs()
    normals, offsets = jnp.asarray(NORMALS), jnp.asarray(OFFSETS)
    pi, pj = jnp.asarray(PAIR_I), jnp.asarray(PAIR_J)
    softplus, sigmoid = jax.nn.softplus, jax.nn.sigmoid

    def forces(x, v):
        f = -DRAG * v
        depth = RADIUS + offsets - x @ normals.T
        vn = v @ normals.T
        fn = K_CONTACT * WIDTH * softplus(depth / WIDTH) - C_CONTACT * vn * sigmoid(depth / WIDTH)
        f = f + fn @ normals
        d = x[pj] - x[pi]
        dist = jnp.sqrt(jnp.sum(d * d, axis=1))
        e = d / dist[:, None]
        depth = 2 * RADIUS - dist
        rate = jnp.sum((v[pj] - v[pi]) * e, axis=1)
        fn = K_CONTACT * WIDTH * softplus(depth / WIDTH) - C_CONTACT * rate * sigmoid(depth / WIDTH)
        push = fn[:, None] * e
        return f.at[pj].add(push).at[pi].add(-push)

    def step(carry, _):
        x, v = carry
        v = v + DT * forces(x, v)
        return (x + DT * v, v), None

    def run_steps(carry, n):
        return jax.lax.scan(step, carry, length=n)[0]

    def loss(v0):
        carry = (jnp.asarray(x0), v0)
        if checkpointed:  # jax.checkpoint per segment of about sqrt(steps): sqrt carries kept
            length = _segment(steps)
            segment = jax.checkpoint(lambda c: run_steps(c, length))
            carry = jax.lax.scan(lambda c, _: (segment(c), None), carry, length=steps // length)[0]
            carry = run_steps(carry, steps % length) if steps % length else carry
        else:
            carry = run_steps(carry, steps)
        return jnp.sum((carry[0] - target) ** 2)

    f = jax_blocking(jax.jit(jax.value_and_grad(loss)))
    jv0 = jnp.asarray(v0)
    run = lambda: f(jv0)  # noqa: E731
    run.memory = lambda: _jax_memory(jax, loss, jv0)
    return run


def _jax_memory(jax, loss, v0) -> int:
    """XLA's own account of the compiled program: arguments, outputs and temporaries."""
    compiled = jax.jit(jax.value_and_grad(loss)).lower(v0).compile()
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


# --- the workloads -----------------------------------------------------------------------------

def _problem(steps: int) -> str:
    return (
        f"{N} balls (radius {RADIUS}) on a {TABLE[0]:g} x {TABLE[1]:g} table with 4 cushions, "
        f"smooth penalty contacts between all {len(PAIR_I)} pairs and with the cushions, drag, "
        f"semi-implicit Euler, dt = {DT}, {steps} steps; `(loss, dloss/dv0)`. Reference: NumPy "
        "forward pass differentiated by complex steps. Peak memory: tracemalloc (diffsys), the "
        "PyTorch profiler's CPU allocations (PyTorch), XLA's memory analysis of the compiled "
        "program (JAX), as in `mass_spring`. "
    )

WORKLOAD_ALL = Workload(
    name="physics_billiards",
    title="Physics: 16 balls on a table, 1000 steps, storing everything",
    description=_problem(T)
    + "diffsys: `systems.physics.simulate` (`ds.scan`, graph replay, `checkpoint=None`).",
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("physics_billiards", "torch", 1.0),
    reference=reference,
    impls={
        "diffsys": Impl(lambda: _diffsys(None, T), "`simulate`, `checkpoint=None`"),
        "torch": Impl(lambda: _torch(False, T), "Python loop, `torch.autograd.grad`"),
        "jax-jit": Impl(lambda: _jax(False, T), "`jax.jit(jax.value_and_grad(...))` of `lax.scan`"),
    },
    own_target=True,
    memory=True,
)

WORKLOAD_SQRT = Workload(
    name="physics_billiards_sqrt",
    title=f"Physics: 16 balls on a table, {T_SQRT} steps, sqrt checkpointing",
    description=_problem(T_SQRT)
    + f'diffsys: `simulate(..., checkpoint="sqrt")`; PyTorch: `torch.utils.checkpoint` per '
    f"{SEGMENT}-step segment; JAX: `jax.checkpoint` per segment.",
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("physics_billiards_sqrt", "torch", 1.0),
    reference=functools.partial(reference, T_SQRT),
    impls={
        "diffsys": Impl(lambda: _diffsys("sqrt", T_SQRT), '`simulate`, `checkpoint="sqrt"`'),
        "torch": Impl(
            lambda: _torch(True, T_SQRT), f"`torch.utils.checkpoint` per {SEGMENT} steps"
        ),
        "jax-jit": Impl(
            lambda: _jax(True, T_SQRT), f"`jax.checkpoint` per {SEGMENT}-step `lax.scan`"
        ),
    },
    own_target=True,
    memory=True,
)

WORKLOADS = (WORKLOAD_ALL, WORKLOAD_SQRT)
