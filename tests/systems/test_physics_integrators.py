"""Integrators of systems.physics: energy drift on a conservative system, convergence order,
and the hard contact laws against an independent NumPy simulation."""

from __future__ import annotations

import numpy as np
import pytest

from diffsys.systems.physics import State, World, energy, simulate

X0 = np.array([[0.0, 1.0], [1.2, 1.1], [0.5, 1.8]])
V0 = np.array([[0.0, 0.5], [-0.3, 0.0], [0.2, -0.4]])


def energy_error(integrator: str, dt: float, duration: float = 2.0) -> float:
    w = World(
        mass=[1.0, 2.0, 1.5],
        springs=[(0, 1), (1, 2), (0, 2)],
        stiffness=[50.0, 80.0, 60.0],
        rest_length=[1.0, 1.0, 1.0],
        planes=[],
        dt=dt,
        integrator=integrator,
    )
    steps = round(duration / dt)
    _, states = simulate(w, State(X0, V0), steps=steps, record="state")
    e0 = energy(w, State(X0, V0))
    es = np.array([energy(w, State(states.position[t], states.velocity[t])) for t in range(steps)])
    return float(np.max(np.abs(es - e0)) / abs(e0))


@pytest.mark.parametrize(
    "integrator, order, bound", [("euler", 1, 5e-2), ("verlet", 2, 5e-3), ("rk4", 4, 1e-5)]
)
def test_energy_drift_and_its_order(integrator, order, bound):
    coarse, fine = energy_error(integrator, 4e-3), energy_error(integrator, 2e-3)
    assert fine < bound
    # halving dt divides the energy error by about 2^order
    assert coarse / fine > 0.8 * 2**order, (coarse, fine)


def reference_bounce(x, v, steps, dt, k, c, mu, r, g):
    """A ball on the ground y >= 0 with the hard penalty law, contact damping and Coulomb
    friction, semi-implicit Euler: written from the formulas, element by element."""
    out = []
    for _ in range(steps):
        depth = r - x[1]
        touching = depth > 0
        fn = k * max(depth, 0.0) - (c * v[1] if touching else 0.0)
        push = k * max(depth, 0.0)
        ft = -mu * push * np.sign(v[0])
        a = np.array([ft, fn + g])  # unit mass
        v = v + dt * a
        x = x + dt * v
        out.append(x.copy())
    return np.array(out)


def test_hard_contact_matches_a_reference_simulation():
    k, c, mu, r, dt = 5000.0, 4.0, 0.3, 0.1, 1e-3
    w = World(
        mass=[1.0],
        radius=r,
        contact_stiffness=k,
        contact_damping=c,
        friction=mu,
        gravity=[0.0, -9.81],
        dt=dt,
        contact="hard",
    )
    x0, v0 = np.array([0.0, 0.4]), np.array([1.5, 0.0])
    _, xs = simulate(w, State(x0[None], v0[None]), steps=800)
    want = reference_bounce(x0, v0, 800, dt, k, c, mu, r, -9.81)
    np.testing.assert_allclose(xs[:, 0], want, rtol=1e-10, atol=1e-12)
    assert want[:, 1].min() < r  # the ball did touch the ground


def test_relaxed_contact_tends_to_the_hard_one():
    base = dict(
        mass=[1.0],
        radius=0.1,
        contact_stiffness=5000.0,
        contact_damping=4.0,
        friction=0.3,
        gravity=[0.0, -9.81],
        dt=1e-3,
    )
    s0 = State(np.array([[0.0, 0.4]]), np.array([[1.5, 0.0]]))
    _, hard = simulate(World(contact="hard", **base), s0, steps=400)
    gaps = []  # (the ball slides for all 400 steps: the hard friction does not chatter)
    # (not monotone at every width: where a sampled penetration happens to lie within the
    # width, the damping gate differs from the hard step at that step; it still converges)
    for w in (1e-2, 1e-3, 1e-5):
        world = World(contact_smoothing=w, friction_smoothing=10 * w, **base)
        _, soft = simulate(world, s0, steps=400)
        gaps.append(np.max(np.abs(soft - hard)))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2 * gaps[0], gaps


def test_controls_act_as_forces_and_muscles():
    # actuation a sets the rest length to L0 (1 + a): a damped spring settles there
    w = World(
        mass=[1.0, 1.0],
        springs=[(0, 1)],
        stiffness=100.0,
        damping=5.0,
        rest_length=[1.0],
        planes=[],
        gravity=[0.0, 0.0],
        dt=1e-3,
    )
    s0 = State(np.array([[0.0, 0.0], [1.0, 0.0]]), np.zeros((2, 2)))
    steps = 3000
    end, _ = simulate(w, s0, {"actuation": np.full((steps, 1), 0.2)})
    np.testing.assert_allclose(np.linalg.norm(end.position[1] - end.position[0]), 1.2, rtol=1e-6)
    # a force control F on a free unit mass: semi-implicit Euler gives x_T = dt^2 F T (T + 1) / 2
    free = World(mass=[1.0], planes=[], gravity=[0.0, 0.0], dt=1e-2)
    force = np.zeros((50, 1, 2))
    force[:, 0, 0] = 3.0
    end, _ = simulate(free, State(np.zeros((1, 2)), np.zeros((1, 2))), {"force": force})
    np.testing.assert_allclose(end.position[0], [1e-4 * 3.0 * 50 * 51 / 2, 0.0], rtol=1e-12)
