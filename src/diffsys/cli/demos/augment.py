"""``diffsys demo augment``: an augmentation policy learned by gradient on noisy digits.

0. Data: scikit-learn's digits with pixel noise. Only 300 training images, upright and
   centred; the validation and test images (other digits) are also rotated and shifted
   horizontally at random, as if written and scanned differently.
1. Search: a two-stage policy over eight operations (rotate, shear, translations, scale,
   blur, brightness, contrast) learns which operations to apply, how often and how strongly:
   ``match`` (the kernel MMD between augmented training and validation images, after
   Faster AutoAugment) and, in the full run, ``unrolled`` (the validation loss through one
   unrolled training step, DADA).
2. Relaxed vs exact policy on the same noise (``pipe.mismatch``).
3. Fresh classifiers trained with no augmentation, a fixed hand-set policy (every operation
   equally likely, probability 0.5, magnitude 0.5) and the learned policies, over several
   seeds; test accuracy reported as measured, whichever wins.
"""

from __future__ import annotations

import argparse

import numpy as np

from ... import nn
from ... import pipeline as pl
from ...systems import augment as A
from ..data import load_digits
from . import report_folder
from ._common import Report, one_blas_thread

NOISE = 0.15


def _config(quick: bool) -> dict:
    if quick:
        return {"train": 150, "val": 150, "test": 200, "match_steps": 25, "unrolled_steps": 0,
                "seeds": 1, "train_steps": 60}
    return {"train": 300, "val": 300, "test": None, "match_steps": 150, "unrolled_steps": 80,
            "seeds": 3, "train_steps": 250}


