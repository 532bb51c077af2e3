"""Data-parallel trainers: :class:`Trainer` for a loss function; for a
:class:`diffsys.pipeline.Pipeline`, ``pl.Trainer(..., client=)`` runs on
:class:`PipelineRounds` (:class:`PipelineTrainer` is the same trainer under this package's
name), its telemetry included.

Both step the optimizer on the driver with the reduced gradient, so a run over any number of
shards follows the single-process run on the concatenated data (float64: within rounding,
about 1e-15 relative per step).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.pytree import tree_flatten, tree_map, tree_unflatten
from ..core.tracer import concrete
from ..core.transforms import value_and_grad
from ..optim.base import GradientTransformation, apply_updates, global_norm
from ..pipeline import (
    Monitor,
    NonFiniteError,
    Pipeline,
    Telemetry,
    combine_trainable,
    split_trainable,
)
from ..pipeline import Trainer as PlTrainer
from .data_parallel import DataParallel, RoundResult, plain_objective
from .errors import WorkerError

__all__ = ["PipelineRounds", "PipelineTrainer", "RoundReport", "Trainer"]


@dataclass
class RoundReport:
    """What one data-parallel step did and cost (see :class:`RoundResult` for the times)."""

    step: int
    loss: float
    grad_norm: float
    aux: dict
    compute_s: float
    reduce_s: float
    update_s: float
    wall_s: float
    bytes: int

    @property
    def transfer_s(self) -> float:
        """Transfer and scheduling: the round's wall time less compute, reduce and update."""
        return max(self.wall_s - self.compute_s - self.reduce_s - self.update_s, 0.0)


def _report(step: int, res: RoundResult, grad_norm: float, update_s: float) -> RoundReport:
    return RoundReport(
        step=step,
        loss=res.loss,
        grad_norm=grad_norm,
        aux=res.aux,
        compute_s=res.compute_s,
        reduce_s=res.reduce_s,
        update_s=update_s,
        wall_s=res.wall_s + update_s,
        bytes=res.bytes_per_round,
    )


class Trainer:
    """Train ``params`` to minimise ``loss(params, batch)`` over shards on a Dask ``client``.

    ``shards``: ``loader(i) -> batch`` (run on the workers, with ``n_shards``) or a sequence of
    batches (sent once). Each :meth:`step` is one round over all the data.

    >>> from diffsys import optim, distributed as dist          # doctest: +SKIP
    >>> with dist.local_cluster(2) as client:                   # doctest: +SKIP
    ...     tr = dist.Trainer(loss, params, optim.adam(1e-2), load_shard, n_shards=4,
    ...                       client=client)
    ...     reports = tr.fit(100)
    """

    def __init__(
        self,
        loss: Callable,
        params,
        optimizer: GradientTransformation,
        shards: Callable[[int], Any] | Sequence,
        *,
        client,
        n_shards: int | None = None,
        has_aux: bool = False,
        reduction: str = "mean",
    ) -> None:
        self.engine = DataParallel(
            plain_objective(loss, has_aux=has_aux),
            params,
            shards,
            client=client,
            n_shards=n_shards,
            reduction=reduction,
        )
        self.optimizer = optimizer
        self.params = params
        self.opt_state = optimizer.init(params)
        self.steps_done = 0
        self.history: list[RoundReport] = []

    def step(self) -> RoundReport:
        """One round: gradients from every shard, reduced, one optimizer update."""
        res = self.engine.round(self.params, self.steps_done)
        t0 = _now()
        updates, self.opt_state = self.optimizer.update(res.grads, self.opt_state, self.params)
        self.params = apply_updates(self.params, updates)
        gn = float(global_norm(res.grads))
        report = _report(self.steps_done, res, gn, _now() - t0)
        self.steps_done += 1
        self.history.append(report)
        return report

    def fit(
        self,
        rounds: int,
        *,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
    ) -> list[RoundReport]:
        """``rounds`` steps; with ``checkpoint_dir`` and ``checkpoint_every=N`` it saves a
        checkpoint (:meth:`save`) after every N-th step."""
        out = []
        for _ in range(rounds):
            out.append(self.step())
            if checkpoint_dir is not None and checkpoint_every and (
                self.steps_done % checkpoint_every == 0
            ):
                self.save(checkpoint_dir)
        return out

    def save(self, directory: str | os.PathLike) -> None:
        """Parameters, optimizer state and step count in the atomic safetensors checkpoint
        format (``diffsys.train.save_checkpoint``); :meth:`restore` continues bit-identically."""
        from ..train import save_checkpoint

        save_checkpoint(
            directory, {"params": self.params, "opt_state": self.opt_state}, step=self.steps_done
        )

    def restore(self, directory: str | os.PathLike) -> None:
        """Continue from :meth:`save`'s checkpoint (same loss, shards and optimizer)."""
        from ..train import load_checkpoint

        tree, info = load_checkpoint(
            directory, like={"params": self.params, "opt_state": self.opt_state}
        )
        self.params, self.opt_state = tree["params"], tree["opt_state"]
        self.steps_done = info.step

    def close(self) -> None:
        self.engine.close()


