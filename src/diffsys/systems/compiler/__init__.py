"""``diffsys.systems.compiler``: a compiler's schedule choices made by gradient through a
cost model learned from measured run times.

- :mod:`.exact`: a tiled NumPy stencil, :func:`measure` (real timings), :func:`exhaustive`.
- :mod:`.ops`: the stencil's cost model (:func:`predict_log_time`, :func:`fit_cost_model`)
  and its relaxed tile choice (:func:`relaxed_cost`, :func:`choose_tiles`).
- :mod:`.kernels`: a blocked matrix multiply generated per loop order and data layout and
  compiled by Numba (the ``jit`` extra; only these kernels need it): :class:`Schedule`,
  :class:`MatmulSpace`, :func:`measure_matmul`, :func:`exhaustive_matmul`,
  :func:`heuristic_schedule`.
- :mod:`.schedule`: features of a schedule (:func:`matmul_features`), a ridge cost model
  over them (:func:`fit_schedule_model`), the relaxed choice of every decision at once by
  ``relax.softmax`` or ``relax.gumbel_softmax`` (:func:`choose_schedule`: argmax at the
  end, the relaxed-vs-hard gap reported).
- :mod:`.search`: the model loops against random search and CMA-ES at the same number of
  measurements.

See docs/compiler.md.
"""

from .exact import Space, exhaustive, measure, stencil, stencil_reference
from .kernels import (
    LAYOUTS,
    ORDERS,
    MatmulSpace,
    Schedule,
    compile_matmul,
    exhaustive_matmul,
    heuristic_schedule,
    matmul,
    matmul_source,
    measure_matmul,
)
from .ops import choose_tiles, fit_cost_model, init_cost_model, predict_log_time, relaxed_cost
from .schedule import (
    Choice,
    FeatureGroup,
    ScheduleModel,
    choose_schedule,
    feature_matrix,
    fit_schedule_model,
    matmul_features,
    predict_schedule,
    relaxed_features,
    relaxed_schedule_cost,
)
from .search import (
    ScheduleSearch,
    TileSearch,
    cma_schedule_search,
    compare_schedule_searches,
    model_search,
    random_schedule_search,
    random_tile_search,
    schedule_model_search,
)

__all__ = [
    "LAYOUTS",
    "ORDERS",
    "Choice",
    "FeatureGroup",
    "MatmulSpace",
    "Schedule",
    "ScheduleModel",
    "ScheduleSearch",
    "Space",
    "TileSearch",
    "choose_schedule",
    "choose_tiles",
    "cma_schedule_search",
    "compare_schedule_searches",
    "compile_matmul",
    "exhaustive",
    "exhaustive_matmul",
    "feature_matrix",
    "fit_cost_model",
    "fit_schedule_model",
    "heuristic_schedule",
    "init_cost_model",
    "matmul",
    "matmul_features",
    "matmul_source",
    "measure",
    "measure_matmul",
    "model_search",
    "predict_log_time",
    "predict_schedule",
    "random_schedule_search",
    "random_tile_search",
    "relaxed_cost",
    "relaxed_features",
    "relaxed_schedule_cost",
    "schedule_model_search",
    "stencil",
    "stencil_reference",
]
