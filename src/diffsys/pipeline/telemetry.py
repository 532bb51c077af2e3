"""Gradient telemetry for pipelines, cheap enough to leave on.

Each training step records, from the gradients the step computed anyway: per-stage gradient
norms, the norm of the gradient reaching each stage's output (a probe on the stage output,
one identity node per stage), parameter norms and update-to-parameter ratios, the loss and
its terms. It warns when a stage's gradient stays below a threshold for several steps
(:class:`StarvationWarning`, naming the stage) and raises :class:`NonFiniteError` naming the
stage where a NaN/Inf first appears, in the forward pass or in the backward pass. The
history exports to JSON and CSV and plots to PNG (matplotlib, an optional extra).
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..core.primitive import Primitive
from ..core.pytree import tree_leaves, tree_map
from ..core.tracer import Tracer, concrete
from ._text import table

__all__ = ["NonFiniteError", "StarvationWarning", "StepReport", "Telemetry"]


class NonFiniteError(FloatingPointError):
    """A NaN or Inf appeared in a pipeline; ``stage`` names where it first appeared and
    ``where`` says in what (``"input"``, ``"output"``, ``"loss term"``, ``"output gradient"``,
    ``"parameter gradient"``).

    For ``"output gradient"``, ``stage`` is the consumer (a stage or a loss term) whose
    backward pass made the gradient reaching stage ``upstream``'s output non-finite; when an
    output feeds several consumers, the one whose own gradient is not finite."""

    def __init__(
        self, message: str, stage: str, where: str, *, upstream: str | None = None
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.where = where
        self.upstream = upstream


class StarvationWarning(UserWarning):
    """A stage's gradient stayed (near) zero for many steps: it is not learning."""


# --- cheap numerics ----------------------------------------------------------------------------


def _leaves(tree):
    if isinstance(tree, np.ndarray | Tracer):
        return (tree,)
    return tree_leaves(tree)


def _float_arrays(tree):
    """The floating-point/complex leaves of ``tree`` as plain arrays."""
    for leaf in _leaves(tree):
        v = leaf if type(leaf) is np.ndarray else concrete(leaf)
        if v is None:
            continue
        if type(v) is not np.ndarray:
            v = np.asarray(v)
        if v.dtype.kind in "fc":
            yield v


def sq_norm(tree) -> float:
    """Sum of squared magnitudes of the floating-point leaves of ``tree`` (plain floats)."""
    total = 0.0
    for v in _float_arrays(tree):
        r = v.ravel()
        total += float(np.vdot(r, r).real)
    return total


def all_finite(tree) -> bool:
    """Whether every floating-point leaf of ``tree`` is finite (a sum first: no temporaries
    unless it is not finite)."""
    for v in _float_arrays(tree):
        if v.size and not np.isfinite(v.sum()) and not np.isfinite(v).all():
            return False
    return True


def finite_from_sq(sq: float, tree) -> bool:
    """Whether ``tree`` is finite, given its :func:`sq_norm` (exact check only when the sum
    of squares is not finite, which overflow can also cause)."""
    return math.isfinite(sq) or all_finite(tree)


# --- the per-call monitor: forward checks and backward probes ---------------------------------


class Monitor:
    """What one forward/backward pass saw, stage by stage (made by the pipeline per step).

    ``ct_sq``/``ct_finite``: the gradient reaching each stage's output (summed over its
    consumers). ``edge_finite[(consumer, stage)]``: whether the gradient one consumer's
    backward pass sent to ``stage``'s output is finite, probed only for the stages in
    ``shared`` (those read by several consumers, where the sum cannot say which one made a
    NaN/Inf)."""

    __slots__ = ("ct_finite", "ct_sq", "edge_finite", "shared")

    def __init__(self, shared: frozenset[str] = frozenset()) -> None:
        self.ct_sq: dict[str, float] = {}
        self.ct_finite: dict[str, bool] = {}
        self.edge_finite: dict[tuple[str, str], bool] = {}
        self.shared = shared

    def record_ct(self, stage: str, g) -> None:
        if any(isinstance(x, Tracer) for x in _leaves(g)):
            return  # under an outer transform: values are not final
        sq = sq_norm(g)
        self.ct_sq[stage] = self.ct_sq.get(stage, 0.0) + sq
        self.ct_finite[stage] = self.ct_finite.get(stage, True) and finite_from_sq(sq, g)

    def record_edge(self, consumer: str, stage: str, g) -> None:
        if any(isinstance(x, Tracer) for x in _leaves(g)):
            return
        edge = (consumer, stage)
        self.edge_finite[edge] = self.edge_finite.get(edge, True) and all_finite(g)


