"""The demo's report folder: history files, PNG plots (matplotlib, optional) and the trained
pipeline (safetensors, optional); ``summary.json`` is written by the demo itself."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["PLOTS", "write_report"]

PLOTS = ("loss.png", "accuracy.png", "grad_norms.png", "sigma.png")
_EPOCH_COLUMNS = (
    "run",
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "sigma",
    "threshold",
    "sharpness",
)


def write_report(out_dir: Path, summary: dict, learned, frozen, config) -> tuple[list, list]:
    """Write everything but ``summary.json`` into ``out_dir``; return ``(file names, notes)``
    (a note says what was skipped and why)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files, notes = ["summary.json"], []

    with open(out_dir / "epochs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_EPOCH_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for run in (learned, frozen):
            for row in run.epochs[1:]:
                writer.writerow({"run": run.label, **row})
    files.append("epochs.csv")

    for run in (learned, frozen):
        run.pipeline.telemetry.to_json(out_dir / f"telemetry_{run.label}.json")
        run.pipeline.telemetry.to_csv(out_dir / f"telemetry_{run.label}.csv")
        files += [f"telemetry_{run.label}.json", f"telemetry_{run.label}.csv"]

    if not config.plots:
        notes.append("plots: skipped (--no-plots)")
    else:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            notes.append(
                "plots: skipped, matplotlib is not installed (pip install matplotlib, or the "
                "'plot' or 'demo' extra)"
            )
        else:
            files += _plots(plt, out_dir, learned, frozen)

    if config.save_pipeline:
        try:
            import safetensors  # noqa: F401
        except ImportError:
            notes.append("trained pipeline: not saved, safetensors is not installed")
        else:
            learned.pipeline.save(out_dir / "pipeline")
            files.append("pipeline/")
            notes.append(
                "trained pipeline saved to pipeline/ (import diffsys.systems.data; "
                "diffsys.pipeline.load(path))"
            )
    summary["plots"] = [p for p in PLOTS if p in files]
    return files, notes


def _steps_axis(run) -> np.ndarray:
    n = len(run.steps["loss"])
    per_epoch = n / max(1, len(run.epochs) - 1)
    return np.arange(1, n + 1) / per_epoch  # in epochs


def _plots(plt, out_dir: Path, learned, frozen) -> list[str]:
    colors = {"learned": "tab:blue", "frozen": "tab:orange"}
    written: list[str] = []

    def finish(fig, axes, name: str) -> None:
        for ax in axes:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(name)

    def per_epoch(ax, run, key: str, style: str, label: str) -> None:
        rows = run.epochs[1:]
        ax.plot(
            [r["epoch"] for r in rows],
            [r[key] for r in rows],
            style,
            color=colors[run.label],
            label=label,
        )

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in (learned, frozen):
        ax.plot(_steps_axis(run), run.steps["loss"], color=colors[run.label], alpha=0.25, lw=0.8)
        per_epoch(
            ax, run, "train_loss", "o-", f"{run.label}: train, total loss (per step, epoch mean)"
        )
        per_epoch(ax, run, "test_loss", "s--", f"{run.label}: test (inference)")
    ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    finish(fig, [ax], "loss.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in (learned, frozen):
        per_epoch(
            ax, run, "test_accuracy", "o-", f"{run.label} preprocessing: test (hard threshold)"
        )
        per_epoch(ax, run, "train_accuracy", ":", f"{run.label}: train (relaxed)")
    ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy on noisy digits")
    finish(fig, [ax], "accuracy.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    t = _steps_axis(learned)
    for stage in ("blur", "threshold", "encoder", "classifier"):
        g = np.asarray(learned.steps[f"grad_norm.{stage}"], dtype=float)
        if np.isfinite(g).any():
            ax.plot(t, g, lw=0.9, label=stage)
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="gradient norm", title="Per-stage gradient norms (learned run)")
    finish(fig, [ax], "grad_norms.png")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for run in (learned, frozen):
        t = np.concatenate([[0.0], _steps_axis(run)])
        sig = [run.epochs[0]["sigma"]] + run.steps["sigma"]
        th = [run.epochs[0]["threshold"]] + run.steps["threshold"]
        ax1.plot(t, sig, color=colors[run.label], label=run.label)
        ax2.plot(t, th, color=colors[run.label], label=run.label)
    ax1.set(xlabel="epoch", ylabel="sigma (pixels)", title="LearnableBlur: sigma")
    ax2.set(xlabel="epoch", ylabel="threshold", title="Binarize: threshold")
    finish(fig, [ax1, ax2], "sigma.png")
    return written
