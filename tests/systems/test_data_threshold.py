"""Binarize: relaxed/hard/straight-through values and derivatives, errors."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn
from diffsys.systems.data import Binarize


def loss_of(method):
    def loss(module, x):
        y = getattr(module, method)(x)
        return dnp.sum(y * y * np.arange(1, y.shape[-1] + 1))

    return loss


def test_relaxed_and_hard_values():
    st = Binarize(threshold=0.3, sharpness=4.0)
    x = np.array([[-1.0, 0.3, 0.5, 2.0]])
    np.testing.assert_allclose(st.relaxed(x), 1 / (1 + np.exp(-(x - 0.3) * 4.0)))
    np.testing.assert_array_equal(st(x), st.relaxed(x))  # __call__ is the relaxed form
    np.testing.assert_array_equal(st.hard(x), [[0.0, 0.0, 1.0, 1.0]])
    assert st.hard(x).dtype == np.float64


def test_relaxed_tends_to_hard_as_sharpness_grows(rng):
    x = rng.normal(size=(3, 2, 5, 5))
    gaps = [
        float(np.mean(np.abs(Binarize(0.1, k).relaxed(x) - Binarize(0.1, k).hard(x))))
        for k in (1.0, 10.0, 100.0, 1000.0)
    ]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3


@pytest.mark.parametrize("channels", [None, 2])
def test_relaxed_gradients_order_two_both_modes(channels, rng):
    x = rng.normal(size=(2, 2, 3, 4))
    st = Binarize(threshold=[0.1, -0.2] if channels else 0.1, sharpness=3.0, channels=channels)
    ds.check_grads(loss_of("relaxed"), (st, x), order=2, modes=("fwd", "rev"))


def test_hard_has_zero_gradient_and_straight_through_has_relaxed_gradient(rng):
    x = rng.normal(size=(2, 1, 3, 3))
    st = Binarize(0.2, 5.0)
    g_hard = ds.grad(loss_of("hard"), argnums=(0, 1))(st, x)
    assert np.all(g_hard[1] == 0) and float(g_hard[0].threshold) == 0.0
    np.testing.assert_array_equal(st.straight_through(x), st.hard(x))
    # d/dx sum(w * st(x)): the straight-through gradient is the relaxed one
    w = rng.normal(size=x.shape)
    g_st = ds.grad(lambda m, x: dnp.sum(w * m.straight_through(x)), argnums=(0, 1))(st, x)
    g_rel = ds.grad(lambda m, x: dnp.sum(w * m.relaxed(x)), argnums=(0, 1))(st, x)
    np.testing.assert_allclose(g_st[1], g_rel[1])
    np.testing.assert_allclose(g_st[0].threshold, g_rel[0].threshold)
    np.testing.assert_allclose(g_st[0].log_sharpness, g_rel[0].log_sharpness)


def test_fixed_sharpness_is_not_a_parameter(rng):
    st = Binarize(0.5, 20.0, learn_sharpness=False)
    assert list(st.named_parameter_dict()) == ["threshold"]
    assert st.sharpness == pytest.approx(20.0)
    x = rng.random((2, 1, 3, 3))
    ds.check_grads(loss_of("relaxed"), (st, x), order=2)


def test_learning_the_threshold_separates_two_classes():
    x = np.concatenate([np.full(50, 0.2), np.full(50, 0.8)])[None] + 0.05 * np.sin(np.arange(100))
    y = np.concatenate([np.zeros(50), np.ones(50)])[None]
    st = Binarize(threshold=0.05, sharpness=10.0, learn_sharpness=False)
    for _ in range(200):
        g = ds.grad(lambda m: nn.mse(m(x), y))(st)
        st = st.replace(threshold=st.threshold - 0.5 * g.threshold)
    assert 0.3 < float(st.threshold) < 0.7
    np.testing.assert_array_equal(st.hard(x), y)


def test_float32_stays_float32(rng):
    x = rng.random((2, 1, 3, 3)).astype(np.float32)
    st = Binarize(0.5, 8.0, channels=1)
    for method in ("relaxed", "hard", "straight_through"):
        assert getattr(st, method)(x).dtype == np.float32
    assert ds.grad(lambda x: dnp.sum(st(x)))(x).dtype == np.float32


def test_errors_name_the_stage():
    with pytest.raises(TypeError, match=r"Binarize.*floating.*int64"):
        Binarize()(np.ones((2, 2), dtype=np.int64))
    with pytest.raises(
        ValueError, match=r"Binarize\(channels=3\).*3 channel\(s\).*\(2, 1, 4\)"
    ):
        Binarize(channels=3).hard(np.ones((2, 1, 4)))
    with pytest.raises(ValueError, match="Binarize: sharpness must be positive"):
        Binarize(sharpness=-1.0)
    with pytest.raises(ValueError, match="Binarize: threshold must be finite"):
        Binarize(threshold=np.nan)
    with pytest.raises(ValueError, match="Binarize: a fixed sharpness"):
        Binarize(sharpness=[1.0, 2.0], channels=2, learn_sharpness=False)
