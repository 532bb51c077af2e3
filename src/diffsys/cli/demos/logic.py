"""``diffsys demo logic``: learning through Datalog programs, and soft-DTW.

0. Digit sums (DeepProbLog's benchmark, on scikit-learn's 8x8 digits): a softmax classifier
   learns digits from pairs labelled only with their sum: its probabilities are the weights
   of ``digit(image, d)`` facts (a neural predicate), and the loss is ``-log P(sum(a, b, s))``
   through ``sum(a, b, s) :- pair(a, b), digit(a, x), digit(b, y), plus(x, y, s).``
   (``ADD_MULT``: exact here, the digits of an image are exclusive).
1. Learned graph: edge probabilities of a random graph (true edges plus wrong candidates)
   are learned from observed reachability only, through the recursive ``path`` program in
   the differentiable top-k proofs semiring; recovered edges are compared with the truth.
2. Alignment: a template is learned as the soft-DTW barycenter of real series (class 3 of
   the UCR Trace set, shipped in tslearn's wheel; synthetic shifted pulses without tslearn),
   beside the plain Euclidean mean.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from ... import grad, optim, value_and_grad
from ...relax import sigmoid, soft_dtw
from ...systems import logic
from . import report_folder

PROGRAM = """
path(x, y) :- edge(x, y).
path(x, z) :- edge(x, y), path(y, z).
"""


def _graph(rng: np.random.Generator, n: int):
    true = sorted({(i, int(rng.integers(i + 1, min(n, i + 3) + 1)) % n) for i in range(n - 1)}
                  | {(int(a), int(b)) for a, b in rng.integers(0, n, (n // 2, 2)) if a != b})
    reach = set(true)
    while True:
        new = {(a, d) for a, b in true for c, d in reach if b == c} - reach
        if not new:
            break
        reach |= new
    wrong = [(a, b) for a in range(n) for b in range(n) if a != b and (a, b) not in reach]
    pick = rng.choice(len(wrong), size=min(len(wrong), len(true)), replace=False)
    candidates = sorted(set(true) | {wrong[i] for i in pick})
    return true, candidates, reach


SUMS = "sum(a, b, s) :- pair(a, b), digit(a, x), digit(b, y), plus(x, y, s)."


def digit_sums(args: argparse.Namespace, out: str) -> dict:
    from ... import numpy as dnp
    from ...relax import log_softmax
    from ..data import load_digits

    data = load_digits(args.seed)
    rng = np.random.default_rng(args.seed)
    n = 400 if args.quick else len(data.x_train)
    x, y = data.x_train[:n].reshape(-1, 64), data.y_train[:n]
    a = rng.permutation(n)
    b = rng.permutation(n)
    keep = a != b
    a, b = a[keep], b[keep]
    sums = y[a] + y[b]
    prog = logic.Program.parse(SUMS)
    plus = [(i, j, i + j) for i in range(10) for j in range(10)]
    facts, _ = logic.neural_facts(list(range(n)), np.zeros((n, 10)))
    g = prog.ground({"pair": list(zip(a.tolist(), b.tolist(), strict=True)), "digit": facts,
                     "plus": plus})
    index = {t: k for k, t in enumerate(g.tuples("sum"))}
    query = np.array([index[(int(i), int(j), int(s))] for i, j, s in zip(a, b, sums, strict=True)])
    print(f"[0] digit sums: {len(a)} pairs of {data.source} labelled only with their sum; "
          f"{len(g.tuples('sum'))} ground sum tuples")

    def loss(params):
        w, c = params
        probs = dnp.exp(log_softmax(x @ w + c, axis=-1))
        _, weights = logic.neural_facts(list(range(n)), probs)
        res = logic.evaluate(g, {"digit": weights}, logic.ADD_MULT)
        return -dnp.mean(dnp.log(res.weights("sum")[query] + 1e-12))

    params = (0.01 * rng.standard_normal((64, 10)), np.zeros(10))
    opt = optim.adam(0.1)
    state = opt.init(params)
    steps = 40 if args.quick else 150
    history = []
    t0 = time.perf_counter()
    for _ in range(steps):
        value, grads = value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        history.append(float(value))
    w, c = params
    acc = float(np.mean(np.argmax(data.x_test.reshape(-1, 64) @ w + c, 1) == data.y_test))
    print(f"    loss {history[0]:.3f} -> {history[-1]:.3f} in {time.perf_counter() - t0:.1f} s; "
          f"accuracy on single test digits: {acc:.1%}")
    if not args.no_plots:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4, 3))
        ax = fig.add_subplot()
        ax.plot(history)
        ax.set(xlabel="step", ylabel="-log P(sum)", title=f"digit sums: test accuracy {acc:.0%}")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "digit_sums.png"))
    return {"pairs": len(a), "loss": history, "digit_accuracy": acc}


def learned_graph(args: argparse.Namespace, out: str) -> dict:
    rng = np.random.default_rng(args.seed)
    n = 6 if args.quick else 9
    true, candidates, reach = _graph(rng, n)
    prog = logic.Program.parse(PROGRAM)
    g = prog.ground({"edge": candidates})
    pairs = g.tuples("path")
    target = np.array([1.0 if p in reach else 0.0 for p in pairs])
    semiring = logic.TopKProofs(2)
    print(f"[1] learned graph: {n} nodes, {len(true)} true edges, {len(candidates)} candidates, "
          f"{len(pairs)} reachability observations, semiring {semiring}")

    def loss(theta):
        w = sigmoid(theta)
        q = logic.evaluate(g, {"edge": w}, semiring).weights("path")
        q = q * (1 - 2e-6) + 1e-6
        return -np.mean(target * np.log(q) + (1 - target) * np.log(1 - q))

    theta = np.zeros(len(candidates))
    opt = optim.adam(0.3)
    state = opt.init(theta)
    history = []
    steps = 30 if args.quick else 80
    t0 = time.perf_counter()
    for _ in range(steps):
        value, g_theta = value_and_grad(loss)(theta)
        updates, state = opt.update(g_theta, state, theta)
        theta = optim.apply_updates(theta, updates)
        history.append(float(value))
    p = 1 / (1 + np.exp(-theta))
    truth = np.array([c in set(true) for c in candidates])
    recovered = float(np.mean((p > 0.5) == truth))
    print(f"    loss {history[0]:.3f} -> {history[-1]:.3f} in {time.perf_counter() - t0:.1f} s; "
          f"edges recovered (p > 0.5 vs truth): {recovered:.0%}")
    if not args.no_plots:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3))
        ax = fig.add_subplot(1, 2, 1)
        ax.plot(history)
        ax.set(xlabel="step", ylabel="BCE of reachability", title="training")
        ax = fig.add_subplot(1, 2, 2)
        ax.bar(range(len(p)), p, color=["tab:green" if t else "tab:red" for t in truth])
        ax.set(xlabel="candidate edge", ylabel="learned probability",
               title="green: true edge, red: wrong")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "learned_graph.png"))
    return {"nodes": n, "candidates": len(candidates), "loss": history,
            "edges_recovered": recovered}


def _series(args: argparse.Namespace, rng: np.random.Generator) -> tuple[list, str]:
    """Real series when tslearn is installed: class 3 of the UCR Trace set, which ships in
    tslearn's wheel (read offline), every 5th sample; else time-shifted synthetic pulses."""
    length, count = (30, 6) if args.quick else (55, 10)
    try:
        from tslearn.datasets import CachedDatasets
    except ImportError:
        t = np.linspace(0, 1, length)
        shifts = rng.uniform(-0.15, 0.15, count)
        return ([np.exp(-((t - 0.5 - s) ** 2) / 0.005) + 0.05 * rng.standard_normal(length)
                 for s in shifts],
                "synthetic shifted pulses (no tslearn: pip install -e '.[timeseries]')")
    x, y, _, _ = CachedDatasets().load_dataset("Trace")
    picked = rng.choice(np.flatnonzero(y == 3), size=count, replace=False)
    step = x.shape[1] // length
    return [x[i, ::step, 0][:length] for i in picked], "UCR Trace, class 3 (tslearn's copy)"


