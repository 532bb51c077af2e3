"""The demo's report folder: history files, PNG plots (matplotlib, optional) and the trained
pipeline (safetensors, optional); ``summary.json`` is written by the demo itself."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = [
    "PLOTS",
    "PLOT_FUNCTIONS",
    "accuracy_figure",
    "grad_norms_figure",
    "loss_figure",
    "preprocessing_figure",
    "write_report",
]

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
            import matplotlib  # noqa: F401
        except ImportError:
            notes.append(
                "plots: skipped, matplotlib is not installed (pip install matplotlib, or the "
                "'plot' or 'demo' extra)"
            )
        else:
            for name, plot in PLOT_FUNCTIONS.items():
                plot(learned, frozen, path=out_dir / name)
                files.append(name)

    if config.save_pipeline:
        try:
            import safetensors  # noqa: F401
        except ImportError:
            notes.append("trained pipeline: not saved, safetensors is not installed")
        else:
            with learned.pipeline.inference():  # it loads as it was evaluated: hard
                learned.pipeline.save(out_dir / "pipeline")
            files.append("pipeline/")
            notes.append(
                "trained pipeline saved to pipeline/ in inference mode (import "
                "diffsys.systems.data; diffsys.pipeline.load(path); .train() to go on training)"
            )
    summary["plots"] = [p for p in PLOTS if p in files]
    return files, notes


def _steps_axis(run) -> np.ndarray:
    n = len(run.steps["loss"])
    per_epoch = n / max(1, len(run.epochs) - 1)
    return np.arange(1, n + 1) / per_epoch  # in epochs


# --- the plots: each returns its matplotlib Figure and saves it only when given a path ----------
#
# Figures are made with matplotlib.figure.Figure, not pyplot: the library never switches the
# user's backend (matplotlib.use) nor leaves figures in pyplot's list; a notebook displays the
# returned Figure.

COLORS = {"learned": "tab:blue", "frozen": "tab:orange"}
STAGE_COLORS = {
    "blur": "tab:blue",
    "threshold": "tab:orange",
    "encoder": "tab:green",
    "classifier": "tab:red",
}


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _finish(fig, axes, path) -> None:
    """Legends outside the data (right of the axes), then save when ``path`` is given."""
    for ax in axes:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)


def _per_epoch(ax, run, key: str, style: str, label: str) -> None:
    rows = run.epochs[1:]
    ax.plot(
        [r["epoch"] for r in rows],
        [r[key] for r in rows],
        style,
        color=COLORS[run.label],
        label=label,
    )


def _epoch_means(run, key: str) -> np.ndarray:
    values = np.asarray(run.steps[key], dtype=float)
    epochs = max(1, len(run.epochs) - 1)
    return np.array([chunk.mean() for chunk in np.array_split(values, epochs)])


def weight_ramp(pipeline, steps: int, term: str = "binarize") -> tuple[int, int, float] | None:
    """Where the weight of loss ``term`` rises over ``steps`` training steps, read from the
    pipeline's schedule: ``(start, full, weight)``, the first step with a weight above the
    initial one, the first at the final weight (0-based steps), and that final weight;
    ``None`` if the weight is constant."""
    losses = {t.name: t for t in pipeline.losses}
    loss = losses.get(term)
    if loss is None or not callable(loss.weight) or steps < 1:
        return None
    w = np.array([float(loss.weight(i)) for i in range(steps)])
    if np.all(w == w[0]):
        return None
    return int(np.argmax(w > w[0])), int(np.argmax(w >= w.max())), float(w.max())


def penalty_ramp(run) -> tuple[float, float, float] | None:
    """:func:`weight_ramp` of the binarization penalty over a run, in epochs (on the plots'
    step axis): ``(start, full, weight)``."""
    ramp = weight_ramp(run.pipeline, len(run.steps["loss"]))
    if ramp is None:
        return None
    t = _steps_axis(run)
    return float(t[ramp[0]]), float(t[ramp[1]]), ramp[2]


def loss_figure(learned, frozen, path=None):
    """Training loss (per step, faint; epoch means) and test cross-entropy per epoch, with
    the span where the binarization penalty's weight ramps up shaded: the total training
    loss rises there because a term is added, not because the model got worse."""
    fig = _figure((9.5, 4.2))
    ax = fig.add_subplot()
    ramp = penalty_ramp(learned)
    if ramp is not None:
        start, full, weight = ramp
        ax.axvspan(
            start,
            full,
            color="0.85",
            zorder=0,
            label=f"binarization penalty weight ramps 0 -> {weight:g}",
        )
        ax.axvspan(
            full,
            _steps_axis(learned)[-1],
            color="0.93",
            zorder=0,
            label=f"binarization penalty at weight {weight:g}",
        )
    for run in (learned, frozen):
        c = COLORS[run.label]
        ax.plot(_steps_axis(run), run.steps["loss"], color=c, alpha=0.2, lw=0.8)
        _per_epoch(ax, run, "train_loss", "o-", f"{run.label}: train total loss")
        epochs = [r["epoch"] for r in run.epochs[1:]]
        ax.plot(
            epochs,
            _epoch_means(run, "cross_entropy"),
            ":",
            color=c,
            lw=1.6,
            label=f"{run.label}: train cross-entropy only",
        )
        _per_epoch(ax, run, "test_loss", "s--", f"{run.label}: test cross-entropy (inference)")
    ax.set(
        xlabel="epoch",
        ylabel="loss",
        title="Loss (train total = cross-entropy + w(step) x binarization penalty)",
    )
    ax.text(
        0.01,
        0.02,
        "faint: train total loss per step",
        transform=ax.transAxes,
        fontsize=7,
        color="0.35",
    )
    _finish(fig, [ax], path)
    return fig


def accuracy_figure(learned, frozen, path=None):
    """Test accuracy (inference: hard threshold) and train accuracy (relaxed) per epoch."""
    fig = _figure((9.5, 4.2))
    ax = fig.add_subplot()
    for run in (learned, frozen):
        _per_epoch(ax, run, "test_accuracy", "o-", f"{run.label}: test (inference, hard step)")
        _per_epoch(ax, run, "train_accuracy", ":", f"{run.label}: train (relaxed)")
    ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy on noisy digits")
    _finish(fig, [ax], path)
    return fig


def moving_average(values, window: int) -> np.ndarray:
    """Trailing mean over ``window`` values (fewer at the start), NaNs skipped."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    hi = np.arange(1, len(v) + 1)
    lo = np.maximum(0, hi - max(1, int(window)))
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), np.nan)


