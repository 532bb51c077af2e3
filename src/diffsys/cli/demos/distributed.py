"""``diffsys demo distributed``: data-parallel training and a simulation sweep on a local Dask
cluster (2 worker processes), checked against and timed against a single process.

Steps: start a LocalCluster; train a small MLP data-parallel (shards generated on the
workers) and compare with the single-process run on the concatenated data; time a round with
1 and 2 workers against one process (compute, reduce, transfer; bytes per round); sweep a
differentiable falling-body simulation over drag and mass, gathering values and gradients;
write summary.json and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import optim

from . import one_blas_thread, report_folder

N_FEATURES = 16
HIDDEN = 64


# --- the model and the data (importable: the workers load them by reference) -------------------
def make_data(n: int, seed: int) -> dict:
    """``n`` examples of a smooth regression target in ``N_FEATURES`` dimensions."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    w = np.linspace(-1.0, 1.0, N_FEATURES)
    y = np.tanh(x @ w) + 0.5 * np.sin(x[:, 0] * x[:, 1]) + 0.05 * rng.normal(size=n)
    return {"x": x, "y": y}


class ShardLoader:
    """Shard ``i`` of ``n_shards``: the rows ``array_split`` gives it, generated on the worker."""

    def __init__(self, n: int, n_shards: int, seed: int) -> None:
        self.n, self.n_shards, self.seed = n, n_shards, seed

    def __call__(self, i: int) -> dict:
        data = make_data(self.n, self.seed)
        rows = np.array_split(np.arange(self.n), self.n_shards)[i]
        return {k: v[rows] for k, v in data.items()}


