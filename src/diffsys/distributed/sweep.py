"""Sweeps: one task per configuration (hyperparameters, scenarios, seeds) on a Dask cluster,
with per-task retries; the results as a table.

>>> from diffsys import distributed as dist                          # doctest: +SKIP
>>> with dist.local_cluster(2) as client:                            # doctest: +SKIP
...     result = dist.sweep(simulate, [{"k": k} for k in (1.0, 2.0)], client=client)
...     print(result.table())
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.transforms import value_and_grad
from .cluster import check_serialisable, check_versions
from .errors import WorkerError, wrap_worker_exception

__all__ = ["SweepResult", "ValueAndGrad", "sweep"]


class ValueAndGrad:
    """A sweep task: ``config -> {"value": f(params, config), "grad": d f / d params}``.

    ``objective(params, config)`` returns a scalar, or ``(scalar, {name: value})`` with
    ``has_aux`` (the aux entries become columns too).
    """

    def __init__(self, objective: Callable, params, *, has_aux: bool = False) -> None:
        self.objective, self.params, self.has_aux = objective, params, has_aux

    def __call__(self, config) -> dict:
        out = value_and_grad(self.objective, has_aux=self.has_aux)(self.params, config)
        if self.has_aux:
            (value, aux), grad = out
            return {"value": float(value), "grad": grad, **dict(aux)}
        value, grad = out
        return {"value": float(value), "grad": grad}


def _run_config(fn: Callable, index: int, config) -> dict:
    from dask.distributed import get_worker

    t0 = time.perf_counter()
    try:
        out = fn(config)
        if not isinstance(out, Mapping):
            raise TypeError(f"the sweep function must return a dict of results, got {type(out)}")
    except Exception as exc:
        raise wrap_worker_exception(f"sweep configuration {index} {config!r}", exc) from exc
    return {
        **dict(out),
        "seconds": time.perf_counter() - t0,
        "worker": get_worker().address,
    }


@dataclass
class SweepResult:
    """The sweep's rows (configuration entries, then results, ``seconds``, ``worker``) in
    configuration order; ``errors`` holds ``(index, WorkerError)`` for failed ones kept with
    ``on_error="record"`` (their row has ``error`` set)."""

    rows: list[dict]
    errors: list[tuple[int, WorkerError]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def column(self, name: str) -> np.ndarray | list:
        """One column over the rows: an array when every entry is a number or same-shape
        array (missing ones NaN), else a list."""
        values = [r.get(name) for r in self.rows]
        try:
            return np.array([np.nan if v is None else v for v in values], dtype=float)
        except (TypeError, ValueError):
            return values

    def best(self, column: str = "value", *, mode: str = "min") -> dict:
        """The row with the smallest (``mode="max"``: largest) ``column``."""
        ok = [r for r in self.rows if r.get(column) is not None and "error" not in r]
        if not ok:
            raise ValueError(f"SweepResult.best: no row has a {column!r} value")
        pick = min if mode == "min" else max
        return pick(ok, key=lambda r: float(r[column]))

    def table(self, columns: Iterable[str] | None = None, *, digits: int = 4) -> str:
        """A plain-text table (arrays are shown by their shape)."""
        cols = list(columns) if columns is not None else [c for c in self.columns if c != "worker"]
        cells = [[_cell(r.get(c), digits) for c in cols] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
                  for r in cells]
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike) -> None:
        """The scalar columns as CSV (arrays are left out)."""
        cols = [c for c in self.columns if all(np.ndim(r.get(c, 0)) == 0 for r in self.rows)]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in self.rows:
                w.writerow([r.get(c, "") for c in cols])


def _cell(v: Any, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return f"{float(v):.{digits}g}"
    if isinstance(v, np.ndarray) and v.ndim > 0:
        return f"array{v.shape}"
    if not isinstance(v, int | str | np.integer | np.ndarray):
        return type(v).__name__
    return str(v)


def sweep(
    fn: Callable[[Any], Mapping],
    configs: Iterable,
    *,
    client,
    retries: int = 1,
    on_error: str = "raise",
    check_version: bool = True,
) -> SweepResult:
    """Run ``fn(config)`` for every configuration on the cluster; a :class:`SweepResult`.

    ``fn`` returns a dict (values, gradients, reports); a dict configuration's entries become
    the first columns of its row. A failing task is tried again up to ``retries`` more times
    (on any worker); if it still fails, ``on_error="raise"`` raises its :class:`WorkerError`
    (naming the configuration, with the worker's traceback) and ``"record"`` keeps going.
    """
    if on_error not in ("raise", "record"):
        raise ValueError(f"sweep: on_error must be 'raise' or 'record', got {on_error!r}")
    configs = list(configs)
    if check_version:
        check_versions(client)
    check_serialisable(fn, "the sweep function")
    futures = [
        client.submit(_run_config, fn, i, c, retries=retries, pure=False)
        for i, c in enumerate(configs)
    ]
    rows, errors = [], []
    for i, (config, fut) in enumerate(zip(configs, futures, strict=True)):
        head = dict(config) if isinstance(config, Mapping) else {"config": config}
        try:
            rows.append({**head, **fut.result()})
        except WorkerError as exc:
            if on_error == "raise":
                client.cancel(futures)
                raise
            errors.append((i, exc))
            rows.append({**head, "error": exc.error})
    return SweepResult(rows, errors)
