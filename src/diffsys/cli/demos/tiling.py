"""``diffsys demo tiling``: choose a stencil's tile shape by gradient through a learned cost
model, and measure the choice for real.

1. Every tile shape of the space timed (the exhaustive search: the best and the median).
2. The cost-model loop (:func:`~diffsys.systems.compiler.model_search`: a few random
   measurements, then fit the model, choose by gradient through the softmax relaxation,
   measure, repeat) against random search, at the same number of measurements, over
   several seeds; each search's choice looked up in the exhaustive table.
3. The model's fit: predicted against measured time over the whole space.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from ...systems.compiler import (
    Space,
    exhaustive,
    fit_cost_model,
    measure,
    model_search,
    predict_log_time,
    random_tile_search,
)
from ._common import Report

__all__ = ["TilingConfig", "run"]


@dataclass(frozen=True)
class TilingConfig:
    seed: int = 0
    n: int = 1024
    tiles: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024)
    budget: int = 10
    seeds: int = 5
    out: str = "diffsys-demo-tiling"
    plots: bool = True


def run(cfg: TilingConfig, stream=None) -> dict:
    report = Report("tiling", cfg.out, plots=cfg.plots, stream=stream)
    say = report.say
    say(f"diffsys demo tiling: the tile shape of a {cfg.n}x{cfg.n} NumPy stencil")
    space = Space(tuple(t for t in cfg.tiles if t <= cfg.n))
    table = exhaustive(space, lambda tile: measure(tile, cfg.n, seed=cfg.seed))
    times = np.array(list(table.values()))
    best_idx = min(table, key=table.get)
    best, median = float(times.min()), float(np.median(times))
    say(
        f"1. exhaustive: {len(table)} shapes measured; best {space.config(best_idx)} "
        f"{best * 1e3:.1f} ms, median {median * 1e3:.1f} ms, worst {times.max() * 1e3:.1f} ms"
    )

    def timer(tile):  # the searches read the exhaustive table: same timings for all
        return table[(space.tiles.index(tile[0]), space.tiles.index(tile[1]))]

    rows = {"cost model + gradient": [], "random search": []}
    repeats = 0
    for s in range(cfg.seeds):
        m = model_search(space, timer, cfg.budget, cfg.n, seed=cfg.seed * 100 + s)
        r = random_tile_search(space, timer, cfg.budget, seed=cfg.seed * 100 + s)
        rows["cost model + gradient"].append(m.best_seconds)
        rows["random search"].append(r.best_seconds)
        repeats += m.repeats
    say(f"2. {cfg.budget} measurements each, {cfg.seeds} seeds (time of the chosen shape):")
    summary = {"best_ms": best * 1e3, "median_ms": median * 1e3, "searches": {}}
    for name, vals in rows.items():
        v = np.array(vals) * 1e3
        say(
            f"   {name:22s} mean {v.mean():6.1f} ms, worst {v.max():6.1f} ms "
            f"(x{v.mean() / (best * 1e3):.2f} the best, "
            f"x{v.mean() / (median * 1e3):.2f} the median)"
        )
        summary["searches"][name] = [round(float(x), 3) for x in v]
    say(
        f"   the gradient's choice had already been measured {repeats} times of "
        f"{cfg.seeds * (cfg.budget - 4)}: the model's best unmeasured shape was taken instead"
    )
    idx = list(table)
    tiles = np.array([space.config(i) for i in idx], dtype=np.float64)
    measured = np.array([table[i] for i in idx])
    w = fit_cost_model(tiles, measured, cfg.n)
    pred = np.exp(np.asarray(predict_log_time(w, np.log(tiles[:, 0]), np.log(tiles[:, 1]), cfg.n)))
    corr = float(np.corrcoef(np.log(pred), np.log(measured))[0, 1])
    say(f"3. cost model fitted on all shapes: correlation of log times {corr:.2f}")
    summary["model_log_corr"] = corr
    summary["repeats"] = repeats

    def heat(fig):
        ax = fig.add_subplot()
        k = len(space.tiles)
        grid = np.array([[table[(i, j)] for j in range(k)] for i in range(k)]) * 1e3
        im = ax.imshow(grid, origin="lower")
        ax.set(xticks=range(k), yticks=range(k), xlabel="tile columns", ylabel="tile rows",
               title="measured ms")  # fmt: skip
        ax.set_xticklabels(space.tiles, fontsize=7)
        ax.set_yticklabels(space.tiles, fontsize=7)
        fig.colorbar(im)

    def bars(fig):
        ax = fig.add_subplot()
        names = ["best", *rows, "median"]
        vals = [best * 1e3, *(np.mean(v) * 1e3 for v in rows.values()), median * 1e3]
        ax.bar(names, vals, color=["green", "tab:blue", "grey", "black"])
        ax.set(ylabel="ms", title=f"chosen shape's time, {cfg.budget} measurements")
        ax.tick_params(labelsize=7)

    def fit(fig):
        ax = fig.add_subplot()
        ax.loglog(measured * 1e3, pred * 1e3, "o", ms=3)
        lo, hi = measured.min() * 1e3, measured.max() * 1e3
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xlabel="measured ms", ylabel="model ms", title="cost model")

    report.figure("measured.png", heat)
    report.figure("searches.png", bars)
    report.figure("cost_model.png", fit)
    return report.finish({"demo": "tiling", **summary})


def main(args: argparse.Namespace) -> int:
    """``diffsys demo tiling``: 1 when the model loop's mean choice is slower than the median."""
    from . import report_folder

    out, plots = report_folder("tiling", args), not args.no_plots
    cfg = TilingConfig(seed=args.seed, out=out, plots=plots)
    if args.quick:
        cfg = TilingConfig(seed=args.seed, out=out, plots=plots, n=128,
                           tiles=(4, 8, 16, 32, 64, 128), budget=6, seeds=2)  # fmt: skip
    summary = run(cfg)
    mean = float(np.mean(summary["searches"]["cost model + gradient"]))
    return 0 if mean <= summary["median_ms"] else 1
