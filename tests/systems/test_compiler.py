"""diffsys.systems.compiler: the tiled stencil against the untiled one, the cost model's
gradients, the relaxed choice converging to the hard one, the searches' budgets, the demo."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffsys as ds
from diffsys.cli import main
from diffsys.systems.compiler import (
    Space,
    choose_tiles,
    fit_cost_model,
    init_cost_model,
    measure,
    model_search,
    predict_log_time,
    random_tile_search,
    relaxed_cost,
    stencil,
    stencil_reference,
)


@pytest.mark.parametrize("tile", [(1, 1), (3, 5), (8, 64), (100, 7), (64, 64)])
def test_tiled_stencil_equals_the_whole_grid(tile):
    x = np.random.default_rng(0).normal(size=(35, 52))
    np.testing.assert_allclose(stencil(x, tile), stencil_reference(x), rtol=0, atol=0)


def test_stencil_errors_and_measure():
    with pytest.raises(ValueError, match="stencil: x must be a 2-d"):
        stencil(np.zeros(5), (2, 2))
    with pytest.raises(ValueError, match="stencil: tile sizes"):
        stencil(np.zeros((5, 5)), (0, 2))
    assert measure((8, 8), n=16, repeats=1) > 0


def test_cost_model_check_grads():
    w = init_cost_model() + 0.1
    ds.check_grads(lambda w: predict_log_time(w, np.log(32.0), np.log(64.0), 256), (w,), order=2)
    logits = np.random.default_rng(1).normal(size=(2, 5))
    tiles = (8, 16, 32, 64, 128)
    ds.check_grads(lambda lg: relaxed_cost(lg, w, tiles, 256, 0.7), (logits,), order=2)


def test_relaxed_cost_converges_to_the_hard_choice():
    w, tiles = init_cost_model(), (8, 16, 32, 64, 128)
    logits = np.random.default_rng(2).normal(size=(2, 5))
    i, j = np.argmax(logits, axis=1)
    hard = float(predict_log_time(w, np.log(tiles[i]), np.log(tiles[j]), 256))
    gaps = [abs(float(relaxed_cost(logits, w, tiles, 256, t)) - hard) for t in (1.0, 0.1, 1e-3)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-9


def test_fit_recovers_a_model_and_choose_finds_its_minimum():
    space = Space((8, 16, 32, 64, 128, 256, 512))
    true_w = np.array([np.log(2e-5), np.log(2e-9), 0.8, np.log(4096.0), 0.1])
    tiles = np.array([space.config(c) for c in space.all()], dtype=np.float64)
    lt = np.log(tiles)
    seconds = np.exp(np.asarray(predict_log_time(true_w, lt[:, 0], lt[:, 1], 1024)))
    w = fit_cost_model(tiles, seconds, 1024, steps=800)
    pred = np.asarray(predict_log_time(w, lt[:, 0], lt[:, 1], 1024))
    assert np.max(np.abs(pred - np.log(seconds))) < 0.1
    i, j = choose_tiles(true_w, space.tiles, 1024)
    best = space.all()[int(np.argmin(seconds))]
    # the gradient's choice is the model's minimum or within 5% of it
    assert seconds[space.all().index((i, j))] <= 1.05 * seconds.min(), (i, j, best)
    with pytest.raises(ValueError, match="fit_cost_model: tiles must be"):
        fit_cost_model(np.zeros((3, 3)), np.ones(3), 64)


def test_searches_spend_the_budget_on_distinct_shapes():
    space = Space((8, 16, 32, 64, 128))
    calls = []

    def timer(tile):
        calls.append(tile)
        a, b = np.log2(tile)
        return float(np.exp(0.3 * (a - 4) ** 2 + 0.2 * (b - 6) ** 2))

    for search in (
        lambda: random_tile_search(space, timer, 7, seed=1),
        lambda: model_search(space, timer, 7, 256, seed=1),
    ):
        calls.clear()
        res = search()
        assert len(calls) == len(res.tried) == len(set(res.tried)) == 7
        assert res.best_seconds == min(res.seconds)


def test_tiling_demo_quick(tmp_path):
    out = tmp_path / "t"
    assert main(["demo", "tiling", "--quick", "--no-plots", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_ms"] <= summary["median_ms"]
    for vals in summary["searches"].values():
        assert min(vals) >= summary["best_ms"] - 1e-3  # rounded to 0.001 ms
    mm = summary["matmul"]
    if mm is not None:  # Numba installed: the compiled matmul's schedule searches
        assert set(mm["searches"]) == {"random search", "CMA-ES", "cost model + gradient",
                                       "cost model + gradient (Gumbel)",
                                       "cost model + enumeration"}  # fmt: skip
        for vals in mm["searches"].values():
            assert min(vals) >= mm["best_ms"] - 1e-4 and max(vals) <= mm["median_ms"] * 10
