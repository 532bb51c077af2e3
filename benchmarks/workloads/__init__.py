"""The benchmark workloads, by name, in report order."""

from __future__ import annotations

from . import hessian, hvp, overhead
from ._spec import FRAMEWORKS, Framework, Impl, Thunk, Workload

WORKLOADS: dict[str, Workload] = {
    w.name: w for w in (overhead.WORKLOAD, hvp.WORKLOAD, hessian.WORKLOAD)
}

__all__ = ["FRAMEWORKS", "WORKLOADS", "Framework", "Impl", "Thunk", "Workload"]
