"""Gradient health reports and bounded-memory long rollouts of systems.physics."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import State, World, gradient_report, simulate


def test_the_report_gives_every_step_adjoint():
    w = World(
        mass=[1.0, 2.0], springs=[(0, 1)], stiffness=30.0, rest_length=[1.0], planes=[], dt=1e-2
    )
    s0 = State(np.array([[0.0, 1.0], [1.1, 1.0]]), np.array([[0.0, 0.1], [0.2, 0.0]]))
    r = gradient_report(lambda s, xs: dnp.sum(s.position[1] ** 2), w, s0, steps=40)
    # the adjoint of step 0 is the gradient with respect to the initial state
    gx, gv = ds.grad(
        lambda x, v: dnp.sum(simulate(w, State(x, v), steps=40)[0].position[1] ** 2),
        argnums=(0, 1),
    )(*s0)
    np.testing.assert_allclose(r.norms[0], np.sqrt(np.sum(gx**2) + np.sum(gv**2)), rtol=1e-12)
    assert r.norms.shape == (40,) and r.growth.shape == (39,)
    assert r.healthy and r.exploded_at is None and "healthy" in r.summary()


def test_explosion_is_reported_with_its_step():
    # a stiff spring beyond the stability limit: the adjoint grows at every step backwards
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = World(
            mass=[1.0, 1.0], springs=[(0, 1)], stiffness=1e4, rest_length=[1.0], planes=[], dt=0.021
        )
    s0 = State(np.array([[0.0, 0.0], [1.001, 0.0]]), np.zeros((2, 2)))
    r = gradient_report(lambda s, xs: dnp.sum(s.position**2), w, s0, steps=30, limit=1e6)
    assert not r.healthy
    growth_per_step = np.median(r.growth)
    assert growth_per_step > 1.5
    # the first step from the end where the norm passes 1e6 x the last one
    want = max(t for t in range(30) if r.norms[t] > 1e6 * r.norms[-1])
    assert r.exploded_at == want and f"step {want}" in r.summary()


def test_contact_induced_jump_is_reported_at_the_contact_step():
    # a ball dropped onto a hard ground: the adjoint jumps where the contact starts
    w = World(
        mass=[1.0],
        radius=0.1,
        contact_stiffness=1e5,
        contact_smoothing=1e-6,
        dt=1e-3,
        gravity=[0.0, -9.81],
    )
    s0 = State(np.array([[0.0, 0.15]]), np.array([[0.5, -1.0]]))
    r = gradient_report(lambda s, xs: dnp.sum(xs[-1] ** 2), w, s0, steps=80)
    touch = [t for t, what in r.contact_events if "touches" in what]
    assert touch, r.contact_events
    assert r.discontinuities and r.discontinuities[0][0] == touch[0]
    assert f"contact-induced jump at step {touch[0]}" in r.summary()
    # the same drop with smooth contact: no jump
    smooth = w.replace(contact_smoothing=np.asarray(2e-2), contact_stiffness=np.asarray(1e3))
    r2 = gradient_report(lambda s, xs: dnp.sum(xs[-1] ** 2), smooth, s0, steps=80)
    assert r2.contact_events and not r2.discontinuities


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nonfinite_adjoint_is_reported():
    w = World(mass=[1.0], planes=[], dt=1e-2)
    s0 = State(np.array([[0.0, 1.0]]), np.zeros((1, 2)))
    r = gradient_report(lambda s, xs: dnp.sqrt(dnp.sum(s.velocity * 0.0)), w, s0, steps=5)
    assert r.nonfinite_at == 4 and "non-finite adjoint from step 4" in r.summary()


def _peak_mib(fun) -> float:
    tracemalloc.start()
    try:
        fun()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("replay", [False, True])
def test_long_rollout_in_bounded_memory(replay):
    w = World(
        mass=[1.0, 1.0],
        springs=[(0, 1)],
        stiffness=50.0,
        damping=0.1,
        radius=0.05,
        positions=[[0.0, 0.5], [1.0, 0.5]],
        friction=0.3,
        contact_stiffness=1e3,
        contact_damping=1.0,
        contact_smoothing=1e-2,
        dt=1e-3,
    )
    s0 = State(np.array([[0.0, 0.5], [1.0, 0.5]]), np.array([[1.0, 0.0], [0.5, 1.0]]))
    steps = 800

    def grad(policy):
        def loss(v0):
            end, _ = simulate(
                w,
                State(s0.position, v0),
                steps=steps,
                checkpoint=policy,
                record=None,
                replay=replay,
            )
            return dnp.sum(end.position**2)

        out = []
        peak = _peak_mib(lambda: out.append(ds.grad(loss)(s0.velocity)))
        return out[0], peak

    g_all, peak_all = grad(None)
    g_bin, peak_bin = grad(("binomial", 8))
    np.testing.assert_allclose(g_bin, g_all, rtol=1e-12)
    assert peak_bin < peak_all / 4, (peak_bin, peak_all)
