"""``diffsys.systems.compiler``: a compiler's schedule choice (the tile shape of a NumPy
stencil) made by gradient through a cost model learned from measured run times.

- :mod:`.exact`: the tiled stencil, :func:`measure` (real timings), :func:`exhaustive`.
- :mod:`.ops`: the cost model (:func:`predict_log_time`, :func:`fit_cost_model`) and the
  relaxed choice (:func:`relaxed_cost`, :func:`choose_tiles`: softmax over the options).
- :mod:`.search`: :func:`model_search` against :func:`random_tile_search` at the same number
  of measurements.

See docs/compiler.md.
"""

from .exact import Space, exhaustive, measure, stencil, stencil_reference
from .ops import choose_tiles, fit_cost_model, init_cost_model, predict_log_time, relaxed_cost
from .search import TileSearch, model_search, random_tile_search

__all__ = [
    "Space",
    "TileSearch",
    "choose_tiles",
    "exhaustive",
    "fit_cost_model",
    "init_cost_model",
    "measure",
    "model_search",
    "predict_log_time",
    "random_tile_search",
    "relaxed_cost",
    "stencil",
    "stencil_reference",
]
