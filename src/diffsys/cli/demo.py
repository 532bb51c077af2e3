"""``diffsys demo``: train a differentiable preprocessing pipeline end to end on noisy digits.

noisy 8x8 digit -> LearnableBlur -> Binarize -> CNN encoder -> classifier, built with
:mod:`diffsys.pipeline`, trained twice from the same initialization and data order: once with
every stage learning, once with the preprocessing (blur and threshold) frozen at its initial
values. The run prints per-epoch progress, a per-stage gradient-norm table, the relaxation
mismatch of the threshold (sigmoid in training, step at inference) and the comparison, and
writes a report folder (JSON summary, telemetry history, PNG plots, the trained pipeline).

>>> from diffsys.cli.demo import DemoConfig
>>> DemoConfig(quick=True).resolved().epochs
4
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from .. import __version__, nn, optim
from .. import pipeline as pl
from ..systems.data import Binarize, LearnableBlur, binarization_penalty
from ..train.data import iterate_batches
from ..train.progress import Progress, make_progress
from .data import Digits, load_digits
from .demos import one_blas_thread
from .report import weight_ramp, write_report

__all__ = ["DemoConfig", "DemoResult", "RunResult", "build_pipeline", "run_demo"]

STAGES = ("blur", "threshold", "encoder", "classifier")
PREPROCESSING = ("blur", "threshold")
TEST_DRAWS = 4


@dataclass
class DemoConfig:
    """Settings of ``diffsys demo`` (the command-line options, and the fixed recipe)."""

    seed: int = 0
    epochs: int | None = None  # default: 15, or 4 with quick
    noise: float = 0.5  # std of the Gaussian noise added to pixels in [0, 1]
    out: str = "diffsys-demo-report"
    quick: bool = False
    synthetic: bool = False
    progress: str = "auto"  # auto | rich | plain | none
    plots: bool = True
    save_pipeline: bool = True
    # the recipe
    batch_size: int = 64
    learning_rate: float = 1e-2
    sigma_init: float = 0.3  # almost no blur
    threshold_init: float = 0.5
    sharpness_init: float = 8.0
    learn_sharpness: bool = True
    binarize_weight: float = 2.0  # final weight of the binarization loss (ramped up from 0)
    blur_lr_scale: float = 5.0  # the blur's single parameter learns this much faster
    channels: int = 8  # encoder width

    def resolved(self) -> DemoConfig:
        """A copy with the defaults that depend on ``quick`` filled in, checked."""
        epochs = self.epochs if self.epochs is not None else (4 if self.quick else 15)
        cfg = dataclasses.replace(self, epochs=int(epochs))
        if cfg.epochs < 1:
            raise ValueError(f"diffsys demo: --epochs must be at least 1, got {cfg.epochs}")
        if not (math.isfinite(cfg.noise) and cfg.noise >= 0):
            raise ValueError(f"diffsys demo: --noise must be >= 0, got {cfg.noise}")
        if cfg.progress not in ("auto", "rich", "plain", "none"):
            raise ValueError(f"diffsys demo: unknown progress mode {cfg.progress!r}")
        return cfg


@dataclass
class RunResult:
    """One training run: per-epoch and per-step history, the trained pipeline, timings."""

    label: str
    pipeline: pl.Pipeline
    epochs: list[dict] = field(default_factory=list)
    steps: dict[str, list] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def final(self) -> dict:
        return self.epochs[-1]


@dataclass
class DemoResult:
    """What the demo measured (``summary`` is what goes into ``summary.json``); ``test``: the
    noisy test batch (``{"x": ..., "y": ...}``) that the test accuracy and loss are measured
    on, in inference mode."""

    summary: dict
    learned: RunResult
    frozen: RunResult
    out_dir: Path
    ok: bool
    test: dict[str, np.ndarray] = field(default_factory=dict)


# --- the pipeline ------------------------------------------------------------------------------


def _encoder(channels: int, key: np.random.Generator) -> nn.Sequential:
    c = channels
    return nn.Sequential(
        [
            nn.Conv2d(1, c, 3, padding=1, key=key),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, c, 4, 4)
            nn.Conv2d(c, 2 * c, 3, padding=1, key=key),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 2c, 2, 2)
            nn.Flatten(),
        ]
    )


def build_pipeline(config: DemoConfig, *, frozen: bool = False, steps: int = 1) -> pl.Pipeline:
    """The demo's pipeline; ``frozen`` freezes the blur and the threshold. ``steps``: the
    number of training steps (the binarization loss weight ramps up over the first half)."""
    rng = np.random.default_rng([config.seed, 1])
    features = 2 * config.channels * 2 * 2
    pipe = pl.Pipeline(
        [
            pl.Stage(
                "blur",
                LearnableBlur(sigma=config.sigma_init, radius=3),
                input_spec=pl.Spec(("B", 1, 8, 8), "float64"),
            ),
            pl.Stage(
                "threshold",
                Binarize(
                    config.threshold_init,
                    config.sharpness_init,
                    learn_sharpness=config.learn_sharpness,
                ),
            ),
            pl.Stage("encoder", _encoder(config.channels, rng), output_spec=("B", features)),
            pl.Stage("classifier", nn.Linear(features, 10, key=rng), output_spec=("B", 10)),
        ],
        batch_keys=("x", "y"),
        losses=[
            pl.Loss("cross_entropy", nn.cross_entropy, inputs=("classifier", "y")),
            pl.Loss(
                "binarize",
                binarization_penalty,
                inputs=("threshold",),
                weight=pl.scheduled(
                    "linear",
                    init_value=0.0,
                    end_value=float(config.binarize_weight),
                    transition_begin=steps // 2,
                    transition_steps=max(1, steps // 4),
                ),
            ),
        ],
        metrics=[pl.Metric("accuracy", pl.accuracy, inputs=("classifier", "y"))],
    )
    if frozen:
        pipe.freeze(*PREPROCESSING)
    return pipe


# --- training ----------------------------------------------------------------------------------


def _noisy(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    return x + noise * rng.standard_normal(x.shape) if noise > 0 else x


def _preprocessing_values(pipe: pl.Pipeline) -> dict[str, float]:
    blur = pipe.params["blur"]
    th = pipe.params["threshold"]
    return {
        "sigma": float(np.asarray(blur.sigma)),
        "threshold": float(np.asarray(th.threshold)),
        "sharpness": float(np.asarray(th.sharpness)),
    }


def _evaluate(pipe: pl.Pipeline, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss and accuracy at inference (hard threshold, nn layers in eval mode)."""
    with pipe.inference():
        logits = np.asarray(pipe({"x": x, "y": y}))
    loss = float(nn.cross_entropy(logits, y))
    return {"loss": loss, "accuracy": float(np.mean(np.argmax(logits, axis=1) == y))}


