"""masked, multi_transform, MultiSteps, apply_if_finite, inject_hyperparams: Optax's
semantics, checked against updates computed by hand."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim


def _tree():
    return {"w": np.array([1.0, -2.0]), "b": np.array([0.5])}


def _grads(k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [{"w": rng.standard_normal(2), "b": rng.standard_normal(1)} for _ in range(k)]


@pytest.mark.parametrize("name", ["diffsys.optim.wrappers", "diffsys.optim.base"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


# --- masked --------------------------------------------------------------------------------------


def test_masked_transforms_only_the_masked_leaves_and_keeps_state_for_them_only():
    params = _tree()
    opt = optim.masked(optim.sgd(0.1, momentum=0.9), {"w": True, "b": False})
    state = opt.init(params)
    assert state.inner_state[1].trace["b"] is None  # no momentum slot for a masked-out leaf
    g1, g2 = _grads(2)
    u1, state = opt.update(g1, state, params)
    u2, state = opt.update(g2, state, params)
    np.testing.assert_array_equal(u1["b"], g1["b"])  # passes unchanged
    np.testing.assert_array_equal(u2["b"], g2["b"])
    np.testing.assert_allclose(u1["w"], -0.1 * g1["w"])
    np.testing.assert_allclose(u2["w"], -0.1 * (0.9 * g1["w"] + g2["w"]))


def test_masked_takes_a_function_and_a_prefix_over_modules():
    model = {"enc": nn.Linear(2, 2, key=0), "head": nn.Linear(2, 1, key=1)}
    g = ds.tree_map(np.ones_like, model)
    by_fn = optim.masked(optim.scale(3.0), lambda p: ds.tree_map(lambda x: x.ndim == 2, p))
    u, _ = by_fn.update(g, by_fn.init(model), model)
    np.testing.assert_array_equal(u["enc"].weight, 3.0 * np.ones((2, 2)))
    np.testing.assert_array_equal(u["enc"].bias, np.ones(2))
    by_prefix = optim.masked(optim.scale(3.0), {"enc": False, "head": True})
    u, _ = by_prefix.update(g, by_prefix.init(model), model)
    np.testing.assert_array_equal(u["enc"].weight, np.ones((2, 2)))
    np.testing.assert_array_equal(u["head"].bias, 3.0 * np.ones(1))
    assert isinstance(u["head"], nn.Linear)


def test_masked_rejects_a_mask_of_the_wrong_shape():
    opt = optim.masked(optim.scale(2.0), {"w": True})
    with pytest.raises(ValueError, match=r"masked: .*keys \['w'\].*\['b', 'w'\]"):
        opt.init(_tree())


# --- multi_transform -----------------------------------------------------------------------------


def test_multi_transform_gives_each_label_its_own_optimizer_and_state():
    params = _tree()
    opt = optim.multi_transform(
        {"adam": optim.adam(0.01), "sgd": optim.sgd(0.5)}, {"w": "adam", "b": "sgd"}
    )
    state = opt.init(params)
    assert state.inner_states["adam"][0].mu["b"] is None
    p = params
    m = v = np.zeros(2)
    ref_w, ref_b = params["w"].copy(), params["b"].copy()
    for t, g in enumerate(_grads(3), start=1):
        u, state = opt.update(g, state, p)
        p = optim.apply_updates(p, u)
        m = 0.9 * m + 0.1 * g["w"]
        v = 0.999 * v + 0.001 * g["w"] ** 2
        ref_w = ref_w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        ref_b = ref_b - 0.5 * g["b"]
    np.testing.assert_allclose(p["w"], ref_w, rtol=1e-12)
    np.testing.assert_allclose(p["b"], ref_b, rtol=1e-12)


def test_multi_transform_labels_from_a_function_and_a_missing_label_is_named():
    params = _tree()
    labels = lambda p: {k: ("decay" if k == "w" else "none") for k in p}  # noqa: E731
    opt = optim.multi_transform(
        {"decay": optim.add_decayed_weights(0.1), "none": optim.identity()}, labels
    )
    g = {"w": np.zeros(2), "b": np.zeros(1)}
    u, _ = opt.update(g, opt.init(params), params)
    np.testing.assert_allclose(u["w"], 0.1 * params["w"])
    np.testing.assert_array_equal(u["b"], np.zeros(1))
    bad = optim.multi_transform({"decay": optim.identity()}, {"w": "decay", "b": "bias"})
    with pytest.raises(ValueError, match=r"labelled \['bias'\].*optim.identity\(\)"):
        bad.init(params)


def test_multi_transform_with_set_to_zero_freezes_a_group():
    params = _tree()
    opt = optim.multi_transform(
        {"train": optim.sgd(1.0), "frozen": optim.set_to_zero()}, {"w": "train", "b": "frozen"}
    )
    g = _grads(1)[0]
    u, _ = opt.update(g, opt.init(params), params)
    np.testing.assert_array_equal(u["b"], np.zeros(1))
    np.testing.assert_array_equal(u["w"], -g["w"])


# --- MultiSteps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_grad_mean", [True, False])
def test_multisteps_steps_every_k_calls_on_the_mean_of_the_gradients(use_grad_mean):
    params = _tree()
    ms = optim.MultiSteps(optim.sgd(0.1, momentum=0.5), 3, use_grad_mean=use_grad_mean)
    state = ms.init(params)
    grads = _grads(6)
    out = []
    for g in grads:
        u, state = ms.update(g, state, params)
        out.append((u, ms.has_updated(state)))
    assert [h for _, h in out] == [False, False, True, False, False, True]
    for i in (0, 1, 3, 4):
        np.testing.assert_array_equal(out[i][0]["w"], np.zeros(2))
    div = 3.0 if use_grad_mean else 1.0
    acc1 = {k: sum(g[k] for g in grads[:3]) / div for k in params}
    acc2 = {k: sum(g[k] for g in grads[3:]) / div for k in params}
    for k in params:
        np.testing.assert_allclose(out[2][0][k], -0.1 * acc1[k], rtol=1e-12)
        np.testing.assert_allclose(out[5][0][k], -0.1 * (0.5 * acc1[k] + acc2[k]), rtol=1e-12)
    assert int(state.gradient_step) == 2


def test_multisteps_schedule_and_gradient_transformation():
    params = {"w": np.zeros(1)}
    ms = optim.MultiSteps(optim.sgd(1.0), lambda step: 1 if int(step) == 0 else 2)
    tx = ms.gradient_transformation()
    assert isinstance(tx, optim.GradientTransformation)
    state = tx.init(params)
    steps = []
    for g in [1.0, 2.0, 4.0, 8.0, 16.0]:
        u, state = tx.update({"w": np.array([g])}, state)
        steps.append(float(u["w"][0]))
    assert steps == [-1.0, 0.0, -3.0, 0.0, -12.0]
    # a MultiSteps is itself a GradientTransformation: it chains
    chained = optim.chain(optim.clip(1.5), optim.MultiSteps(optim.sgd(1.0), 2))
    state = chained.init(params)
    u1, state = chained.update({"w": np.array([1.0])}, state)
    u2, state = chained.update({"w": np.array([4.0])}, state)
    assert float(u1["w"][0]) == 0.0 and float(u2["w"][0]) == -1.25


# --- apply_if_finite -----------------------------------------------------------------------------


def test_apply_if_finite_skips_bad_steps_and_keeps_the_inner_state():
    params = {"w": np.zeros(1)}
    opt = optim.apply_if_finite(optim.sgd(1.0, momentum=0.5), max_consecutive_errors=2)
    state = opt.init(params)
    seen = []
    for g in [1.0, np.nan, np.inf, 2.0]:
        u, state = opt.update({"w": np.array([g])}, state, params)
        seen.append((float(u["w"][0]), int(state.notfinite_count), bool(state.last_finite)))
    # the momentum trace after step 1 is 1.0; the two bad steps leave it: 0.5 * 1 + 2 = 2.5
    assert seen == [(-1.0, 0, True), (0.0, 1, False), (0.0, 2, False), (-2.5, 0, True)]
    assert int(state.total_notfinite) == 2


def test_apply_if_finite_lets_the_update_through_after_too_many_errors():
    opt = optim.apply_if_finite(optim.sgd(1.0), max_consecutive_errors=1)
    state = opt.init({"w": np.zeros(1)})
    u1, state = opt.update({"w": np.array([np.nan])}, state)
    u2, state = opt.update({"w": np.array([np.nan])}, state)
    assert float(u1["w"][0]) == 0.0 and np.isnan(u2["w"][0])
    assert int(state.total_notfinite) == 2


# --- inject_hyperparams --------------------------------------------------------------------------


def test_inject_hyperparams_learning_rate_changes_between_steps():
    params = _tree()
    opt = optim.inject_hyperparams(optim.adam)(learning_rate=0.1, b1=0.5)
    state = opt.init(params)
    assert set(state.hyperparams) == {"learning_rate", "b1"}
    g1, g2 = _grads(2)
    u1, state = opt.update(g1, state, params)
    state.hyperparams["learning_rate"] = np.asarray(0.01)
    u2, state = opt.update(g2, state, params)
    m1 = 0.5 * g1["w"]
    v1 = 0.001 * g1["w"] ** 2
    np.testing.assert_allclose(u1["w"], -0.1 * (m1 / 0.5) / (np.sqrt(v1 / 0.001) + 1e-8))
    m2 = 0.5 * m1 + 0.5 * g2["w"]
    v2 = 0.999 * v1 + 0.001 * g2["w"] ** 2
    ref = -0.01 * (m2 / (1 - 0.25)) / (np.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(u2["w"], ref, rtol=1e-12)
    assert float(state.hyperparams["learning_rate"]) == 0.01


def test_inject_hyperparams_evaluates_schedules_into_the_state():
    opt = optim.inject_hyperparams(optim.sgd)(lambda count: 1.0 / (1 + int(count)), momentum=0.0)
    state = opt.init({"w": np.zeros(1)})
    assert float(state.hyperparams["learning_rate"]) == 1.0
    outs = []
    for _ in range(3):
        u, state = opt.update({"w": np.ones(1)}, state)
        outs.append(float(u["w"][0]))
        assert float(state.hyperparams["learning_rate"]) == -outs[-1]
    assert outs == [-1.0, -0.5, -1.0 / 3.0]


def test_inject_hyperparams_names_a_bad_argument():
    with pytest.raises(TypeError, match="inject_hyperparams\\(sgd\\)"):
        optim.inject_hyperparams(optim.sgd)(lr=0.1)


def test_the_wrappers_train_a_model_through_value_and_grad():
    model = nn.Linear(2, 1, key=0)
    x = np.random.default_rng(1).normal(size=(16, 2))
    y = x @ np.array([[1.0], [-1.0]])
    opt = optim.apply_if_finite(
        optim.multi_transform(
            {"w": optim.inject_hyperparams(optim.sgd)(0.1), "b": optim.sgd(0.1)},
            lambda m: ds.tree_map(lambda p: "w" if p.ndim == 2 else "b", m),
        ),
        max_consecutive_errors=3,
    )
    state = opt.init(model)
    loss = lambda m: dnp.mean((m(x) - y) ** 2)  # noqa: E731
    first = float(loss(model))
    for _ in range(60):
        g = ds.grad(loss)(model)
        u, state = opt.update(g, state, model)
        model = optim.apply_updates(model, u)
    assert float(loss(model)) < first / 20