def _probe_vjp(g, ans, x, *, tag):
    monitor, stage, consumer = tag
    if consumer is None:
        monitor.record_ct(stage, g)
    else:
        monitor.record_edge(consumer, stage, g)
    return g


# Identity in value; its VJP records the cotangent (one node per output array of a stage, and
# one per array a consumer reads from a shared stage output).
_probe = Primitive("pipeline_probe", lambda x, *, tag: x)
_probe.defvjp(_probe_vjp)
_probe.defjvp(lambda t, ans, x, *, tag: t)
_probe.defbatch(lambda args, batched, *, tag: args[0])


def probe(x, monitor: Monitor, stage: str, consumer: str | None = None):
    """``x`` unchanged; in reverse mode its cotangent is recorded for ``stage``'s output, or,
    with ``consumer``, for the gradient that ``consumer`` sends to ``stage``'s output."""
    tag = (monitor, stage, consumer)
    if isinstance(x, Tracer):
        return _probe(x, tag=tag)
    if isinstance(x, np.ndarray):
        return x  # not traced: no gradient will reach it
    return tree_map(lambda v: _probe(v, tag=tag) if isinstance(v, Tracer) else v, x)


# --- reports -----------------------------------------------------------------------------------


@dataclass
class StepReport:
    """What one training step measured. Norms are 2-norms over a stage's parameters."""

    step: int
    loss: float
    terms: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)
    output_grad_norms: dict[str, float] = field(default_factory=dict)
    param_norms: dict[str, float] = field(default_factory=dict)
    update_ratios: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


_SERIES = (
    "terms",
    "weights",
    "metrics",
    "grad_norms",
    "output_grad_norms",
    "param_norms",
    "update_ratios",
)


