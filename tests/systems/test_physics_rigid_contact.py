"""Contacts between rigid bodies (disc-disc, disc-box, box-box) in systems.physics: geometry
against an exact reference, conservation laws, resting stacks, the hard limit, gradients
against finite differences, and the gradient-health report of a rigid rollout."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import (
    RigidState,
    RigidWorld,
    body_contacts,
    gradient_report,
    plane_depths,
    simulate_rigid,
)


def _state(position, angle=None, velocity=None, omega=None):
    position = np.asarray(position, dtype=float)
    n = len(position)
    return RigidState(
        position,
        np.zeros(n) if angle is None else np.asarray(angle, dtype=float),
        np.zeros((n, 2)) if velocity is None else np.asarray(velocity, dtype=float),
        np.zeros(n) if omega is None else np.asarray(omega, dtype=float),
    )


def _segment_distance(p, a, b):
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
    return np.linalg.norm(p - (a + t * (b - a)))


def _reference_sdf(p, centre, angle, half):
    """Signed distance from p to a rotated rectangle: the distance to its four edges, negative
    inside (a plain polygon computation, independent of the box-frame formula)."""
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = [centre + rot @ (np.array(s) * half) for s in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    dist = min(_segment_distance(p, corners[k], corners[(k + 1) % 4]) for k in range(4))
    local = rot.T @ (p - centre)
    inside = np.all(np.abs(local) < half)
    return -dist if inside else dist


def test_disc_box_depth_is_the_exact_signed_distance():
    rng = np.random.default_rng(0)
    w = RigidWorld([("disc", 0.1), ("box", 0.3, 0.15)], mass=[1.0, 1.0], collide=True)
    for _ in range(200):
        disc = rng.uniform(-0.6, 0.6, 2)
        box, angle = rng.uniform(-0.1, 0.1, 2), rng.uniform(-np.pi, np.pi)
        s = _state([disc, box], angle=[0.0, angle])
        a, b, depth, normal, point = body_contacts(w, s)
        assert (a.tolist(), b.tolist()) == ([0], [1])
        sdf = _reference_sdf(disc, box, angle, np.array([0.3, 0.15]))
        np.testing.assert_allclose(depth[0], 0.1 - sdf, atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(normal[0]), 1.0)
        # moving the disc along the normal increases the distance at unit rate
        h = 1e-7
        moved = _state([disc + h * normal[0], box], angle=[0.0, angle])
        np.testing.assert_allclose((depth[0] - body_contacts(w, moved)[2][0]) / h, 1.0, atol=1e-5)
        np.testing.assert_allclose(point[0], disc - 0.1 * normal[0], atol=1e-12)


def test_box_box_rows_are_every_corner_against_the_other_box():
    w = RigidWorld([("box", 0.2, 0.1), ("box", 0.1, 0.1)], mass=[1.0, 1.0], collide=True)
    rows = [[0, k, 1] for k in range(4)] + [[1, k, 0] for k in range(4)]
    assert w.contact_points.tolist() == rows
    # box 1 resting 0.01 deep on top of box 0, both level: its two bottom corners penetrate
    s = _state([[0.0, 0.0], [0.0, 0.19]])
    a, b, depth, normal, _ = body_contacts(w, s)
    deep = depth > 0
    assert a[deep].tolist() == [1, 1] and b[deep].tolist() == [0, 0]
    np.testing.assert_allclose(depth[deep], 0.01, atol=1e-12)
    np.testing.assert_allclose(normal[deep], [[0.0, 1.0], [0.0, 1.0]], atol=1e-12)


def test_a_head_on_disc_collision_exchanges_velocities_and_conserves_momentum():
    w = RigidWorld(
        [("disc", 0.1), ("disc", 0.1)], mass=[1.0, 1.0], planes=[], gravity=(0.0, 0.0),
        collide=True, contact_stiffness=1e4, dt=1e-3,
    )
    s0 = _state([[0.0, 0.0], [0.5, 0.0]], velocity=[[1.0, 0.0], [0.0, 0.0]])
    end, traj = simulate_rigid(w, s0, steps=600)
    np.testing.assert_allclose(end.velocity, [[0.0, 0.0], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(traj.velocity.sum(axis=1), np.tile([1.0, 0.0], (600, 1)), atol=1e-12)


def test_an_oblique_frictional_hit_conserves_linear_and_angular_momentum():
    w = RigidWorld(
        [("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 2.5], planes=[], gravity=(0.0, 0.0),
        collide=True, contact_stiffness=5e3, contact_damping=3.0, friction=0.6,
        friction_smoothing=1e-2, dt=1e-3,
    )
    s0 = _state([[-0.5, 0.05], [0.0, 0.0]], angle=[0.0, 0.4], velocity=[[2.0, 0.3], [0, 0]],
                omega=[5.0, 0.0])
    _, traj = simulate_rigid(w, s0, steps=500)
    m, inertia = np.array([1.0, 2.5]), np.asarray(w.inertia)
    p = np.einsum("b,tbk->tk", m, traj.velocity)
    c, v = traj.position, traj.velocity
    L = np.einsum("b,tb->t", inertia, traj.angular_velocity) + np.einsum(
        "b,tb->t", m, c[..., 0] * v[..., 1] - c[..., 1] * v[..., 0]
    )
    assert np.ptp(np.linalg.norm(traj.velocity[:, 1], axis=-1)) > 0.1  # they did collide
    np.testing.assert_allclose(p, np.tile(p[0], (500, 1)), atol=1e-11)
    # semi-implicit Euler conserves L only to O(dt) per step of the rotation (c' = c + dt v')
    np.testing.assert_allclose(L, L[0], atol=2e-3 * abs(L[0]))


@pytest.mark.parametrize("top", [("disc", 0.1), ("box", 0.1, 0.1)])
def test_a_body_comes_to_rest_on_a_box_on_the_ground(top):
    w = RigidWorld(
        [("box", 0.3, 0.1), top], mass=[2.0, 1.0], collide=True, contact_stiffness=1e4,
        contact_damping=20.0, friction=0.5, dt=1e-3,
    )
    s0 = _state([[0.0, 0.1], [0.0, 0.33]], angle=[0.0, 0.2])
    end, _ = simulate_rigid(w, s0, steps=3000, record=False)
    # sag: the top body's weight on one contact stiffness, the pair's on the ground contacts
    np.testing.assert_allclose(end.position[0, 1], 0.1, atol=3e-3)
    np.testing.assert_allclose(end.position[1, 1], 0.3, atol=5e-3)
    np.testing.assert_allclose(end.velocity, 0.0, atol=1e-3)
    if top[0] == "box":
        assert abs(np.sin(end.angle[1])) < 1e-2  # it settles flat


def test_the_smooth_contact_converges_to_the_hard_one():
    def final(smoothing, contact):
        w = RigidWorld(
            [("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 2.0], planes=[], gravity=(0, 0),
            collide=True, contact_stiffness=1e4, contact_damping=5.0, friction=0.3,
            contact_smoothing=smoothing, friction_smoothing=smoothing, dt=5e-4, contact=contact,
        )
        s0 = _state([[-0.5, 0.02], [0.0, 0.0]], angle=[0.0, 0.3], velocity=[[2.0, 0], [0, 0]])
        end, _ = simulate_rigid(w, s0, steps=800, record=False)
        return np.concatenate([end.position.ravel(), end.velocity.ravel(), end.angle])

    hard = final(1e-3, "hard")
    gaps = [np.max(np.abs(final(w, "relaxed") - hard)) for w in (1e-2, 1e-3, 1e-4)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.05 * gaps[0]


def _rigid_rollout(world, s0, steps):
    def f(v0, omega0, friction, stiffness, mass):
        w = world.replace(friction=friction, contact_stiffness=stiffness, mass=mass)
        s = RigidState(s0.position, s0.angle, v0, omega0)
        end, _ = simulate_rigid(w, s, steps=steps, record=False)
        return dnp.sum(end.position * np.array([[1.0, 0.7], [0.3, -0.5]])) + dnp.sum(
            dnp.sin(end.angle)
        )

    return f


CASES = {
    # a disc striking a tilted box, in contact during the window
    "disc-box": (
        [("disc", 0.1), ("box", 0.2, 0.1)],
        _state([[-0.31, 0.05], [0.0, 0.0]], angle=[0.0, 0.4], velocity=[[2.0, 0.2], [0, 0]],
               omega=[3.0, -1.0]),
    ),
    "disc-disc": (
        [("disc", 0.1), ("disc", 0.15)],
        _state([[-0.26, 0.03], [0.0, 0.0]], velocity=[[2.0, 0.1], [0, 0]], omega=[3.0, 0.0]),
    ),
    "box-box": (
        [("box", 0.1, 0.1), ("box", 0.2, 0.1)],
        _state([[-0.33, 0.06], [0.0, 0.0]], angle=[0.5, 0.0], velocity=[[2.0, 0], [0, 0]]),
    ),
    # the same bodies apart: no contact in the window
    "no contact": (
        [("disc", 0.1), ("box", 0.2, 0.1)],
        _state([[-1.0, 0.05], [0.0, 0.0]], angle=[0.0, 0.4], velocity=[[0.5, 0.2], [0, 0]],
               omega=[3.0, -1.0]),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_body_contact_gradients_match_finite_differences(case):
    shapes, s0 = CASES[case]
    world = RigidWorld(
        shapes, mass=[1.0, 2.0], planes=[], gravity=(0.0, -1.0), collide=True,
        contact_stiffness=2e3, contact_damping=2.0, friction=0.4, contact_smoothing=1e-2,
        friction_smoothing=0.1, dt=2e-3,
    )
    steps = 40
    f = _rigid_rollout(world, s0, steps)
    mass = np.array([1.0, 2.0])
    args = (s0.velocity, s0.angular_velocity, np.asarray(0.4), np.asarray(2e3), mass)
    if case != "no contact":
        _, traj = simulate_rigid(world, s0, steps=steps)
        depth = [np.max(body_contacts(world, RigidState(*(a[t] for a in traj)))[2])
                 for t in range(steps)]
        assert max(depth) > 0  # in contact during the window
    ds.check_grads(f, args, order=1, modes=("fwd", "rev"))


def test_second_order_gradient_through_a_disc_contact():
    shapes, s0 = CASES["disc-disc"]
    world = RigidWorld(shapes, mass=[1.0, 2.0], planes=[], gravity=(0.0, 0.0), collide=True,
                       contact_stiffness=2e3, contact_smoothing=1e-2, dt=2e-3)

    def f(v0):
        end, _ = simulate_rigid(world, s0._replace(velocity=v0), steps=25, record=False)
        return dnp.sum(end.position[1] ** 2)

    ds.check_grads(f, (s0.velocity,), order=2, modes=("rev",))


def test_hard_contact_gradient_is_the_limit_of_the_smooth_one():
    shapes, s0 = CASES["disc-disc"]

    def grad(smoothing, contact):
        world = RigidWorld(shapes, mass=[1.0, 2.0], planes=[], gravity=(0.0, 0.0), collide=True,
                           contact_stiffness=2e3, contact_smoothing=smoothing, dt=1e-3,
                           contact=contact)

        def f(v0):
            end, _ = simulate_rigid(world, s0._replace(velocity=v0), steps=150, record=False)
            return end.position[1, 0]

        return ds.grad(f)(s0.velocity)

    hard = grad(1e-3, "hard")
    gaps = [np.max(np.abs(grad(w, "relaxed") - hard)) for w in (1e-2, 1e-3, 1e-4)]
    assert gaps[0] > gaps[1] > gaps[2]


def test_gradient_report_of_a_rigid_rollout_names_the_contacts():
    w = RigidWorld(
        [("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 2.0], gravity=(0.0, -9.81), collide=True,
        contact_stiffness=1e5, contact_smoothing=1e-6, dt=1e-3, contact="hard",
    )
    s0 = _state([[-0.5, 0.15], [0.0, 0.1]], velocity=[[3.0, 0.0], [0.0, 0.0]])
    report = gradient_report(lambda s, xs: dnp.sum(xs[-1] ** 2), w, s0, steps=250)
    assert report.norms.shape == (250,)
    touch = [t for t, what in report.contact_events if what == "bodies 0 and 1 touch"]
    assert touch, report.contact_events
    # the disc's rim reaches the box's left face (x = -0.2) after 0.2 / 3 s, in free flight
    assert touch[0] == pytest.approx(0.2 / 3.0 / 1e-3, abs=1)
    assert report.nonfinite_at is None
    assert any("bodies 0 and 1" in what for _, what, _ in report.discontinuities)
    smooth = w.replace(contact="relaxed", contact_smoothing=np.asarray(1e-2),
                       contact_stiffness=np.asarray(1e3))
    assert gradient_report(lambda s, xs: dnp.sum(xs[-1] ** 2), smooth, s0, steps=250).healthy


def test_plane_depths_mark_disc_copies_inactive():
    w = RigidWorld([("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 1.0])
    d = plane_depths(w, _state([[0.0, 0.05], [1.0, 0.3]], angle=[0.0, np.pi / 2]))
    assert d.shape == (2, 4, 1)
    np.testing.assert_allclose(d[0, 0, 0], 0.05)
    assert np.all(np.isneginf(d[0, 1:]))
    np.testing.assert_allclose(np.sort(d[1, :, 0]), [-0.5, -0.5, -0.1, -0.1], atol=1e-12)


def test_bad_collide_pairs_and_overlapping_bodies_are_named():
    with pytest.raises(ValueError, match=r"collide pair 0 is \(1, 1\)"):
        RigidWorld([("disc", 0.1), ("disc", 0.1)], mass=[1.0, 1.0], collide=[(1, 1)])
    w = RigidWorld([("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 1.0], collide=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        simulate_rigid(w, _state([[0.0, 0.5], [0.05, 0.5]]), steps=1)
    assert any("bodies 0 and 1 are created overlapping" in str(c.message) for c in caught)
