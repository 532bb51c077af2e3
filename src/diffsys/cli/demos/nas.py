"""``diffsys demo nas``: architecture search by continuous relaxation (DARTS) on 8x8 digits.

0. Data: scikit-learn's digits; the training images split in two halves (weights train on
   one, the architecture on the other), the test images held out.
1. Search: a supernet whose cell mixes every candidate on every edge, trained bilevel
   (first-order DARTS; the full run also the finite-difference second order), with a
   warm-up of weight-only steps.
2. Discretisation: each edge keeps its argmax operation; the relaxed supernet and the
   discretised network (same weights) are compared on the test set (``pipe.mismatch``).
3. Budget comparison: the found cell against random cells with the same parameter budget
   (within 10%), every one retrained from scratch for the same steps, over several seeds.
   The outcome is reported as measured, whichever way it goes.
"""

from __future__ import annotations

import argparse

import numpy as np

from ... import nn
from ... import pipeline as pl
from ...systems import nas
from ..data import load_digits
from . import report_folder
from ._common import Report, one_blas_thread

#: The search space: every candidate but ``zero`` (with untrained weights the architecture
#: gradient favours silencing edges, and DARTS drops ``zero`` at discretisation anyway).
CANDIDATES = tuple(c for c in nas.CANDIDATES if c != "zero")


def _config(quick: bool) -> dict:
    if quick:
        return {"channels": 4, "nodes": 2, "search_steps": 24, "warmup": 12, "methods":
                ("first_order",), "random_cells": 2, "seeds": 1, "train_steps": 40,
                "subset": 400}
    return {"channels": 6, "nodes": 3, "search_steps": 120, "warmup": 40, "methods":
            ("first_order", "finite_difference"), "random_cells": 4, "seeds": 3,
            "train_steps": 150, "subset": None}


def _search(cfg, data, rep: Report, seed: int) -> dict:
    xt, yt, xv, yv = data
    results = {}
    for method in cfg["methods"]:
        net = nas.Supernet(cfg["channels"], nodes=cfg["nodes"], candidates=CANDIDATES, key=seed)
        res = nas.search(net, (xt, yt), (xv, yv), steps=cfg["search_steps"],
                         warmup=cfg["warmup"], batch=32, lr_weights=1e-2, lr_arch=3e-2,
                         method=method, seed=seed, record_every=5)
        h = res.history
        rep.say(f"    {method}: val loss {h['val_loss'][0]:.3f} -> {h['val_loss'][-1]:.3f}; "
                f"cell: {res.genotype}")
        results[method] = res
    return results


def _mismatch(res: nas.SearchResult, x, y, rep: Report) -> dict:
    pipe = pl.Pipeline(
        [nas.supernet_stage("cell", res.net)],
        losses=[pl.Loss("ce", nn.cross_entropy, inputs=("cell", "y"))],
        metrics=[pl.Metric("accuracy", pl.accuracy, inputs=("cell", "y"))],
    )
    report = pipe.mismatch({"x": x, "y": y})
    row = report["cell"]
    out = {
        "loss_relaxed": report.loss_relaxed, "loss_hard": report.loss_hard,
        "accuracy_relaxed": report.metrics_relaxed["accuracy"],
        "accuracy_hard": report.metrics_hard["accuracy"],
        "logits_max_abs": row.max_abs, "logits_rel_l2": row.rel_l2,
    }
    rep.say(f"    supernet (relaxed): test loss {out['loss_relaxed']:.3f}, accuracy "
            f"{out['accuracy_relaxed']:.1%}; discretised, same weights: loss "
            f"{out['loss_hard']:.3f}, accuracy {out['accuracy_hard']:.1%}; logits rel. L2 gap "
            f"{row.rel_l2:.2f}")
    return out


def _compare(cfg, genotypes: dict, data, rep: Report, seed: int) -> dict:
    x, y, xt, yt = data
    c = cfg["channels"]
    first = next(iter(genotypes.values()))
    budget = nas.network_parameter_count(first, c)
    randoms = nas.random_genotypes(np.random.default_rng([seed, 7]), cfg["random_cells"],
                                   nodes=cfg["nodes"], channels=c, target=budget, tolerance=0.1,
                                   candidates=CANDIDATES)
    cells = {**{f"found ({m})": g for m, g in genotypes.items()},
             **{f"random {i + 1}": g for i, g in enumerate(randoms)}}
    rows = {}
    for name, g in cells.items():
        accs = []
        for s in range(cfg["seeds"]):
            net, _ = nas.train(nas.DiscreteNet(g, c, key=1000 * seed + s), x, y,
                               steps=cfg["train_steps"], batch=32, lr=1e-2, seed=s)
            accs.append(nas.accuracy(net, xt, yt))
        rows[name] = {"genotype": g.to_dict(), "parameters": nas.network_parameter_count(g, c),
                      "test_accuracy": accs, "mean": float(np.mean(accs)),
                      "std": float(np.std(accs))}
        rep.say(f"    {name:24s} {rows[name]['parameters']:6d} params  test accuracy "
                f"{rows[name]['mean']:.1%} +- {rows[name]['std']:.1%}  {g}")
    random_means = [r["mean"] for k, r in rows.items() if k.startswith("random")]
    found_means = [r["mean"] for k, r in rows.items() if k.startswith("found")]
    verdict = ("the found cell beats every random cell" if min(found_means) > max(random_means)
               else "the found cell does NOT beat every random cell")
    rep.say(f"    {verdict} (found {max(found_means):.1%}, random best "
            f"{max(random_means):.1%}, random mean {np.mean(random_means):.1%})")
    return {"budget_parameters": budget, "cells": rows, "verdict": verdict,
            "found_best": max(found_means), "random_best": max(random_means),
            "random_mean": float(np.mean(random_means))}


