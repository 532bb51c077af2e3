"""``Pipeline``: named stages composed in sequence or as a DAG, with attached losses.

The pipeline holds the structure (stages, losses, metrics, mode) and, for convenience, the
current parameters (``pipe.params``: a dict by stage name, so parameter names are
``encoder.conv1.weight``) and non-trainable state (``pipe.state``). Every computation also
has a functional form that takes the parameters explicitly: :meth:`Pipeline.apply`,
:meth:`Pipeline.loss` (for ``ds.value_and_grad``) and :meth:`Pipeline.step`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.custom import stop_gradient
from ..core.pytree import tree_leaves
from ..core.tracer import Tracer, concrete
from ..core.transforms import value_and_grad
from ..nn import combine, is_inexact_array, named_leaves, partition
from ..nn.module import State, eval_mode, train_mode, with_state
from ..optim.base import GradientTransformation, apply_updates
from ._text import table
from .losses import Loss, Metric
from .spec import ContractError, Spec
from .stage import RELAXED_KINDS, Stage
from .telemetry import (
    Monitor,
    NonFiniteError,
    StepReport,
    Telemetry,
    all_finite,
    finite_from_sq,
    probe,
    sq_norm,
)

__all__ = [
    "HardModeGradientWarning",
    "Pipeline",
    "TrainState",
    "combine_trainable",
    "split_trainable",
]

MODES = ("train", "infer")


class HardModeGradientWarning(UserWarning):
    """A pipeline's loss was differentiated in inference mode without asking for it."""


@dataclass
class TrainState:
    """Everything a training step changes: parameters (all stages), optimizer state (over the
    trainable floating-point leaves), non-trainable state, the step count; and what it needs:
    the optimizer, the seed of per-step random keys, the trainable stages at :meth:`init`."""

    params: dict
    opt_state: Any
    state: dict
    step: int
    optimizer: GradientTransformation
    seed: int
    trainable: tuple[str, ...]