def alignment(args: argparse.Namespace, out: str) -> dict:
    rng = np.random.default_rng(args.seed)
    series, source = _series(args, rng)
    count, length = len(series), len(series[0])
    t = np.arange(length)
    gamma = 0.1

    def objective(z):
        return sum(soft_dtw(z, x, gamma) for x in series) / count

    z = np.mean(series, axis=0)
    mean = z.copy()
    opt = optim.adam(0.05)
    state = opt.init(z)
    steps = 20 if args.quick else 60
    start = float(objective(z))
    for _ in range(steps):
        updates, state = opt.update(grad(objective)(z), state, z)
        z = optim.apply_updates(z, updates)
    end = float(objective(z))
    print(f"[2] alignment: soft-DTW barycenter of {count} series of {source} (length {length}): "
          f"objective {start:.3f} (Euclidean mean) -> {end:.3f}; peak {mean.max():.2f} -> "
          f"{z.max():.2f}")
    if not args.no_plots:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 3))
        ax = fig.add_subplot()
        for x in series:
            ax.plot(t, x, color="0.8", lw=0.8)
        ax.plot(t, mean, label="Euclidean mean")
        ax.plot(t, z, label="soft-DTW barycenter")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "alignment.png"))
    return {"source": source, "objective_mean": start, "objective_barycenter": end,
            "peak_mean": float(mean.max()),
            "peak_barycenter": float(z.max())}


def main(args: argparse.Namespace) -> int:
    out = report_folder("logic", args)
    os.makedirs(out, exist_ok=True)
    summary = {
        "digit_sums": digit_sums(args, out),
        "learned_graph": learned_graph(args, out),
        "alignment": alignment(args, out),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"report: {out}")
    ok = (summary["digit_sums"]["digit_accuracy"] >= (0.8 if args.quick else 0.9)
          and summary["learned_graph"]["loss"][-1] < summary["learned_graph"]["loss"][0]
          and summary["alignment"]["objective_barycenter"] < summary["alignment"]["objective_mean"])
    return 0 if ok else 1
