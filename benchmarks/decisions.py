"""Comparison tables for issue 21: decisions learned by gradient against hand-written rules,
random search and CMA-ES at the same evaluation budget (not a timing workload: the measure
is the quality of the decision, judged hard, held out or measured for real).

```sh
python benchmarks/decisions.py --output docs/benchmarks-decisions.md  # both parts, < 15 min
python benchmarks/decisions.py --part compiler --table /tmp/mm.json  # reuse a measured table
python benchmarks/decisions.py --quick                               # small, about a minute
```

- **runtime**: the scheduler demo's problems (dispatch for mean and p95 latency, eviction
  for miss cost): every method at the same number of objective evaluations on training
  traces, every chosen policy evaluated exactly on held-out traces; the gradient also with
  3x the budget.
- **compiler**: every schedule of the Numba blocked matmul (tiles x 3, loop order, layout)
  timed in interleaved passes (the table every search reads, so all see the same numbers);
  each search's chosen schedule then timed again, fresh (its "held-out" time: the table's
  minimum over noisy runs flatters whatever a search picks).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from diffsys.systems import compiler as comp  # noqa: E402
from diffsys.systems import runtime as rt  # noqa: E402


def _md(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def runtime_tables(quick: bool, seed: int) -> str:
    jobs, train_n, test_n, budget = (120, 2, 2, 8) if quick else (300, 3, 6, 30)
    requests, cat, cap, cbudget = (300, 40, 6, 5) if quick else (800, 100, 10, 15)
    train = [rt.make_jobs(jobs, seed=seed * 100 + s) for s in range(train_n)]
    test = [rt.make_jobs(jobs, seed=seed * 100 + 50 + s) for s in range(test_n)]
    rtrain = [rt.make_requests(requests, catalogue=cat, seed=seed * 100 + s) for s in range(2)]
    rtest = [rt.make_requests(requests, catalogue=cat, seed=seed * 100 + 50 + s)
             for s in range(3)]  # fmt: skip
    problems = [
        (rt.dispatch_problem(train, test, metric="mean"), budget),
        (rt.dispatch_problem(train, test, metric=0.95), budget),
        (rt.cache_problem(rtrain, rtest, cap), cbudget),
    ]
    out = [
        f"Held-out value of each method's choice (lower is better); {jobs} jobs x "
        f"{train_n} training / {test_n} held-out traces, {requests} requests x 2 / 3, cache "
        f"{cap} of {cat}; evaluations per method in the header, wall time in brackets.",
        "",
    ]
    for problem, b in problems:
        res = rt.compare(problem, b, seed=seed)
        more = rt.gradient_search(problem.relaxed, problem.theta0, 3 * b, hard=problem.hard)
        res["test"][f"gradient, {3 * b} evaluations"] = problem.test(more.theta)
        res["runs"][f"gradient, {3 * b} evaluations"] = more
        rows = []
        for name, value in sorted(res["test"].items(), key=lambda kv: kv[1]):
            run = res["runs"].get(name)
            extra = f" ({run.seconds:.1f} s)" if run is not None else ""
            rows.append([name, f"{value:.3f}{extra}"])
        grad = res["runs"]["gradient"]
        gap = np.mean(np.abs(np.array(grad.history) - np.array(grad.hard_history)))
        out += [f"**{problem.name}**, {b} evaluations each:", "",
                _md(rows, ["method", "held-out"]), "",
                f"Relaxed vs exact training loss along the gradient run: "
                f"{grad.history[0]:.3f} -> {grad.history[-1]:.3f} relaxed, "
                f"{grad.hard_history[0]:.3f} -> {grad.hard_history[-1]:.3f} exact "
                f"(mean gap {gap:.3f}).", ""]  # fmt: skip
    return "\n".join(out)


def _measure_table(space, n, passes, path):
    if path and Path(path).exists():
        data = json.loads(Path(path).read_text())
        if data["n"] == n and tuple(data["tiles"]) == space.tiles:
            return {tuple(k): v for k, v in data["seconds"]}, data.get("wall", float("nan"))
    start = time.perf_counter()
    table = comp.exhaustive_matmul(space, n, passes=passes)
    wall = time.perf_counter() - start
    if path:
        Path(path).write_text(json.dumps({"n": n, "tiles": space.tiles, "passes": passes,
                                          "wall": wall,
                                          "seconds": [[list(k), v] for k, v in table.items()]}))
    return table, wall


def compiler_tables(quick, seed, n, tiles, passes, budget, seeds, table_path) -> str:
    space = comp.MatmulSpace(tiles=tiles)
    table, wall = _measure_table(space, n, passes, table_path)
    res = comp.compare_schedule_searches(space, table, budget, n, seeds=seeds, seed=seed)
    best_idx = min(table, key=table.get)
    fresh_cache: dict = {}

    def fresh(idx):  # the chosen schedule timed again, outside the table
        if idx not in fresh_cache:
            fresh_cache[idx] = comp.measure_matmul(space.schedule(idx), n, repeats=5)
        return fresh_cache[idx]

    heur = space.index(comp.heuristic_schedule(space, n))
    rows = [
        ["exhaustive best: " + str(space.schedule(best_idx)), f"{len(table)}",
         f"{table[best_idx] * 1e3:.2f}", f"{fresh(best_idx) * 1e3:.2f}", ""],
        ["heuristic: " + res["heuristic_schedule"], "1", f"{res['heuristic'] * 1e3:.2f}",
         f"{fresh(heur) * 1e3:.2f}", ""],
    ]  # fmt: skip
    for m, secs in sorted(res["seconds"].items(), key=lambda kv: np.mean(kv[1])):
        v = np.array(secs) * 1e3
        f = np.array([fresh(i) for i in res["chosen"][m]]) * 1e3
        searches = res["searches"][m]
        extra = ""
        if searches[0].choices:
            fb = sum(s.fallbacks for s in searches)
            steps = sum(len(s.choices) for s in searches)
            extra = f"{fb} of {steps} steps fell back to random"
        rows.append([m, str(budget), f"{v.mean():.2f} (worst {v.max():.2f})",
                     f"{f.mean():.2f} (worst {f.max():.2f})", extra])  # fmt: skip
    every = space.all()
    groups = comp.matmul_features(space, n)
    x = comp.feature_matrix(groups, every)
    y = np.array([table[k] for k in every])
    model = comp.fit_schedule_model(x, y)
    corr_all = float(np.corrcoef(np.asarray(comp.predict_schedule(model, x)), np.log(y))[0, 1])
    grad_runs = res["searches"]["cost model + gradient"]
    pred = np.concatenate([r.predicted for r in grad_runs])
    meas = np.log(np.concatenate([r.seconds[-len(r.predicted):] for r in grad_runs]))
    times = np.array(list(table.values())) * 1e3
    head = (
        f"{n}x{n} float64 matmul, Numba {_numba_version()}, {len(table)} schedules "
        f"(tiles {tiles} for each of ti, tj, tk; 6 loop orders; 4 layouts), each timed as the "
        f"minimum of {passes} interleaved passes ({wall:.0f} s); the searches read that "
        f"table; {budget} measurements each, {seeds} seeds (mean, worst of the seeds). "
        f"Table: best {times.min():.2f} ms, median {np.median(times):.2f} ms, worst "
        f"{times.max():.2f} ms. 'fresh' is each chosen schedule timed again (min of 5)."
    )
    notes = (
        f"Cost model fitted on every schedule: correlation of log times {corr_all:.2f}. "
        f"Along the gradient loops, the model's prediction for what it chose against the "
        f"measured time: mean error {np.mean(pred - meas):+.2f} log units, |error| "
        f"{np.mean(np.abs(pred - meas)):.2f} (the model is optimistic about its own choices)."
    )
    return "\n".join([head, "", _md(rows, ["method", "measurements", "table ms",
                                           "fresh ms", "notes"]), "", notes])  # fmt: skip


def _numba_version() -> str:
    try:
        import numba

        return numba.__version__
    except ImportError:
        return "(not installed)"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", nargs="*", default=["runtime", "compiler"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--tiles", default=None, help="comma-separated, e.g. 8,32,128,256")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--table", default=None, help="JSON file: reuse (or save) the timings")
    p.add_argument("--output", default=None)
    a = p.parse_args(argv)
    n = a.n or (64 if a.quick else 256)
    tiles = tuple(int(t) for t in a.tiles.split(",")) if a.tiles else (
        (8, 32, 64) if a.quick else (8, 32, 128, 256))  # fmt: skip
    budget = a.budget or (12 if a.quick else 30)
    seeds = a.seeds or (2 if a.quick else 5)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/decisions.py", *given])
    parts = [f"# Decisions by gradient vs search (issue 21)\n\n`{command}`, "
             f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
             f"{platform.processor() or platform.machine()}, Python "
             f"{platform.python_version()}, load average "
             f"{', '.join(f'{x:.1f}' for x in _loadavg())}\n"]  # fmt: skip
    if "runtime" in a.part:
        parts.append("## Runtime policies (`diffsys.systems.runtime`)\n\n"
                     + runtime_tables(a.quick, a.seed))  # fmt: skip
    if "compiler" in a.part:
        parts.append("## Matmul schedule (`diffsys.systems.compiler`)\n\n"
                     + compiler_tables(a.quick, a.seed, n, tiles, a.passes, budget, seeds,
                                       a.table))  # fmt: skip
    text = "\n".join(parts) + "\n"
    if a.output:
        Path(a.output).write_text(text)
    print(text)


def _loadavg() -> tuple[float, ...]:
    try:
        import os

        return os.getloadavg()
    except OSError:
        return (float("nan"),)


if __name__ == "__main__":
    main()
