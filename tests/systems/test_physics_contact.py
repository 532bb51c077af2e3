"""The contact laws of systems.physics: derivatives, hard limits, and the relaxation gap."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import contact_penalty, friction_direction


def test_contact_penalty_derivatives():
    p = np.array([-0.02, -0.003, 0.001, 0.01])
    ds.check_grads(lambda p, k, w: contact_penalty(p, k, smoothing=w), (p, 50.0, 0.01), order=2)


def test_friction_direction_derivatives():
    v = np.array([[0.3, -0.1], [0.01, 0.02], [-0.5, 0.0]])
    ds.check_grads(lambda v, w: friction_direction(v, smoothing=w), (v, 0.05), order=2)


def test_hard_forms_are_the_exact_laws():
    p = np.linspace(-1.0, 1.0, 9)
    np.testing.assert_array_equal(contact_penalty.hard(p, 3.0), 3.0 * np.maximum(p, 0.0))
    v = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    want = np.array([[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(friction_direction.hard(v), want)


@pytest.mark.parametrize(
    "law, args",
    [
        (contact_penalty, (np.linspace(-0.5, 0.5, 101), 10.0)),
        (friction_direction, (np.stack([np.linspace(-1, 1, 51), np.zeros(51) + 0.3], -1),)),
    ],
)
def test_gap_shrinks_with_the_smoothing(law, args):
    gaps = [law.gap(*args, smoothing=w) for w in (1e-1, 1e-2, 1e-3, 1e-4)]
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False))
    assert gaps[-1] < 1e-2 * gaps[0]


def test_penalty_gap_is_at_most_k_w_log2():
    p = np.linspace(-0.2, 0.2, 401)
    for w in (0.1, 0.01):
        assert contact_penalty.gap(p, 7.0, smoothing=w) <= 7.0 * w * np.log(2) + 1e-12


def test_smoothing_must_be_positive():
    with pytest.raises(ValueError, match="contact_penalty: smoothing"):
        contact_penalty(np.zeros(2), 1.0, smoothing=0.0)


def test_hard_friction_direction_has_a_finite_gradient_at_rest():
    # the hard law is 0 at v = 0; its gradient there must be 0, not 0 * inf = NaN
    v = np.array([[0.0, 0.0], [3.0, 4.0]])
    g = ds.grad(lambda v: dnp.sum(friction_direction.hard(v) * np.array([1.0, 2.0])))(v)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g[0], 0.0)
    # d(v/|v|)/dv = (I - e e^T) / |v| with e = (0.6, 0.8), |v| = 5, contracted with (1, 2)
    expected = [(1 - 0.36) / 5 - 2 * 0.48 / 5, -0.48 / 5 + 2 * (1 - 0.64) / 5]
    np.testing.assert_allclose(g[1], expected)
