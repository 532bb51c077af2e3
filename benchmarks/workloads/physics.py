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
row). The reference is the NumPy forward pass differentiated by complex steps (exact to rounding).
Peak memory is measured for every row, as in ``mass_spring`` (whose PyTorch memory probe is
reused here).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ._common import torch_single_thread
from ._spec import Impl, Thunk, Workload
from .mass_spring import _torch_memory

N = 16
T = 1000
DT = 1e-3
RADIUS = 0.05
TABLE = (2.0, 1.0)
K_CONTACT, C_CONTACT, WIDTH, DRAG = 2e4, 2.0, 2e-3, 0.4
SEGMENT = math.isqrt(T - 1) + 1
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


def _numpy_loss(x0, v0, target):
    x, v = x0, v0
    for _ in range(T):
        v = v + DT * _numpy_forces(x, v)  # unit masses
        x = x + DT * v
    return np.sum((x - target) ** 2)


@functools.cache
def reference() -> tuple[np.ndarray, ...]:
    """The loss, and its gradient by complex-step differentiation of the NumPy forward pass:
    ``dL/dv_k = Im L(v + i h e_k) / h`` is exact to rounding for an analytic ``L`` (no
    subtraction), so the reference is independent of every framework. Cached: 32 rollouts."""
    x0, v0, target = _inputs()
    h = 1e-30
    grad = np.zeros_like(v0)
    for idx in np.ndindex(v0.shape):
        v = v0.astype(complex)
        v[idx] += 1j * h
        grad[idx] = _numpy_loss(x0, v, target).imag / h
    return np.asarray(_numpy_loss(x0, v0, target).real), grad


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


def _diffsys(checkpoint) -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp
    from diffsys.systems.physics import State, simulate

    x0, v0, target = _inputs()
    w = world()

    def loss(v0):
        end, _ = simulate(w, State(x0, v0), steps=T, checkpoint=checkpoint, record=None)
        return dnp.sum((end.position - target) ** 2)

    f = ds.value_and_grad(loss)
    return lambda: f(v0)


# --- PyTorch eager ---------------------------------------------------------------------------


def _torch(checkpointed: bool) -> Thunk:
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

    def segment(x, v, steps):
        for _ in range(steps):
            v = v + DT * forces(x, v)
            x = x + DT * v
        return x, v

    def run():
        x, v = tx0, tv0
        if checkpointed:
            for start in range(0, T, SEGMENT):
                x, v = checkpoint(segment, x, v, min(SEGMENT, T - start), use_reentrant=False)
        else:
            x, v = segment(x, v, T)
        value = torch.sum((x - ttarget) ** 2)
        (g,) = torch.autograd.grad(value, (tv0,))
        return value.detach(), g

    run.memory = lambda: _torch_memory(run)
    return run


# --- the workloads -----------------------------------------------------------------------------

_PROBLEM = (
    f"{N} balls (radius {RADIUS}) on a {TABLE[0]:g} x {TABLE[1]:g} table with 4 cushions, smooth "
    f"penalty contacts between all {len(PAIR_I)} pairs and with the cushions, drag, "
    f"semi-implicit Euler, dt = {DT}, {T} steps; `(loss, dloss/dv0)`. Reference: NumPy forward "
    "pass differentiated by complex steps. Peak memory: tracemalloc (diffsys), the PyTorch "
    "profiler's CPU allocations (PyTorch), as in `mass_spring`. "
)

WORKLOAD_ALL = Workload(
    name="physics_billiards",
    title="Physics: 16 balls on a table, 1000 steps, storing everything",
    description=_PROBLEM
    + "diffsys: `systems.physics.simulate` (`ds.scan`, graph replay, `checkpoint=None`).",
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("physics_billiards", "torch", 1.0),
    reference=reference,
    impls={
        "diffsys": Impl(lambda: _diffsys(None), "`simulate`, `checkpoint=None`"),
        "torch": Impl(lambda: _torch(False), "Python loop, `torch.autograd.grad`"),
    },
    own_target=True,
    memory=True,
)

WORKLOAD_SQRT = Workload(
    name="physics_billiards_sqrt",
    title="Physics: 16 balls on a table, 1000 steps, sqrt checkpointing",
    description=_PROBLEM
    + f'diffsys: `simulate(..., checkpoint="sqrt")`; PyTorch: `torch.utils.checkpoint` per '
    f"{SEGMENT}-step segment.",
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("physics_billiards_sqrt", "torch", 1.0),
    reference=reference,
    impls={
        "diffsys": Impl(lambda: _diffsys("sqrt"), '`simulate`, `checkpoint="sqrt"`'),
        "torch": Impl(lambda: _torch(True), f"`torch.utils.checkpoint` per {SEGMENT} steps"),
    },
    own_target=True,
    memory=True,
)

WORKLOADS = (WORKLOAD_ALL, WORKLOAD_SQRT)