def train_run(
    label: str,
    config: DemoConfig,
    data: Digits,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    frozen: bool,
    progress: Callable[[str, int, int], Progress],
) -> RunResult:
    """Train one pipeline; every run sees the same batches and the same noise."""
    steps_per_epoch = len(data.y_train) // config.batch_size
    total = config.epochs * steps_per_epoch
    pipe = build_pipeline(config, frozen=frozen, steps=total)
    schedule = optim.cosine_decay(config.learning_rate, total, alpha=0.1)
    trainer = pl.Trainer(
        pipe,
        optim.adam(schedule),
        seed=config.seed,
        stage_lr_scale={"blur": config.blur_lr_scale},
    )
    run = RunResult(label, pipe)
    run.steps = {"loss": [], "cross_entropy": [], "sigma": [], "threshold": [], "sharpness": []}
    run.steps.update({f"grad_norm.{s}": [] for s in STAGES})
    run.epochs.append({"epoch": 0, **_preprocessing_values(pipe)})
    t0 = time.perf_counter()
    bar = progress(label, config.epochs, steps_per_epoch)
    for epoch in range(config.epochs):
        bar.start_epoch(epoch)
        noise_rng = np.random.default_rng([config.seed, epoch, 2])
        losses, accs = [], []
        for xb, yb in iterate_batches(
            (data.x_train, data.y_train),
            config.batch_size,
            seed=config.seed,
            epoch=epoch,
            drop_last=True,
        ):
            report = trainer.step({"x": _noisy(xb, config.noise, noise_rng), "y": yb})
            losses.append(report.loss)
            accs.append(report.metrics.get("accuracy", float("nan")))
            values = _preprocessing_values(pipe)
            run.steps["loss"].append(float(report.loss))
            run.steps["cross_entropy"].append(float(report.terms["cross_entropy"]))
            for k, v in values.items():
                run.steps[k].append(v)
            for s in STAGES:
                run.steps[f"grad_norm.{s}"].append(float(report.grad_norms.get(s, float("nan"))))
            bar.advance({"loss": report.loss})
        test = _evaluate(pipe, x_test, y_test)
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "train_accuracy": float(np.mean(accs)),
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            **_preprocessing_values(pipe),
        }
        run.epochs.append(row)
        bar.end_epoch(epoch, row)
    run.seconds = time.perf_counter() - t0
    bar.close()
    return run


