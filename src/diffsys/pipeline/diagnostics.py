"""What the relaxation costs (:func:`mismatch`) and whether each stage's derivatives are right
(:func:`check_grads`), measured stage by stage through the stages' contracts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..check import GradientCheckError, gradient_errors
from ..check import check_grads as _ds_check_grads
from ..core.pytree import tree_leaves
from ..core.tracer import concrete
from ..nn.module import eval_mode
from ._text import table

__all__ = ["GradCheckReport", "MismatchReport", "check_grads", "mismatch"]


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


# --- mismatch ------------------------------------------------------------------------------------


@dataclass
class MismatchRow:
    """One relaxed stage: relaxed vs hard output on the same input (the input the stage sees
    with every stage relaxed), and the final loss/metrics with only this stage hard."""

    stage: str
    kind: str
    max_abs: float
    mean_abs: float
    rel_l2: float
    loss_only_this_hard: float | None
    metrics_only_this_hard: dict = field(default_factory=dict)


@dataclass
class MismatchReport:
    """Relaxed (training) vs hard (inference) behaviour of a pipeline on one batch.

    ``loss_relaxed`` / ``loss_hard``: the total loss with every relaxed stage in its
    surrogate / hard form (nn layers in evaluation mode both times, so only the relaxations
    differ); ``terms_*`` and ``metrics_*`` likewise; ``rows``: one :class:`MismatchRow` per
    relaxed stage. A straight-through stage has the hard value in both modes: its output
    distance is 0 (its mismatch is in the gradient, not the value).
    """

    rows: list[MismatchRow]
    loss_relaxed: float | None
    loss_hard: float | None
    terms_relaxed: dict = field(default_factory=dict)
    terms_hard: dict = field(default_factory=dict)
    metrics_relaxed: dict = field(default_factory=dict)
    metrics_hard: dict = field(default_factory=dict)

    def __getitem__(self, stage: str) -> MismatchRow:
        for r in self.rows:
            if r.stage == stage:
                return r
        raise KeyError(f"no relaxed stage {stage!r} in the report ({[r.stage for r in self.rows]})")

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        metric_names = list(self.metrics_relaxed)
        head = ("stage", "kind", "max |r-h|", "mean |r-h|", "rel L2", "loss (only it hard)")
        head += tuple(f"{m} (only it hard)" for m in metric_names)
        rows = [
            (
                r.stage,
                r.kind,
                _g(r.max_abs),
                _g(r.mean_abs),
                _g(r.rel_l2),
                _g(r.loss_only_this_hard),
            )
            + tuple(_g(r.metrics_only_this_hard.get(m)) for m in metric_names)
            for r in self.rows
        ]
        text = table(head, rows) if rows else "(no relaxed stages)"
        lines = [text]
        if rows:
            lines += [
                "  r, h: the stage's relaxed (training) and hard (inference) outputs on the same "
                "input; rel L2 = ||r - h|| / ||h||;",
                "  (only it hard): the pipeline's loss and metrics with only that stage hard",
            ]
        lines.append(f"loss: relaxed {_g(self.loss_relaxed)}, hard {_g(self.loss_hard)}")
        for m in metric_names:
            lines.append(
                f"{m}: relaxed {_g(self.metrics_relaxed[m])}, hard {_g(self.metrics_hard.get(m))}"
            )
        return "\n".join(lines)


def _distance(a, b) -> tuple[float, float, float]:
    al = [np.asarray(concrete(x), dtype=float) for x in tree_leaves(a)]
    bl = [np.asarray(concrete(x), dtype=float) for x in tree_leaves(b)]
    if len(al) != len(bl) or any(x.shape != y.shape for x, y in zip(al, bl, strict=False)):
        raise ValueError(
            "mismatch: a stage's relaxed and hard outputs have different structures or shapes "
            f"({[x.shape for x in al]} vs {[y.shape for y in bl]})"
        )
    diffs = [np.abs(x - y).ravel() for x, y in zip(al, bl, strict=True)]
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    hn = math.sqrt(sum(float(np.sum(y * y)) for y in bl))
    if d.size == 0:
        return 0.0, 0.0, 0.0
    dn = float(np.sqrt(np.sum(d * d)))
    return float(d.max()), float(d.mean()), dn / hn if hn > 0 else (0.0 if dn == 0 else math.inf)


def _evaluate(pipe, outputs, batch, step):
    metrics = pipe._metrics(outputs, batch)
    if not pipe.losses:
        return None, {}, metrics
    total, terms, _ = pipe._terms(outputs, batch, step, None)
    return float(total), {k: float(v) for k, v in terms.items()}, metrics


def mismatch(pipe, batch, *, params=None, state=None, step=None, key=None) -> MismatchReport:
    """See :meth:`Pipeline.mismatch`. Runs the pipeline ``2 + k`` times for ``k`` relaxed
    stages (all relaxed, all hard, each stage alone hard) with nn layers in evaluation mode
    and the same random ``key`` (default 0) every time."""
    params = pipe.params if params is None else params
    step = pipe.steps_done if step is None else step
    key = 0 if key is None else key
    run = dict(state=state, nn_training=False, key=key)
    capture: dict = {}
    outs_r, _ = pipe._run(params, batch, relax="relaxed", capture=capture, **run)
    loss_r, terms_r, metrics_r = _evaluate(pipe, outs_r, batch, step)
    outs_h, _ = pipe._run(params, batch, relax="hard", **run)
    loss_h, terms_h, metrics_h = _evaluate(pipe, outs_h, batch, step)
    rows = []
    for name, st in pipe.stages.items():
        if not st.relaxed:
            continue
        owner, inputs, st_state, _, seed = capture[name]
        hard_out, _ = st.invoke(owner, inputs, "hard", st_state, seed)
        max_abs, mean_abs, rel = _distance(outs_r[name], hard_out)
        outs_n, _ = pipe._run(params, batch, relax={name: "hard", "*": "relaxed"}, **run)
        loss_n, _, metrics_n = _evaluate(pipe, outs_n, batch, step)
        rows.append(MismatchRow(name, st.kind, max_abs, mean_abs, rel, loss_n, metrics_n))
    return MismatchReport(rows, loss_r, loss_h, terms_r, terms_h, metrics_r, metrics_h)


# --- check_grads ---------------------------------------------------------------------------------


@dataclass
class GradCheckRow:
    """One stage's finite-difference check (``rel_error_*``: first-order relative errors
    along a random direction; ``None`` where not measured)."""

    stage: str
    kind: str
    checked: str
    n_params: int
    n_inputs: int
    rel_error_fwd: float | None
    rel_error_rev: float | None
    passed: bool | None
    message: str = ""


@dataclass
class GradCheckReport:
    """Per-stage finite-difference checks; ``worst``: the failing stage with the largest
    error, else the passing one with the largest error."""

    rows: list[GradCheckRow]

    @property
    def ok(self) -> bool:
        return all(r.passed is not False for r in self.rows)

    @property
    def failed(self) -> list[str]:
        return [r.stage for r in self.rows if r.passed is False]

    @property
    def worst(self) -> str | None:
        checked = [r for r in self.rows if r.passed is not None]
        if not checked:
            return None
        err = lambda r: max(r.rel_error_fwd or 0.0, r.rel_error_rev or 0.0)
        return max(checked, key=lambda r: (r.passed is False, err(r))).stage

    def __getitem__(self, stage: str) -> GradCheckRow:
        for r in self.rows:
            if r.stage == stage:
                return r
        raise KeyError(f"no stage {stage!r} in the report")

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "worst": self.worst, "ok": self.ok}

    def __str__(self) -> str:
        head = (
            "stage",
            "kind",
            "checked",
            "params",
            "inputs",
            "rel err fwd",
            "rel err rev",
            "result",
        )
        rows = []
        for r in self.rows:
            result = {True: "ok", False: "FAILED", None: "skipped"}[r.passed]
            rows.append(
                (
                    r.stage,
                    r.kind,
                    r.checked,
                    r.n_params,
                    r.n_inputs,
                    _g(r.rel_error_fwd),
                    _g(r.rel_error_rev),
                    result,
                )
            )
        lines = [table(head, rows), f"worst stage: {self.worst}"]
        for r in self.rows:
            if r.message:
                lines.append(f"  {r.stage}: {r.message}")
        return "\n".join(lines)


def _small(batch, rows: int):
    def cut(x):
        if isinstance(x, np.ndarray) and x.ndim >= 1:
            return x[:rows]
        return x

    if isinstance(batch, dict):
        return {k: cut(v) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(cut(v) for v in batch)
    return cut(batch)


def _count(tree) -> int:
    arrays = (np.asarray(concrete(x)) for x in tree_leaves(tree))
    return sum(int(a.size) for a in arrays if np.issubdtype(a.dtype, np.inexact))


def check_grads(
    pipe,
    batch,
    *,
    params=None,
    state=None,
    stages: Sequence[str] | None = None,
    rows: int = 2,
    order: int = 1,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradCheckReport:
    """Check each stage's derivatives against finite differences, in float64, on the first
    ``rows`` rows of ``batch``: ``ds.check_grads`` of ``(params, *inputs) -> output`` for the
    inputs that stage really receives (all stages relaxed, nn layers in evaluation mode).

    Relaxed and straight-through stages are checked through their smooth surrogate (the
    derivative they use); score-function stages are skipped (their gradient is a stochastic
    estimate, not the derivative of their value). Returns a :class:`GradCheckReport`;
    raises :class:`~diffsys.GradientCheckError` (with ``.report``) if a stage fails and
    ``raise_on_failure``.
    """
    params = pipe.params if params is None else params
    names = list(pipe.stages) if stages is None else list(stages)
    for n in names:
        pipe._stage(n)
    small = _small(batch, rows)
    capture: dict = {}
    pipe._run(
        params, small, state=state, relax="relaxed", nn_training=False, key=seed, capture=capture
    )
    report_rows = []
    for name in names:
        st = pipe.stages[name]
        _, inputs, st_state, _, _ = capture[name]
        owner = params.get(name) if st.params is not None else None
        if owner is not None and st.has_training_flags:
            owner = eval_mode(owner)
        checked = "surrogate" if st.relaxed else "stage"
        n_params, n_inputs = _count(owner), _count(inputs)
        if st.kind == "score_function":
            report_rows.append(
                GradCheckRow(
                    name,
                    st.kind,
                    "-",
                    n_params,
                    n_inputs,
                    None,
                    None,
                    None,
                    "skipped: a score-function gradient is a stochastic estimate, not the "
                    "derivative of the stage's value",
                )
            )
            continue
        if n_params + n_inputs == 0:
            report_rows.append(
                GradCheckRow(
                    name,
                    st.kind,
                    "-",
                    0,
                    0,
                    None,
                    None,
                    None,
                    "skipped: no floating-point parameters or inputs",
                )
            )
            continue

        def fun(owner, *xs, _st=st, _state=st_state):
            return _st._call(owner, list(xs), "surrogate", _state, seed)[0]

        fun.__name__ = f"stage {name!r}"
        args = (owner, *inputs)
        fwd, rev = gradient_errors(fun, args, modes=modes, eps=eps, atol=atol, seed=seed)
        try:
            _ds_check_grads(
                fun, args, order=order, modes=modes, eps=eps, rtol=rtol, atol=atol, seed=seed
            )
            passed, message = True, ""
        except GradientCheckError as exc:
            passed, message = False, str(exc)
        report_rows.append(
            GradCheckRow(name, st.kind, checked, n_params, n_inputs, fwd, rev, passed, message)
        )
    report = GradCheckReport(report_rows)
    if raise_on_failure and not report.ok:
        err = GradientCheckError(
            f"pipeline check_grads: stage(s) {report.failed} disagree with finite differences "
            f"(worst: {report.worst!r})\n{report}"
        )
        err.report = report
        raise err
    return report