class Pipeline:
    """Stages composed by name; losses ``L = sum_i w_i(step) L_i`` on any outputs.

    ``stages``: :class:`Stage` s (or ``(name, module_or_fn)`` pairs), in any order that
    respects their ``inputs`` (a stage without ``inputs`` reads the previous stage, the first
    one the first batch key). ``batch_keys``: the names of batch entries stages and losses
    may read (a batch is a dict, or a tuple in this order).

    >>> import numpy as np, diffsys as ds
    >>> from diffsys import nn, pipeline as pl
    >>> pipe = pl.Pipeline([
    ...     pl.Stage("encoder", nn.Linear(4, 8, key=0), input_spec=("B", 4)),
    ...     pl.Stage("act", nn.tanh),
    ...     pl.Stage("head", nn.Linear(8, 3, key=1), output_spec=("B", 3)),
    ... ], losses=[pl.Loss("ce", nn.cross_entropy, inputs=("head", "y"))])
    >>> batch = {"x": np.ones((5, 4)), "y": np.zeros(5, dtype=int)}
    >>> (loss, aux), grads = ds.value_and_grad(pipe.loss, has_aux=True)(pipe.params, batch)
    >>> sorted(grads), grads["encoder"].weight.shape
    (['encoder', 'head'], (8, 4))
    """

    def __init__(
        self,
        stages: Iterable[Stage | tuple[str, Any]],
        *,
        batch_keys: Sequence[str] = ("x", "y"),
        losses: Iterable[Loss] = (),
        metrics: Iterable[Metric] = (),
        telemetry: Telemetry | None = None,
    ) -> None:
        self.batch_keys = (batch_keys,) if isinstance(batch_keys, str) else tuple(batch_keys)
        if not self.batch_keys:
            raise ValueError("Pipeline: batch_keys must name at least one batch entry")
        staged = []
        for i, s in enumerate(stages):
            if isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], str):
                s = Stage(s[0], s[1])
            if not isinstance(s, Stage):
                raise TypeError(
                    f"Pipeline: item {i} is a {type(s).__name__}; give Stage objects or "
                    "(name, module_or_function) pairs"
                )
            staged.append(copy.copy(s))  # binding inputs and state must not touch the caller's
        if not staged:
            raise ValueError("Pipeline: give at least one stage")
        self.stages: dict[str, Stage] = {}
        for s in staged:
            if s.name in self.stages:
                raise ValueError(f"Pipeline: two stages are named {s.name!r}")
            if s.name in self.batch_keys:
                raise ValueError(
                    f"Pipeline: stage {s.name!r} has the name of a batch key "
                    f"{list(self.batch_keys)}; rename one of them"
                )
            self.stages[s.name] = s
        previous = self.batch_keys[0]
        for s in staged:
            if s.inputs is None:
                s._bind_inputs((previous,))
            previous = s.name
            for ref in s.inputs:
                self._check_ref(ref, f"stage {s.name!r}")
        self.order = _topological_order(staged)
        self.stages = {name: self.stages[name] for name in self.order}
        params, state = {}, {}
        for name, s in self.stages.items():
            if s.stateful:
                module, st = with_state(s.params)
                s.params = s.module = module
                state[name] = st
            if s.params is not None:
                params[name] = s.params
        self._check_ownership(params)
        self._params = params
        self.state: dict[str, State] = state
        self.losses: list[Loss] = []
        self.metrics: list[Metric] = []
        for t in losses:
            self.add_loss(t)
        for m in metrics:
            self.add_metric(m)
        self.mode = "train"
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.steps_done = 0

    # --- structure ---------------------------------------------------------------------------
    def _check_ref(self, ref: str, who: str) -> None:
        if not isinstance(ref, str):
            raise TypeError(f"{who}: input names are strings, got {ref!r}")
        if self._parse_ref(ref) is None:
            raise ValueError(
                f"{who} reads {ref!r}, which is neither a stage ({list(self.stages)}) nor a "
                f"batch key ({list(self.batch_keys)}; declare more with batch_keys=...)"
            )

    def _parse_ref(self, ref: str):
        if ref in self.stages:
            return ("stage", ref, None)
        if ref in self.batch_keys:
            return ("batch", ref, None)
        head, _, tail = ref.partition(".")
        if tail and head in self.stages:
            return ("stage", head, int(tail) if tail.isdigit() else tail)
        return None

    def _lookup(self, ref: str, outputs: dict, batch: Mapping, who: str):
        kind, name, key = self._parse_ref(ref)
        if kind == "batch":
            try:
                return batch[name]
            except KeyError:
                raise KeyError(
                    f"{who} reads batch entry {name!r}, but the batch has keys {sorted(batch)}"
                ) from None
        value = outputs[name]
        if key is None:
            return value
        try:
            return value[key]
        except (KeyError, IndexError, TypeError):
            raise ContractError(
                f"{who} reads {ref!r}: stage {name!r} returned a {type(value).__name__} that "
                f"has no entry {key!r}"
            ) from None

    def _check_ownership(self, params: dict) -> None:
        owner: dict[int, tuple[str, str]] = {}
        for stage, tree in params.items():
            for pname, leaf in named_leaves(tree, stage):
                if not isinstance(leaf, np.ndarray):
                    continue
                prev = owner.get(id(leaf))
                if prev is not None and prev[0] != stage:
                    raise ValueError(
                        f"Pipeline: one parameter array is owned by two stages, {prev[0]!r} "
                        f"(as {prev[1]!r}) and {stage!r} (as {pname!r}); a parameter belongs "
                        "to one stage: copy it, or make one stage that holds both uses"
                    )
                owner[id(leaf)] = (stage, pname)

    def add_loss(
        self,
        loss: Loss | str,
        fn: Callable | None = None,
        inputs: str | Sequence[str] | None = None,
        weight: float | Callable = 1.0,
    ) -> Pipeline:
        """Attach a loss term: ``add_loss(Loss(...))`` or ``add_loss(name, fn, inputs,
        weight)``. Returns the pipeline."""
        if not isinstance(loss, Loss):
            if fn is None or inputs is None:
                raise TypeError("add_loss: give a Loss, or name, fn and inputs")
            loss = Loss(loss, fn, inputs, weight)
        self._add_term(loss, self.losses)
        return self

    def add_metric(self, metric: Metric | str, fn: Callable | None = None, inputs=None) -> Pipeline:
        """Attach a metric (reported, not differentiated). Returns the pipeline."""
        if not isinstance(metric, Metric):
            if fn is None or inputs is None:
                raise TypeError("add_metric: give a Metric, or name, fn and inputs")
            metric = Metric(metric, fn, inputs)
        self._add_term(metric, self.metrics)
        return self

    def _add_term(self, term, into: list) -> None:
        if any(t.name == term.name for t in self.losses + self.metrics):
            raise ValueError(f"Pipeline: a loss term or metric is already named {term.name!r}")
        for ref in term.inputs:
            self._check_ref(ref, f"{term.kind} {term.name!r}")
        into.append(term)

    # --- parameters, state, modes --------------------------------------------------------------
    @property
    def params(self) -> dict:
        """The current parameters: ``{stage name: module or pytree}`` for stages that own any."""
        return self._params

    @params.setter
    def params(self, params: dict) -> None:
        self._params = self._validate_params(params, "pipeline.params")

    def _validate_params(self, params, who: str) -> dict:
        if not isinstance(params, dict):
            raise TypeError(f"{who}: expected a dict by stage name, got {type(params).__name__}")
        want = {n for n, s in self.stages.items() if s.params is not None}
        if set(params) != want:
            raise ValueError(
                f"{who}: expected parameters for stages {sorted(want)}, got {sorted(params)}"
            )
        return params

    def named_parameters(self, params: dict | None = None) -> Iterator[tuple[str, Any]]:
        """``(dotted name, array)`` for every parameter, namespaced by stage
        (``encoder.0.weight``), as PyTorch's ``named_parameters``."""
        return iter(named_leaves(self._params if params is None else params))

    def named_parameter_dict(self, params: dict | None = None) -> dict[str, Any]:
        """``{dotted name: array}`` for every parameter, namespaced by stage."""
        return dict(named_leaves(self._params if params is None else params))

    def trainable_stages(self) -> tuple[str, ...]:
        """Stages that own floating-point parameters and are not frozen."""
        return tuple(
            n
            for n, s in self.stages.items()
            if n in self._params
            and not s.frozen
            and any(is_inexact_array(x) for x in tree_leaves(self._params[n]))
        )

    def freeze(self, *names: str) -> Pipeline:
        """Stop gradients to these stages' parameters (they still pass gradients upstream)."""
        for n in names:
            self._stage(n).frozen = True
        return self

    def unfreeze(self, *names: str) -> Pipeline:
        for n in names:
            self._stage(n).frozen = False
        return self

    def _stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise KeyError(f"no stage {name!r}; the stages are {list(self.stages)}") from None

    def train(self) -> Pipeline:
        """Training mode, in place: relaxed stages use their surrogates, nn layers train
        (dropout on, BatchNorm on batch statistics). Returns the pipeline, so
        ``pipe = pipe.train()`` reads as it does for a module (whose ``train()`` is a copy).
        """
        self.mode = "train"
        return self

    def infer(self) -> Pipeline:
        """Inference mode, in place: relaxed stages use their hard operations, nn layers
        evaluate. Returns the pipeline; :meth:`inference` switches for a block only."""
        self.mode = "infer"
        return self

    eval = infer

    @contextlib.contextmanager
    def inference(self) -> Iterator[Pipeline]:
        """``with pipe.inference():`` runs the block in inference mode and restores the
        mode it had, also when the block raises.

        >>> from diffsys import nn, pipeline as pl
        >>> pipe = pl.Pipeline([pl.Stage("lin", nn.Linear(2, 1, key=0))])
        >>> with pipe.inference():
        ...     inside = pipe.mode
        >>> inside, pipe.mode
        ('infer', 'train')
        """
        yield from self._in_mode("infer")

    @contextlib.contextmanager
    def training(self) -> Iterator[Pipeline]:
        """``with pipe.training():`` runs the block in training mode, then restores the
        mode (the counterpart of :meth:`inference`)."""
        yield from self._in_mode("train")

    def _in_mode(self, mode: str) -> Iterator[Pipeline]:
        previous = self.mode
        self.mode = mode
        try:
            yield self
        finally:
            self.mode = previous

    def _flags(self, mode: str | None) -> tuple[str, bool]:
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"Pipeline: mode must be one of {MODES}, got {mode!r}")
        return ("relaxed", True) if mode == "train" else ("hard", False)

    # --- running -------------------------------------------------------------------------------
    def _as_batch(self, batch) -> Mapping:
        if isinstance(batch, Mapping):
            return batch
        if isinstance(batch, tuple | list):
            if len(batch) > len(self.batch_keys):
                raise ValueError(
                    f"Pipeline: a batch tuple of {len(batch)} entries, but batch_keys names "
                    f"{len(self.batch_keys)}: {list(self.batch_keys)}"
                )
            return dict(zip(self.batch_keys, batch, strict=False))
        return {self.batch_keys[0]: batch}

    def _run(
        self,
        params: dict,
        batch,
        *,
        state: dict | None,
        relax: str | dict,
        nn_training: bool,
        key=None,
        monitor: Monitor | None = None,
        capture: dict | None = None,
    ) -> tuple[dict, dict]:
        batch = self._as_batch(batch)
        state = self.state if state is None else state
        seeds = _StageSeeds(key)
        bindings: dict = {}
        outputs: dict = {}
        new_state = dict(state)
        set_mode = train_mode if nn_training else eval_mode
        for index, (name, st) in enumerate(self.stages.items()):
            who = f"stage {name!r}"
            inputs = [self._lookup(r, outputs, batch, who) for r in st.inputs]
            st.check_inputs(inputs, bindings)
            if monitor is not None and monitor.shared:
                inputs = self._probe_reads(st.inputs, inputs, monitor, who)
            owner = None
            if st.params is not None:
                try:
                    owner = params[name]
                except KeyError:
                    raise KeyError(
                        f"{who}: the parameters have no entry {name!r} (they have {sorted(params)})"
                    ) from None
                if st.frozen:
                    owner = stop_gradient(owner)
                if st.has_training_flags:
                    owner = set_mode(owner)
            mode = relax if isinstance(relax, str) else relax.get(name, relax.get("*", "relaxed"))
            seed = seeds(index) if st.accepts_key else None
            if capture is not None:
                capture[name] = (owner, inputs, new_state.get(name), mode, seed)
            try:
                out, s = st.guarded_invoke(owner, inputs, mode, new_state.get(name), seed)
            except ContractError:
                raise
            except Exception as exc:
                exc.add_note(f"(in pipeline stage {name!r}: {st.type_name}, kind {st.kind!r})")
                raise
            st.check_output(out, bindings)
            if monitor is not None:
                if not all_finite(out):
                    raise self._forward_nonfinite(name, inputs)
                out = probe(out, monitor, name)
            outputs[name] = out
            if st.stateful:
                new_state[name] = s
        return outputs, new_state

    def _probe_reads(self, refs, values: list, monitor: Monitor, who: str) -> list:
        """``values`` read by ``who``, those from a stage output that several consumers read
        probed, so that the backward pass records the gradient ``who`` sends to each."""
        out = []
        for ref, v in zip(refs, values, strict=True):
            kind, name, _ = self._parse_ref(ref)
            out.append(probe(v, monitor, name, who) if name in monitor.shared else v)
        return out

    def _forward_nonfinite(self, name: str, inputs: list) -> NonFiniteError:
        st = self.stages[name]
        for ref, x in zip(st.inputs, inputs, strict=True):
            if not all_finite(x) and self._parse_ref(ref)[0] == "batch":
                return NonFiniteError(
                    f"NaN/Inf in the batch: entry {ref!r} (read by stage {name!r}) is not finite",
                    ref,
                    "input",
                )
        return NonFiniteError(
            f"NaN/Inf first appears in the forward pass at stage {name!r} ({st.type_name}, kind "
            f"{st.kind!r}): its output is not finite while its inputs are",
            name,
            "output",
        )

    def apply(
        self,
        params: dict | None,
        batch,
        *,
        state: dict | None = None,
        mode: str | None = None,
        key=None,
    ) -> tuple[dict, dict]:
        """Run every stage; return ``(outputs by stage name, new state)``.

        ``params`` defaults to ``pipe.params``, ``state`` to ``pipe.state``, ``mode`` to the
        pipeline's mode; ``key`` (an int seed or a Generator) feeds stages that take one.
        """
        relax, nn_training = self._flags(mode)
        params = self._params if params is None else params
        return self._run(params, batch, state=state, relax=relax, nn_training=nn_training, key=key)

    def __call__(self, batch, *, mode: str | None = None, key=None):
        """The output of the last stage, with the current parameters (state is not kept)."""
        outputs, _ = self.apply(None, batch, mode=mode, key=key)
        return outputs[self.order[-1]]

    def _terms(self, outputs: dict, batch, step: int, monitor: Monitor | None):
        if not self.losses:
            raise ValueError(
                "Pipeline: no loss terms; attach one with pipe.add_loss(name, fn, inputs)"
            )
        batch = self._as_batch(batch)
        total, terms, weights = 0.0, {}, {}
        for t in self.losses:
            who = f"loss term {t.name!r}"
            values = [self._lookup(r, outputs, batch, who) for r in t.inputs]
            if monitor is not None and monitor.shared:
                values = self._probe_reads(t.inputs, values, monitor, who)
            try:
                value = t.evaluate(values)
            except Exception as exc:
                if not isinstance(exc, ValueError) or "loss term" not in str(exc):
                    exc.add_note(f"(in {who}, reading {list(t.inputs)})")
                raise
            w = t.weight_at(step)
            if monitor is not None and not all_finite(value):
                raise NonFiniteError(
                    f"NaN/Inf first appears in {who}: it is {float(concrete(value))} while the "
                    f"outputs it reads ({list(t.inputs)}) are finite",
                    t.name,
                    "loss term",
                )
            terms[t.name] = value
            weights[t.name] = w
            if w != 0.0:
                total = total + w * value
        return total, terms, weights

    def _metrics(self, outputs: dict, batch) -> dict[str, float]:
        batch = self._as_batch(batch)
        out = {}
        for m in self.metrics:
            values = [
                concrete(self._lookup(r, outputs, batch, f"metric {m.name!r}")) for r in m.inputs
            ]
            out[m.name] = float(np.asarray(m.fn(*values)))
        return out

    def loss(
        self,
        params: dict,
        batch,
        *,
        state: dict | None = None,
        step: int | None = None,
        key=None,
        mode: str | None = None,
        monitor: Monitor | None = None,
    ):
        """``(total loss, aux)`` for ``ds.value_and_grad(pipe.loss, has_aux=True)``.

        ``aux`` holds ``terms`` (each term, unweighted), ``weights`` (at ``step``, default
        ``pipe.steps_done``), ``metrics`` and the new ``state``. Frozen stages get no
        gradient.

        ``mode`` defaults to the pipeline's. Differentiated while the pipeline is in
        inference mode (after ``pipe.infer()``), the relaxed stages run their hard
        operations, whose gradient is zero or meaningless upstream: that warns. Pass
        ``mode="train"`` (or ``mode="infer"`` when that is what you mean) to say which.

        ``monitor``: a :class:`Monitor`; the backward pass records in ``monitor.ct_sq`` the
        squared norm of the gradient reaching each stage's output (the report's
        ``output_grad_norms``), and the forward pass checks outputs for NaN/Inf.
        """
        if mode is None and self.mode == "infer" and params is not None:
            self._warn_if_differentiated_hard(params)
        return self._loss(
            params, batch, state=state, step=step, key=key, mode=mode, monitor=monitor
        )

    def _warn_if_differentiated_hard(self, params) -> None:
        relaxed = [n for n, s in self.stages.items() if s.kind in RELAXED_KINDS]
        if relaxed and any(isinstance(x, Tracer) for x in tree_leaves(params)):
            warnings.warn(
                f"Pipeline.loss is differentiated in inference mode (the pipeline's mode, set "
                f"by pipe.infer()): the relaxed stage(s) {relaxed} run their hard operations, "
                "so the gradient upstream of them is zero or meaningless. Pass mode='train' "
                "(or train inside `with pipe.training():`), or mode='infer' if you mean it.",
                HardModeGradientWarning,
                stacklevel=3,
            )

    def _loss(self, params, batch, *, state, step, key, mode, monitor=None):
        relax, nn_training = self._flags(mode)
        params = self._params if params is None else params
        step = self.steps_done if step is None else int(step)
        outputs, new_state = self._run(
            params,
            batch,
            state=state,
            relax=relax,
            nn_training=nn_training,
            key=key,
            monitor=monitor,
        )
        total, terms, weights = self._terms(outputs, batch, step, monitor)
        aux = {
            "terms": terms,
            "weights": weights,
            "metrics": self._metrics(outputs, batch),
            "state": new_state,
        }
        return total, aux

    # --- training ------------------------------------------------------------------------------
    def init(
        self,
        optimizer: GradientTransformation,
        *,
        params: dict | None = None,
        state: dict | None = None,
        seed: int = 0,
    ) -> TrainState:
        """A :class:`TrainState` for :meth:`step`: the optimizer state covers the
        floating-point parameters of the stages not frozen now."""
        if not isinstance(optimizer, GradientTransformation):
            raise TypeError(
                f"Pipeline.init: expected an optimizer (a diffsys.optim GradientTransformation), "
                f"got {type(optimizer).__name__}"
            )
        params = self._validate_params(self._params if params is None else params, "init")
        trainable = self.trainable_stages()
        diff, _ = split_trainable(params, trainable)
        return TrainState(
            params=params,
            opt_state=optimizer.init(diff),
            state=dict(self.state if state is None else state),
            step=0,
            optimizer=optimizer,
            seed=int(seed),
            trainable=trainable,
        )

    def step(
        self, ts: TrainState, batch, *, telemetry: Telemetry | bool | None = None
    ) -> tuple[TrainState, StepReport]:
        """One training step (training mode): loss and gradients, the optimizer update, and
        the telemetry from those same gradients. Returns ``(new train state, report)``.

        ``telemetry``: ``None`` records into ``pipe.telemetry``; a :class:`Telemetry` records
        there; ``False`` records nothing (the forward NaN checks and probes are skipped too).
        """
        if ts.trainable != self.trainable_stages():
            raise ValueError(
                f"Pipeline.step: the trainable stages changed since init ({list(ts.trainable)} "
                f"-> {list(self.trainable_stages())}, by freeze/unfreeze): make a new train "
                "state with pipe.init(optimizer, params=ts.params)"
            )
        tel = self._telemetry_of(telemetry, "step")
        monitor = Monitor(self._shared_outputs()) if tel is not None else None
        diff, rest = split_trainable(ts.params, ts.trainable)
        key = (ts.seed * 1_000_003 + ts.step) % 2**63

        def objective(diff):
            return self._loss(
                combine_trainable(diff, rest),
                batch,
                state=ts.state,
                step=ts.step,
                key=key,
                mode="train",
                monitor=monitor,
            )

        grad_sq: dict[str, float] = {}
        try:
            (loss, aux), grads = value_and_grad(objective, has_aux=True)(diff)
            if monitor is not None:
                grad_sq = {n: sq_norm(grads[n]) for n in ts.trainable}
                self._check_backward(grads, grad_sq, monitor)
        except NonFiniteError as exc:
            if tel is None or tel.nonfinite == "raise":
                raise
            warnings.warn(f"step {ts.step} skipped: {exc}", RuntimeWarning, stacklevel=2)
            report = StepReport(step=ts.step, loss=float("nan"), warnings=[str(exc)], skipped=True)
            tel.record(report)
            return _replace_ts(ts, step=ts.step + 1), report
        output_grad_norms = None
        if monitor is not None:
            output_grad_norms = {
                n: monitor.ct_sq[n] ** 0.5 for n in self.order if n in monitor.ct_sq
            }
        return self._apply(
            ts, diff, rest, grads, grad_sq, loss, aux, output_grad_norms, tel
        )

    def apply_gradients(
        self,
        ts: TrainState,
        grads: dict,
        *,
        loss: float,
        terms: dict[str, float],
        weights: dict[str, float],
        metrics: dict[str, float],
        state: dict | None = None,
        output_grad_norms: dict[str, float] | None = None,
        telemetry: Telemetry | bool | None = None,
    ) -> tuple[TrainState, StepReport]:
        """The second half of :meth:`step` for gradients computed elsewhere (e.g. summed over
        shards by :mod:`diffsys.distributed`): the optimizer update of the trainable stages
        from ``grads`` (a dict over ``ts.trainable`` of the trainable floating-point leaves,
        as :func:`split_trainable` gives), the new ``state`` (default: unchanged), and the
        :class:`StepReport` recorded as :meth:`step` records it.

        >>> import numpy as np
        >>> import diffsys as ds
        >>> from diffsys import nn, optim, pipeline as pl
        >>> pipe = pl.Pipeline([pl.Stage("lin", nn.Linear(2, 1, key=0))],
        ...     losses=[pl.Loss("mse", lambda p, y: nn.mse(p[:, 0], y), ("lin", "y"))])
        >>> ts = pipe.init(optim.sgd(0.1))
        >>> batch = {"x": np.ones((4, 2)), "y": np.zeros(4)}
        >>> diff, rest = pl.split_trainable(ts.params, ts.trainable)
        >>> f = lambda d: pipe.loss(pl.combine_trainable(d, rest), batch, mode="train")
        >>> (value, aux), g = ds.value_and_grad(f, has_aux=True)(diff)
        >>> ts2, report = pipe.apply_gradients(ts, g, loss=float(value), terms=aux["terms"],
        ...     weights=aux["weights"], metrics=aux["metrics"], telemetry=False)
        >>> ts2.step, report.loss == float(value)
        (1, True)
        """
        if ts.trainable != self.trainable_stages():
            raise ValueError(
                f"Pipeline.apply_gradients: the trainable stages changed since init "
                f"({list(ts.trainable)} -> {list(self.trainable_stages())}): make a new train "
                "state with pipe.init(optimizer, params=ts.params)"
            )
        tel = self._telemetry_of(telemetry, "apply_gradients")
        diff, rest = split_trainable(ts.params, ts.trainable)
        grad_sq = {n: sq_norm(grads[n]) for n in ts.trainable} if tel is not None else {}
        aux = {
            "terms": terms,
            "weights": weights,
            "metrics": metrics,
            "state": ts.state if state is None else state,
        }
        return self._apply(ts, diff, rest, grads, grad_sq, loss, aux, output_grad_norms, tel)

    def _telemetry_of(self, telemetry, where: str) -> Telemetry | None:
        tel = self.telemetry if telemetry is None else telemetry
        if tel is False:
            return None
        if not isinstance(tel, Telemetry):
            raise TypeError(f"Pipeline.{where}: telemetry must be a Telemetry, None or False")
        return tel if tel.enabled else None

    def _apply(self, ts, diff, rest, grads, grad_sq, loss, aux, output_grad_norms, tel):
        updates, opt_state = ts.optimizer.update(grads, ts.opt_state, diff)
        new_diff = apply_updates(diff, updates)
        report = StepReport(
            step=ts.step,
            loss=float(loss),
            terms={k: float(v) for k, v in aux["terms"].items()},
            weights=dict(aux["weights"]),
            metrics=dict(aux["metrics"]),
        )
        if tel is not None:
            for name in ts.trainable:
                g2, p2 = grad_sq[name], sq_norm(diff[name])
                report.grad_norms[name] = g2**0.5
                report.param_norms[name] = p2**0.5
                report.update_ratios[name] = sq_norm(updates[name]) ** 0.5 / max(
                    p2**0.5, np.finfo(float).tiny
                )
            report.output_grad_norms = dict(output_grad_norms or {})
            tel.record(report)
        self.steps_done = ts.step + 1
        new_ts = _replace_ts(
            ts,
            params=combine_trainable(new_diff, rest),
            opt_state=opt_state,
            state=aux["state"],
            step=ts.step + 1,
        )
        return new_ts, report

    def _check_backward(self, grads: dict, grad_sq: dict, monitor: Monitor) -> None:
        """Raise :class:`NonFiniteError` naming the stage whose backward pass first made a
        NaN/Inf (the stages are visited in backward order)."""
        bad_params = {n for n, sq in grad_sq.items() if not finite_from_sq(sq, grads[n])}
        if not bad_params and all(monitor.ct_finite.values()):
            return
        readers = self._consumers()
        for name in reversed(self.order):
            st = self.stages[name]
            if not monitor.ct_finite.get(name, True):
                raise self._backward_nonfinite(name, readers.get(name, []), monitor)
            if name in bad_params:
                bad = [n for n, g in named_leaves(grads[name], name) if not all_finite(g)]
                raise NonFiniteError(
                    f"NaN/Inf first appears in the backward pass of stage {name!r} "
                    f"({st.type_name}, kind {st.kind!r}): the gradient of its parameters "
                    f"{bad[:4]} is not finite while the gradient reaching its output is",
                    name,
                    "parameter gradient",
                )

    def _backward_nonfinite(self, name: str, readers: list, monitor: Monitor) -> NonFiniteError:
        """The error for a non-finite gradient reaching stage ``name``'s output while every
        gradient downstream is finite: it names the consumer whose backward pass made it
        (with several consumers, the one whose own gradient to ``name`` is not finite)."""
        labels = [f"{kind} {who!r}" for kind, who in readers]
        head = (
            "NaN/Inf first appears in the backward pass in the gradient reaching stage "
            f"{name!r}'s output"
        )
        if len(readers) > 1:
            edges = monitor.edge_finite
            bad = [i for i, lab in enumerate(labels) if not edges.get((lab, name), True)]
        else:
            bad = list(range(len(readers)))
        if not bad:
            if not readers:
                return NonFiniteError(head, name, "output gradient", upstream=name)
            return NonFiniteError(
                f"{head}: each of its consumers ({', '.join(labels)}) sent a finite gradient, "
                "but their sum overflows; scale the losses or the stage outputs down",
                name,
                "output gradient",
                upstream=name,
            )
        fine = [lab for i, lab in enumerate(labels) if i not in bad]
        return NonFiniteError(
            f"{head}, made by the backward pass of {', '.join(labels[i] for i in bad)} (the "
            "gradients downstream of it are finite"
            + (f"; the gradient from {', '.join(fine)} is finite too" if fine else "")
            + ")",
            readers[bad[0]][1],
            "output gradient",
            upstream=name,
        )

    def _consumers(self) -> dict[str, list[tuple[str, str]]]:
        """Per stage, what reads its output: ``("stage", name)`` and ``("loss term", name)``
        pairs, once each, stages first in pipeline order."""
        out: dict[str, list[tuple[str, str]]] = {}
        readers = [("stage", n, s.inputs) for n, s in self.stages.items()]
        readers += [("loss term", t.name, t.inputs) for t in self.losses]
        for kind, who, refs in readers:
            for ref in refs:
                parsed = self._parse_ref(ref)
                if parsed is not None and parsed[0] == "stage":
                    seen = out.setdefault(parsed[1], [])
                    if (kind, who) not in seen:
                        seen.append((kind, who))
        return out

    def _shared_outputs(self) -> frozenset[str]:
        """The stages whose output several consumers (stages, loss terms) read."""
        return frozenset(n for n, r in self._consumers().items() if len(r) > 1)

    # --- reports and persistence (implemented in diagnostics and serialize) --------------------
    def mismatch(self, batch, *, params=None, state=None, step=None, key=None):
        """Per relaxed stage, the distance between its relaxed and hard outputs, and the final
        loss and metrics with all stages relaxed, all hard, and only that stage hard.
        See :class:`~diffsys.pipeline.MismatchReport`."""
        from .diagnostics import mismatch

        return mismatch(self, batch, params=params, state=state, step=step, key=key)

    def check_grads(self, batch, **kwargs):
        """Finite-difference checks stage by stage; see
        :func:`diffsys.pipeline.diagnostics.check_grads`."""
        from .diagnostics import check_grads

        return check_grads(self, batch, **kwargs)

    def save(self, directory, *, params=None, state=None, step=None, metadata=None) -> None:
        """Save config (JSON) and parameters and state (safetensors) to ``directory``."""
        from .serialize import save

        save(self, directory, params=params, state=state, step=step, metadata=metadata)

    @classmethod
    def load(cls, directory) -> Pipeline:
        """Rebuild a saved pipeline from its registered stage types."""
        from .serialize import load

        return load(directory)

    def summary(self) -> str:
        """A text table of the stages: type, kind, inputs, parameter count, flags, and the
        contract ``input specs -> output spec`` (``(B, 1, 8, 8) float64``; ``any`` where a
        spec is not declared)."""
        rows = []
        for name, s in self.stages.items():
            n = 0
            if name in self._params:
                n = sum(
                    int(np.size(x)) for x in tree_leaves(self._params[name]) if is_inexact_array(x)
                )
            flags = ",".join(
                f
                for f, on in (
                    ("frozen", s.frozen),
                    ("checkpoint", s.checkpoint),
                    ("stateful", s.stateful),
                )
                if on
            )
            rows.append(
                (name, s.type_name, s.kind, ",".join(s.inputs), str(n), flags, _contract_text(s))
            )
        head = ("stage", "type", "kind", "inputs", "params", "flags", "contract")
        lines = [table(head, rows)]
        if self.losses:
            lines.append(
                "losses: "
                + ", ".join(f"{t.name}({','.join(t.inputs)}) x {t.weight!r}" for t in self.losses)
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Pipeline({list(self.stages)}, mode={self.mode!r})"


def _spec_text(spec) -> str:
    """A spec as a reader writes it: ``(B, 1, 8, 8) float64``; ``any`` when undeclared."""
    if spec is None:
        return "any"
    if isinstance(spec, Spec):
        if spec.shape is None:
            shape = "any shape"
        else:
            dims = ["..." if d is Ellipsis else "?" if d is None else str(d) for d in spec.shape]
            shape = f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"
        dtype = spec.dtype if isinstance(spec.dtype, str | None) else spec.dtype.name
        return shape if dtype is None else f"{shape} {dtype}"
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k}: {_spec_text(v)}" for k, v in spec.items()) + "}"
    return "(" + ", ".join(_spec_text(v) for v in spec) + ")"


