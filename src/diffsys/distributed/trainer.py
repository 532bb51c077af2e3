"""Data-parallel trainers: :class:`Trainer` for a loss function, :class:`PipelineTrainer` for a
:class:`diffsys.pipeline.Pipeline` (its telemetry included).

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

from ..core.tracer import concrete
from ..optim.base import GradientTransformation, apply_updates, global_norm
from ..pipeline import NonFiniteError, Pipeline, StepReport, Telemetry
from ..pipeline.pipeline import combine_trainable, split_trainable
from .data_parallel import DataParallel, RoundResult, plain_objective

__all__ = ["PipelineTrainer", "RoundReport", "Trainer"]


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
    """``objective(diff, batch, step)`` of a pipeline: its training loss with the trainable
    floating-point leaves ``diff`` and everything else fixed; terms and metrics as aux."""

    def __init__(self, pipe: Pipeline, rest: dict, state: dict, seed: int) -> None:
        self.pipe, self.rest, self.state, self.seed = pipe, rest, state, seed

    def __call__(self, diff, batch, step):
        params = combine_trainable(diff, self.rest)
        key = (self.seed * 1_000_003 + step) % 2**63
        total, aux = self.pipe.loss(
            params, batch, state=self.state, step=step, key=key, mode="train"
        )
        out = {f"term.{k}": float(concrete(v)) for k, v in aux["terms"].items()}
        out.update({f"metric.{k}": float(concrete(v)) for k, v in aux["metrics"].items()})
        out.update({f"weight.{k}": float(concrete(v)) for k, v in aux["weights"].items()})
        return total, out


class PipelineTrainer:
    """Data-parallel training of a :class:`~diffsys.pipeline.Pipeline`: the counterpart of
    ``pl.Trainer`` whose :meth:`step` runs one round over the shards on ``client``.

    The pipeline (its stage code and frozen parameters) goes to the workers once; per round
    only the trainable floating-point leaves travel. Telemetry: each step records a
    :class:`~diffsys.pipeline.StepReport` (loss, terms, weights, metrics as shard-weighted
    means; per-stage gradient and parameter norms and update ratios from the reduced
    gradient) into ``pipe.telemetry``, and the pipeline's parameters follow, as with
    ``pl.Trainer``. Stages with running state (e.g. batch statistics) are refused: their
    state could not be merged across shards. Every shard gets the same step key, so stages
    that draw random numbers draw the same ones on each shard.
    """

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
        self.pipeline = pipeline
        self.ts = pipeline.init(optimizer, seed=seed)
        if any(True for _ in _leaves(self.ts.state)):
            raise NotImplementedError(
                "distributed.PipelineTrainer: the pipeline has running state (stages "
                f"{sorted(k for k, v in self.ts.state.items() if _leaves(v))}); state cannot be "
                "merged across shards yet: train it with pl.Trainer"
            )
        self.telemetry = telemetry
        self._diff, rest = split_trainable(self.ts.params, self.ts.trainable)
        self.engine = DataParallel(
            _PipelineObjective(pipeline, rest, self.ts.state, seed),
            self._diff,
            shards,
            client=client,
            n_shards=n_shards,
        )
        self._rest = rest
        self.history_rounds: list[RoundReport] = []

    @property
    def params(self) -> dict:
        return self.ts.params

    def _telemetry(self) -> Telemetry | None:
        tel = self.pipeline.telemetry if self.telemetry is None else self.telemetry
        if tel is False or not isinstance(tel, Telemetry) or not tel.enabled:
            return None
        return tel

    def step(self) -> StepReport:
        """One round over all shards and one optimizer update; the report as ``pl.Trainer``'s."""
        ts = self.ts
        diff = self._diff
        res = self.engine.round(diff, ts.step)
        self._check_finite(res)
        t0 = _now()
        updates, opt_state = ts.optimizer.update(res.grads, ts.opt_state, diff)
        new_diff = apply_updates(diff, updates)
        update_s = _now() - t0
        aux = res.aux
        report = StepReport(
            step=ts.step,
            loss=res.loss,
            terms={k[5:]: v for k, v in aux.items() if k.startswith("term.")},
            weights={k[7:]: v for k, v in aux.items() if k.startswith("weight.")},
            metrics={k[7:]: v for k, v in aux.items() if k.startswith("metric.")},
        )
        tel = self._telemetry()
        if tel is not None:
            for name in ts.trainable:
                pn = float(global_norm(diff[name]))
                report.grad_norms[name] = float(global_norm(res.grads[name]))
                report.param_norms[name] = pn
                report.update_ratios[name] = float(global_norm(updates[name])) / max(
                    pn, np.finfo(float).tiny
                )
            tel.record(report)
        self._diff = new_diff
        self.ts.params = combine_trainable(new_diff, self._rest)
        self.ts.opt_state = opt_state
        self.ts.step = ts.step + 1
        self.pipeline.params = self.ts.params
        self.pipeline.steps_done = self.ts.step
        grad_norm = float(global_norm(res.grads))
        self.history_rounds.append(_report(report.step, res, grad_norm, update_s))
        return report

    def _check_finite(self, res: RoundResult) -> None:
        """Refuse a round whose reduced gradient is not finite (no update applied), naming the
        stages, last first (the backward order), as ``pl.Trainer`` does."""
        bad = [n for n in reversed(self.pipeline.order) if n in res.grads
               and not np.isfinite(float(global_norm(res.grads[n])))]
        if bad:
            raise NonFiniteError(
                f"distributed.PipelineTrainer: the gradient of stage(s) {bad} summed over the "
                f"{res.n_shards} shards is not finite at step {self.ts.step} (loss "
                f"{res.loss}); no update applied. Find the shard with dist.DataParallel.round "
                "on each shard alone, or pl.Trainer on it, which names where the NaN starts",
                bad[0],
                "parameter gradient",
            )

    def fit(self, rounds: int) -> list[StepReport]:
        """``rounds`` steps; their reports."""
        return [self.step() for _ in range(rounds)]

    def close(self) -> None:
        self.engine.close()


def _leaves(tree) -> list:
    from ..core.pytree import tree_leaves

    return tree_leaves(tree)