def _shifted(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotated (up to 21 degrees) and shifted (up to 12% of the width), then noisy."""
    x = A.apply_operation("rotate", x, 1.0, rng.uniform(-0.7, 0.7, len(x)))
    x = A.apply_operation("translate_x", x, 1.0, rng.uniform(-0.5, 0.5, len(x)))
    return x + rng.normal(0.0, NOISE, x.shape)


def _data(cfg, seed: int):
    d = load_digits(seed)
    rng = np.random.default_rng([seed, 11])
    n, v = cfg["train"], cfg["val"]
    xt = d.x_train[:n] + rng.normal(0.0, NOISE, d.x_train[:n].shape)
    xv = _shifted(d.x_train[n : n + v], rng)
    test = slice(None) if cfg["test"] is None else slice(0, cfg["test"])
    xs = _shifted(d.x_test[test], rng)
    return d, (xt, d.y_train[:n]), (xv, d.y_train[n : n + v]), (xs, d.y_test[test])


def _model(key: int) -> nn.Module:
    return nn.Sequential([nn.Conv2d(1, 8, 3, padding=1, key=key), nn.relu, nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(128, 10, key=key + 1)])


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(np.asarray(model(x)), axis=1) == y))


def _search(cfg, train, val, rep: Report, seed: int) -> dict:
    out = {}
    res = A.search_policy(A.AugmentPolicy(2, magnitude=0.5), train, val,
                          steps=cfg["match_steps"], batch=64, lr_policy=0.05, seed=seed)
    h = res.history["val_loss"]
    rep.say(f"    match (MMD to the validation images): {h[0]:.4f} -> {h[-1]:.4f}")
    out["match"] = res
    if cfg["unrolled_steps"]:
        res = A.search_policy(A.AugmentPolicy(2, magnitude=0.5), train, val,
                              steps=cfg["unrolled_steps"], objective="unrolled",
                              model=_model(seed + 100), batch=32, val_batch=100, lr=1e-2,
                              lr_policy=0.05, unrolled_lr=1.0, seed=seed)
        h = res.history["val_loss"]
        rep.say(f"    unrolled (validation loss after one step, finite-difference "
                f"hypergradient): {h[0]:.3f} -> {h[-1]:.3f}")
        out["unrolled"] = res
    for name, r in out.items():
        rep.say(f"    learned policy ({name}), summed over the two stages:")
        for line in r.policy.table().splitlines():
            rep.say(f"      {line}")
    return out


def _mismatch(policy: A.AugmentPolicy, x, rep: Report) -> dict:
    pipe = pl.Pipeline([A.policy_stage("augment", policy)])
    row = pipe.mismatch({"x": x[:64], "y": np.zeros(64)}, key=1)["augment"]
    sharp = pl.Pipeline([A.policy_stage("augment", policy.replace(temperature=0.05))])
    row_sharp = sharp.mismatch({"x": x[:64], "y": np.zeros(64)}, key=1)["augment"]
    rep.say(f"    relaxed (T={policy.temperature}) vs sampled policy, same noise: mean |r-h| "
            f"{row.mean_abs:.4f}, max {row.max_abs:.3f}; at T=0.05: mean {row_sharp.mean_abs:.2e}")
    return {"temperature": policy.temperature, "mean_abs": row.mean_abs, "max_abs": row.max_abs,
            "mean_abs_T0.05": row_sharp.mean_abs}


def _compare(cfg, policies: dict, train, test, rep: Report, seed: int) -> dict:
    rows = {}
    for name, policy in policies.items():
        accs = []
        for s in range(cfg["seeds"]):
            model, _ = A.train_classifier(_model(1000 * seed + 10 * s), *train, policy=policy,
                                          steps=cfg["train_steps"], lr=1e-2, seed=s)
            accs.append(_accuracy(model, *test))
        rows[name] = {"test_accuracy": accs, "mean": float(np.mean(accs)),
                      "std": float(np.std(accs))}
        rep.say(f"    {name:22s} test accuracy {rows[name]['mean']:.1%} +- {rows[name]['std']:.1%}"
                f"  ({', '.join(f'{a:.1%}' for a in accs)})")
    best = max(rows, key=lambda k: rows[k]["mean"])
    rep.say(f"    best: {best}")
    return {"policies": rows, "best": best}


def _plots(rep: Report, searches: dict, cmp: dict, train, policy: A.AugmentPolicy) -> None:
    res = searches["match"]
    ops = res.policy.ops

    def draw_policy(fig):
        p = np.stack(res.history["probabilities"]).sum(axis=1)  # (records, K)
        m = np.stack(res.history["magnitudes"]).mean(axis=1)
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        for k, op in enumerate(ops):
            ax1.plot(p[:, k], label=op)
            ax2.plot(m[:, k], label=op)
        ax1.set(xlabel="record (every 10 steps)", title="applications per image (2 stages)")
        ax2.set(xlabel="record (every 10 steps)", title="magnitude")
        ax1.legend(fontsize=6)

    def draw_examples(fig):
        x = train[0][:8]
        rows = [("original", x), ("fixed", A.AugmentPolicy(2, magnitude=0.5).hard(x, key=3)),
                ("learned", policy.hard(x, key=3))]
        for r, (name, imgs) in enumerate(rows):
            for c in range(8):
                ax = fig.add_subplot(3, 8, 8 * r + c + 1)
                ax.imshow(np.asarray(imgs)[c, 0], cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(name, fontsize=7)

    def draw_compare(fig):
        ax = fig.add_subplot()
        names = list(cmp["policies"])
        for k, name in enumerate(names):
            accs = cmp["policies"][name]["test_accuracy"]
            ax.scatter([k] * len(accs), accs)
        ax.set_xticks(range(len(names)), names, rotation=15, fontsize=7)
        ax.set(ylabel="test accuracy (rotated, shifted, noisy)", title="one dot per seed")

    rep.figure("augment_policy.png", draw_policy)
    rep.figure("augment_examples.png", draw_examples)
    rep.figure("augment_compare.png", draw_compare)


def main(args: argparse.Namespace) -> int:
    rep = Report("augment", report_folder("augment", args), plots=not args.no_plots)
    cfg = _config(args.quick)
    with one_blas_thread():
        d, train, val, test = _data(cfg, args.seed)
        rep.say(f"[0] data: {d.source} with pixel noise {NOISE}: {len(train[1])} upright training "
                f"images; {len(val[1])} validation and {len(test[1])} test images rotated and "
                "shifted at random")
        rep.say("[1] policy search (2 stages x 8 operations):")
        searches = _search(cfg, train, val, rep, args.seed)
        learned = searches["match"].policy
        rep.say("[2] relaxed vs exact sampled policy:")
        mismatch = _mismatch(learned, train[0], rep)
        rep.say(f"[3] fresh classifiers, {cfg['train_steps']} steps, {cfg['seeds']} seed(s):")
        policies = {"no augmentation": None, "fixed policy": A.AugmentPolicy(2, magnitude=0.5)}
        policies.update({f"learned ({k})": r.policy for k, r in searches.items()})
        cmp = _compare(cfg, policies, train, test, rep, args.seed)
        _plots(rep, searches, cmp, train, learned)
    summary = rep.finish({
        "config": cfg,
        "data": d.to_dict(),
        "search": {k: {"probabilities": r.policy.probabilities().tolist(),
                       "magnitudes": r.policy.magnitudes().tolist(),
                       "objective": r.history["val_loss"], "ops": list(r.policy.ops)}
                   for k, r in searches.items()},
        "mismatch": mismatch,
        "compare": cmp,
    })
    fell = summary["search"]["match"]["objective"]
    return 0 if fell[-1] < fell[0] else 1
