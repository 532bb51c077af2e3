"""Coulomb friction between colliding particles: the smoothed law of .contact on the
relative tangential velocity, its hard form, gradients, and conservation of momentum."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import State, World, friction_direction, pair_forces, simulate

# two particles of radius 0.1 overlapping by 0.005, sliding past each other along y
X0 = np.array([[0.0, 0.0], [0.195, 0.0]])
V0 = np.array([[0.0, 0.3], [0.0, -0.2]])
pytestmark = pytest.mark.filterwarnings("ignore:simulate. particles 0 and 1 are created overlap")


def make_world(contact="relaxed", friction=0.5, **kw):
    params = dict(
        radius=0.1, gravity=(0.0, 0.0), planes=[], collide=True, contact_stiffness=1e3,
        contact_damping=0.0, friction=friction, contact_smoothing=1e-3,
        friction_smoothing=0.05, dt=1e-3,
    )
    params.update(kw)
    return World(mass=[1.0, 2.0], contact=contact, **params)


def test_pair_friction_is_coulomb_on_the_relative_tangential_velocity():
    w = make_world(contact="hard")
    f = pair_forces(w, X0, V0)
    push = 1e3 * 0.005  # k * depth
    # normal: particle 1 pushed along +x, 0 along -x; friction opposes v_1 - v_0 = (0, -0.5)
    np.testing.assert_allclose(f, [[-push, -0.5 * push], [push, 0.5 * push]], atol=1e-12)
    frictionless = pair_forces(make_world(contact="hard", friction=0.0), X0, V0)
    np.testing.assert_allclose(frictionless[:, 1], 0.0, atol=1e-12)


def test_smooth_pair_friction_uses_the_smoothed_direction():
    w = make_world()
    f = pair_forces(w, X0, V0) - pair_forces(w.replace(friction=np.asarray(0.0)), X0, V0)
    push = 1e3 * 1e-3 * np.logaddexp(0.0, 0.005 / 1e-3)
    slide = friction_direction(np.array([0.0, -0.5]), smoothing=0.05)
    np.testing.assert_allclose(f[1], -0.5 * push * slide, rtol=1e-12)
    np.testing.assert_allclose(f[0], -f[1], rtol=1e-12)


def _friction_part(w):
    return pair_forces(w, X0, V0) - pair_forces(w.replace(friction=np.asarray(0.0)), X0, V0)


def test_hard_smooth_gap_of_pair_friction_shrinks_with_the_smoothing():
    hard = _friction_part(make_world(contact="hard"))
    assert np.abs(hard).max() > 1.0
    gaps = [
        np.abs(_friction_part(make_world(friction_smoothing=s, contact_smoothing=s / 10)) - hard)
        .max()
        for s in (0.1, 0.01, 0.001)
    ]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3 * gaps[0]


def test_pair_friction_conserves_momentum_and_dissipates_sliding():
    v0 = np.array([[0.1, 0.3], [-0.1, -0.2]])
    m = np.array([1.0, 2.0])[:, None]
    slip = {}
    for mu in (0.0, 0.5):
        end, _ = simulate(make_world(contact_damping=2.0, friction=mu), State(X0, v0), steps=200)
        np.testing.assert_allclose((m * end.velocity).sum(0), (m * v0).sum(0), atol=1e-12)
        slip[mu] = abs(end.velocity[1, 1] - end.velocity[0, 1])
    assert slip[0.0] > 0.5 and slip[0.5] < 0.7 * slip[0.0]  # friction slowed the sliding


def test_pair_friction_gradients_in_contact():
    w = make_world(contact_smoothing=1e-2)
    target = np.array([0.3, 0.1])

    def loss(x0, v0, mu):
        end, xs = simulate(w.replace(friction=mu), State(x0, v0), steps=12)
        return dnp.sum((end.position[1] - target) ** 2) + dnp.sum(xs[..., 1] ** 2) / len(xs)

    ds.check_grads(loss, (X0, V0, np.asarray(0.5)), order=2)
    assert abs(float(ds.grad(loss, argnums=2)(X0, V0, np.asarray(0.5)))) > 1e-5


def test_hard_pair_friction_gradients_away_from_switches():
    w = make_world(contact="hard")
    target = np.array([0.3, 0.1])

    def loss(v0, mu):
        end, _ = simulate(w.replace(friction=mu), State(X0, v0), steps=12)
        return dnp.sum((end.position - target) ** 2)

    ds.check_grads(loss, (V0, np.asarray(0.5)), order=1)
    assert abs(float(ds.grad(loss, argnums=1)(V0, np.asarray(0.5)))) > 1e-5


def test_friction_gradient_at_zero_mu_is_not_skipped():
    # a world with mu = 0 skips the friction term's cost, but not when mu is being learned
    w = make_world(friction=0.0, contact_smoothing=1e-2)

    def loss(mu):
        end, _ = simulate(w.replace(friction=mu), State(X0, V0), steps=12)
        return end.position[1, 1]

    ds.check_grads(loss, (np.asarray(0.0),), order=1)
    assert abs(float(ds.grad(loss)(np.asarray(0.0)))) > 1e-5
