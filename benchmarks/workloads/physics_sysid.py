"""System identification in ``diffsys demo physics``: one gradient of a trajectory misfit with
respect to the stiffness, damping and friction of a mass-spring triangle on the ground.

3 unit masses joined by 3 damped springs, gravity, ground contact by the smooth penalty law
with contact damping and smoothed Coulomb friction, semi-implicit Euler, ``dt = 2e-3``, 300
steps. The loss is ``1e4 * mean((x_t - observed_t)^2)`` over the whole trajectory; every
framework returns ``(loss, dloss/d(k, c, mu))`` for scalar ``k``, ``c``, ``mu`` (shared by the
three springs).

diffsys runs ``systems.physics.simulate`` (``ds.scan``, graph replay); the peers are the same
equations in PyTorch eager and ``jax.jit`` of ``lax.scan``. The reference is the NumPy
forward pass differentiated by complex steps.
"""

from __future__ import annotations

import functools

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

T = 300
DT = 2e-3
X0 = np.array([[0.0, 0.3], [0.3, 0.3], [0.15, 0.55]])
V0 = np.array([[1.5, 0.0], [1.5, 0.0], [1.2, 0.5]])
SPRINGS = np.array([(0, 1), (1, 2), (0, 2)])
SI, SJ = SPRINGS[:, 0], SPRINGS[:, 1]
REST = np.linalg.norm(X0[SJ] - X0[SI], axis=1)
INCIDENCE = np.zeros((3, 3))
INCIDENCE[SI, np.arange(3)] = 1.0
INCIDENCE[SJ, np.arange(3)] = -1.0
RADIUS, KC, CD, WIDTH, FWIDTH = 0.02, 5e3, 5.0, 1e-3, 0.05
GRAVITY = np.array([0.0, -9.81])
TRUE = np.array([300.0, 2.0, 0.4])
GUESS = np.array([200.0, 1.5, 0.3])


def _numpy_rollout(k, c, mu):
    """Positions ``(T, 3, 2)``; complex-safe (analytic in ``k``, ``c``, ``mu``)."""
    x, v = X0.astype(np.result_type(k, c, mu, float)), V0.astype(np.result_type(k, c, mu, float))
    xs = []
    for _ in range(T):
        d = x[SJ] - x[SI]
        length = np.sqrt(np.sum(d * d, axis=-1))
        e = d / length[:, None]
        rate = np.sum((v[SJ] - v[SI]) * e, axis=-1)
        pull = (k * (length - REST) + c * rate)[:, None] * e
        f = GRAVITY + INCIDENCE @ pull
        depth = RADIUS - x[:, 1]
        push = KC * WIDTH * np.log1p(np.exp(depth / WIDTH))
        fn = push - CD * v[:, 1] * 0.5 * (1.0 + np.tanh(0.5 * depth / WIDTH))
        ft = -mu * push * v[:, 0] / np.sqrt(v[:, 0] * v[:, 0] + FWIDTH * FWIDTH)
        v = v + DT * (f + np.stack([ft, fn], axis=1))
        x = x + DT * v
        xs.append(x)
    return np.stack(xs)


@functools.cache
def observed() -> np.ndarray:
    return _numpy_rollout(*TRUE) + 1e-3 * np.random.default_rng(0).standard_normal((T, 3, 2))


def _numpy_loss(k, c, mu):
    return 1e4 * np.mean((_numpy_rollout(k, c, mu) - observed()) ** 2)


@functools.cache
def reference() -> tuple[np.ndarray, ...]:
    """The loss and its gradient by complex steps (exact to rounding)."""
    h = 1e-30
    grad = np.array(
        [_numpy_loss(*(GUESS + 1j * h * np.eye(3)[i])).imag / h for i in range(3)]
    )
    return np.asarray(_numpy_loss(*GUESS)), grad


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp
    from diffsys.systems.physics import State, World, simulate

    base = World(
        mass=np.ones(3), springs=SPRINGS, positions=X0, radius=RADIUS, contact_stiffness=KC,
        contact_damping=CD, contact_smoothing=WIDTH, friction_smoothing=FWIDTH, dt=DT,
    )
    target = observed()

    def loss(p):
        world = base.replace(
            stiffness=dnp.broadcast_to(p[0], (3,)), damping=dnp.broadcast_to(p[1], (3,)),
            friction=p[2],
        )
        _, xs = simulate(world, State(X0, V0), steps=T)
        return 1e4 * dnp.mean((xs - target) ** 2)

    f = ds.value_and_grad(loss)
    return lambda: f(GUESS)


