"""Velocity Verlet and RK4 for rigid bodies: energy drift order on a conservative bounce,
gradients against finite differences, the integrator setting."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import RigidState, RigidWorld, plane_depths, simulate_rigid

# a tilted, spinning box falls on a corner, bounces off the smooth penalty (no damping, no
# friction: conservative) and is in flight again, far from the ground, at T = 0.35 s
S0 = RigidState(np.array([[0.0, 0.35]]), np.array([0.4]), np.array([[0.5, 0.0]]), np.array([3.0]))
T = 0.35


def bounce(integrator, dt):
    return RigidWorld([("box", 0.2, 0.1)], mass=[1.0], contact_stiffness=2e3,
                      contact_smoothing=2e-3, dt=dt, integrator=integrator)


def energy(w, s):
    spin = 0.5 * float(w.inertia[0]) * s.angular_velocity[0] ** 2
    kinetic = 0.5 * np.sum(s.velocity[0] ** 2) + spin
    return float(kinetic + 9.81 * s.position[0, 1])


def energy_errors(integrator):
    errors = []
    for dt in (1e-3, 5e-4, 2.5e-4):
        w = bounce(integrator, dt)
        end, xs = simulate_rigid(w, S0, steps=int(round(T / dt)))
        assert xs.position[:, 0, 1].min() < 0.2  # it did touch (a corner reaches y = 0)
        assert float(plane_depths(w, end).max()) < -0.2  # and is in flight again
        errors.append(abs(energy(w, end) - energy(w, S0)))
    return np.array(errors)


def test_energy_drift_order_of_the_rigid_integrators():
    euler, verlet, rk4 = (energy_errors(i) for i in ("euler", "verlet", "rk4"))
    np.testing.assert_allclose(euler[:-1] / euler[1:], 2.0, rtol=0.1)  # first order
    assert np.all(rk4[:-1] / rk4[1:] > 12.0)  # fourth order
    assert np.all(rk4 < 1e-4 * euler)
    # velocity Verlet is symplectic and time-reversible: the bounce returns its energy
    assert verlet[0] < 1e-8 * euler[0] and np.all(verlet < 1e-8)


@pytest.mark.parametrize("integrator", ["verlet", "rk4"])
def test_rigid_integrator_gradients_with_contact(integrator):
    w = RigidWorld([("box", 0.2, 0.1), ("disc", 0.1)], mass=[1.0, 0.5], friction=0.4,
                   contact_stiffness=2e3, contact_damping=3.0, contact_smoothing=1e-2,
                   friction_smoothing=0.05, collide=True, dt=2e-3, integrator=integrator)
    c0 = np.array([[0.0, 0.095], [0.28, 0.1]])  # the box on the ground, the disc beside it

    def loss(v0, omega0, mass):
        s0 = RigidState(c0, np.array([0.05, 0.0]), v0, omega0)
        end, xs = simulate_rigid(w.replace(mass=mass), s0, steps=12)
        return dnp.sum((end.position - 0.3) ** 2) + dnp.sum(xs.angle**2) + dnp.sum(end.velocity**2)

    v0 = np.array([[0.4, -0.1], [-0.3, 0.2]])
    ds.check_grads(loss, (v0, np.array([1.0, -2.0]), np.array([1.0, 0.5])), order=2)


def test_integrators_agree_as_dt_shrinks_and_unknown_one_is_named():
    ends = [simulate_rigid(bounce(i, 2.5e-4), S0, steps=1400)[0] for i in ("euler", "verlet")]
    ends.append(simulate_rigid(bounce("rk4", 2.5e-4), S0, steps=1400)[0])
    np.testing.assert_allclose(ends[1].position, ends[2].position, atol=1e-6)
    assert np.abs(ends[0].position - ends[2].position).max() > 1e-4  # Euler is first order
    with pytest.raises(ValueError, match="RigidWorld: integrator must be one of"):
        RigidWorld([("disc", 0.1)], mass=[1.0], integrator="leapfrog")
