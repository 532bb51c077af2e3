"""2-D rigid bodies of systems.physics: rolling, rotation, resting contact and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import RigidState, RigidWorld, simulate_rigid


def test_inertia_of_the_solid_shapes():
    w = RigidWorld([("disc", 0.5), ("box", 0.3, 0.2)], mass=[2.0, 3.0])
    np.testing.assert_allclose(w.inertia, [2.0 * 0.25 / 2, 3.0 * (0.09 + 0.04) / 3])


def test_a_sliding_disc_ends_rolling_at_two_thirds_of_its_speed():
    # friction turns sliding into rolling: m (v - v0) = -J, I w = J r, v = w r, I = m r^2 / 2
    r, v0 = 0.1, 2.0
    w = RigidWorld(
        [("disc", r)],
        mass=[1.0],
        friction=0.5,
        contact_stiffness=1e5,
        contact_damping=50.0,
        friction_smoothing=1e-3,
        dt=2e-4,
    )
    s0 = RigidState(np.array([[0.0, r - 1e-4]]), np.zeros(1), np.array([[v0, 0.0]]), np.zeros(1))
    end, _ = simulate_rigid(w, s0, steps=5000, record=False)
    np.testing.assert_allclose(end.velocity[0, 0], 2.0 / 3.0 * v0, rtol=1e-2)
    np.testing.assert_allclose(-end.angular_velocity[0] * r, end.velocity[0, 0], rtol=1e-2)


def test_free_flight_keeps_the_spin_and_the_parabola():
    w = RigidWorld([("box", 0.2, 0.1)], mass=[2.0], planes=[], dt=1e-3)
    s0 = RigidState(np.zeros((1, 2)), np.zeros(1), np.array([[1.0, 3.0]]), np.array([4.0]))
    end, traj = simulate_rigid(w, s0, steps=500)
    np.testing.assert_allclose(traj.angular_velocity[:, 0], 4.0)
    np.testing.assert_allclose(end.angle[0], 4.0 * 0.5, rtol=1e-12)
    np.testing.assert_allclose(end.position[0, 0], 0.5, rtol=1e-12)


def test_a_box_comes_to_rest_flat_on_the_ground():
    w = RigidWorld(
        [("box", 0.2, 0.1)],
        mass=[1.0],
        contact_stiffness=1e4,
        contact_damping=20.0,
        friction=0.5,
        dt=1e-3,
    )
    s0 = RigidState(np.array([[0.0, 0.4]]), np.array([0.5]), np.zeros((1, 2)), np.zeros(1))
    end, _ = simulate_rigid(w, s0, steps=3000, record=False)
    # resting on its long side: centre at the half height, less the penalty's sag m g / (2 k)
    np.testing.assert_allclose(end.position[0, 1], 0.1 - 9.81 / 2e4, atol=2e-3)
    assert abs(np.sin(end.angle[0])) < 1e-2


def _toss_loss(w, v0, omega0, steps=60):
    s0 = RigidState(np.array([[0.0, 0.12], [0.5, 0.11]]), np.array([0.2, 0.0]), v0, omega0)
    end, traj = simulate_rigid(w, s0, steps=steps)
    return dnp.sum(end.position**2) + dnp.sum(end.angle**2) + 0.01 * dnp.sum(traj.velocity**2)


@pytest.mark.parametrize("contact", ["relaxed", "hard"])
def test_gradients_through_contact(contact):
    w = RigidWorld(
        [("box", 0.2, 0.1), ("disc", 0.1)],
        mass=[1.0, 0.5],
        friction=0.4,
        contact_stiffness=3e3,
        contact_damping=5.0,
        contact_smoothing=1e-2,
        friction_smoothing=0.05,
        dt=2e-3,
        contact=contact,
    )
    v0 = np.array([[0.5, -0.2], [0.4, 0.0]])
    omega0 = np.array([0.3, -1.0])
    ds.check_grads(lambda v, o: _toss_loss(w, v, o), (v0, omega0), order=1)
    if contact == "relaxed":
        ds.check_grads(
            lambda mu, m: _toss_loss(w.replace(friction=mu, mass=m), v0, omega0),
            (np.asarray(0.4), np.array([1.0, 0.5])),
            order=1,
        )


def test_policies_give_the_same_gradient():
    w = RigidWorld(
        [("box", 0.2, 0.1)],
        mass=[1.0],
        friction=0.4,
        contact_stiffness=3e3,
        contact_smoothing=1e-2,
        dt=2e-3,
    )
    s0 = RigidState(np.array([[0.0, 0.3]]), np.array([0.4]), np.zeros((1, 2)), np.zeros(1))

    def loss(v0, policy):
        end, _ = simulate_rigid(
            w, s0._replace(velocity=v0), steps=200, checkpoint=policy, record=False
        )
        return dnp.sum(end.position**2) + dnp.sum(end.angle)

    g = ds.grad(loss)(np.array([[1.0, 0.0]]), None)
    for policy in ("sqrt", ("binomial", 4)):
        np.testing.assert_allclose(ds.grad(loss)(np.array([[1.0, 0.0]]), policy), g, rtol=1e-12)


def test_bad_rigid_input():
    with pytest.raises(ValueError, match=r"body 1 has shape \('box', 0.2\)"):
        RigidWorld([("disc", 0.1), ("box", 0.2)], mass=[1.0, 1.0])
    with pytest.raises(ValueError, match="body 0 has mass -1.0"):
        RigidWorld([("disc", 0.1)], mass=[-1.0])
    w = RigidWorld([("disc", 0.1)], mass=[1.0])
    bad = RigidState(np.array([[0.0, np.nan]]), np.zeros(1), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="body 0 has a non-finite position"):
        simulate_rigid(w, bad, steps=2)