def _contract_text(stage: Stage) -> str:
    """``inputs -> output`` of a stage's contract; ``any -> any`` when nothing is declared."""
    return f"{', '.join(map(_spec_text, stage.input_spec))} -> {_spec_text(stage.output_spec)}"


class _StageSeeds:
    """The int seed each stage that takes ``key=`` gets, from the pipeline call's ``key``: an
    int (stage ``i`` gets a seed mixed from it and ``i``: cheap, and the same on every call
    with that key) or a Generator (one draw per stage)."""

    __slots__ = ("base", "rng")

    def __init__(self, key) -> None:
        self.base = self.rng = None
        if key is None:
            return
        if isinstance(key, np.random.Generator):
            self.rng = key
        elif isinstance(key, int | np.integer) and not isinstance(key, bool):
            self.base = int(key)
        else:
            raise TypeError(
                f"Pipeline: key must be an int seed or a numpy.random.Generator, got "
                f"{type(key).__name__}"
            )

    def __call__(self, index: int) -> int | None:
        if self.rng is not None:
            return int(self.rng.integers(2**63))
        if self.base is None:
            return None
        return (self.base * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9) % 2**63


def _replace_ts(ts: TrainState, **changes) -> TrainState:
    return dataclasses.replace(ts, **changes)


def _topological_order(stages: list[Stage]) -> list[str]:
    """Stage names in an order where every stage follows the stages it reads (stable)."""
    names = {s.name for s in stages}
    deps = {
        s.name: {r.partition(".")[0] if r not in names else r for r in s.inputs} & names
        for s in stages
    }
    order: list[str] = []
    done: set[str] = set()
    remaining = [s.name for s in stages]
    while remaining:
        for name in remaining:
            if deps[name] <= done:
                order.append(name)
                done.add(name)
                remaining.remove(name)
                break
        else:
            raise ValueError(
                f"Pipeline: the stages {remaining} read each other in a cycle "
                + "; ".join(f"{n} reads {sorted(deps[n] - done)}" for n in remaining)
            )
    return order


def split_trainable(params: dict, trainable) -> tuple[dict, dict]:
    """``(diff, rest)`` of a pipeline's per-stage ``params``: the floating-point leaves of the
    ``trainable`` stages, and everything else (``rest[name]`` is None for a stage whose
    leaves all went to ``diff``). :func:`combine_trainable` puts them back together."""
    diff, rest = {}, {}
    for name, tree in params.items():
        if name not in trainable:
            rest[name] = tree
        elif all(is_inexact_array(x) for x in tree_leaves(tree)):
            diff[name], rest[name] = tree, None  # the common case: no partition needed
        else:
            diff[name], rest[name] = partition(tree, is_inexact_array)
    return diff, rest


def combine_trainable(diff: dict, rest: dict) -> dict:
    """The per-stage parameters that :func:`split_trainable` split into ``diff`` and ``rest``."""
    out = {}
    for name, tree in rest.items():
        if name not in diff:
            out[name] = tree
        else:
            out[name] = diff[name] if tree is None else combine(diff[name], tree)
    return out
