"""The soft robot of ``diffsys demo physics`` (DiffTaichi's mass_spring): one gradient of the
distance it walks with respect to its controller.

14 unit masses, 33 damped springs (12 of them muscles), ground contact by the smooth penalty
law with contact damping and smoothed Coulomb friction, gravity, semi-implicit Euler,
``dt = 2e-3``, 300 steps. A linear controller maps a 4-phase clock to the muscles'
actuation, ``0.25 tanh(W clock_t + b)`` (rest lengths ``L0 (1 + a)``). The loss is minus the
mean final ``x``; every framework returns ``(loss, dloss/dW, dloss/db)``.

diffsys runs ``systems.physics.simulate`` with the controller (``ds.scan``, graph replay);
the peers are the same equations in PyTorch eager and ``jax.jit`` of ``lax.scan``. The
reference is the NumPy forward pass differentiated by complex steps, every parameter's
perturbation batched in one rollout (exact to rounding).
"""

from __future__ import annotations

import functools

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

# 300 steps: at 500 a contact event amplifies rounding until the frameworks agree with the
# exact reference only to about 1e-7 (at 300: 4e-13)
T = 300
DT = 2e-3
GRID = [(0, 0), (1, 0), (3, 0), (4, 0)] + [(i, j) for j in (1, 2) for i in range(5)]
X0 = 0.1 * np.array(GRID, dtype=float) + np.array([0.0, 0.02])
N = len(X0)
SPRINGS = np.array(
    [
        (i, j)
        for i in range(N)
        for j in range(i + 1, N)
        if np.linalg.norm(X0[i] - X0[j]) < 0.1 * np.sqrt(2.0) + 1e-6
    ]
)
SI, SJ = SPRINGS[:, 0], SPRINGS[:, 1]
REST = np.linalg.norm(X0[SJ] - X0[SI], axis=1)
INCIDENCE = np.zeros((N, len(SPRINGS)))
INCIDENCE[SI, np.arange(len(SPRINGS))] = 1.0
INCIDENCE[SJ, np.arange(len(SPRINGS))] = -1.0
MUSCLES = np.any(SPRINGS < 4, axis=1).astype(float)
K, C = 3e3, 5.0
RADIUS, KC, CD, WIDTH, MU, FWIDTH = 0.02, 1e4, 20.0, 2e-3, 1.0, 0.05
GRAVITY = np.array([0.0, -9.81])


def clock() -> np.ndarray:
    t = np.arange(T) * DT
    return np.sin(2 * np.pi * 4.0 * t[:, None] + np.linspace(0.0, 2 * np.pi, 4, endpoint=False))


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return 0.3 * rng.standard_normal((len(SPRINGS), 4)), np.zeros(len(SPRINGS))


# --- NumPy (the reference) -------------------------------------------------------------------


def _numpy_rollout(W, b):
    """Batched over a leading axis of ``W (P, m, 4)``, ``b (P, m)``; complex-safe."""
    P = W.shape[0]
    x = np.broadcast_to(X0, (P, N, 2)).astype(W.dtype)
    v = np.zeros_like(x)
    up = np.array([0.0, 1.0])
    for u in clock():
        act = 0.25 * MUSCLES * np.tanh(W @ u + b)
        d = x[:, SJ] - x[:, SI]
        length = np.sqrt(np.sum(d * d, axis=-1))
        e = d / length[..., None]
        rate = np.sum((v[:, SJ] - v[:, SI]) * e, axis=-1)
        pull = (K * (length - REST * (1.0 + act)) + C * rate)[..., None] * e
        f = GRAVITY + np.einsum("nm,pmk->pnk", INCIDENCE, pull)  # +pull at i, -pull at j
        depth = RADIUS - x[..., 1]
        vn = v[..., 1]
        push = KC * WIDTH * np.log1p(np.exp(depth / WIDTH))
        fn = push - CD * vn * 0.5 * (1.0 + np.tanh(0.5 * depth / WIDTH))
        vt = v[..., 0]
        ft = -MU * push * vt / np.sqrt(vt * vt + FWIDTH * FWIDTH)
        f = f + fn[..., None] * up + np.stack([ft, np.zeros_like(ft)], axis=-1)
        v = v + DT * f
        x = x + DT * v
    return -np.mean(x[..., 0], axis=-1)


@functools.cache
def reference() -> tuple[np.ndarray, ...]:
    """The loss and its gradient by complex steps: ``dL/dp_k = Im L(p + i h e_k) / h``."""
    W, b = _inputs()
    params = np.concatenate([W.ravel(), b])
    h = 1e-30
    batch = np.tile(params.astype(complex), (params.size + 1, 1))
    batch[np.arange(params.size), np.arange(params.size)] += 1j * h
    m = W.shape[0]
    out = _numpy_rollout(batch[:, : W.size].reshape(-1, m, 4), batch[:, W.size :])
    grad = out[:-1].imag / h
    return np.asarray(out[-1].real), grad[: W.size].reshape(W.shape), grad[W.size :]


# --- diffsys ---------------------------------------------------------------------------------