def grad_norms_figure(learned, frozen=None, path=None):
    """Per-stage gradient norms of the learned run: the moving average over one epoch of
    steps (bold), each step (faint), log scale; frozen stages have none."""
    fig = _figure((9.5, 4.2))
    ax = fig.add_subplot()
    t = _steps_axis(learned)
    window = max(1, round(len(t) / max(1, len(learned.epochs) - 1)))
    for stage, color in STAGE_COLORS.items():
        g = np.asarray(learned.steps[f"grad_norm.{stage}"], dtype=float)
        if not np.isfinite(g).any():
            continue
        ax.plot(t, g, lw=0.6, alpha=0.25, color=color)
        ax.plot(t, moving_average(g, window), lw=1.8, color=color, label=stage)
    ax.set_yscale("log")
    ax.set(
        xlabel="epoch",
        ylabel="gradient norm",
        title=f"Per-stage gradient norms, learned run ({window}-step moving average; faint: "
        "each step)",
    )
    _finish(fig, [ax], path)
    return fig


def preprocessing_figure(learned, frozen, path=None):
    """The blur's sigma and the threshold over training, both runs."""
    fig = _figure((11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for run in (learned, frozen):
        t = np.concatenate([[0.0], _steps_axis(run)])
        sig = [run.epochs[0]["sigma"]] + run.steps["sigma"]
        th = [run.epochs[0]["threshold"]] + run.steps["threshold"]
        ax1.plot(t, sig, color=COLORS[run.label], label=run.label)
        ax2.plot(t, th, color=COLORS[run.label], label=run.label)
    ax1.set(xlabel="epoch", ylabel="sigma (pixels)", title="LearnableBlur: sigma")
    ax2.set(xlabel="epoch", ylabel="threshold", title="Binarize: threshold")
    _finish(fig, [ax1, ax2], path)
    return fig


#: The report's plots: file name -> function(learned, frozen, path=None) -> Figure.
PLOT_FUNCTIONS = {
    "loss.png": loss_figure,
    "accuracy.png": accuracy_figure,
    "grad_norms.png": grad_norms_figure,
    "sigma.png": preprocessing_figure,
}
