"""Gradients of systems.physics rollouts against finite differences, and the equality of
checkpoint policies, graph replay and eager tracing."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import State, World, simulate

X0 = np.array([[0.0, 0.045], [0.5, 0.3], [0.25, 0.04]])  # particles 0 and 2 in contact
V0 = np.array([[0.4, 0.0], [0.3, 0.2], [0.5, -0.1]])
SPRINGS = [(0, 1), (1, 2), (0, 2)]


def make_world(contact="relaxed", integrator="euler", planes=None, **kw):
    params = dict(
        stiffness=[200.0, 150.0, 250.0],
        damping=[1.0, 0.5, 2.0],
        positions=X0,
        radius=0.05,
        friction=0.4,
        drag=0.1,
        contact_stiffness=2000.0,
        contact_damping=3.0,
        contact_smoothing=1e-2,
        friction_smoothing=0.05,
        dt=2e-3,
    )
    params.update(kw)
    return World(
        mass=[1.0, 1.5, 0.8],
        springs=SPRINGS,
        planes=planes,
        contact=contact,
        integrator=integrator,
        **params,
    )


def rollout_loss(world, x0, v0, controls=None, steps=15, **kw):
    end, xs = simulate(world, State(x0, v0), controls, steps if controls is None else None, **kw)
    target = np.array([0.3, 0.2])
    return dnp.sum((end.position - target) ** 2) + 0.1 * dnp.sum(xs[..., 1] ** 2) / len(xs)


@pytest.mark.parametrize("integrator", ["euler", "verlet", "rk4"])
def test_initial_state_gradients_with_contact(integrator):
    w = make_world(integrator=integrator, drag=0.0)
    ds.check_grads(lambda x0, v0: rollout_loss(w, x0, v0, steps=10), (X0, V0), order=2)


def test_initial_state_gradients_without_contact():
    w = make_world(planes=[])
    ds.check_grads(lambda x0, v0: rollout_loss(w, x0, v0), (X0, V0), order=2)


def test_hard_contact_gradients_away_from_switches():
    w = make_world(contact="hard", friction=0.0)
    ds.check_grads(lambda v0: rollout_loss(w, X0, v0), (V0,), order=1)


@pytest.mark.parametrize(
    "field",
    [
        "mass",
        "stiffness",
        "damping",
        "rest_length",
        "friction",
        "contact_damping",
        "contact_stiffness",
        "drag",
        "gravity",
    ],
)
def test_world_parameter_gradients(field):
    w = make_world()

    def loss(value):
        return rollout_loss(w.replace(**{field: value}), X0, V0)

    ds.check_grads(loss, (np.asarray(getattr(w, field)),), order=1)


def test_control_gradients():
    w = make_world()
    rng = np.random.default_rng(0)
    controls = {
        "force": 0.5 * rng.normal(size=(12, 3, 2)),
        "actuation": 0.05 * rng.normal(size=(12, 3)),
    }
    ds.check_grads(lambda u: rollout_loss(w, X0, V0, u), (controls,), order=1)


def test_controller_parameter_gradients():
    w = make_world()
    phases = np.linspace(0.0, 2.0, 12)[:, None]

    def loss(W):
        def controller(state, x):  # a closed-loop controller: reads W from its closure
            return {"actuation": 0.1 * dnp.tanh(W @ dnp.concatenate([state.velocity.ravel(), x]))}

        return rollout_loss(w, X0, V0, phases, controller=controller)

    W = np.random.default_rng(1).normal(size=(3, 7)) * 0.3
    ds.check_grads(loss, (W,), order=1)


def test_grad_of_a_whole_world():
    w = make_world()
    g = ds.grad(lambda w: rollout_loss(w, X0, V0))(w)
    assert isinstance(g, World) and g.stiffness.shape == (3,)
    eps = 1e-6
    up = rollout_loss(w.replace(friction=np.asarray(0.4 + eps)), X0, V0)
    down = rollout_loss(w.replace(friction=np.asarray(0.4 - eps)), X0, V0)
    np.testing.assert_allclose(g.friction, (up - down) / (2 * eps), rtol=1e-5)


def test_checkpoint_policies_and_replay_give_identical_gradients():
    w = make_world()

    def grads(**kw):
        return ds.grad(lambda w, v0: rollout_loss(w, X0, v0, steps=120, **kw), argnums=(0, 1))(
            w, V0
        )

    ref_w, ref_v = grads(checkpoint=None, replay=False)
    for kw in [
        dict(checkpoint="sqrt", replay=False),
        dict(checkpoint=("binomial", 3), replay=False),
        dict(checkpoint=("every_k", 7), replay=False),
        dict(checkpoint=None, replay=True),
        dict(checkpoint="sqrt", replay=True),
        dict(checkpoint=("binomial", 3), replay=True),
    ]:
        gw, gv = grads(**kw)
        np.testing.assert_allclose(gv, ref_v, rtol=1e-12, atol=1e-14, err_msg=str(kw))
        for a, b in zip(ds.tree_leaves(gw), ds.tree_leaves(ref_w), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=str(kw))


def test_replay_does_not_fall_back():
    import warnings

    w = make_world()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ds.scan.ReplayFallbackWarning)
        ds.grad(lambda v0: rollout_loss(w, X0, v0, replay=True))(V0)
