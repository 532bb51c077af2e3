"""The benchmark workloads, by name, in report order."""

from __future__ import annotations

from . import cnn_step, fft, hessian, hvp, linalg, mlp_step, neuralsort, overhead, soft_sort
from ._spec import FRAMEWORKS, Framework, Impl, Thunk, Workload
from .augment import WORKLOAD as AUGMENT
from .compiler import WORKLOAD as COMPILER
from .compress import WORKLOADS as COMPRESS
from .db import WORKLOADS as DB
from .distributed import WORKLOADS as DISTRIBUTED
from .jit import WORKLOADS as JIT
from .logic import WORKLOADS as LOGIC
from .mass_spring import WORKLOADS as MASS_SPRING
from .nas import WORKLOAD as NAS
from .physics import WORKLOADS as PHYSICS
from .physics_robot import WORKLOAD as PHYSICS_ROBOT
from .physics_sysid import WORKLOAD as PHYSICS_SYSID
from .prob import WORKLOAD as PROB
from .render import SCALING as RENDER_2D
from .render import WORKLOAD_DENSE as RENDER_2D_DENSE
from .render3d import WORKLOADS as RENDER_3D
from .replay import WORKLOAD as REPLAY
from .runtime import WORKLOAD as RUNTIME

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        overhead.WORKLOAD,
        REPLAY,
        hvp.WORKLOAD,
        hessian.WORKLOAD,
        mlp_step.WORKLOAD_F32,
        mlp_step.WORKLOAD_F64,
        cnn_step.WORKLOAD,
        linalg.WORKLOAD,
        fft.WORKLOAD,
        soft_sort.WORKLOAD_RANK,
        soft_sort.WORKLOAD_SORT,
        neuralsort.WORKLOAD_FORWARD,
        neuralsort.WORKLOAD,
        *MASS_SPRING,
        *PHYSICS,
        PHYSICS_ROBOT,
        PHYSICS_SYSID,
        *JIT,
        *soft_sort.SCALING,
        *DB,
        RUNTIME,
        COMPILER,
        *RENDER_2D, RENDER_2D_DENSE, *RENDER_3D,
        *LOGIC,
        *DISTRIBUTED,
        *COMPRESS,
        NAS,
        AUGMENT,
        PROB,
    )
}

__all__ = ["FRAMEWORKS", "WORKLOADS", "Framework", "Impl", "Thunk", "Workload"]
