"""The rigid world's time-step stability limit: a warning at construction naming the body and
the estimated limit, and the estimate is meaningful (below it a resting box stays put, beyond
it the same box blows up)."""

import warnings

import numpy as np
import pytest

from diffsys.systems.physics import (
    INTEGRATORS,
    RigidState,
    RigidWorld,
    StabilityWarning,
    rigid_stability_limit,
    simulate_rigid,
    stability_limit,
)

BOX = [("box", 0.2, 0.1)]


def _quiet(**kw) -> RigidWorld:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StabilityWarning)
        return RigidWorld(**kw)


def test_too_large_a_step_warns_naming_the_body_and_the_limit():
    kw = dict(shapes=[("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 0.5], contact_stiffness=1e4)
    limit, where = stability_limit(_quiet(dt=1e-4, **kw))
    # the box lying flat rocks on its two bottom corners: omega^2 = 2 k a^2 / I
    inertia = 0.5 * (0.2**2 + 0.1**2) / 3.0
    assert limit == pytest.approx(2.0 / np.sqrt(2.0 * 1e4 * 0.2**2 / inertia))
    assert where.startswith("body 1 (box, mass 0.5")
    with pytest.warns(StabilityWarning, match=rf"RigidWorld: dt=0.02 is beyond the estimated "
                      rf"stability limit {limit:.3g} of 'euler' \(set by body 1 \(box"):
        RigidWorld(dt=0.02, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StabilityWarning)
        RigidWorld(dt=0.9 * limit, **kw)


def test_the_limit_follows_the_integrator_and_body_contacts():
    kw = dict(shapes=[("disc", 0.1), ("disc", 0.05)], mass=[1.0, 0.1], contact_stiffness=1e4)
    # discs on the ground: no lever, the lightest disc sets the limit
    for name, bound in INTEGRATORS.items():
        limit, where = rigid_stability_limit(_quiet(integrator=name, **kw))
        assert limit == pytest.approx(bound / np.sqrt(1e4 / 0.1))
        assert where.startswith("body 1 (disc, mass 0.1")
    # between the two discs the inverse masses add
    limit, where = rigid_stability_limit(_quiet(planes=[], collide=True, **kw))
    assert limit == pytest.approx(2.0 / np.sqrt(1e4 * (1 / 1.0 + 1 / 0.1)))
    assert where.startswith("body 0 (disc, mass 1, inertia 0.005) against body 1 (disc")
    assert rigid_stability_limit(_quiet(planes=[], **kw)) == (np.inf, "nothing (no contacts)")


@pytest.mark.parametrize("integrator", sorted(INTEGRATORS))
def test_the_estimate_is_meaningful(integrator):
    """A box resting flat on the ground, tilted by 1e-3: below the limit it rocks with the
    same small amplitude; beyond it the rocking grows until the box flies off."""
    kw = dict(shapes=BOX, mass=[1.0], contact_stiffness=1e4, contact="hard",
              integrator=integrator)
    limit, _ = stability_limit(_quiet(dt=1e-4, **kw))
    y = 0.1 - 9.81 / 2e4  # resting depth under its two bottom corners
    start = RigidState(np.array([[0.0, y]]), np.array([1e-3]), np.zeros((1, 2)), np.zeros(1))
    for factor, stable in ((0.9, True), (1.2, False)):
        w = _quiet(dt=factor * limit, **kw)
        _, path = simulate_rigid(w, start, steps=1000)
        tilt = np.abs(np.asarray(path.angle[:, 0]))
        assert (np.all(np.isfinite(tilt)) and tilt.max() < 0.01) == stable, (factor, tilt.max())


def test_the_documented_and_tested_scenes_do_not_warn():
    scenes = [
        dict(shapes=[("disc", 0.1)], mass=[1.0], friction=0.5, contact_stiffness=1e5,
             contact_damping=50.0, friction_smoothing=1e-3, dt=2e-4),
        dict(shapes=[("box", 0.2, 0.1)], mass=[1.0], friction=0.4, contact_stiffness=3e3),
        dict(shapes=[("disc", 0.1), ("box", 0.2, 0.1), ("box", 0.1, 0.1)],
             mass=[1.0, 2.0, 0.5], collide=True, contact_stiffness=2e4, dt=1e-3),
        dict(shapes=[("box", 0.5, 0.05), ("box", 0.05, 0.5)], mass=[1.0, 1.0], collide=True),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", StabilityWarning)
        for kw in scenes:
            RigidWorld(**kw)
