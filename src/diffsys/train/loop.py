"""``fit``: a thin loop over epochs of mini-batches with an optimizer.

It only packages the explicit loop that stays the primary way to train::

    loss, grads = ds.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optim.apply_updates(params, updates)

adding shuffling from an explicit seed, progress, per-epoch evaluation, callbacks and early
stopping.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.transforms import value_and_grad
from ..optim.base import GradientTransformation, apply_updates
from .data import iterate_batches, num_batches
from .progress import make_progress

__all__ = ["EarlyStopping", "FitResult", "fit"]

Callback = Callable[[int, dict, Any], "bool | None"]


@dataclass
class FitResult:
    """The trained parameters, the optimizer state and one dict of metrics per epoch."""

    params: Any
    opt_state: Any
    history: list[dict] = field(default_factory=list)
    step: int = 0
    stopped_early: bool = False


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best`` the best parameters are kept (``best_params``) and returned by
    :func:`fit`.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.best_params = None
        self.wait = 0

    def __call__(self, epoch: int, logs: dict, params) -> bool:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: metric {self.monitor!r} is not among {sorted(logs)}; pass "
                "eval_fn/eval_data to fit for validation metrics"
            )
        value = float(logs[self.monitor])
        better = (
            value < self.best - self.min_delta
            if self.mode == "min"
            else value > self.best + self.min_delta
        )
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_params = params
            return False
        self.wait += 1
        return self.wait >= self.patience


def _split_loss(out, has_aux: bool) -> tuple[Any, dict]:
    if has_aux:
        loss, aux = out
        return loss, dict(aux or {})
    return out, {}


def _takes_rng(loss_fn: Callable) -> bool:
    """Whether ``loss_fn`` accepts a third positional argument (the ``rng``)."""
    try:
        params = inspect.signature(loss_fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass it
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _num_samples(data, who: str) -> int:
    first = next(iter(data.values() if isinstance(data, Mapping) else data), None)
    if first is None:
        raise ValueError(f"{who}: data is empty; give a tuple or a dict of aligned arrays")
    return len(first)


def fit(
    loss_fn: Callable[..., Any],
    params: Any,
    optimizer: GradientTransformation,
    data: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    *,
    batch_size: int,
    epochs: int,
    seed: int = 0,
    has_aux: bool = False,
    opt_state: Any = None,
    start_epoch: int = 0,
    eval_fn: Callable[[Any], dict] | None = None,
    callbacks: Sequence[Callback] = (),
    progress: str | bool | None = "auto",
    drop_last: bool = False,
) -> FitResult:
    """Train ``params`` on the arrays ``data`` for ``epochs`` epochs.

    ``loss_fn(params, batch, rng) -> loss`` (or ``(loss, metrics)`` with ``has_aux``), where
    ``batch`` is a tuple of aligned mini-batches (a dict of them when ``data`` is a dict of
    arrays) and ``rng`` a Generator seeded from ``(seed, epoch)`` for dropout and other
    randomness; a ``loss_fn(params, batch)`` without it is called without it. Batches are
    shuffled from ``(seed, epoch)`` as well, so a run resumed at ``start_epoch`` (with the saved
    ``opt_state``) repeats an uninterrupted one exactly. ``eval_fn(params) -> dict`` adds
    metrics after each epoch; each callback ``cb(epoch, logs, params)`` may return ``True``
    to stop.

    >>> import numpy as np
    >>> from diffsys import nn, optim, train
    >>> x = np.random.default_rng(0).normal(size=(64, 3)); y = x @ np.array([1.0, -2.0, 0.5])
    >>> model = nn.Linear(3, 1, key=0)
    >>> loss = lambda m, batch, rng: nn.mse(m(batch[0])[:, 0], batch[1])
    >>> res = train.fit(loss, model, optim.sgd(0.1), (x, y), batch_size=16, epochs=20,
    ...                 seed=0, progress=None)
    >>> res.history[-1]["loss"] < 1e-3
    True
    """
    n = _num_samples(data, "fit")
    takes_rng = _takes_rng(loss_fn)
    steps = num_batches(n, batch_size, drop_last)
    if opt_state is None:
        opt_state = optimizer.init(params)
    vg = value_and_grad(loss_fn, has_aux=has_aux)
    bar = make_progress(progress, epochs, steps)
    history: list[dict] = []
    step = start_epoch * steps
    stopped = False
    try:
        for epoch in range(start_epoch, epochs):
            rng = np.random.default_rng([int(seed), int(epoch), 1])
            if bar is not None:
                bar.start_epoch(epoch)
            total, count, sums = 0.0, 0, {}
            for batch in iterate_batches(
                data, batch_size, seed=seed, epoch=epoch, drop_last=drop_last
            ):
                out, grads = vg(params, batch, rng) if takes_rng else vg(params, batch)
                loss, aux = _split_loss(out, has_aux)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                params = apply_updates(params, updates)
                step += 1
                m = _num_samples(batch, "fit")
                total += float(loss) * m
                count += m
                for k, v in aux.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * m
                if bar is not None:
                    bar.advance({"loss": total / count})
            logs = {"epoch": epoch + 1, "loss": total / max(count, 1)}
            logs.update({k: v / max(count, 1) for k, v in sums.items()})
            if eval_fn is not None:
                logs.update({k: float(v) for k, v in eval_fn(params).items()})
            history.append(logs)
            if bar is not None:  # the bar names the epoch itself
                bar.end_epoch(epoch, {k: v for k, v in logs.items() if k != "epoch"})
            if any([bool(cb(epoch, logs, params)) for cb in callbacks]):  # call them all
                stopped = True
                break
    finally:
        if bar is not None:
            bar.close()
    for cb in callbacks:
        if isinstance(cb, EarlyStopping) and cb.restore_best and cb.best_params is not None:
            params = cb.best_params
    return FitResult(params, opt_state, history, step, stopped)
