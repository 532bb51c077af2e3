"""Learning-rate schedules: functions ``step -> value``, usable wherever a learning rate is.

A plain step gives a Python float. A traced step (the optimizer's count inside ``ds.jit`` or
``ds.trace``) gives a traced value, so a jitted training step replays with the schedule
evaluated at each step instead of the one it was traced with.

>>> from diffsys import optim
>>> sched = optim.warmup_cosine_decay(peak_value=1.0, warmup_steps=10, decay_steps=100)
>>> [round(float(sched(s)), 3) for s in (0, 5, 10, 100)]
[0.0, 0.5, 1.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .. import numpy as dnp
from ..core.tracer import Tracer

__all__ = [
    "Schedule",
    "constant",
    "cosine_decay",
    "exponential_decay",
    "join_schedules",
    "linear",
    "linear_warmup",
    "piecewise_constant",
    "warmup_cosine_decay",
]

Schedule = Callable[[int], float]


def _step(step):
    """The step count: an int, or the traced count as it is (a jitted optimizer's)."""
    return step if isinstance(step, Tracer) else int(np.asarray(step))


def _value(v):
    """A schedule's value: a Python float for a plain step, the traced value otherwise."""
    return v if isinstance(v, Tracer) else float(v)


def constant(value: float) -> Schedule:
    """Always ``value``."""
    return lambda step: value


def linear(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0):
    """From ``init_value`` to ``end_value`` linearly over ``transition_steps``, then constant."""
    if transition_steps <= 0:
        return constant(end_value)

    def schedule(step):
        frac = dnp.clip((_step(step) - transition_begin) / transition_steps, 0.0, 1.0)
        return _value(init_value + frac * (end_value - init_value))

    return schedule


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """From ``init_value`` up to ``peak_value`` over ``warmup_steps``, then constant."""
    return linear(init_value, peak_value, warmup_steps)


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Half a cosine from ``init_value`` down to ``alpha * init_value`` over ``decay_steps``."""
    if decay_steps <= 0:
        raise ValueError(f"cosine_decay: decay_steps must be positive, got {decay_steps}")

    def schedule(step):
        frac = dnp.minimum(_step(step), decay_steps) / decay_steps
        cos = 0.5 * (1.0 + dnp.cos(math.pi * frac))
        return _value(init_value * ((1.0 - alpha) * cos + alpha))

    return schedule


def exponential_decay(
    init_value: float,
    decay_rate: float,
    transition_steps: int = 1,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """``init_value * decay_rate ** (step / transition_steps)`` (floored with ``staircase``),
    bounded by ``end_value`` if given.

    The bound is on the side the schedule moves toward: a falling schedule (``decay_rate < 1``
    for a positive ``init_value``) never goes below ``end_value``, a rising one never above.

    >>> from diffsys import optim
    >>> [optim.exponential_decay(1.0, 0.5, end_value=0.2)(s) for s in (0, 1, 2, 3)]
    [1.0, 0.5, 0.25, 0.2]
    >>> [optim.exponential_decay(1.0, 2.0, end_value=5.0)(s) for s in (0, 1, 2, 3)]
    [1.0, 2.0, 4.0, 5.0]
    """
    if transition_steps <= 0:
        raise ValueError("exponential_decay: transition_steps must be positive")
    if decay_rate < 0:
        raise ValueError(
            f"exponential_decay: decay_rate must be >= 0, got {decay_rate} "
            "(a negative base has no real fractional powers)"
        )
    # +1: the values rise (toward +inf), -1: they fall, 0: they stay at init_value.
    direction = float(np.sign(init_value * (decay_rate - 1.0)))
    if end_value is not None and direction * (end_value - init_value) < 0:
        moves = "rises" if direction > 0 else "falls"
        raise ValueError(
            f"exponential_decay: end_value {end_value} lies behind init_value {init_value}: "
            f"with decay_rate {decay_rate} the schedule {moves}, so the bound would hold it "
            f"at {end_value} from step 0; pass an end_value the schedule moves toward"
        )

    def schedule(step):
        p = _step(step) / transition_steps
        if staircase:
            p = dnp.floor(p)
        v = init_value * dnp.power(float(decay_rate), p)
        if end_value is not None:
            if direction < 0:
                v = dnp.maximum(v, end_value)
            elif direction > 0:
                v = dnp.minimum(v, end_value)
        return _value(v)

    return schedule


def piecewise_constant(boundaries_and_scales: dict[int, float], init_value: float) -> Schedule:
    """``init_value``, multiplied by ``scale`` once ``step >= boundary`` for each entry."""
    items = sorted(boundaries_and_scales.items())

    def schedule(step):
        s = _step(step)
        v = init_value
        for b, scale in items:
            v = v * dnp.where(s >= b, scale, 1.0)
        return _value(v)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``schedules[i]`` between ``boundaries[i-1]`` and ``boundaries[i]``, each restarted at 0."""
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(
            f"join_schedules: {len(schedules)} schedules need {len(schedules) - 1} boundaries, "
            f"got {len(boundaries)}"
        )

    def schedule(step):
        s = _step(step)
        if not isinstance(s, Tracer):
            start = 0
            for sched, b in zip(schedules, boundaries, strict=False):
                if s < b:
                    return sched(s - start)
                start = b
            return schedules[-1](s - start)
        # traced: every piece is evaluated, the one whose interval holds s is kept
        starts = [0, *boundaries]
        value = schedules[-1](s - starts[-1])
        for sched, start, b in reversed(list(zip(schedules, starts, boundaries, strict=False))):
            value = dnp.where(s < b, sched(s - start), value)
        return value

    return schedule


def warmup_cosine_decay(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
) -> Schedule:
    """Linear warmup to ``peak_value``, then cosine decay to ``end_value`` at ``decay_steps``
    (counted from step 0, as in Optax)."""
    alpha = end_value / peak_value if peak_value else 0.0
    return join_schedules(
        [
            linear(init_value, peak_value, warmup_steps),
            cosine_decay(peak_value, max(decay_steps - warmup_steps, 1), alpha),
        ],
        [warmup_steps],
    )