def init_params(seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    return {
        "w1": rng.normal(size=(N_FEATURES, HIDDEN)) / np.sqrt(N_FEATURES),
        "b1": np.zeros(HIDDEN),
        "w2": rng.normal(size=(HIDDEN,)) / np.sqrt(HIDDEN),
        "b2": np.zeros(()),
    }


def loss(params, batch):
    """Mean squared error of a one-hidden-layer MLP (a per-example mean: shards combine)."""
    h = dnp.tanh(batch["x"] @ params["w1"] + params["b1"])
    return dnp.mean((h @ params["w2"] + params["b2"] - batch["y"]) ** 2)


def fall(params, config):
    """Distance fallen in ``config["steps"]`` Euler steps by a body with quadratic drag."""
    v = dnp.zeros(())
    x = dnp.zeros(())
    dt, mass = config["dt"], config["mass"]
    for _ in range(config["steps"]):
        v = v + dt * (params["g"] - params["drag"] * v * dnp.abs(v) / mass)
        x = x + dt * v
    return x


# --- the steps --------------------------------------------------------------------------------
def _single_process(params, data, opt, rounds: int):
    # BLAS on one thread, as Dask's worker processes run (OMP_NUM_THREADS=1), so the
    # single-process baseline is timed like the workers
    with one_blas_thread():
        return _single_process_loop(params, data, opt, rounds)


def _single_process_loop(params, data, opt, rounds: int):
    state = opt.init(params)
    losses, times = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        value, grads = ds.value_and_grad(loss)(params, data)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        times.append(time.perf_counter() - t0)
        losses.append(float(value))
    return params, losses, times


def _timed_rounds(dist, client, n: int, n_shards: int, seed: int, rounds: int):
    tr = dist.Trainer(loss, init_params(seed), optim.adam(0.01), ShardLoader(n, n_shards, seed),
                      n_shards=n_shards, client=client)
    try:
        tr.step()  # warm-up: shards made, code loaded on the workers
        reports = tr.fit(rounds)
    finally:
        tr.close()
    med = lambda f: float(np.median([f(r) for r in reports]))  # noqa: E731
    return {
        "shards": n_shards,
        "round_s": med(lambda r: r.wall_s),
        "compute_s": med(lambda r: r.compute_s),
        "reduce_s": med(lambda r: r.reduce_s),
        "transfer_s": med(lambda r: r.transfer_s),
        "bytes_per_round": reports[-1].bytes,
    }


def main(args: argparse.Namespace) -> int:
    from diffsys import distributed as dist

    out = report_folder("distributed", args)
    os.makedirs(out, exist_ok=True)
    n = 2_000 if args.quick else 40_000
    rounds = 5 if args.quick else 30
    timing_rounds = 3 if args.quick else 10
    seed = args.seed
    summary: dict = {"examples": n, "rounds": rounds}

    print("[1/5] starting a LocalCluster: 2 worker processes, 1 thread each")
    t0 = time.perf_counter()
    with dist.local_cluster(n_workers=2, threads_per_worker=1) as client:
        client.wait_for_workers(2, timeout=60)
        summary["cluster_start_s"] = time.perf_counter() - t0
        workers = sorted(dist.worker_versions(client))
        print(f"      up in {summary['cluster_start_s']:.1f} s: {workers}")

        print(f"[2/5] data-parallel training, {n} examples in 2 shards made on the workers")
        tr = dist.Trainer(loss, init_params(seed), optim.adam(0.01), ShardLoader(n, 2, seed),
                          n_shards=2, client=client)
        dp_reports = tr.fit(rounds)
        dp_params = tr.params
        tr.close()
        ref_params, ref_losses, single_times = _single_process(
            init_params(seed), make_data(n, seed), optim.adam(0.01), rounds
        )
        pairs = zip(ds.tree_leaves(dp_params), ds.tree_leaves(ref_params), strict=True)
        diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
        dp_losses = [r.loss for r in dp_reports]
        summary.update(loss_first=dp_losses[0], loss_last=dp_losses[-1], max_param_diff=diff)
        print(f"      loss {dp_losses[0]:.4f} -> {dp_losses[-1]:.4f}; largest parameter "
              f"difference from the single-process run: {diff:.1e}")

        print("[3/5] time per round: one process vs 1 and 2 workers")
        rows = [_timed_rounds(dist, client, n, k, seed, timing_rounds) for k in (1, 2)]
        single_s = float(np.median(single_times[1:] or single_times))
        print(f"      {'setup':<14}{'round ms':>10}{'compute':>10}{'reduce':>9}{'transfer':>10}"
              f"{'bytes':>9}{'speed-up':>10}")
        print(f"      {'1 process':<14}{single_s * 1e3:>10.1f}{single_s * 1e3:>10.1f}{0:>9.1f}"
              f"{0:>10.1f}{0:>9}{1:>10.2f}")
        for r in rows:
            label = f"{r['shards']} worker" + ("s" if r["shards"] > 1 else "")
            print(f"      {label:<14}{r['round_s'] * 1e3:>10.1f}{r['compute_s'] * 1e3:>10.1f}"
                  f"{r['reduce_s'] * 1e3:>9.1f}{r['transfer_s'] * 1e3:>10.1f}"
                  f"{r['bytes_per_round']:>9}{single_s / r['round_s']:>10.2f}")
        summary["single_process_round_s"] = single_s
        summary["timing"] = rows

        print("[4/5] sweep: a falling body with drag over drag x mass, values and gradients")
        drags = [0.05, 0.1, 0.2, 0.4] if not args.quick else [0.1, 0.4]
        masses = [0.5, 1.0, 2.0]
        configs = [{"dt": 0.01, "steps": 100, "mass": m, "drag_value": d}
                   for d in drags for m in masses]
        task = _SweepTask()
        result = dist.sweep(task, configs, client=client, retries=1)
        print("      " + result.table(["drag_value", "mass", "value", "d_value_d_drag"])
              .replace("\n", "\n      "))
        summary["sweep"] = [
            {k: r[k] for k in ("drag_value", "mass", "value", "d_value_d_drag", "seconds")}
            for r in result.rows
        ]

    print(f"[5/5] report in {out}")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if not args.no_plots:
        _plots(out, dp_losses, ref_losses, single_s, rows, result)
    learned = dp_losses[-1] < dp_losses[0] and diff <= 1e-10
    return 0 if learned else 1


class _SweepTask:
    """One sweep configuration: the fall distance and its gradient w.r.t. drag and g."""

    def __call__(self, config) -> dict:
        params = {"g": np.array(9.81), "drag": np.array(config["drag_value"])}
        value, grad = ds.value_and_grad(fall)(params, config)
        return {"value": float(value), "d_value_d_drag": float(grad["drag"]),
                "d_value_d_g": float(grad["g"])}


def _plots(out: str, dp_losses, ref_losses, single_s: float, rows, result) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6))
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(ref_losses, label="1 process", lw=3, alpha=0.5)
    ax.plot(dp_losses, "--", label="2 workers")
    ax.set(title="training loss", xlabel="round", yscale="log")
    ax.legend()
    ax = fig.add_subplot(1, 3, 2)
    labels = ["1 process"] + [f"{r['shards']} worker(s)" for r in rows]
    parts = {"compute": [single_s] + [r["compute_s"] for r in rows],
             "reduce": [0.0] + [r["reduce_s"] for r in rows],
             "transfer+sched": [0.0] + [r["transfer_s"] for r in rows]}
    bottom = np.zeros(len(labels))
    for name, vals in parts.items():
        ax.bar(labels, np.array(vals) * 1e3, bottom=bottom * 1e3, label=name)
        bottom += np.array(vals)
    ax.set(title="time per round", ylabel="ms")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 3, 3)
    for m in sorted({r["mass"] for r in result.rows}):
        sel = [r for r in result.rows if r["mass"] == m]
        ax.plot([r["drag_value"] for r in sel], [r["value"] for r in sel], "o-", label=f"m={m}")
    ax.set(title="sweep: distance fallen", xlabel="drag", ylabel="m")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "distributed.png"), dpi=100)