def _torch() -> Thunk:
    torch = torch_single_thread()
    p = torch.tensor(GUESS, requires_grad=True)
    si, sj = torch.tensor(SI), torch.tensor(SJ)
    rest, gravity, target = torch.tensor(REST), torch.tensor(GRAVITY), torch.tensor(observed())
    x0, v0 = torch.tensor(X0), torch.tensor(V0)

    def run():
        k, c, mu = p[0], p[1], p[2]
        x, v, xs = x0, v0, []
        for _ in range(T):
            d = x[sj] - x[si]
            length = torch.sqrt(torch.sum(d * d, dim=1))
            e = d / length[:, None]
            rate = torch.sum((v[sj] - v[si]) * e, dim=1)
            pull = (k * (length - rest) + c * rate)[:, None] * e
            f = (gravity + torch.zeros_like(x)).index_add(0, si, pull).index_add(0, sj, -pull)
            depth = RADIUS - x[:, 1]
            push = KC * WIDTH * torch.nn.functional.softplus(depth / WIDTH)
            fn = push - CD * v[:, 1] * torch.sigmoid(depth / WIDTH)
            ft = -mu * push * v[:, 0] / torch.sqrt(v[:, 0] * v[:, 0] + FWIDTH * FWIDTH)
            v = v + DT * (f + torch.stack([ft, fn], dim=1))
            x = x + DT * v
            xs.append(x)
        value = 1e4 * torch.mean((torch.stack(xs) - target) ** 2)
        (g,) = torch.autograd.grad(value, (p,))
        return value.detach(), g

    return run


def _jax() -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    si, sj, target = jnp.asarray(SI), jnp.asarray(SJ), jnp.asarray(observed())

    def loss(p):
        k, c, mu = p[0], p[1], p[2]

        def step(carry, _):
            x, v = carry
            d = x[sj] - x[si]
            length = jnp.sqrt(jnp.sum(d * d, axis=1))
            e = d / length[:, None]
            rate = jnp.sum((v[sj] - v[si]) * e, axis=1)
            pull = (k * (length - REST) + c * rate)[:, None] * e
            f = (GRAVITY + jnp.zeros_like(x)).at[si].add(pull).at[sj].add(-pull)
            depth = RADIUS - x[:, 1]
            push = KC * WIDTH * jax.nn.softplus(depth / WIDTH)
            fn = push - CD * v[:, 1] * jax.nn.sigmoid(depth / WIDTH)
            ft = -mu * push * v[:, 0] / jnp.sqrt(v[:, 0] * v[:, 0] + FWIDTH * FWIDTH)
            v = v + DT * (f + jnp.stack([ft, fn], axis=1))
            x = x + DT * v
            return (x, v), x

        _, xs = jax.lax.scan(step, (jnp.asarray(X0), jnp.asarray(V0)), length=T)
        return 1e4 * jnp.mean((xs - target) ** 2)

    f = jax_blocking(jax.jit(jax.value_and_grad(loss)))
    p = jnp.asarray(GUESS)
    return lambda: f(p)


WORKLOAD = Workload(
    name="physics_sysid",
    title=f"Physics: system identification (3 masses, ground contact), {T} steps",
    description=(
        "3 unit masses, 3 damped springs, gravity, ground contact (smooth penalty, contact "
        f"damping, smoothed Coulomb friction), semi-implicit Euler, dt = {DT}, {T} steps; loss "
        "= trajectory misfit to a noisy observation; `(loss, dloss/d(k, c, mu))`. Reference: "
        "NumPy forward pass differentiated by complex steps. diffsys: "
        "`systems.physics.simulate` with the world's constants traced (`ds.scan`, graph replay)."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("physics_sysid", "torch", 1.0),
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`simulate`, `World.replace(...)` with traced constants"),
        "torch": Impl(_torch, "Python loop, `torch.autograd.grad`"),
        "jax-jit": Impl(_jax, "`jax.jit(jax.value_and_grad(...))` of `lax.scan`"),
    },
    own_target=True,
)
