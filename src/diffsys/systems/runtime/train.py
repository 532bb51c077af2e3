"""Learning a policy: by gradient through the relaxed simulator, or by black-box search on
the exact one, at an equal number of objective evaluations, then evaluated hard on held-out
traces.

One *evaluation* is one computation of the training objective over all training traces:
for :func:`gradient_search` the relaxed objective and its gradient (a forward and a backward
pass), for :func:`random_search` and :func:`cma_search` the exact objective. Wall time is
recorded too, since an evaluation does not cost the same in each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ... import optim
from ...core import value_and_grad
from . import exact, ops
from .workload import Jobs, Requests

__all__ = [
    "Problem",
    "SearchResult",
    "cache_problem",
    "cma_search",
    "compare",
    "dispatch_problem",
    "gradient_search",
    "random_search",
]


@dataclass
class SearchResult:
    """A search's chosen ``theta``, its ``history`` (per evaluation: the objective it saw;
    for gradient search the relaxed loss, with the exact loss of the same iterate in
    ``hard_history`` when asked), the number of ``evaluations`` and the wall ``seconds``."""

    method: str
    theta: np.ndarray
    history: list[float]
    evaluations: int
    seconds: float
    hard_history: list[float] = field(default_factory=list)


def gradient_search(
    relaxed: Callable,
    theta0: np.ndarray,
    budget: int,
    *,
    learning_rate: float = 0.05,
    hard: Callable | None = None,
    select: str = "last",
) -> SearchResult:
    """Adam on the relaxed objective. ``select="last"``: ``budget`` steps, the last iterate is
    chosen (no exact evaluation is spent on choosing); ``hard`` then only records the exact
    objective of each iterate (for the mismatch report; not counted in the budget).
    ``select="best_exact"``: every iterate is also evaluated exactly by ``hard`` and that
    evaluation counts, so ``budget // 2`` steps are taken, and the iterate with the lowest
    exact objective is chosen (the relaxation proposes, the exact simulator disposes)."""
    if select not in ("last", "best_exact") or (select == "best_exact" and hard is None):
        raise ValueError(
            f"gradient_search: select must be 'last' or 'best_exact' (which needs hard=), "
            f"got {select!r} with hard={'set' if hard is not None else None}"
        )
    steps = budget if select == "last" else max(budget // 2, 1)
    opt = optim.adam(learning_rate)
    theta = np.array(theta0, dtype=np.float64)
    state = opt.init(theta)
    grad_fn = value_and_grad(relaxed)
    history, hard_history, iterates, start = [], [], [], time.perf_counter()
    for _ in range(steps):
        loss, g = grad_fn(theta)
        history.append(float(loss))
        if hard is not None:
            hard_history.append(float(hard(theta)))
            iterates.append(theta)
        updates, state = opt.update(g, state, theta)
        theta = np.asarray(optim.apply_updates(theta, updates))
    if select == "best_exact":
        theta = iterates[int(np.argmin(hard_history))]
    seconds = time.perf_counter() - start
    name = "gradient" if select == "last" else "gradient, best exact iterate"
    return SearchResult(name, theta, history, budget, seconds, hard_history)


def random_search(
    objective: Callable, theta0: np.ndarray, budget: int, *, spread: float = 1.0, seed: int = 0
) -> SearchResult:
    """``theta0`` and ``budget - 1`` Gaussian perturbations of it (std ``spread``), each
    evaluated exactly; the best is chosen."""
    rng = np.random.default_rng(seed)
    theta0 = np.asarray(theta0, dtype=np.float64)
    start, best, best_f, history = time.perf_counter(), theta0, np.inf, []
    for i in range(budget):
        cand = theta0 if i == 0 else theta0 + spread * rng.normal(size=theta0.shape)
        f = float(objective(cand))
        history.append(f)
        if f < best_f:
            best, best_f = cand, f
    return SearchResult("random search", best, history, budget, time.perf_counter() - start)


def cma_search(
    objective: Callable, theta0: np.ndarray, budget: int, *, spread: float = 0.5, seed: int = 0
) -> SearchResult:
    """CMA-ES (the ``cma`` package, the ``tune`` extra) from ``theta0`` with step ``spread``,
    exactly ``budget`` exact evaluations (a last partial generation is evaluated but not
    told); the best evaluated point is chosen."""
    try:
        import cma
    except ImportError as exc:
        raise ImportError(
            "cma_search needs the cma package, the optional 'tune' extra: "
            "pip install 'diffsys[tune]' (or pip install cma)"
        ) from exc
    es = cma.CMAEvolutionStrategy(
        np.asarray(theta0, dtype=np.float64), spread, {"seed": seed + 1, "verbose": -9}
    )
    start, best, best_f, history = time.perf_counter(), np.asarray(theta0), np.inf, []
    while len(history) < budget:
        xs = es.ask()[: budget - len(history)]
        fs = [float(objective(np.asarray(x))) for x in xs]
        history.extend(fs)
        for x, f in zip(xs, fs, strict=True):
            if f < best_f:
                best, best_f = np.asarray(x), f
        if len(xs) == es.popsize:
            es.tell(xs, fs)
    return SearchResult("CMA-ES", best, history, budget, time.perf_counter() - start)


@dataclass
class Problem:
    """What a comparison needs: the ``relaxed`` training objective (differentiable in
    ``theta``), the ``hard`` one on the same traces, the ``test`` one on held-out traces,
    a starting ``theta0``, and hand-written ``baselines`` (name -> test objective)."""

    name: str
    relaxed: Callable
    hard: Callable
    test: Callable
    theta0: np.ndarray
    baselines: dict[str, float]


def _latency_metric(metric: str | float, relaxed: bool, strength: float) -> Callable:
    if metric == "mean":
        return lambda lat: lat.mean() if relaxed else float(np.mean(lat))
    if isinstance(metric, float) and 0 < metric < 1:
        if relaxed:
            return lambda lat: ops.smooth_quantile(lat, metric, strength)
        return lambda lat: float(np.quantile(lat, metric))
    raise ValueError(
        f"dispatch_problem: metric must be 'mean' or a quantile in (0, 1), got {metric!r}"
    )


def dispatch_problem(
    train: Sequence[Jobs],
    test: Sequence[Jobs],
    *,
    metric: str | float = "mean",
    wait_temperature: float = 0.01,
    assign_temperature: float = 0.02,
    quantile_strength: float = 0.05,
) -> Problem:
    """Learn a dispatch policy for ``metric``: ``"mean"`` latency or a latency quantile such
    as ``0.95`` (smoothed by ``relax.soft_sort`` with ``quantile_strength`` when relaxed).
    The default temperatures are low: at smooth_dispatch's defaults (0.05, 0.1) the relaxed
    loss falls while the exact latency rises on the demo's traces (see docs/runtime.md).
    Starts at least-loaded; baselines: round-robin FIFO, least-loaded FIFO,
    earliest-finish FIFO, least-loaded SJF (all exact, event-by-event)."""
    soft_m = _latency_metric(metric, True, quantile_strength)
    hard_m = _latency_metric(metric, False, quantile_strength)

    def relaxed(theta):
        total = 0.0
        for jobs in train:
            lat = ops.smooth_dispatch(
                jobs, theta, wait_temperature=wait_temperature,
                assign_temperature=assign_temperature,
            )  # fmt: skip
            total = total + soft_m(lat)
        return total / len(train)

    def hard_on(traces):
        return lambda theta: float(
            np.mean([hard_m(exact.simulate_dispatch(j, theta).latency) for j in traces])
        )

    def baseline(dispatch, discipline):
        return float(
            np.mean([hard_m(exact.simulate_events(j, dispatch, discipline).latency) for j in test])
        )

    servers = len(train[0].speeds)
    baselines = {
        "FIFO round-robin": baseline("round_robin", "fifo"),
        "FIFO least-loaded": baseline("least_loaded", "fifo"),
        "FIFO earliest-finish": baseline("earliest_finish", "fifo"),
        "SJF least-loaded": baseline("least_loaded", "sjf"),
    }
    name = f"dispatch ({'mean' if metric == 'mean' else f'p{round(100 * metric)}'} latency)"
    theta0 = exact.dispatch_policy(servers)
    return Problem(name, relaxed, hard_on(train), hard_on(test), theta0, baselines)


def cache_problem(
    train: Sequence[Requests], test: Sequence[Requests], capacity: int, *, temperature: float = 0.1
) -> Problem:
    """Learn an eviction score for the mean miss cost (bytes missed per request). Starts at
    LRU; baselines: LRU, LFU, smallest-first (all exact)."""
    feats = [exact.cache_features(r, capacity) for r in train]

    def relaxed(theta):
        total = 0.0
        for r, f in zip(train, feats, strict=True):
            paid = ops.relaxed_cache(r, capacity, theta, temperature=temperature, features=f)
            total = total + paid.mean()
        return total / len(train)

    def hard_on(traces):
        return lambda theta: float(
            np.mean([exact.simulate_cache(r, capacity, theta).miss_cost for r in traces])
        )

    test_fn = hard_on(test)
    baselines = {k.upper(): test_fn(exact.cache_policy(k)) for k in ("lru", "lfu")}
    baselines["smallest-first"] = test_fn(exact.cache_policy("size"))
    theta0 = exact.cache_policy("lru")
    return Problem("cache (miss cost)", relaxed, hard_on(train), test_fn, theta0, baselines)


def compare(
    problem: Problem,
    budget: int,
    *,
    seed: int = 0,
    learning_rate: float = 0.05,
    spread: float = 0.5,
    record_mismatch: bool = True,
) -> dict:
    """Gradient (the last iterate; and the best exact iterate, with the exact evaluations
    counted), random search and CMA-ES (when ``cma`` is installed) at ``budget``
    evaluations each; every chosen policy and every baseline evaluated exactly on the
    held-out traces. Returns ``{"test": {method: value}, "runs": {method: SearchResult},
    "start": test value of theta0}``."""
    runs = {
        "gradient": gradient_search(
            problem.relaxed, problem.theta0, budget, learning_rate=learning_rate,
            hard=problem.hard if record_mismatch else None,
        ),
        "random search": random_search(
            problem.hard, problem.theta0, budget, spread=spread, seed=seed
        ),
    }  # fmt: skip
    runs["gradient, best exact iterate"] = gradient_search(
        problem.relaxed, problem.theta0, budget, learning_rate=learning_rate,
        hard=problem.hard, select="best_exact",
    )  # fmt: skip
    try:
        runs["CMA-ES"] = cma_search(problem.hard, problem.theta0, budget, spread=spread, seed=seed)
    except ImportError:
        pass
    test = dict(problem.baselines)
    for name, run in runs.items():
        test[name] = problem.test(run.theta)
    return {"test": test, "runs": runs, "start": problem.test(problem.theta0)}
