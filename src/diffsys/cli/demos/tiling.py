"""``diffsys demo tiling``: choose a stencil's tile shape by gradient through a learned cost
model, and measure the choice for real.

1. Every tile shape of the space timed (the exhaustive search: the best and the median).
2. The cost-model loop (:func:`~diffsys.systems.compiler.model_search`: a few random
   measurements, then fit the model, choose by gradient through the softmax relaxation,
   measure, repeat) against random search, at the same number of measurements, over
   several seeds; each search's choice looked up in the exhaustive table.
3. The model's fit: predicted against measured time over the whole space.
4. With Numba (the ``jit`` extra): a compiled blocked matmul whose schedule has five
   decisions (three tile sizes, loop order, data layout). Every schedule timed; the cost
   model over schedule features + a straight-through (and a Gumbel-softmax) gradient choice
   against random search, CMA-ES and enumerating the model, at the same number of
   measurements, and the textbook heuristic.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from ...systems.compiler import (
    LAYOUTS,
    ORDERS,
    MatmulSpace,
    Space,
    compare_schedule_searches,
    exhaustive,
    exhaustive_matmul,
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
    matmul_n: int = 128
    matmul_tiles: tuple[int, ...] = (16, 64, 128)
    matmul_budget: int = 16
    matmul_seeds: int = 2
    matmul_initial: int = 8
    matmul_orders: tuple[str, ...] = ORDERS
    matmul_layouts: tuple[str, ...] = LAYOUTS
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
    summary["matmul"] = _matmul(cfg, report)
    return report.finish({"demo": "tiling", **summary})


MATMUL_METHODS = ("random search", "CMA-ES", "cost model + gradient",
                  "cost model + gradient (Gumbel)", "cost model + enumeration")  # fmt: skip


def _matmul(cfg: TilingConfig, report: Report) -> dict | None:
    say = report.say
    try:
        import numba  # noqa: F401
    except ImportError:
        say("4. matmul schedule: skipped (Numba is not installed: pip install 'diffsys[jit]')")
        return None
    space = MatmulSpace(cfg.matmul_tiles, cfg.matmul_orders, cfg.matmul_layouts)
    n = cfg.matmul_n
    table = exhaustive_matmul(space, n, passes=2, seed=cfg.seed)
    res = compare_schedule_searches(space, table, cfg.matmul_budget, n, seeds=cfg.matmul_seeds,
                                    initial=cfg.matmul_initial, methods=MATMUL_METHODS,
                                    seed=cfg.seed)  # fmt: skip
    best_idx = min(table, key=table.get)
    say(
        f"4. compiled {n}x{n} matmul (Numba), {len(table)} schedules timed: best "
        f"{space.schedule(best_idx)} {res['best'] * 1e3:.2f} ms, median "
        f"{res['median'] * 1e3:.2f} ms; heuristic {res['heuristic_schedule']} "
        f"{res['heuristic'] * 1e3:.2f} ms"
    )
    say(f"   {cfg.matmul_budget} measurements each, {cfg.matmul_seeds} seeds:")
    out = {"best_ms": res["best"] * 1e3, "median_ms": res["median"] * 1e3,
           "heuristic_ms": res["heuristic"] * 1e3, "searches": {}}  # fmt: skip
    for m, secs in res["seconds"].items():
        v = np.array(secs) * 1e3
        say(f"   {m:31s} mean {v.mean():6.2f} ms, worst {v.max():6.2f} ms")
        out["searches"][m] = [round(float(x), 4) for x in v]
    gaps = [c.gap for r in res["searches"]["cost model + gradient"] for c in r.choices]
    gap = float(np.mean(gaps)) if gaps else 0.0
    say(f"   relaxed vs hard model cost at the gradient's {len(gaps)} choices: mean gap {gap:.3f}")
    out["relaxed_hard_gap"] = gap

    def bars(fig):
        ax = fig.add_subplot()
        names = ["best", "heuristic", *res["seconds"], "median"]
        vals = [res["best"], res["heuristic"], *(np.mean(v) for v in res["seconds"].values()),
                res["median"]]  # fmt: skip
        ax.barh(names, np.array(vals) * 1e3)
        ax.set(xlabel="ms", title=f"matmul schedule, {cfg.matmul_budget} measurements")
        ax.tick_params(labelsize=7)

    report.figure("matmul.png", bars)
    return out


def main(args: argparse.Namespace) -> int:
    """``diffsys demo tiling``: 1 when the model loop's mean choice is slower than the median."""
    from . import report_folder

    out, plots = report_folder("tiling", args), not args.no_plots
    cfg = TilingConfig(seed=args.seed, out=out, plots=plots)
    if args.quick:
        cfg = TilingConfig(seed=args.seed, out=out, plots=plots, n=128,
                           tiles=(4, 8, 16, 32, 64, 128), budget=6, seeds=2, matmul_n=32,
                           matmul_tiles=(8, 32), matmul_budget=8, matmul_seeds=1,
                           matmul_initial=4, matmul_orders=("ikj", "ijk"),
                           matmul_layouts=("nn", "nt"))  # fmt: skip
    summary = run(cfg)
    mean = float(np.mean(summary["searches"]["cost model + gradient"]))
    return 0 if mean <= summary["median_ms"] else 1
