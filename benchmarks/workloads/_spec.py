"""What a workload is: inputs, a NumPy reference, and one builder per framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Thunk = Callable[[], object]
"""A zero-argument callable that runs the whole timed computation once and returns its result."""


@dataclass(frozen=True)
class Framework:
    """A column of the comparison: a display name and the packages it needs."""

    key: str
    label: str
    requires: tuple[str, ...]


FRAMEWORKS: dict[str, Framework] = {
    f.key: f
    for f in (
        Framework("diffsys", "diffsys", ("diffsys",)),
        Framework("diffsys-numba", "diffsys, ds.jit backend numba", ("diffsys", "numba")),
        Framework("numpy", "NumPy, hand-written derivatives", ("numpy",)),
        Framework("autograd", "HIPS autograd", ("autograd",)),
        Framework("torch", "PyTorch (eager)", ("torch",)),
        Framework("jax", "JAX eager (no jit)", ("jax", "jaxlib")),
        Framework("jax-jit", "JAX jit", ("jax", "jaxlib")),
        Framework("sql", "DuckDB, hand-written SQL", ("duckdb",)),
        Framework("tslearn", "tslearn (Numba)", ("tslearn",)),
        Framework("problog", "ProbLog", ("problog",)),
    )
}
"""Every framework, in table order."""


@dataclass(frozen=True)
class Impl:
    """One framework's version of a workload.

    ``build`` imports the framework (raising ``ImportError`` when it is missing) and returns
    the thunk to time; ``method`` names the API used, for the report.
    """

    build: Callable[[], Thunk]
    method: str


@dataclass(frozen=True)
class Workload:
    """A timed problem. ``reference`` gives the exact result every framework must match."""

    name: str
    title: str
    description: str
    unit: str
    scale: float  # seconds per call -> ``unit``
    target: float  # diffsys's target, in ``unit`` (the issue's unless ``own_target``)
    reference: Callable[[], tuple[np.ndarray, ...]]
    impls: dict[str, Impl]
    issue_refs: dict[str, float] = field(default_factory=dict)  # issue author's numbers
    tolerance: float = 1e-8  # relative error allowed against the reference (float32: larger)
    dtype: str = "float64"  # the arithmetic of every framework's version ("float32" or this)
    # True when no issue sets a target for this workload and ``target`` is the project's own.
    own_target: bool = False
    # The target as a multiple of another measurement of the same run, (workload, framework,
    # factor), e.g. "<= 1.3 x the NumPy forward pass"; ``target`` is then only a fallback.
    relative_target: tuple[str, str, float] | None = None
    # A point of a scaling table, (series title, n, rows): such workloads are reported in one
    # table per series (n, time, time per n log2 n) instead of a section each.
    series: tuple[str, int, int] | None = None
    # Measure peak memory too (after timing): tracemalloc's peak during one call, or, when the
    # thunk has a ``memory`` attribute, what that zero-argument callable returns (bytes; for
    # frameworks whose allocations tracemalloc does not see). Reported in MiB.
    memory: bool = False
    memory_target: float | None = None  # MiB, for diffsys
    # A memory target relative to another measurement: (workload, framework, factor).
    relative_memory_target: tuple[str, str, float] | None = None
