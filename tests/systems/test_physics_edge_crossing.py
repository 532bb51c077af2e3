"""Box-box contact acts at corners: two boxes whose edges cross with no corner inside the
other (a plus sign) are detected, and simulate_rigid warns naming the boxes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import RigidState, RigidWorld, edge_crossings, simulate_rigid

BARS = RigidWorld([("box", 0.5, 0.05), ("box", 0.05, 0.5)], mass=[1.0, 1.0], collide=True,
                  planes=[], gravity=(0.0, 0.0), dt=1e-3)


def shot(speed):
    return RigidState(np.array([[-0.7, 0.0], [0.0, 0.0]]), np.zeros(2),
                      dnp.stack([dnp.stack([speed, 0.0]), np.zeros(2)]), np.zeros(2))


def test_edge_crossings_finds_the_plus_sign_only():
    c = np.array([[[0.0, 0.0], [0.0, 0.0]],     # plus sign: edges cross, no corner inside
                  [[-0.52, 0.0], [0.0, 0.0]],   # T: the bar's corners are inside the other
                  [[-0.7, 0.0], [0.0, 0.0]]])   # apart
    th = np.zeros((3, 2))
    assert edge_crossings(BARS, c, th) == [(0, 0, 1)]
    discs = RigidWorld([("disc", 0.5), ("box", 0.05, 0.5)], mass=[1.0, 1.0], collide=True)
    assert edge_crossings(discs, c, th) == []


def test_a_fast_thin_bar_through_another_warns_naming_the_boxes():
    with pytest.warns(UserWarning, match=r"boxes 0 and 1 cross edge to edge .*after step 13"):
        end, _ = simulate_rigid(BARS, shot(20.0), steps=60)
    assert end.position[0, 0] > 0.3  # it did pass through: the gap the warning reports
    with pytest.warns(UserWarning, match=r"boxes 0 and 1 cross edge to edge .*at the end"):
        simulate_rigid(BARS, shot(20.0), steps=60, record=False)
    with pytest.warns(UserWarning, match="boxes 0 and 1 cross edge to edge"):
        ds.grad(lambda v: simulate_rigid(BARS, shot(v), steps=60)[0].position[0, 0])(20.0)


def test_a_slow_bar_is_stopped_by_corner_contact_and_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        end, _ = simulate_rigid(BARS, shot(2.0), steps=400)
    assert end.position[0, 0] < -0.5  # bounced back off the other bar's face
