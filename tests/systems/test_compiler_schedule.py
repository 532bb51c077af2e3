"""diffsys.systems.compiler's matmul schedules: generated kernels (every loop order and layout)
against NumPy, the features' stride classes, the relaxed features equal to the hard ones at
one-hot choices, gradients through softmax and Gumbel-softmax choices, the gap to the hard
choice shrinking as T -> 0, the ridge model, and the searches' budgets."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import diffsys as ds
from diffsys.systems import compiler as comp
from diffsys.systems.compiler import (
    LAYOUTS,
    ORDERS,
    MatmulSpace,
    Schedule,
    choose_schedule,
    cma_schedule_search,
    feature_matrix,
    fit_schedule_model,
    heuristic_schedule,
    matmul,
    matmul_features,
    predict_schedule,
    random_schedule_search,
    relaxed_features,
    relaxed_schedule_cost,
    schedule_model_search,
)
from diffsys.systems.compiler.schedule import DECISIONS

SPACE = MatmulSpace(tiles=(4, 8, 16))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_generated_kernel_multiplies(order, layout):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(5, 6))
    for tiles in [(1, 1, 1), (2, 3, 4), (8, 8, 8)]:
        got = matmul(a, b, Schedule(*tiles, order, layout), python=True)
        np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)


def test_compiled_kernels_match_numpy_and_are_timed():
    pytest.importorskip("numba")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 13)), rng.normal(size=(13, 9))
    for order, layout in [("ikj", "nn"), ("jki", "tt"), ("kij", "nt")]:
        np.testing.assert_allclose(matmul(a, b, Schedule(8, 4, 16, order, layout)), a @ b,
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
    assert comp.measure_matmul(Schedule(8, 8, 8), n=16, repeats=1) > 0
    small = MatmulSpace(tiles=(8, 16), orders=("ikj", "ijk"), layouts=("nn", "nt"))
    table = comp.exhaustive_matmul(small, n=16, passes=1)
    assert sorted(table) == small.all() and min(table.values()) > 0


def test_without_numba_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.setattr(sys.modules["diffsys.systems.compiler.kernels"], "_COMPILED", {})
    with pytest.raises(ImportError, match=r"'jit' extra"):
        comp.compile_matmul("ikj", "nn")


def test_schedule_and_space_errors_and_round_trip():
    with pytest.raises(ValueError, match="Schedule: order must be one of"):
        Schedule(8, 8, 8, "iij")
    with pytest.raises(ValueError, match="Schedule: layout"):
        Schedule(8, 8, 8, "ijk", "xx")
    with pytest.raises(ValueError, match="tile sizes must be >= 1"):
        Schedule(0, 8, 8)
    with pytest.raises(ValueError, match="matmul: need a"):
        matmul(np.ones((2, 3)), np.ones((2, 3)), Schedule(2, 2, 2), python=True)
    for idx in SPACE.all()[::37]:
        assert SPACE.index(SPACE.schedule(idx)) == idx
    with pytest.raises(ValueError, match="is not in"):
        SPACE.index(Schedule(5, 8, 8))
    assert str(heuristic_schedule(SPACE, 64)) == "16x16x16 ikj nn"
    assert heuristic_schedule(MatmulSpace(tiles=(64, 128)), 256).ti == 64  # none fits: smallest


def _features_of(schedule: Schedule, n: int = 64) -> dict[str, float]:
    groups = matmul_features(SPACE, n)
    names = [name for g in groups for name in g.names]
    return dict(zip(names, feature_matrix(groups, [SPACE.index(schedule)])[0], strict=True))


def test_stride_features_follow_order_and_layout():
    f = _features_of(Schedule(4, 8, 16, "ikj", "nn"))  # inner j: B, C rows; A invariant
    assert (f["inner A contiguous"], f["inner A strided"]) == (0, 0)
    assert (f["inner B contiguous"], f["inner C contiguous"]) == (1, 1)
    assert f["next A contiguous"] == 1 and f["next B strided"] == 1  # next loop: k
    f = _features_of(Schedule(4, 8, 16, "ijk", "nn"))  # inner k: B walks a column
    assert f["inner A contiguous"] == 1 and f["inner B strided"] == 1
    assert f["inner C contiguous"] == f["inner C strided"] == 0
    f = _features_of(Schedule(4, 8, 16, "ijk", "nt"))  # B packed transposed: contiguous
    assert f["inner B contiguous"] == 1 and f["packed operands"] == 1
    assert f["log inner trips"] == pytest.approx(np.log(16))
    assert f["log next trips"] == pytest.approx(np.log(8))
    assert f["log tile visits"] == pytest.approx(np.log(16 * 8 * 4))
    assert f["log working set"] == pytest.approx(np.log(8 * (4 * 16 + 16 * 8 + 4 * 8)))


def _one_hot(index):
    return {d: np.eye(k)[i] for d, k, i in zip(DECISIONS, SPACE.sizes, index, strict=True)}


def test_relaxed_features_are_hard_at_one_hot_and_expected_otherwise():
    groups = matmul_features(SPACE, 64)
    every = SPACE.all()
    hard = feature_matrix(groups, every)
    for k in (0, 100, len(every) - 1):
        np.testing.assert_allclose(relaxed_features(groups, _one_hot(every[k])), hard[k])
    rng = np.random.default_rng(3)
    probs = {d: rng.dirichlet(np.ones(k)) for d, k in zip(DECISIONS, SPACE.sizes, strict=True)}
    weight = np.array([np.prod([probs[d][i] for d, i in zip(DECISIONS, idx, strict=True)])
                       for idx in every])  # fmt: skip
    np.testing.assert_allclose(relaxed_features(groups, probs), weight @ hard, rtol=1e-12)


def _model(seed=0):
    groups = matmul_features(SPACE, 64)
    x = feature_matrix(groups, SPACE.all())
    w = np.random.default_rng(seed).normal(size=x.shape[1])
    return groups, fit_schedule_model(x, np.exp(0.3 * (x - x.mean(0)) @ w), ridge=1e-9), x, w


def test_ridge_model_recovers_a_linear_log_time():
    groups, model, x, w = _model()
    pred = np.asarray(predict_schedule(model, x))
    np.testing.assert_allclose(pred, 0.3 * (x - x.mean(0)) @ w, atol=1e-6)
    with pytest.raises(ValueError, match="fit_schedule_model: features must be"):
        fit_schedule_model(np.ones((3, 2)), np.ones(4))


def _logits(seed):
    rng = np.random.default_rng(seed)
    return {d: rng.normal(size=k) for d, k in zip(DECISIONS, SPACE.sizes, strict=True)}


def test_relaxed_cost_gradients():
    groups, model, _, _ = _model()
    lg = _logits(4)
    ds.check_grads(lambda lg: relaxed_schedule_cost(lg, model, groups, 0.7), (lg,), order=2)
    ds.check_grads(lambda lg: relaxed_schedule_cost(lg, model, groups, 0.7, rng=5), (lg,),
                   order=2)  # fmt: skip
    # straight-through: the hard cost in value, the softmax's derivative
    st = ds.value_and_grad(
        lambda lg: relaxed_schedule_cost(lg, model, groups, 0.7, straight_through=True)
    )
    value, g = st(lg)
    index = [int(np.argmax(lg[d])) for d in DECISIONS]
    assert float(value) == pytest.approx(
        float(predict_schedule(model, feature_matrix(groups, [index])[0]))
    )
    soft_g = ds.grad(lambda lg: relaxed_schedule_cost(lg, model, groups, 0.7))(lg)
    assert all(np.all(np.isfinite(g[d])) and np.any(g[d] != 0) for d in DECISIONS)
    assert any(not np.allclose(g[d], soft_g[d]) for d in DECISIONS)


def test_relaxed_cost_converges_to_the_hard_choice():
    groups, model, _, _ = _model(1)
    lg = _logits(6)
    index = [int(np.argmax(lg[d])) for d in DECISIONS]
    hard = float(predict_schedule(model, feature_matrix(groups, [index])[0]))
    gaps = [abs(float(relaxed_schedule_cost(lg, model, groups, t)) - hard)
            for t in (1.0, 0.1, 1e-3)]  # fmt: skip
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-9
    # Gumbel-softmax: the hard form is the argmax of the perturbed logits
    gen = np.random.default_rng(9)  # one generator, drawn decision by decision
    noise = {d: ds.relax.gumbel_noise(gen, v.shape) for d, v in lg.items()}
    index = [int(np.argmax(lg[d] + noise[d])) for d in DECISIONS]
    hard = float(predict_schedule(model, feature_matrix(groups, [index])[0]))
    soft = float(relaxed_schedule_cost(lg, model, groups, 1e-3, rng=np.random.default_rng(9)))
    assert abs(soft - hard) < 1e-9


def _is_local_minimum(pred, index) -> bool:
    return all(
        pred[index[:d] + (option,) + index[d + 1 :]] >= pred[index] - 1e-12
        for d, k in enumerate(SPACE.sizes)
        for option in range(k)
    )


def test_choose_schedule_straight_through_beats_annealed_softmax():
    """The expected cost is multilinear in the per-decision probabilities. Annealed softmax
    saturates before it reaches a configuration no single change improves; straight-through
    (the default) reaches one more often, and the model's global minimum as often or more."""
    counts = {"st": [0, 0], "annealed": [0, 0]}
    for seed in range(8):
        groups, model, x, _ = _model(seed)
        pred = dict(zip(SPACE.all(), np.asarray(predict_schedule(model, x)), strict=True))
        for name, kw in (("st", {}), ("annealed", {"straight_through": False,
                                                   "temperature": (1.0, 0.05)})):  # fmt: skip
            choice = choose_schedule(model, groups, SPACE.sizes, seed=seed, steps=60, **kw)
            assert choice.hard == pytest.approx(pred[choice.index])
            counts[name][0] += _is_local_minimum(pred, choice.index)
            counts[name][1] += choice.hard == min(pred.values())
            if name == "annealed":
                assert choice.gap < 1e-3  # relaxed and hard agree at T = 0.05
    assert counts["st"][0] >= 6 and counts["st"][0] > counts["annealed"][0], counts
    assert counts["st"][1] >= counts["annealed"][1], counts
    with pytest.raises(ValueError, match="choose_schedule: sizes must give"):
        choose_schedule(model, groups, (2, 2))


