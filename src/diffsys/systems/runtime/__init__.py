"""``diffsys.systems.runtime``: runtime decisions (dispatching jobs to servers, evicting cache
items) learned by gradient through a relaxed simulation, deployed hard.

- :mod:`.workload`: generated traces with bursts, diurnal drift, heavy-tailed job sizes and
  Zipf popularity (:func:`make_jobs`, :func:`make_requests`).
- :mod:`.exact`: the hard simulators (:func:`simulate_dispatch`, Lindley's recursion;
  :func:`simulate_events`, the event-by-event reference with FIFO/SJF and round-robin;
  :func:`simulate_cache`), and the hand-written policies as parameter vectors.
- :mod:`.ops`: the relaxed simulators (:func:`smooth_dispatch`: softplus Lindley and softmax
  dispatch; :func:`relaxed_cache`: soft top-k eviction), :func:`smooth_quantile`.
- :mod:`.train`: :func:`gradient_search`, :func:`random_search`, :func:`cma_search` (the
  ``tune`` extra) at equal evaluation budgets, :func:`compare` on held-out traces.
- :mod:`.modules`: :class:`DispatchPolicy`, :class:`EvictionPolicy` (``relaxed``/``hard``).
- :mod:`.stages`: :func:`dispatch_stage`, :func:`cache_stage` (``pl.Stage``, kind
  ``relaxed``: the relaxed simulator in training, the exact one at inference).

See docs/runtime.md.
"""

from .exact import (
    CACHE_FEATURES,
    CacheResult,
    QueueResult,
    cache_features,
    cache_policy,
    dispatch_policy,
    dispatch_scores,
    evaluate,
    service_scale,
    simulate_cache,
    simulate_dispatch,
    simulate_events,
)
from .modules import DispatchPolicy, EvictionPolicy
from .ops import relaxed_cache, smooth_dispatch, smooth_quantile, soft_relu
from .stages import cache_stage, dispatch_stage
from .train import (
    Problem,
    SearchResult,
    cache_problem,
    cma_search,
    compare,
    dispatch_problem,
    gradient_search,
    random_search,
)
from .workload import Jobs, Requests, make_jobs, make_requests

__all__ = [
    "CACHE_FEATURES",
    "CacheResult",
    "DispatchPolicy",
    "EvictionPolicy",
    "Jobs",
    "Problem",
    "QueueResult",
    "Requests",
    "SearchResult",
    "cache_features",
    "cache_policy",
    "cache_problem",
    "cache_stage",
    "cma_search",
    "compare",
    "dispatch_policy",
    "dispatch_problem",
    "dispatch_scores",
    "dispatch_stage",
    "evaluate",
    "gradient_search",
    "make_jobs",
    "make_requests",
    "random_search",
    "relaxed_cache",
    "service_scale",
    "simulate_cache",
    "simulate_dispatch",
    "simulate_events",
    "smooth_dispatch",
    "smooth_quantile",
    "soft_relu",
]