def world():
    from diffsys.systems.physics import World

    return World(
        mass=np.ones(N), springs=SPRINGS, positions=X0, stiffness=K, damping=C, radius=RADIUS,
        friction=MU, friction_smoothing=FWIDTH, contact_stiffness=KC, contact_damping=CD,
        contact_smoothing=WIDTH, dt=DT,
    )


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp
    from diffsys.systems.physics import State, simulate

    w, inputs = world(), clock()
    W, b = _inputs()
    rest = State(X0, np.zeros_like(X0))

    def loss(W, b):
        def controller(state, u):
            return {"actuation": 0.25 * MUSCLES * dnp.tanh(W @ u + b)}

        end, _ = simulate(w, rest, inputs, controller=controller, record=None)
        return -dnp.mean(end.position[:, 0])

    f = ds.value_and_grad(loss, argnums=(0, 1))

    def run():
        value, (gW, gb) = f(W, b)
        return value, gW, gb

    return run


# --- PyTorch eager ---------------------------------------------------------------------------


def _torch() -> Thunk:
    torch = torch_single_thread()
    W0, b0 = _inputs()
    W = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(b0, requires_grad=True)
    si, sj = torch.tensor(SI), torch.tensor(SJ)
    rest, muscles = torch.tensor(REST), torch.tensor(MUSCLES)
    gravity, inputs = torch.tensor(GRAVITY), torch.tensor(clock())
    x0 = torch.tensor(X0)

    def run():
        x, v = x0, torch.zeros_like(x0)
        for u in inputs:
            act = 0.25 * muscles * torch.tanh(W @ u + b)
            d = x[sj] - x[si]
            length = torch.sqrt(torch.sum(d * d, dim=1))
            e = d / length[:, None]
            rate = torch.sum((v[sj] - v[si]) * e, dim=1)
            pull = (K * (length - rest * (1.0 + act)) + C * rate)[:, None] * e
            f = (gravity + torch.zeros_like(x)).index_add(0, si, pull).index_add(0, sj, -pull)
            depth = RADIUS - x[:, 1]
            vn, vt = v[:, 1], v[:, 0]
            push = KC * WIDTH * torch.nn.functional.softplus(depth / WIDTH)
            fn = push - CD * vn * torch.sigmoid(depth / WIDTH)
            ft = -MU * push * vt / torch.sqrt(vt * vt + FWIDTH * FWIDTH)
            f = f + torch.stack([ft, fn], dim=1)
            v = v + DT * f
            x = x + DT * v
        value = -torch.mean(x[:, 0])
        gW, gb = torch.autograd.grad(value, (W, b))
        return value.detach(), gW, gb

    return run


# --- JAX: jax.jit of lax.scan ----------------------------------------------------------------


def _jax() -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    W0, b0 = _inputs()
    si, sj = jnp.asarray(SI), jnp.asarray(SJ)

    def step(carry, u, W, b):
        x, v = carry
        act = 0.25 * MUSCLES * jnp.tanh(W @ u + b)
        d = x[sj] - x[si]
        length = jnp.sqrt(jnp.sum(d * d, axis=1))
        e = d / length[:, None]
        rate = jnp.sum((v[sj] - v[si]) * e, axis=1)
        pull = (K * (length - REST * (1.0 + act)) + C * rate)[:, None] * e
        f = (GRAVITY + jnp.zeros_like(x)).at[si].add(pull).at[sj].add(-pull)
        depth = RADIUS - x[:, 1]
        vn, vt = v[:, 1], v[:, 0]
        push = KC * WIDTH * jax.nn.softplus(depth / WIDTH)
        fn = push - CD * vn * jax.nn.sigmoid(depth / WIDTH)
        ft = -MU * push * vt / jnp.sqrt(vt * vt + FWIDTH * FWIDTH)
        v = v + DT * (f + jnp.stack([ft, fn], axis=1))
        return (x + DT * v, v), None

    def loss(W, b):
        x0 = jnp.asarray(X0)
        carry = (x0, jnp.zeros_like(x0))
        (x, _), _ = jax.lax.scan(lambda c, u: step(c, u, W, b), carry, jnp.asarray(clock()))
        return -jnp.mean(x[:, 0])

    f = jax_blocking(jax.jit(jax.value_and_grad(loss, argnums=(0, 1))))
    W, b = jnp.asarray(W0), jnp.asarray(b0)

    def run():
        value, (gW, gb) = f(W, b)
        return value, gW, gb

    return run


WORKLOAD = Workload(
    name="physics_robot",
    title=f"Physics: soft robot (14 masses, 33 springs), {T} steps, controller gradient",
    description=(
        f"{N} unit masses, {len(SPRINGS)} damped springs ({int(MUSCLES.sum())} muscles), ground "
        "contact (smooth penalty, contact damping, smoothed Coulomb friction), gravity, "
        f"semi-implicit Euler, dt = {DT}, {T} steps; a linear controller (clock -> actuation, "
        "tanh); `(loss, dloss/dW, dloss/db)`. Reference: NumPy forward pass differentiated by "
        "complex steps. diffsys: `systems.physics.simulate(..., controller=...)` (`ds.scan`, "
        "graph replay)."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("physics_robot", "torch", 1.0),
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`simulate` with a controller"),
        "torch": Impl(_torch, "Python loop, `torch.autograd.grad`"),
        "jax-jit": Impl(_jax, "`jax.jit(jax.value_and_grad(...))` of `lax.scan`"),
    },
    own_target=True,
)
