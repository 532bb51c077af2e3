"""Bad input to systems.physics: each a clear error or warning naming the particle/spring."""

from __future__ import annotations

import numpy as np
import pytest

from diffsys.systems.physics import StabilityWarning, State, World, simulate, stability_limit

X = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])


def test_negative_mass_names_the_particle():
    with pytest.raises(ValueError, match=r"particle 1 has mass -2\.0; masses must be > 0"):
        World(mass=[1.0, -2.0, 1.0])


def test_zero_length_spring_names_the_spring():
    with pytest.raises(ValueError, match=r"spring 1 \(particles 1-2\) has rest length 0\.0"):
        World(mass=[1.0, 1.0, 1.0], springs=[(0, 1), (1, 2)], rest_length=[1.0, 0.0])


def test_spring_to_itself_and_out_of_range():
    with pytest.raises(ValueError, match="spring 0 joins particle 1 to itself"):
        World(mass=[1.0, 1.0], springs=[(1, 1)], rest_length=[1.0])
    with pytest.raises(ValueError, match=r"spring 0 joins particles \(0, 5\), out of range"):
        World(mass=[1.0, 1.0], springs=[(0, 5)], rest_length=[1.0])


def test_nan_state_names_the_particle():
    w = World(mass=[1.0, 1.0, 1.0])
    v = np.zeros((3, 2))
    v[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"particle 2 has a non-finite velocity \[nan, 0\.0\]"):
        simulate(w, State(X, v), steps=3)


def test_wrong_state_shape():
    w = World(mass=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"state.position must have shape \(n, dim\) = \(3, 2\)"):
        simulate(w, State(X[:2], np.zeros((2, 2))), steps=3)


def test_spring_ends_at_the_same_point():
    w = World(mass=[1.0, 1.0], springs=[(0, 1)], rest_length=[1.0])
    with pytest.raises(ValueError, match="spring 0 joins particles 0 and 1 at the same point"):
        simulate(w, State(np.ones((2, 2)), np.zeros((2, 2))), steps=3)


def test_time_step_beyond_the_stability_limit_warns_with_the_limit():
    kw = dict(mass=[1.0, 0.01], springs=[(0, 1)], stiffness=1e4, positions=X[:2], planes=[])
    limit, where = stability_limit(World(dt=1e-4, **kw))
    assert where.startswith("particle 1 through spring 0")
    with pytest.warns(StabilityWarning, match=rf"beyond the estimated stability limit {limit:.3g}"):
        World(dt=2 * limit, **kw)
    # and the estimate is right: well beyond it the simulation blows up, below it does not
    for factor, finite in ((0.9, True), (1.5, False)):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StabilityWarning)
            w = World(dt=factor * limit, **kw)
        x = X[:2] + np.array([[0.0, 0.0], [0.01, 0.0]])
        end, _ = simulate(w, State(x, np.zeros((2, 2))), steps=300, record=None)
        assert np.all(np.abs(end.position) < 10) == finite, factor


def test_bodies_created_overlapping_warn_with_the_pair():
    w = World(mass=[1.0, 1.0], radius=0.5, collide=True, planes=[])
    x = np.array([[0.0, 0.0], [0.6, 0.0]])
    with pytest.warns(UserWarning, match="particles 0 and 1 are created overlapping by 0.4"):
        simulate(w, State(x, np.zeros((2, 2))), steps=1)


def test_body_created_inside_a_collider_warns():
    w = World(mass=[1.0], radius=0.1)
    with pytest.warns(UserWarning, match="particle 0 starts inside collider 0 by 0.3"):
        simulate(w, State(np.array([[0.0, -0.2]]), np.zeros((1, 2))), steps=1)


def test_bad_settings():
    with pytest.raises(ValueError, match="integrator must be one of"):
        World(mass=[1.0], integrator="leapfrog")
    with pytest.raises(ValueError, match="contact must be 'relaxed' or 'hard'"):
        World(mass=[1.0], contact="soft")
    with pytest.raises(ValueError, match="stiffness must broadcast to shape"):
        World(mass=[1.0, 1.0], springs=[(0, 1)], rest_length=[1.0], stiffness=[1.0, 2.0])


def test_collide_pairs_batch_independent_scenes_and_name_bad_pairs():
    # two two-ball scenes in one world: each rolls out as it does alone
    x0 = np.array([[0.0, 0.0], [0.3, 0.01], [0.0, 0.0], [0.3, -0.02]])
    v0 = np.array([[1.0, 0.0], [0.0, 0.0], [1.5, 0.0], [0.0, 0.0]])
    kw = dict(radius=0.1, gravity=[0.0, 0.0], planes=[], contact_stiffness=1e4, dt=1e-3)
    both = World(mass=np.ones(4), collide=[(0, 1), (2, 3)], **kw)
    assert both.pairs.tolist() == [[0, 1], [2, 3]]
    end, _ = simulate(both, State(x0, v0), steps=300)
    for k in (0, 2):
        alone = World(mass=np.ones(2), collide=True, **kw)
        ref, _ = simulate(alone, State(x0[k : k + 2], v0[k : k + 2]), steps=300)
        np.testing.assert_allclose(end.position[k : k + 2], ref.position, rtol=1e-12)
    with pytest.raises(ValueError, match=r"collide pair 1 is \(2, 7\)"):
        World(mass=np.ones(4), collide=[(0, 1), (2, 7)], **kw)
    with pytest.raises(ValueError, match=r"collide pair 0 \(0, 1\) joins a particle of radius 0"):
        World(mass=np.ones(2), collide=[(0, 1)], radius=[0.0, 0.1], planes=[])