def _plots(rep: Report, searches: dict, cmp: dict, candidates) -> None:
    res = next(iter(searches.values()))
    w = np.stack(res.history["weights"])  # (records, edges, K)

    def draw_weights(fig):
        edges = nas.edge_list(res.genotype.nodes)
        cols = min(3, len(edges))
        rows = -(-len(edges) // cols)
        for e, (i, j) in enumerate(edges):
            ax = fig.add_subplot(rows, cols, e + 1)
            for k, name in enumerate(candidates):
                ax.plot(w[:, e, k], label=name)
            ax.set_title(f"edge n{i} -> n{j}", fontsize=8)
            ax.tick_params(labelsize=6)
        fig.axes[0].legend(fontsize=5)
        fig.suptitle("mixing weights softmax(alpha) during the search (every 5 steps)")

    def draw_compare(fig):
        ax = fig.add_subplot()
        names = list(cmp["cells"])
        for k, name in enumerate(names):
            accs = cmp["cells"][name]["test_accuracy"]
            ax.scatter([k] * len(accs), accs, color="C1" if name.startswith("found") else "C0")
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
        ax.set(ylabel="test accuracy", title=f"same budget (~{cmp['budget_parameters']} "
               "parameters, same steps), one dot per seed")

    def draw_loss(fig):
        ax = fig.add_subplot()
        for m, r in searches.items():
            ax.plot(r.history["val_loss"], label=f"{m}: validation")
            ax.plot(r.history["train_loss"], ls=":", label=f"{m}: training")
        ax.set(xlabel="step", ylabel="cross-entropy", title="bilevel search")
        ax.legend(fontsize=7)

    rep.figure("nas_weights.png", draw_weights)
    rep.figure("nas_compare.png", draw_compare)
    rep.figure("nas_search_loss.png", draw_loss)


def main(args: argparse.Namespace) -> int:
    rep = Report("nas", report_folder("nas", args), plots=not args.no_plots)
    cfg = _config(args.quick)
    with one_blas_thread():
        d = load_digits(args.seed)
        x, y = d.x_train, d.y_train
        if cfg["subset"]:
            x, y = x[: cfg["subset"]], y[: cfg["subset"]]
        half = len(y) // 2
        rep.say(f"[0] data: {d.source}, {len(y)} training images (weights on {half}, "
                f"architecture on {len(y) - half}), {len(d.y_test)} test images")
        rep.say(f"[1] search: supernet with {cfg['channels']} channels, {cfg['nodes']} nodes, "
                f"{len(nas.edge_list(cfg['nodes']))} edges x {len(CANDIDATES)} candidates, "
                f"{cfg['search_steps']} steps ({cfg['warmup']} weight-only warm-up)")
        searches = _search(cfg, (x[:half], y[:half], x[half:], y[half:]), rep, args.seed)
        rep.say("[2] discretisation mismatch (test set, first-order search):")
        mismatch = _mismatch(next(iter(searches.values())), d.x_test, d.y_test, rep)
        rep.say(f"[3] found cell vs random cells of the same budget, {cfg['seeds']} seed(s), "
                f"{cfg['train_steps']} steps each from scratch:")
        genotypes = {m: r.genotype for m, r in searches.items()}
        cmp = _compare(cfg, genotypes, (x, y, d.x_test, d.y_test), rep, args.seed)
        _plots(rep, searches, cmp, CANDIDATES)
    summary = rep.finish({
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "data": d.to_dict(),
        "search": {m: {"genotype": r.genotype.to_dict(), "val_loss": r.history["val_loss"],
                       "final_weights": r.history["weights"][-1].tolist()}
                   for m, r in searches.items()},
        "mismatch": mismatch,
        "compare": cmp,
    })
    learned = summary["mismatch"]["accuracy_relaxed"] > (0.2 if args.quick else 0.8)
    return 0 if learned else 1
