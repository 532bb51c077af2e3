"""Wall-clock timing of a zero-argument callable: warm-up, calibration, median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median over ``repeats`` runs of ``number`` calls each."""

    median: float
    min: float
    max: float
    repeats: int
    number: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _loop(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def first_call(fn: Callable[[], object]) -> tuple[float, object]:
    """Call ``fn`` once (compilation, caches); return the seconds it took and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(
    fn: Callable[[], object],
    *,
    repeats: int = 7,
    repeat_seconds: float = 0.2,
    budget_seconds: float = 20.0,
    min_repeats: int = 3,
) -> Timing:
    """Time ``fn`` (already called once): warm-up, then ``repeats`` runs.

    Each run calls ``fn`` ``number`` times, with ``number`` chosen so a run lasts about
    ``repeat_seconds``. If one call is so slow that ``repeats`` runs would exceed
    ``budget_seconds``, fewer runs are made (never fewer than ``min_repeats``); the
    result records how many.
    """
    number, elapsed = 1, _loop(fn, 1)  # warm-up; then calibrate, which warms up further
    while elapsed < 0.25 * repeat_seconds:
        number *= 4
        elapsed = _loop(fn, number)
    per_call = elapsed / number
    number = max(1, round(repeat_seconds / per_call))
    n_repeats = repeats
    if per_call * number * repeats > budget_seconds:
        n_repeats = max(min_repeats, int(budget_seconds / (per_call * number)))
    times = [_loop(fn, number) / number for _ in range(n_repeats)]
    return Timing(
        median=statistics.median(times),
        min=min(times),
        max=max(times),
        repeats=n_repeats,
        number=number,
    )