def test_schedule_searches_spend_the_budget_on_distinct_configurations():
    groups, model, x, _ = _model(2)
    pred = dict(zip(SPACE.all(), np.exp(np.asarray(predict_schedule(model, x))), strict=True))
    calls = []

    def timer(idx):
        calls.append(idx)
        return pred[idx]

    searches = [
        lambda: random_schedule_search(SPACE, timer, 12, seed=1),
        lambda: cma_schedule_search(SPACE, timer, 12, seed=1),
        lambda: schedule_model_search(SPACE, timer, 12, groups, initial=5, seed=1),
        lambda: schedule_model_search(SPACE, timer, 12, groups, initial=5, seed=1, gumbel=True),
        lambda: schedule_model_search(SPACE, timer, 12, groups, initial=5, chooser="enumerate"),
    ]
    for search in searches:
        calls.clear()
        res = search()
        assert len(calls) == len(res.tried) == len(set(res.tried)) == 12, res.method
        assert res.best_seconds == min(res.seconds)
    # the model is exact here: after its first fit the loop measures the true best
    res = schedule_model_search(SPACE, timer, 7, groups, initial=6, seed=0)
    assert res.best_seconds == min(pred.values())
    assert len(res.choices) == len(res.predicted) == 1
    with pytest.raises(ValueError, match="chooser must be"):
        schedule_model_search(SPACE, timer, 7, groups, chooser="anneal")