def _now() -> float:
    import time

    return time.perf_counter()


class _PipelineObjective:
    """A pipeline's part of a round on one shard: the training loss with the trainable
    floating-point leaves ``diff`` (and the state it gets each round) and everything else
    fixed; returns, weighted by the shard's share ``w``, the gradient, the new stage state
    (for a shard-weighted mean), the terms, metrics and loss weights, and ``w**2`` times the
    squared norm of the gradient reaching each stage's output (their sum over shards is the
    full batch's when stage outputs are per-example rows)."""

    def __init__(self, pipe: Pipeline, rest: dict, seed: int) -> None:
        self.pipe, self.rest, self.seed = pipe, rest, seed

    def shard_value_and_grad(self, payload, batch, step, weight):
        state = payload["state"]
        key = (self.seed * 1_000_003 + step) % 2**63
        monitor = Monitor()

        def objective(diff):
            return self.pipe.loss(
                combine_trainable(diff, self.rest), batch, state=state, step=step, key=key,
                mode="train", monitor=monitor,
            )

        (total, aux), grads = value_and_grad(objective, has_aux=True)(payload["diff"])
        new_state = aux["state"]
        out = {
            "diff": tree_map(lambda g: weight * np.asarray(g), grads),
            "state": tree_map(
                lambda x: weight * np.asarray(concrete(x), dtype=np.float64), new_state
            ),
        }
        scalars = {"loss": weight * float(concrete(total))}
        for group in ("terms", "metrics", "weights"):
            for k, v in aux[group].items():
                scalars[f"aux.{group}.{k}"] = weight * float(concrete(v))
        for name, sq in monitor.ct_sq.items():
            scalars[f"aux.out_sq.{name}"] = weight * weight * sq
        return out, scalars


