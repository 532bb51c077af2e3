"""``diffsys demo scheduler``: a job dispatcher and a cache eviction policy learned by gradient
through relaxed simulations, deployed hard, compared with hand-written rules and black-box
search at the same evaluation budget.

1. Workloads: bursty, diurnal job traces (heavy-tailed sizes, four servers of speeds
   1, 1, 2, 4) and Zipf request traces with drifting popularity and bursts; training and
   held-out traces from different seeds.
2. The exact dispatcher (Lindley's recursion) checked against the event-by-event reference.
3. Dispatch for mean latency, then for p95 latency (a smooth quantile): gradient through
   :func:`~diffsys.systems.runtime.smooth_dispatch`, random search and CMA-ES on the exact
   simulator, each ``budget`` evaluations; FIFO round-robin / least-loaded /
   earliest-finish and SJF as baselines; everything measured hard on held-out traces.
4. Eviction for miss cost: gradient through the soft top-k cache, the same searches,
   LRU / LFU / smallest-first.
5. The mismatch: the relaxed training loss against the exact loss of the same iterates.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from ...systems.runtime import (
    cache_problem,
    compare,
    dispatch_problem,
    make_jobs,
    make_requests,
    simulate_dispatch,
    simulate_events,
)
from ._common import Report

__all__ = ["SchedulerConfig", "run"]


@dataclass(frozen=True)
class SchedulerConfig:
    seed: int = 0
    jobs: int = 300
    train_traces: int = 3
    test_traces: int = 6
    budget: int = 30
    requests: int = 800
    catalogue: int = 100
    capacity: int = 10
    cache_budget: int = 15
    out: str = "diffsys-demo-scheduler"
    plots: bool = True


def _table(say, result: dict, unit: str) -> None:
    test, runs = result["test"], result["runs"]
    best = min(test.values())
    for name, value in sorted(test.items(), key=lambda kv: kv[1]):
        extra = ""
        if name in runs:
            extra = f"  ({runs[name].evaluations} evaluations, {runs[name].seconds:.1f} s)"
        mark = " <- best" if value == best else ""
        say(f"   {name:22s} {value:8.3f} {unit}{extra}{mark}")


def run(cfg: SchedulerConfig, stream=None) -> dict:
    report = Report("scheduler", cfg.out, plots=cfg.plots, stream=stream)
    say = report.say
    say("diffsys demo scheduler: runtime policies learned through relaxed simulations")
    s = cfg.seed * 1000
    train = [make_jobs(cfg.jobs, seed=s + i) for i in range(cfg.train_traces)]
    test = [make_jobs(cfg.jobs, seed=s + 500 + i) for i in range(cfg.test_traces)]
    def requests(seed: int):
        return make_requests(cfg.requests, catalogue=cfg.catalogue, seed=seed)

    rtrain = [requests(s + i) for i in range(2)]
    rtest = [requests(s + 500 + i) for i in range(3)]
    say(
        f"1. {cfg.train_traces}+{cfg.test_traces} job traces of {cfg.jobs} (train+held-out), "
        f"2+3 request traces of {cfg.requests} over {cfg.catalogue} items, cache of {cfg.capacity}"
    )
    theta = np.random.default_rng(cfg.seed).normal(size=len(train[0].speeds) * 2 + 2)
    ref = simulate_events(test[0], theta)
    diff = float(np.abs(simulate_dispatch(test[0], theta).latency - ref.latency).max())
    say(f"2. Lindley recursion vs event-by-event reference (random policy): max |diff| {diff:.1e}")

    results, summary = {}, {"lindley_vs_events_max_abs": diff}
    for key, metric, label in (("mean", "mean", "mean latency"), ("p95", 0.95, "p95 latency")):
        problem = dispatch_problem(train, test, metric=metric)
        results[key] = compare(problem, cfg.budget, seed=cfg.seed)
        say(f"3. dispatch for {label}, held-out (lower is better):")
        _table(say, results[key], "s")
    problem = cache_problem(rtrain, rtest, cfg.capacity)
    results["cache"] = compare(problem, cfg.cache_budget, seed=cfg.seed)
    say("4. eviction for miss cost, held-out (bytes missed per request, lower is better):")
    _table(say, results["cache"], "")

    say("5. relaxation mismatch along the gradient run (training traces):")
    for key, res in results.items():
        g = res["runs"]["gradient"]
        soft, hard = np.array(g.history), np.array(g.hard_history)
        say(
            f"   {key:6s} relaxed {soft[0]:.3f} -> {soft[-1]:.3f}, exact {hard[0]:.3f} -> "
            f"{hard[-1]:.3f} (best exact {hard.min():.3f}); mean |relaxed - exact| "
            f"{np.mean(np.abs(soft - hard)):.3f}"
        )
        summary[key] = {
            "held_out": {k: round(v, 4) for k, v in res["test"].items()},
            "start": round(res["start"], 4),
            "seconds": {k: round(r.seconds, 2) for k, r in res["runs"].items()},
            "gradient_relaxed": [round(v, 4) for v in soft],
            "gradient_exact": [round(v, 4) for v in hard],
        }
    _plots(report, results, test)
    return report.finish({"demo": "scheduler", **summary})


def _plots(report: Report, results: dict, test) -> None:
    def cdf(fig):
        ax = fig.add_subplot()
        policies = {
            "FIFO least-loaded": lambda j: simulate_events(j, "least_loaded").latency,
            "SJF least-loaded": lambda j: simulate_events(j, "least_loaded", "sjf").latency,
        }
        for name in ("gradient", "CMA-ES"):
            if name in results["mean"]["runs"]:
                th = results["mean"]["runs"][name].theta
                policies[f"{name} (mean)"] = lambda j, th=th: simulate_dispatch(j, th).latency
        for name, fn in policies.items():
            lat = np.sort(np.concatenate([fn(j) for j in test]))
            ax.plot(lat, 1 - np.arange(len(lat)) / len(lat), label=name)
        ax.set(xscale="log", yscale="log", xlabel="latency", ylabel="P(latency > x)",
               title="held-out latency distribution")  # fmt: skip
        ax.legend(fontsize=7)

    def mismatch(fig):
        for i, key in enumerate(results):
            ax = fig.add_subplot(1, len(results), i + 1)
            g = results[key]["runs"]["gradient"]
            ax.plot(g.history, label="relaxed")
            ax.plot(g.hard_history, label="exact")
            ax.set(title=key, xlabel="step")
            ax.legend(fontsize=7)

    def bars(fig):
        for i, key in enumerate(results):
            ax = fig.add_subplot(len(results), 1, i + 1)
            test_vals = results[key]["test"]
            names = sorted(test_vals, key=test_vals.get)
            ax.barh(names, [test_vals[n] for n in names])
            ax.set_title(key, fontsize=8)
            ax.tick_params(labelsize=6)

    report.figure("latency_ccdf.png", cdf)
    report.figure("mismatch.png", mismatch)
    report.figure("held_out.png", bars)


def main(args: argparse.Namespace) -> int:
    """``diffsys demo scheduler``: 1 when gradient training makes the exact training loss of
    the mean-latency dispatcher worse than where it started."""
    from . import report_folder

    out, plots = report_folder("scheduler", args), not args.no_plots
    cfg = SchedulerConfig(seed=args.seed, out=out, plots=plots)
    if args.quick:
        cfg = SchedulerConfig(
            seed=args.seed, out=out, plots=plots, jobs=120, train_traces=2, test_traces=2,
            budget=6, requests=200, catalogue=40, capacity=6, cache_budget=4,
        )  # fmt: skip
    summary = run(cfg)
    exact = summary["mean"]["gradient_exact"]
    return 0 if min(exact) <= exact[0] else 1
