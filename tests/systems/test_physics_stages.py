"""systems.physics.simulation_stage: relaxed contact in training, hard at inference, the
mismatch reported, and the learned world constants trained through a pipeline."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import pipeline as pl
from diffsys.systems.physics import (
    RigidState,
    RigidWorld,
    State,
    World,
    mismatch,
    simulate,
    simulate_rigid,
    simulation_stage,
)

X0 = np.array([[0.0, 0.3], [0.3, 0.3], [0.15, 0.55]])
V0 = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])


def _world(**kw):
    kw = {"stiffness": 300.0, "damping": 2.0, "radius": 0.02, "friction": 0.4,
          "friction_smoothing": 0.05, "contact_stiffness": 5e3, "contact_damping": 5.0,
          "contact_smoothing": 5e-3, "dt": 2e-3, **kw}
    return World(mass=[1.0, 1.0, 1.0], springs=[(0, 1), (1, 2), (0, 2)], positions=X0, **kw)


def test_stage_runs_smooth_in_training_and_hard_at_inference():
    w = _world()
    stage = simulation_stage("sim", w, 200, learn=("friction", "stiffness"))
    assert stage.kind == "relaxed"
    assert sorted(stage.params) == ["friction", "stiffness"]
    pipe = pl.Pipeline([stage], batch_keys=("state",))
    batch = {"state": State(X0, V0)}
    np.testing.assert_array_equal(pipe(batch), simulate(w, State(X0, V0), steps=200)[1])
    with pipe.inference():
        np.testing.assert_array_equal(pipe(batch), simulate(w.hard(), State(X0, V0), steps=200)[1])
    row = pipe.mismatch(batch)["sim"]
    np.testing.assert_allclose(row.max_abs, np.max(np.abs(
        simulate(w, State(X0, V0), steps=200)[1] - simulate(w.hard(), State(X0, V0), steps=200)[1]
    )))
    assert row.max_abs > 0
    gap = mismatch(w, State(X0, V0), steps=200)["trajectory"]
    assert gap >= row.max_abs  # the Euclidean gap per particle bounds the coordinate gap


def test_stage_gradient_reaches_the_learned_constants():
    truth = _world()
    observed = simulate(truth, State(X0, V0), steps=200)[1]
    start = _world(friction=0.1)
    stage = simulation_stage("sim", start, 200, learn=("friction",))
    pipe = pl.Pipeline([stage], batch_keys=("state",))
    pipe.add_loss("fit", lambda xs: 1e3 * dnp.mean((xs - observed) ** 2), inputs="sim")
    batch = {"state": State(X0, V0)}
    (value, _), g = ds.value_and_grad(pipe.loss, has_aux=True)(pipe.params, batch)

    def direct(mu):
        xs = simulate(start.replace(friction=mu), State(X0, V0), steps=200)[1]
        return 1e3 * dnp.mean((xs - observed) ** 2)

    np.testing.assert_allclose(g["sim"]["friction"], ds.grad(direct)(np.asarray(0.1)))
    np.testing.assert_allclose(value, direct(np.asarray(0.1)))
    assert float(g["sim"]["friction"]) < 0  # more friction fits better
    step = {"sim": {"friction": 0.1 - 0.05 * np.sign(g["sim"]["friction"])}}
    assert pipe.loss(step, batch)[0] < value


def test_rigid_stage_final_state_and_controls_input():
    w = RigidWorld([("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 2.0], collide=True,
                   contact_stiffness=1e4, contact_damping=10.0, dt=1e-3)
    stage = simulation_stage("sim", w, 50, output="final", inputs=("s0", "push"))
    s0 = RigidState(np.array([[-0.5, 0.1], [0.0, 0.1]]), np.zeros(2), np.zeros((2, 2)),
                    np.zeros(2))
    push = {"force": np.tile([[3.0, 0.0], [0.0, 0.0]], (50, 1, 1))}
    end = stage.fn(stage.params, s0, push)
    ref, _ = simulate_rigid(w, s0, push, 50, record=False)
    np.testing.assert_array_equal(end.position, ref.position)
    assert end.velocity[0, 0] > 0


def test_stage_rejects_unknown_constants_and_worlds():
    with pytest.raises(ValueError, match=r"cannot learn \['springs'\].*'friction'"):
        simulation_stage("sim", _world(), 10, learn=("springs",))
    with pytest.raises(TypeError, match="World or a RigidWorld"):
        simulation_stage("sim", object(), 10)
    with pytest.raises(ValueError, match="output must be"):
        simulation_stage("sim", _world(), 10, output="all")