class PipelineRounds:
    """The distributed half of ``pl.Trainer(..., client=)``: the round engine for a pipeline.

    Made by ``pl.Trainer`` (not usually by hand). The pipeline (its stage code and frozen
    parameters) goes to the workers once; per round the trainable floating-point leaves and
    the stage state travel. :meth:`step` runs one round over every shard and hands the
    reduced gradient to :meth:`Pipeline.apply_gradients`, the same update and telemetry path
    as a single-process step.

    Reduced across shards (weights ``n_i / N``): the loss, terms, metrics (so metrics must be
    per-example means to equal the single-process ones), the gradient, the squared norms of
    the gradients reaching each stage output (``output_grad_norms``: equal to the single
    process when stage outputs are per-example rows of the batch), and the new state of
    stateful stages: each shard starts the round from the same state, and the new state is
    the shard-weighted mean of the shards' new states (integer leaves, such as counters,
    rounded). That is exact for state that is an average over examples (running means of
    inputs); for batch statistics (BatchNorm), each shard normalizes with its own statistics,
    as in PyTorch's DDP without SyncBatchNorm, and the merged running variance is the mean of
    the shards' variances (without the spread between shard means).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        ts,
        shards: Callable[[int], Any] | Sequence,
        *,
        client,
        n_shards: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        diff, rest = split_trainable(ts.params, ts.trainable)
        self._trainable = ts.trainable
        self._state_leaves, self._state_def = tree_flatten(ts.state)
        self.engine = DataParallel(
            _PipelineObjective(pipeline, rest, ts.seed),
            {"diff": diff, "state": ts.state},
            shards,
            client=client,
            n_shards=n_shards,
        )
        self.history: list[RoundReport] = []

    def step(self, ts, telemetry=None):
        """One round and one update: ``(new train state, StepReport)``."""
        if ts.trainable != self._trainable:
            raise ValueError(
                "pl.Trainer(client=): the trainable stages changed since the trainer was made "
                f"({list(self._trainable)} -> {list(ts.trainable)}); make a new trainer"
            )
        diff, _ = split_trainable(ts.params, ts.trainable)
        try:
            res = self.engine.round({"diff": diff, "state": ts.state}, ts.step)
        except WorkerError as exc:
            if exc.remote_type != "NonFiniteError" or "stage" not in exc.remote_attrs:
                raise
            a = exc.remote_attrs
            raise NonFiniteError(
                f"{exc.where}: {exc.error.split(': ', 1)[-1]}; no update applied",
                a["stage"],
                a.get("where", ""),
                upstream=a.get("upstream"),
            ) from exc
        grads = res.grads["diff"]
        self._check_finite(res, grads, ts.step)
        aux = res.aux
        group = lambda g: {k[len(g) + 1:]: v for k, v in aux.items() if k.startswith(g + ".")}  # noqa: E731
        out_sq = group("out_sq")
        t0 = _now()
        new_ts, report = self.pipeline.apply_gradients(
            ts,
            grads,
            loss=res.loss,
            terms=group("terms"),
            weights=group("weights"),
            metrics=group("metrics"),
            state=self._merged_state(res.grads["state"]),
            output_grad_norms={
                n: out_sq[n] ** 0.5 for n in self.pipeline.order if n in out_sq
            },
            telemetry=telemetry,
        )
        update_s = _now() - t0
        self.history.append(_report(report.step, res, float(global_norm(grads)), update_s))
        return new_ts, report

    def _merged_state(self, summed):
        """The shard-weighted mean of the new states, in the state's own dtypes."""
        leaves = tree_flatten(summed)[0]
        out = []
        for old, new in zip(self._state_leaves, leaves, strict=True):
            dtype = np.asarray(old).dtype
            if not np.issubdtype(dtype, np.inexact):
                new = np.rint(new)
            out.append(np.asarray(new).astype(dtype))
        return tree_unflatten(self._state_def, out)

    def _check_finite(self, res: RoundResult, grads: dict, step: int) -> None:
        """Refuse a round whose reduced gradient is not finite (no update applied), naming the
        stages, last first (the backward order), as ``pl.Trainer`` does."""
        bad = [n for n in reversed(self.pipeline.order) if n in grads
               and not np.isfinite(float(global_norm(grads[n])))]
        if bad:
            raise NonFiniteError(
                f"pl.Trainer(client=): the gradient of stage(s) {bad} summed over the "
                f"{res.n_shards} shards is not finite at step {step} (loss "
                f"{res.loss}); no update applied. Find the shard with dist.DataParallel.round "
                "on each shard alone, or pl.Trainer on it, which names where the NaN starts",
                bad[0],
                "parameter gradient",
            )

    def close(self) -> None:
        self.engine.close()


class PipelineTrainer(PlTrainer):
    """``pl.Trainer(pipeline, optimizer, client=client, shards=shards)``, under the name of
    this package: data-parallel training of a :class:`~diffsys.pipeline.Pipeline` whose
    :meth:`step` (no batch) runs one round over the shards on ``client``. Everything else
    (telemetry, ``save``/``load``, per-stage learning rates) is ``pl.Trainer``'s."""

    def __init__(
        self,
        pipeline: Pipeline,
        optimizer: GradientTransformation,
        shards: Callable[[int], Any] | Sequence,
        *,
        client,
        n_shards: int | None = None,
        seed: int = 0,
        telemetry: Telemetry | bool | None = None,
    ) -> None:
        super().__init__(
            pipeline, optimizer, seed=seed, telemetry=telemetry, client=client, shards=shards,
            n_shards=n_shards,
        )
