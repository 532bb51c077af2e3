"""``Trainer``: the stateful convenience around :meth:`Pipeline.step`.

It holds the :class:`TrainState`, writes the new parameters and state back into the
pipeline after every step (so ``pipe(batch)``, ``pipe.mismatch`` and ``pipe.save`` see them)
and collects the reports in ``pipe.telemetry``. :meth:`Trainer.save` and
:meth:`Trainer.load` carry the whole training state across processes: a resumed run is
bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..optim.base import GradientTransformation, chain
from ..train.progress import make_progress
from .per_stage import scale_stages
from .pipeline import Pipeline, TrainState
from .telemetry import StepReport, Telemetry

__all__ = ["Trainer"]


class Trainer:
    """Train ``pipeline`` with ``optimizer``; ``trainer.step(batch) -> StepReport``.

    >>> import numpy as np
    >>> from diffsys import nn, optim, pipeline as pl
    >>> pipe = pl.Pipeline([pl.Stage("lin", nn.Linear(2, 1, key=0))],
    ...                    losses=[pl.Loss("mse", lambda p, y: nn.mse(p[:, 0], y), ("lin", "y"))])
    >>> trainer = pl.Trainer(pipe, optim.sgd(0.1))
    >>> x = np.random.default_rng(0).normal(size=(32, 2)); y = x @ np.array([1.0, -1.0])
    >>> first = trainer.step({"x": x, "y": y}).loss
    >>> for _ in range(50):
    ...     report = trainer.step({"x": x, "y": y})
    >>> report.loss < first / 10, sorted(report.grad_norms)
    (True, ['lin'])

    ``stage_lr_scale={"blur": 5.0}`` multiplies the named stages' updates after the
    optimizer's (a per-stage learning rate: ``optim.chain(optimizer,
    pl.scale_stages(...))``); for a different optimizer per stage pass
    ``pl.per_stage({...})`` as ``optimizer``.

    **Data-parallel** (``client=`` a Dask client, the ``distributed`` extra): the data lives
    on the workers as ``shards`` (a ``loader(i) -> batch`` run there, with ``n_shards``, or a
    sequence of batches sent once), and ``step()`` (no batch) is one round over all of them
    through :class:`diffsys.distributed.PipelineRounds`: the parameters go out once, each
    worker computes the gradient on its shards, the gradients come back summed in a fixed
    order (shard-weighted), and the update and telemetry are this trainer's own (via
    :meth:`Pipeline.apply_gradients`), so the run equals the single-process run on the
    concatenated data within rounding. ``fit(rounds)`` takes a number of rounds;
    ``history_rounds`` has each round's times and bytes; ``close()`` releases the shards.
    docs/distributed.md has the details (stateful stages, what is reduced how).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        optimizer: GradientTransformation,
        *,
        seed: int = 0,
        telemetry: Telemetry | bool | None = None,
        stage_lr_scale: Mapping[str, float] | None = None,
        client=None,
        shards: Callable[[int], Any] | Sequence | None = None,
        n_shards: int | None = None,
    ) -> None:
        if stage_lr_scale:
            unknown = sorted(set(stage_lr_scale) - set(pipeline.stages))
            if unknown:
                raise ValueError(
                    f"Trainer: stage_lr_scale names {unknown}, which are not stages; the "
                    f"stages are {list(pipeline.stages)}"
                )
            optimizer = chain(optimizer, scale_stages(stage_lr_scale))
        self.pipeline = pipeline
        self.telemetry = telemetry
        self.ts: TrainState = pipeline.init(optimizer, seed=seed)
        self.rounds = None
        if client is not None:
            if shards is None:
                raise TypeError(
                    "Trainer(client=...): give shards= (a loader(i) -> batch run on the "
                    "workers, with n_shards=, or a list of batches): the data lives on the "
                    "workers, step() takes no batch"
                )
            # diffsys.distributed sits above this layer and needs an optional extra: imported
            # only here, when a client is given.
            from ..distributed.trainer import PipelineRounds

            self.rounds = PipelineRounds(
                pipeline, self.ts, shards, client=client, n_shards=n_shards
            )
        elif shards is not None or n_shards is not None:
            raise TypeError("Trainer: shards= and n_shards= need client= (a Dask client)")

    @property
    def history_rounds(self) -> list:
        """Per data-parallel round (``client=``), its costs: a
        :class:`diffsys.distributed.RoundReport` (compute, reduce, transfer, bytes)."""
        return [] if self.rounds is None else self.rounds.history

    def close(self) -> None:
        """Release the shards on the cluster (``client=``); nothing otherwise."""
        if self.rounds is not None:
            self.rounds.close()

    @property
    def params(self) -> dict:
        return self.ts.params

    @property
    def history(self) -> list[StepReport]:
        tel = self.pipeline.telemetry if self.telemetry is None else self.telemetry
        return tel.history if isinstance(tel, Telemetry) else []

    def step(self, batch=None) -> StepReport:
        """One training step on ``batch`` (in training mode whatever ``pipeline.mode`` is);
        the pipeline's parameters and state follow. With ``client=``: one round over the
        shards on the workers, and no batch."""
        if self.rounds is not None:
            if batch is not None:
                raise TypeError(
                    "Trainer(client=...).step(): the data lives on the workers as shards; "
                    "call step() without a batch"
                )
            self.ts, report = self.rounds.step(self.ts, telemetry=self.telemetry)
        elif batch is None:
            raise TypeError("Trainer.step(batch): a batch is needed (or make it with client=)")
        else:
            self.ts, report = self.pipeline.step(self.ts, batch, telemetry=self.telemetry)
        self.pipeline.params = self.ts.params
        self.pipeline.state = self.ts.state
        return report

    def fit(
        self,
        batches: Iterable,
        *,
        epochs: int = 1,
        callback: Callable[[StepReport], bool | None] | None = None,
        progress: str | bool | None = "auto",
    ) -> list[StepReport]:
        """Step through ``batches`` (re-iterated each epoch: pass a list or a re-iterable);
        ``callback(report)`` may return True to stop. Returns the reports. With ``client=``,
        ``batches`` is the number of rounds (``fit(100)``).

        ``progress`` as in ``train.fit``: ``"auto"`` (a rich bar on a terminal, else one
        line per epoch), ``"rich"``, ``"plain"`` or ``None``; it shows the epoch's mean loss
        and metrics."""
        if self.rounds is not None:
            if not isinstance(batches, int) or isinstance(batches, bool):
                raise TypeError(
                    "Trainer(client=...).fit(rounds): the data lives on the workers; give the "
                    f"number of rounds, not {type(batches).__name__}"
                )
            batches = [None] * batches
        elif isinstance(batches, int):
            raise TypeError("Trainer.fit(batches): an iterable of batches, not an int")
        reports = []
        steps = len(batches) if hasattr(batches, "__len__") else None
        bar = make_progress(progress, epochs, steps)
        try:
            for epoch in range(epochs):
                if bar is not None:
                    bar.start_epoch(epoch)
                seen: list[StepReport] = []
                for batch in batches:
                    report = self.step(batch)
                    reports.append(report)
                    seen.append(report)
                    if bar is not None:
                        bar.advance(_epoch_logs(seen))
                    if callback is not None and callback(report):
                        return reports
                if bar is not None:
                    bar.end_epoch(epoch, _epoch_logs(seen))
        finally:
            if bar is not None:
                bar.close()
        return reports

    def save(self, directory: str | os.PathLike, *, metadata: dict | None = None) -> None:
        """Save the pipeline with the whole training state (optimizer state, step, seed,
        trainable stages) to ``directory``, atomically; :meth:`load` resumes from it.
        ``pl.load(directory)`` still reads the pipeline alone.

        >>> import tempfile, numpy as np
        >>> from diffsys import nn, optim, pipeline as pl
        >>> pipe = pl.Pipeline([pl.Stage("lin", nn.Linear(2, 3, key=0))],
        ...     losses=[pl.Loss("ce", nn.cross_entropy, ("lin", "y"))])
        >>> batch = {"x": np.ones((4, 2)), "y": np.arange(4) % 3}
        >>> trainer = pl.Trainer(pipe, optim.adam(0.1))
        >>> _ = trainer.step(batch); d = tempfile.mkdtemp(); trainer.save(d)
        >>> again = pl.Trainer.load(d, optim.adam(0.1))
        >>> again.ts.step, again.step(batch).loss == trainer.step(batch).loss
        (1, True)
        """
        from .serialize import save

        save(self.pipeline, directory, train_state=self.ts, metadata=metadata)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        optimizer: GradientTransformation,
        *,
        telemetry: Telemetry | bool | None = None,
        stage_lr_scale: Mapping[str, float] | None = None,
        client=None,
        shards: Callable[[int], Any] | Sequence | None = None,
        n_shards: int | None = None,
    ) -> Trainer:
        """A trainer that goes on from a :meth:`save`: the pipeline (in the mode it was
        saved in), its parameters and state, and the optimizer state, step and seed.
        ``optimizer`` and ``stage_lr_scale`` must be given as the saved run's were (they are
        code, not saved); a state of another structure is a
        :class:`~diffsys.pipeline.SerializationError`. ``client``, ``shards`` and ``n_shards``
        continue a data-parallel run."""
        from .serialize import load_training

        if stage_lr_scale:
            optimizer = chain(optimizer, scale_stages(stage_lr_scale))
        pipeline, ts = load_training(directory, optimizer)
        trainer = cls.__new__(cls)  # subclasses may take other arguments (distributed's)
        Trainer.__init__(
            trainer, pipeline, optimizer, seed=ts.seed, telemetry=telemetry, client=client,
            shards=shards, n_shards=n_shards,
        )
        trainer.ts = ts
        return trainer

    def reset_optimizer(self) -> None:
        """A new optimizer state for the current trainable stages (after freeze/unfreeze)."""
        self.ts = self.pipeline.init(
            self.ts.optimizer, params=self.ts.params, state=self.ts.state, seed=self.ts.seed
        )


def _epoch_logs(reports: list[StepReport]) -> dict[str, float]:
    """The mean loss and metrics of the steps so far (skipped steps left out)."""
    done = [r for r in reports if not r.skipped]
    if not done:
        return {}
    logs = {"loss": float(np.mean([r.loss for r in done]))}
    for k in done[-1].metrics:
        logs[k] = float(np.mean([r.metrics[k] for r in done if k in r.metrics]))
    return logs