def _progress_displays(mode: str, stream: TextIO) -> Callable[[str, int, int], Progress]:
    """``make(label, epochs, steps_per_epoch)``: a run's progress display, one line per epoch
    (``diffsys.train.progress``, shared with ``train.fit``)."""

    def make(label: str, epochs: int, steps_per_epoch: int) -> Progress:
        def line(epoch: int, row: dict, seconds: float) -> str:
            return (
                f"  {label:<8} epoch {row['epoch']:>2}/{epochs}  loss {row['train_loss']:.4f}  "
                f"train acc {row['train_accuracy']:.3f}  test acc {row['test_accuracy']:.3f}  "
                f"sigma {row['sigma']:.3f}  threshold {row['threshold']:.3f}  ({seconds:.1f} s)"
            )

        return make_progress(mode, epochs, steps_per_epoch, stream=stream, label=label, line=line)

    return make


# --- tables --------------------------------------------------------------------------------------


def _table(head: tuple, rows: list[tuple]) -> str:
    cells = [tuple(map(str, head))] + [tuple(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _g(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3g}"


def grad_norm_summary(run: RunResult, steps_per_epoch: int) -> dict[str, dict]:
    """Per stage: mean gradient norm over the first and the last epoch, the smallest, and the
    parameter count (frozen stages have none)."""
    out = {}
    params = run.pipeline.params
    for s in STAGES:
        g = np.asarray(run.steps[f"grad_norm.{s}"], dtype=float)
        count = params[s].num_parameters() if s in params else 0
        frozen = s not in run.pipeline.trainable_stages()
        if frozen or not np.isfinite(g).any():
            out[s] = {
                "parameters": count,
                "frozen": frozen,
                "first_epoch": None,
                "last_epoch": None,
                "min": None,
            }
            continue
        out[s] = {
            "parameters": count,
            "frozen": False,
            "first_epoch": float(np.nanmean(g[:steps_per_epoch])),
            "last_epoch": float(np.nanmean(g[-steps_per_epoch:])),
            "min": float(np.nanmin(g)),
        }
    return out


def _grad_table(summary: dict[str, dict]) -> str:
    rows = []
    for s, r in summary.items():
        rows.append(
            (
                s,
                f"{r['parameters']:,}",
                "frozen" if r["frozen"] else _g(r["first_epoch"]),
                "frozen" if r["frozen"] else _g(r["last_epoch"]),
                "frozen" if r["frozen"] else _g(r["min"]),
            )
        )
    head = ("stage", "parameters", "grad norm, epoch 1", "grad norm, last epoch", "smallest")
    return _table(head, rows)


# --- the whole demo --------------------------------------------------------------------------


def run_demo(config: DemoConfig, *, stream: TextIO | None = None, argv=None) -> DemoResult:
    """Run the demo with ``config``, print to ``stream`` and write the report folder."""
    config = config.resolved()
    out_dir = Path(config.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"diffsys demo: --out {str(out_dir)!r} exists and is not a folder")
    with one_blas_thread():
        return _run_demo(config, stream or sys.stdout, argv)


def _contract_and_loss_notes(pipe: pl.Pipeline, epochs: int, steps_per_epoch: int) -> str:
    """What the summary table's last column and loss line mean, in this demo's terms."""
    lines = [
        "  contract: input spec(s) -> output spec, checked on every call (B: the batch size; "
        "any: not declared)",
        "  binarize(threshold) = mean(y (1 - y)): 0 when every thresholded pixel is 0 or 1",
    ]
    ramp = weight_ramp(pipe, epochs * steps_per_epoch)
    if ramp is not None:
        start, full, weight = ramp
        lines.append(
            f"    its weight ramps 0 -> {weight:g} from epoch {start / steps_per_epoch:.1f} to "
            f"{full / steps_per_epoch:.1f}, hardening the threshold once the blur has moved "
            "(so the training loss rises there)"
        )
    return "\n".join(lines)


def _run_demo(config: DemoConfig, stream: TextIO, argv) -> DemoResult:
    say = lambda *a: print(*a, file=stream, flush=True)  # noqa: E731
    t_start = time.perf_counter()

    say(f"diffsys {__version__} demo: learnable preprocessing trained end to end")
    say(
        "  pipeline: noisy 8x8 digit -> LearnableBlur -> Binarize -> CNN encoder -> classifier"
    )
    data = load_digits(config.seed, synthetic=config.synthetic)
    say(f"  data: {data.note}")
    say(
        f"        {len(data.y_train)} train / {len(data.y_test)} test images, Gaussian pixel "
        f"noise std {config.noise:g} (fresh each epoch in training; {TEST_DRAWS} fixed draws "
        "of each test image)"
    )
    say(
        f"  {config.epochs} epochs of {config.batch_size}-image batches, Adam "
        f"{config.learning_rate:g} with cosine decay (the blur's {config.blur_lr_scale:g}x), "
        f"seed {config.seed}" + (" (quick)" if config.quick else "")
    )
    # The test set with TEST_DRAWS independent noise draws of each image: the comparison of
    # two pipelines on the same noisy images varies less from draw to draw.
    test_rng = np.random.default_rng([config.seed, 3])
    x_test = np.concatenate(
        [_noisy(data.x_test, config.noise, test_rng) for _ in range(TEST_DRAWS)]
    )
    y_test = np.tile(data.y_test, TEST_DRAWS)
    steps_per_epoch = len(data.y_train) // config.batch_size

    probe = build_pipeline(config, steps=config.epochs * steps_per_epoch)
    say("")
    say(probe.summary())
    say(_contract_and_loss_notes(probe, config.epochs, steps_per_epoch))

    progress = _progress_displays(config.progress, stream)
    say("")
    say("[1/2] every stage learns")
    learned = train_run("learned", config, data, x_test, y_test, frozen=False, progress=progress)
    say(
        "[2/2] blur and threshold frozen at their initial values (sigma "
        f"{config.sigma_init:g}, threshold {config.threshold_init:g})"
    )
    frozen = train_run("frozen", config, data, x_test, y_test, frozen=True, progress=progress)

    grads = grad_norm_summary(learned, steps_per_epoch)
    say("")
    say("Per-stage gradient norms (learned run):")
    say(_grad_table(grads))

    test_batch = {"x": x_test, "y": y_test}
    mismatch = learned.pipeline.mismatch(test_batch)
    say("")
    say(
        "Relaxation mismatch on the test set (Binarize: sigmoid in training, step at "
        "inference):"
    )
    say(str(mismatch))

    lf, ff = learned.final, frozen.final
    init = learned.epochs[0]
    sigma_grew = lf["sigma"] > init["sigma"]
    beats = lf["test_accuracy"] > ff["test_accuracy"]
    step_losses = np.asarray(learned.steps["cross_entropy"], dtype=float)
    window = max(1, min(steps_per_epoch, len(step_losses) // 4))
    loss_fell = bool(
        np.all(np.isfinite(step_losses))
        and np.mean(step_losses[-window:]) < np.mean(step_losses[:window])
    )
    say("")
    say("Learned vs frozen preprocessing (test set, inference mode: hard threshold):")
    say(
        _table(
            ("", "learned", "frozen"),
            [
                ("test accuracy", f"{lf['test_accuracy']:.4f}", f"{ff['test_accuracy']:.4f}"),
                ("test loss", f"{lf['test_loss']:.4f}", f"{ff['test_loss']:.4f}"),
                ("blur sigma", f"{init['sigma']:.3f} -> {lf['sigma']:.3f}", f"{ff['sigma']:.3f}"),
                (
                    "threshold",
                    f"{init['threshold']:.3f} -> {lf['threshold']:.3f}",
                    f"{ff['threshold']:.3f}",
                ),
                (
                    "sharpness",
                    f"{init['sharpness']:.3g} -> {lf['sharpness']:.3g}",
                    f"{ff['sharpness']:.3g}",
                ),
                ("training time", f"{learned.seconds:.1f} s", f"{frozen.seconds:.1f} s"),
            ],
        )
    )
    direction = "grew" if sigma_grew else "did NOT grow"
    say(
        f"  sigma {direction} ({init['sigma']:.3f} -> {lf['sigma']:.3f}): "
        + ("more blur averages the noise away before the threshold; " if sigma_grew else "")
        + f"learned preprocessing is {100 * (lf['test_accuracy'] - ff['test_accuracy']):+.1f} "
        "accuracy points against frozen"
    )

    summary = {
        "diffsys_version": __version__,
        "command": "diffsys " + " ".join(argv) if argv is not None else None,
        "config": dataclasses.asdict(config),
        "data": {**data.to_dict(), "noise_std": config.noise},
        "pipeline": {
            "stages": list(STAGES),
            "kinds": {n: s.kind for n, s in learned.pipeline.stages.items()},
            "parameters": {n: r["parameters"] for n, r in grads.items()},
        },
        "runs": {
            r.label: {
                "final": r.final,
                "initial": r.epochs[0],
                "epochs": r.epochs[1:],
                "seconds": r.seconds,
                "trainable_stages": list(r.pipeline.trainable_stages()),
            }
            for r in (learned, frozen)
        },
        "grad_norms": grads,
        "mismatch": _jsonable(mismatch.to_dict()),
        "checks": {
            "sigma_grew": bool(sigma_grew),
            "learned_beats_frozen": bool(beats),
            "loss_fell": loss_fell,
        },
    }
    out_dir = Path(config.out)
    say("")
    files, notes = write_report(out_dir, summary, learned, frozen, config)
    for note in notes:
        say(f"  {note}")
    summary["seconds"] = round(time.perf_counter() - t_start, 3)
    summary["files"] = files
    (out_dir / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    say(f"Report written to {out_dir}/: " + ", ".join(sorted(files)))
    say(f"Done in {summary['seconds']:.1f} s.")
    return DemoResult(summary, learned, frozen, out_dir, ok=loss_fell, test=test_batch)


def _jsonable(x):
    """``x`` with NumPy scalars and arrays, tuples and non-finite floats made JSON-safe."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