class Telemetry:
    """History of :class:`StepReport` s, starvation detection and NaN/Inf policy.

    ``starvation_threshold``: a stage whose parameter-gradient norm stays below it for
    ``starvation_steps`` consecutive steps gets a :class:`StarvationWarning` naming it (once,
    re-armed when it recovers). ``nonfinite``: ``"raise"`` (a :class:`NonFiniteError`, the
    parameters unchanged) or ``"skip"`` (warn, skip the update, go on).
    """

    def __init__(
        self,
        *,
        starvation_threshold: float = 1e-10,
        starvation_steps: int = 20,
        nonfinite: str = "raise",
        enabled: bool = True,
    ) -> None:
        if nonfinite not in ("raise", "skip"):
            raise ValueError(f"Telemetry: nonfinite must be 'raise' or 'skip', got {nonfinite!r}")
        if starvation_steps < 1:
            raise ValueError(f"Telemetry: starvation_steps must be >= 1, got {starvation_steps}")
        self.starvation_threshold = float(starvation_threshold)
        self.starvation_steps = int(starvation_steps)
        self.nonfinite = nonfinite
        self.enabled = bool(enabled)
        self.history: list[StepReport] = []
        self._low: dict[str, int] = {}

    def record(self, report: StepReport) -> StepReport:
        """Append ``report``; warn about stages starved for ``starvation_steps`` steps."""
        for stage, norm in report.grad_norms.items():
            if norm < self.starvation_threshold:
                n = self._low.get(stage, 0) + 1
                self._low[stage] = n
                if n == self.starvation_steps:
                    msg = (
                        f"stage {stage!r}: its gradient norm stayed below "
                        f"{self.starvation_threshold:g} for {n} consecutive steps (now "
                        f"{norm:.3g}): no learning signal reaches its parameters. Look for a "
                        "hard (non-differentiable) operation in training mode, a frozen or "
                        "stop_gradient-ed path, or saturated/dead activations downstream."
                    )
                    report.warnings.append(msg)
                    warnings.warn(msg, StarvationWarning, stacklevel=3)
            else:
                self._low[stage] = 0
        self.history.append(report)
        return report

    def starved(self) -> list[str]:
        """Stages currently starved (below the threshold for at least ``starvation_steps``)."""
        return [s for s, n in self._low.items() if n >= self.starvation_steps]

    def reset(self) -> None:
        self.history.clear()
        self._low.clear()

    # --- export ----------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """The history as flat dicts: ``step``, ``loss``, ``skipped``, and one column per
        series and stage/term, ``grad_norms/encoder``, ``terms/ce``..."""
        rows = []
        for r in self.history:
            row: dict[str, Any] = {"step": r.step, "loss": r.loss, "skipped": r.skipped}
            for s in _SERIES:
                for k, v in getattr(r, s).items():
                    row[f"{s}/{k}"] = v
            rows.append(row)
        return rows

    def series(self, name: str, key: str | None = None) -> np.ndarray:
        """One column over steps: ``series("loss")``, ``series("grad_norms", "encoder")``
        (NaN where a step has no value)."""
        col = name if key is None else f"{name}/{key}"
        return np.array([row.get(col, math.nan) for row in self.records()], dtype=float)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the history (one object per step, nested as :class:`StepReport`)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump([_jsonable(r.to_dict()) for r in self.history], f, indent=1)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the history as CSV, one row per step, columns as :meth:`records`."""
        rows = self.records()
        columns: list[str] = []
        for row in rows:
            columns.extend(c for c in row if c not in columns)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def plot(
        self,
        path: str | os.PathLike | None = None,
        *,
        series: tuple[str, ...] = ("loss", "grad_norms", "update_ratios", "terms"),
    ):
        """Plot the history: one panel per series (log scale for norms/ratios). Returns the
        matplotlib ``Figure``; saves it as a PNG only when ``path`` is given. Never touches
        matplotlib's backend or pyplot's figure list (a notebook shows the returned figure)."""
        figure_cls = _matplotlib_figure("Telemetry.plot")
        if not self.history:
            raise ValueError("Telemetry.plot: the history is empty (no training step yet)")
        steps = np.array([r.step for r in self.history])
        fig = figure_cls(figsize=(7, 2.6 * len(series)))
        axes = fig.subplots(len(series), 1, squeeze=False)
        for ax, name in zip(axes[:, 0], series, strict=True):
            if name == "loss":
                ax.plot(steps, self.series("loss"), label="loss")
            else:
                keys: list[str] = []
                for r in self.history:
                    keys.extend(k for k in getattr(r, name) if k not in keys)
                for k in keys:
                    ax.plot(steps, self.series(name, k), label=k)
                if name in ("grad_norms", "output_grad_norms", "param_norms", "update_ratios"):
                    ax.set_yscale("log")
            ax.set_title(name.replace("_", " "))
            ax.set_xlabel("step")
            if ax.lines:
                ax.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig

    def table(self, last: int = 1) -> str:
        """A per-stage text table averaged over the ``last`` steps: gradient norm, output
        gradient norm, parameter norm, update/parameter ratio."""
        if not self.history:
            return "(no steps recorded)"
        recent = self.history[-last:]
        stages: list[str] = []
        for r in recent:
            for s in ("output_grad_norms", "grad_norms"):
                stages.extend(k for k in getattr(r, s) if k not in stages)

        def mean(series, stage):
            vals = [getattr(r, series)[stage] for r in recent if stage in getattr(r, series)]
            return f"{np.mean(vals):.3e}" if vals else "-"

        head = ("stage", "grad norm", "out-grad norm", "param norm", "update/param")
        rows = [
            (
                s,
                mean("grad_norms", s),
                mean("output_grad_norms", s),
                mean("param_norms", s),
                mean("update_ratios", s),
            )
            for s in stages
        ]
        return table(head, rows)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _matplotlib_figure(who: str):
    """``matplotlib.figure.Figure``, or an ImportError naming the extra. The figure is built
    without pyplot: no backend switch, nothing left in pyplot's list of open figures."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"{who} needs matplotlib, an optional extra: pip install matplotlib "
            "(or pip install 'diffsys[plot]'); the history is in .to_json()/.to_csv() "
            "without it"
        ) from exc
    return Figure
