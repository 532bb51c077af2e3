"""``diffsys demo aggregate``: learn a filter threshold and value weights so a grouped
aggregate matches target values, then run the learned query in DuckDB.

The query is ``SELECT region, SUM(w1 * amount + w2 * quantity + b) FROM orders
WHERE price < t GROUP BY region``: a differentiable GROUP BY. Targets come from the same
query with hidden values of ``t``, ``w`` and ``b``.

1. ``make_orders``: a generated 100k-row order table in DuckDB (8 regions with different
   price, amount and quantity mixes).
2. ``targets``: the hidden query, executed by DuckDB.
3. ``fit``: Adam on the relative squared error of the soft aggregate (soft predicate
   ``price < t`` as a sigmoid whose temperature is annealed, soft group memberships).
4. The learned query compiled to SQL; its DuckDB result against the targets and against the
   hard NumPy result, group by group.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from ... import optim as _optim
from ...core.transforms import value_and_grad
from ...systems.db import Database, Query
from ._common import Report

__all__ = ["AggregateConfig", "run"]

HIDDEN = {"threshold": 62.0, "weights": [0.8, 3.0], "bias": 1.5}
START = {"threshold": 30.0, "weights": [1.0, 1.0], "bias": 0.0}


@dataclass(frozen=True)
class AggregateConfig:
    seed: int = 0
    rows: int = 100_000
    regions: int = 8
    steps: int = 400
    learning_rate: float = 0.1
    temperature: tuple[float, float] = (8.0, 0.5)  # annealed from, to
    out: str = "diffsys-demo-aggregate"
    plots: bool = True


def make_orders(db: Database, cfg: AggregateConfig) -> None:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.rows
    region = rng.integers(0, cfg.regions, n)
    price_scale = np.linspace(25.0, 90.0, cfg.regions)[region]
    db.create_table(
        "orders",
        {
            "id": np.arange(n),
            "region": region,
            "price": np.round(rng.gamma(3.0, price_scale / 3.0), 2),
            "amount": np.round(rng.gamma(2.0, 5.0 + 3.0 * (region % 3), n), 2),
            "quantity": rng.integers(1, 2 + region % 4 * 2, n),
        },
        replace=True,
    )


def query(threshold, weights, bias, temperature=1.0) -> Query:
    return Query(
        "orders",
        key="id",
        features=["amount", "quantity"],
        weights=weights,
        bias=bias,
        predicates=[("price", "<", threshold)],
        aggregate=("region", "sum", "score"),
        temperature=temperature,
    )


def fit(q0: Query, cands, target: np.ndarray, cfg: AggregateConfig, report: Report):
    """Adam over (threshold, weights, bias); loss: mean relative squared error per group."""
    # parameters on comparable scales: threshold in units of 10, the rest as they are
    params = {
        "t": np.array(q0.thresholds[0] / 10.0),
        "w": np.array(q0.weights),
        "b": np.array(q0.bias),
    }
    t_hi, t_lo = cfg.temperature

    def loss(p, temperature):
        q = q0.replace(thresholds=p["t"][None] * 10.0, weights=p["w"], bias=p["b"]).replace(
            temperature=temperature
        )
        pred = q.relaxed(cands.x, cands.groups)
        return ((pred - target) / target) @ ((pred - target) / target) / target.size

    opt = _optim.adam(cfg.learning_rate)
    state = opt.init(params)
    history = []
    for step in range(cfg.steps):
        temperature = float(t_hi * (t_lo / t_hi) ** (step / max(cfg.steps - 1, 1)))
        value, g = value_and_grad(loss)(params, temperature)
        updates, state = opt.update(g, state, params)
        params = _optim.apply_updates(params, updates)
        history.append((float(value), float(params["t"]) * 10.0, temperature))
        if step % 50 == 0 or step == cfg.steps - 1:
            report.say(
                f"  step {step:3d}  loss {float(value):.2e}  "
                f"threshold {float(params['t']) * 10:6.2f}"
                f"  temperature {temperature:.2f}"
            )
    learned = query(float(params["t"]) * 10.0, params["w"], float(params["b"]))
    return learned, history


def run(cfg: AggregateConfig, stream=None) -> dict:
    report = Report("aggregate", cfg.out, plots=cfg.plots, stream=stream)
    say = report.say
    say("diffsys demo aggregate: a differentiable SELECT region, SUM(...) WHERE price < t GROUP BY")
    db = Database()
    make_orders(db, cfg)
    hidden = query(HIDDEN["threshold"], HIDDEN["weights"], HIDDEN["bias"])
    target_result = hidden.execute(db)
    target = target_result.values
    say(f"1. {cfg.rows:,} orders in DuckDB, {cfg.regions} regions; targets from a hidden query")
    start = query(START["threshold"], START["weights"], START["bias"])
    cands = start.candidates(db)
    say(
        f"2. fitting threshold, weights and bias over {len(cands.keys):,} candidate rows "
        f"(start: t={START['threshold']}, w={START['weights']}, b={START['bias']})"
    )
    t = time.perf_counter()
    learned, history = fit(start, cands, target, cfg, report)
    fit_s = time.perf_counter() - t
    result = learned.execute(db)
    numpy_hard = learned.hard_result(cands)
    same = result.groups == numpy_hard.groups and np.allclose(
        result.values, numpy_hard.values, rtol=1e-12
    )
    before = start.execute(db).values
    rel = np.abs(result.values - target) / np.abs(target)
    rel_before = np.abs(before - target) / np.abs(target)
    say("3. learned vs hidden:")
    say(f"   threshold {float(learned.thresholds[0]):.2f} (hidden {HIDDEN['threshold']})")
    say(f"   weights   {np.round(learned.weights, 3)} (hidden {HIDDEN['weights']})")
    say(f"   bias      {float(learned.bias):.3f} (hidden {HIDDEN['bias']})")
    sql, _ = learned.compile(db)
    say("4. the learned query in DuckDB:")
    say("   " + sql)
    say(
        f"   max relative error per region: {rel.max():.2e} (start {rel_before.max():.2e}); "
        f"DuckDB equals the hard NumPy result: {same}"
    )
    learned.save(report.dir / "query.json")
    report.files.append("query.json")
    hist = np.array(history)

    def loss_plot(fig):
        ax = fig.add_subplot()
        ax.semilogy(hist[:, 0])
        ax.set(xlabel="step", ylabel="relative squared error", title="fit of the soft aggregate")

    def threshold_plot(fig):
        ax = fig.add_subplot()
        ax.plot(hist[:, 1], label="learned threshold")
        ax.axhline(HIDDEN["threshold"], color="k", ls="--", label="hidden threshold")
        ax2 = ax.twinx()
        ax2.plot(hist[:, 2], color="tab:grey", alpha=0.6)
        ax2.set_ylabel("temperature", color="tab:grey")
        ax.set(xlabel="step", ylabel="price threshold")
        ax.legend(loc="lower right")

    def groups_plot(fig):
        ax = fig.add_subplot()
        x = np.arange(len(target))
        ax.bar(x - 0.27, target, 0.27, label="target", color="k")
        ax.bar(x, before, 0.27, label="start (DuckDB)", color="grey")
        ax.bar(x + 0.27, result.values, 0.27, label="learned (DuckDB)", color="tab:blue")
        ax.set_xticks(x, [str(g) for g in result.groups])
        ax.set(xlabel="region", ylabel="SUM(score)")
        ax.legend()

    report.figure("loss.png", loss_plot)
    report.figure("threshold.png", threshold_plot)
    report.figure("groups.png", groups_plot)
    return report.finish(
        {
            "demo": "aggregate",
            "rows": cfg.rows,
            "hidden": HIDDEN,
            "learned": {
                "threshold": float(learned.thresholds[0]),
                "weights": [float(w) for w in learned.weights],
                "bias": float(learned.bias),
            },
            "max_relative_error": {"start": float(rel_before.max()), "learned": float(rel.max())},
            "duckdb_equals_numpy": bool(same),
            "loss": {"first": history[0][0], "last": history[-1][0]},
            "fit_seconds": round(fit_s, 2),
            "sql": sql,
        }
    )


def main(args: argparse.Namespace) -> int:
    """``diffsys demo aggregate``: 1 when the fitted aggregate is no closer to its targets."""
    from . import report_folder

    out, plots = report_folder("aggregate", args), not args.no_plots
    cfg = AggregateConfig(seed=args.seed, out=out, plots=plots)
    if args.quick:
        cfg = AggregateConfig(seed=args.seed, out=out, plots=plots, rows=20_000, steps=60)
    err = run(cfg)["max_relative_error"]
    return 0 if err["learned"] < err["start"] else 1
