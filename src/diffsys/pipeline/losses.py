"""Loss terms and metrics attached to stage outputs: ``L = sum_i weight_i(step) * L_i``.

A :class:`Loss` reads stage outputs and batch entries by name and returns a scalar; its
weight is a number or a schedule ``step -> weight`` (any ``diffsys.optim`` schedule, or
:func:`scheduled`, which can also be saved with the pipeline). A :class:`Metric` is read the
same way but never differentiated (accuracy, error rates).

>>> from diffsys import nn, optim
>>> from diffsys.pipeline import Loss, scheduled
>>> main = Loss("ce", nn.cross_entropy, inputs=("classifier", "y"))
>>> aux = Loss("aux", nn.mse, inputs=("decoder", "x"),
...            weight=scheduled("linear", init_value=1.0, end_value=0.0, transition_steps=100))
>>> aux.weight_at(50)
0.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.tracer import Tracer

__all__ = ["Loss", "Metric", "Scheduled", "scheduled"]


# The schedules whose arguments are JSON data (so a pipeline using them can be saved).
_SCHEDULES = (
    "constant",
    "linear",
    "linear_warmup",
    "cosine_decay",
    "exponential_decay",
    "warmup_cosine_decay",
)


class Scheduled:
    """A loss weight that follows a named ``diffsys.optim`` schedule; saved by name and
    arguments (a bare callable schedule works too, but cannot be saved)."""

    def __init__(self, schedule: str, **kwargs) -> None:
        from ..optim import schedules

        if schedule not in _SCHEDULES:
            raise ValueError(f"scheduled: unknown schedule {schedule!r}; known: {list(_SCHEDULES)}")
        self.schedule = schedule
        self.kwargs = dict(kwargs)
        self.fn = getattr(schedules, schedule)(**kwargs)

    def __call__(self, step):
        return self.fn(step)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"scheduled({self.schedule!r}, {args})"


def scheduled(schedule: str, **kwargs) -> Scheduled:
    """A weight following ``diffsys.optim.<schedule>(**kwargs)``, e.g.
    ``scheduled("linear", init_value=1.0, end_value=0.0, transition_steps=1000)`` anneals an
    auxiliary loss away over 1000 steps."""
    return Scheduled(schedule, **kwargs)


def _check_weight(weight, who: str):
    if callable(weight):
        return weight
    if isinstance(weight, bool) or not isinstance(weight, int | float | np.number):
        raise TypeError(
            f"{who}: weight must be a number or a schedule step -> number, got "
            f"{type(weight).__name__}"
        )
    if not np.isfinite(weight):
        raise ValueError(f"{who}: weight must be finite, got {weight}")
    return float(weight)


class _Term:
    kind = "term"

    def __init__(self, name: str, fn: Callable, inputs: str | Sequence[str]) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string")
        if not callable(fn):
            raise TypeError(f"{self.kind} {name!r}: fn must be callable, got {type(fn).__name__}")
        self.name = name
        self.fn = fn
        self.inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        if not self.inputs:
            raise ValueError(f"{self.kind} {name!r}: give the names it reads (inputs=...)")


class Loss(_Term):
    """A loss term ``weight(step) * fn(*values of inputs)``; ``fn`` returns a scalar.

    ``inputs`` name stage outputs (``"classifier"``, or ``"stage.key"`` for one entry of a
    dict/tuple output) and batch entries (``"y"``).
    """

    kind = "loss term"

    def __init__(
        self,
        name: str,
        fn: Callable,
        inputs: str | Sequence[str],
        weight: float | Callable[[int], Any] = 1.0,
    ) -> None:
        super().__init__(name, fn, inputs)
        self.weight = _check_weight(weight, f"loss term {name!r}")

    def weight_at(self, step: int) -> float:
        """The weight at optimizer step ``step``."""
        w = self.weight(step) if callable(self.weight) else self.weight
        if isinstance(w, Tracer):
            raise TypeError(f"loss term {self.name!r}: a weight schedule must not be traced")
        return float(w)

    def evaluate(self, values: list):
        out = self.fn(*values)
        shape = tuple(getattr(out, "shape", np.shape(out)))
        if shape not in ((), (1,)):
            raise ValueError(
                f"loss term {self.name!r}: {getattr(self.fn, '__name__', 'fn')} returned shape "
                f"{shape}; a loss term must be a scalar (reduce it, e.g. with dnp.mean)"
            )
        return out if shape == () else out[0]

    def __repr__(self) -> str:
        return f"Loss({self.name!r}, inputs={list(self.inputs)}, weight={self.weight!r})"


class Metric(_Term):
    """A reported, never differentiated value ``fn(*values of inputs)`` (e.g. accuracy)."""

    kind = "metric"

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, inputs={list(self.inputs)})"


def accuracy(logits, labels) -> float:
    """The fraction of rows whose ``argmax`` over the last axis equals the integer label."""
    logits = np.asarray(logits)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))
