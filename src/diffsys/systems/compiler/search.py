"""Choosing a schedule with few measurements: the cost-model loop (fit, choose by gradient,
measure, repeat) against random search and CMA-ES at the same number of measurements; for
the stencil's tile shape and for the matmul's whole schedule (tiles, loop order, layout)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import ops
from .exact import Space
from .kernels import MatmulSpace, heuristic_schedule
from .schedule import (
    FeatureGroup,
    choose_schedule,
    feature_matrix,
    fit_schedule_model,
    matmul_features,
    predict_schedule,
)

__all__ = [
    "ScheduleSearch",
    "TileSearch",
    "compare_schedule_searches",
    "cma_schedule_search",
    "model_search",
    "random_schedule_search",
    "random_tile_search",
    "schedule_model_search",
]


@dataclass
class TileSearch:
    """The measured configurations in order (``tried``, index pairs; ``seconds``), the best
    one, and for the model loop how often the gradient's choice had already been measured
    (``repeats``: the next-best unmeasured by the model was taken instead)."""

    method: str
    tried: list[tuple[int, int]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    repeats: int = 0

    @property
    def best(self) -> tuple[int, int]:
        return self.tried[int(np.argmin(self.seconds))]

    @property
    def best_seconds(self) -> float:
        return float(min(self.seconds))


def random_tile_search(
    space: Space, timer: Callable, budget: int, *, seed: int = 0
) -> TileSearch:
    """``budget`` distinct configurations drawn at random, each measured."""
    rng = np.random.default_rng(seed)
    every = space.all()
    out = TileSearch("random search")
    for k in rng.permutation(len(every))[:budget]:
        out.tried.append(every[k])
        out.seconds.append(float(timer(space.config(every[k]))))
    return out


def model_search(
    space: Space, timer: Callable, budget: int, n: int, *, initial: int = 4, seed: int = 0
) -> TileSearch:
    """``initial`` random measurements, then until ``budget``: fit the cost model to all
    measurements, choose by gradient through the relaxed choice, measure it."""
    out = random_tile_search(space, timer, min(initial, budget), seed=seed)
    out.method = "cost model + gradient"
    w = None
    while len(out.tried) < budget:
        tiles = np.array([space.config(t) for t in out.tried], dtype=np.float64)
        w = ops.fit_cost_model(tiles, np.array(out.seconds), n, w0=w)
        choice = ops.choose_tiles(w, space.tiles, n, seed=seed + len(out.tried))
        if choice in out.tried:
            out.repeats += 1
            lt = np.log(np.array([space.config(c) for c in space.all()], dtype=np.float64))
            pred = np.asarray(ops.predict_log_time(w, lt[:, 0], lt[:, 1], n))
            for k in np.argsort(pred):
                if space.all()[k] not in out.tried:
                    choice = space.all()[k]
                    break
        out.tried.append(choice)
        out.seconds.append(float(timer(space.config(choice))))
    return out


# --- the matmul schedule space: many decisions, too many configurations to try them all ---


@dataclass
class ScheduleSearch:
    """Distinct measured configurations in order (``tried``, index tuples; ``seconds``);
    for the model loops, per model-guided step the :class:`~.schedule.Choice` (relaxed vs
    hard model cost) and the model's prediction for the measured configuration
    (``predicted``, log seconds), and how often the gradient's choice had already been
    measured so another was taken (``fallbacks``)."""

    method: str
    tried: list[tuple[int, ...]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    choices: list = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    fallbacks: int = 0

    @property
    def best(self) -> tuple[int, ...]:
        return self.tried[int(np.argmin(self.seconds))]

    @property
    def best_seconds(self) -> float:
        return float(min(self.seconds))

    def measure(self, index, timer: Callable) -> None:
        self.tried.append(tuple(int(i) for i in index))
        self.seconds.append(float(timer(self.tried[-1])))


def random_schedule_search(
    space: MatmulSpace, timer: Callable, budget: int, *, seed: int = 0
) -> ScheduleSearch:
    """``budget`` distinct configurations drawn uniformly, each measured (``timer`` takes an
    index tuple)."""
    every = space.all()
    out = ScheduleSearch("random search")
    for k in np.random.default_rng(seed).permutation(len(every))[:budget]:
        out.measure(every[k], timer)
    return out


def cma_schedule_search(
    space: MatmulSpace, timer: Callable, budget: int, *, seed: int = 0, spread: float = 0.3
) -> ScheduleSearch:
    """CMA-ES (the ``tune`` extra) over one coordinate per decision in ``[0, 1]``, decoded to
    option ``floor(x K)``; ``budget`` distinct measurements (a configuration seen again is
    told its measured time without spending budget; at most ``50 budget`` candidates)."""
    try:
        import cma
    except ImportError as exc:
        raise ImportError(
            "cma_schedule_search needs the cma package, the optional 'tune' extra: "
            "pip install 'diffsys[tune]' (or pip install cma)"
        ) from exc
    sizes = np.array(space.sizes)
    out, seen = ScheduleSearch("CMA-ES"), {}
    opts = {"seed": seed + 1, "verbose": -9, "bounds": [0.0, 1.0 - 1e-9]}
    es = cma.CMAEvolutionStrategy(np.full(len(sizes), 0.5), spread, opts)
    asked = 0
    while len(out.tried) < budget and asked < 50 * budget:
        xs = es.ask()
        fs = []
        for x in xs:
            asked += 1
            idx = tuple(int(v) for v in np.minimum(np.floor(np.asarray(x) * sizes), sizes - 1))
            if idx not in seen and len(out.tried) < budget:
                out.measure(idx, timer)
                seen[idx] = np.log(out.seconds[-1])
            fs.append(seen.get(idx, max(seen.values(), default=0.0) + 1.0))
        es.tell(xs, fs)
    return out


def schedule_model_search(
    space: MatmulSpace,
    timer: Callable,
    budget: int,
    groups: Sequence[FeatureGroup],
    *,
    initial: int = 8,
    chooser: str = "gradient",
    restarts: int = 3,
    gumbel: bool = False,
    straight_through: bool = True,
    temperature: tuple[float, float] = (1.0, 1.0),
    ridge: float = 1.0,
    seed: int = 0,
) -> ScheduleSearch:
    """``initial`` random measurements, then until ``budget``: fit the cost model
    (:func:`~.schedule.fit_schedule_model`) to every measurement and measure its choice.

    ``chooser="gradient"``: :func:`~.schedule.choose_schedule` from ``restarts`` random
    starts (``gumbel``: Gumbel-softmax samples instead of the softmax; ``straight_through``
    and ``temperature`` as there); the unmeasured
    choice with the lowest model cost is measured; if every start chose a measured
    configuration, a random unmeasured one is (counted in ``fallbacks``).
    ``chooser="enumerate"``: the model's best unmeasured configuration over the whole space
    (possible here, not when a space is too large to list)."""
    if chooser not in ("gradient", "enumerate"):
        raise ValueError(f"schedule_model_search: chooser must be 'gradient' or 'enumerate', "
                         f"got {chooser!r}")  # fmt: skip
    rng = np.random.default_rng(seed + 7)
    out = random_schedule_search(space, timer, min(initial, budget), seed=seed)
    out.method = f"cost model + {chooser}" + (" (Gumbel)" if gumbel else "")
    if chooser == "gradient" and not straight_through:
        out.method += " (annealed softmax)"
    every = None
    while len(out.tried) < budget:
        model = fit_schedule_model(
            feature_matrix(groups, out.tried), np.array(out.seconds), ridge=ridge
        )
        done = set(out.tried)
        if chooser == "enumerate":
            every = space.all() if every is None else every
            pred = np.asarray(predict_schedule(model, feature_matrix(groups, every)))
            pick = next(every[k] for k in np.argsort(pred) if every[k] not in done)
        else:
            choices = [
                choose_schedule(model, groups, space.sizes, gumbel=gumbel,
                                straight_through=straight_through, temperature=temperature,
                                seed=int(rng.integers(2**31)))
                for _ in range(restarts)
            ]  # fmt: skip
            fresh = sorted((c for c in choices if c.index not in done), key=lambda c: c.hard)
            out.choices.append(min(choices, key=lambda c: c.hard))
            if fresh:
                pick = fresh[0].index
            else:
                out.fallbacks += 1
                sizes = space.sizes
                while True:
                    pick = tuple(int(rng.integers(k)) for k in sizes)
                    if pick not in done:
                        break
        out.predicted.append(float(predict_schedule(model, feature_matrix(groups, [pick])[0])))
        out.measure(pick, timer)
    return out


SCHEDULE_METHODS: dict[str, dict] = {
    "random search": {},
    "CMA-ES": {},
    "cost model + gradient": {"chooser": "gradient"},
    "cost model + gradient (Gumbel)": {"chooser": "gradient", "gumbel": True},
    "cost model + gradient (annealed softmax)": {
        "chooser": "gradient", "straight_through": False, "temperature": (1.0, 0.05),
    },
    "cost model + enumeration": {"chooser": "enumerate"},
}  # fmt: skip


def compare_schedule_searches(
    space: MatmulSpace,
    table: dict[tuple[int, ...], float],
    budget: int,
    n: int,
    *,
    seeds: int = 5,
    initial: int = 8,
    methods: Sequence[str] | None = None,
    seed: int = 0,
) -> dict:
    """Every search of :data:`SCHEDULE_METHODS` (CMA-ES only with the ``tune`` extra) at
    ``budget`` measurements over ``seeds`` seeds, all reading the same measured ``table``
    (index tuple -> seconds, e.g. from :func:`~.kernels.exhaustive_matmul`), plus the
    hand-written :func:`~.kernels.heuristic_schedule` (one measurement). Returns
    ``{"best", "median", "heuristic": seconds, "chosen": {method: [index per seed]},
    "seconds": {method: [table seconds per seed]}, "searches": {method: [ScheduleSearch]}}``."""
    groups = matmul_features(space, n)

    def timer(idx):
        return table[tuple(idx)]

    names = list(SCHEDULE_METHODS) if methods is None else list(methods)
    try:
        import cma  # noqa: F401
    except ImportError:
        names = [m for m in names if m != "CMA-ES"]
    searches: dict[str, list[ScheduleSearch]] = {m: [] for m in names}
    for s in range(seeds):
        sd = seed * 1000 + s
        for m in names:
            if m == "random search":
                res = random_schedule_search(space, timer, budget, seed=sd)
            elif m == "CMA-ES":
                res = cma_schedule_search(space, timer, budget, seed=sd)
            else:
                res = schedule_model_search(space, timer, budget, groups, initial=initial,
                                            seed=sd, **SCHEDULE_METHODS[m])  # fmt: skip
            searches[m].append(res)
    times = np.array(list(table.values()))
    heur = heuristic_schedule(space, n)
    return {
        "best": float(times.min()),
        "median": float(np.median(times)),
        "heuristic": float(table[space.index(heur)]),
        "heuristic_schedule": str(heur),
        "chosen": {m: [r.best for r in rs] for m, rs in searches.items()},
        "seconds": {m: [r.best_seconds for r in rs] for m, rs in searches.items()},
        "searches": searches,
    }
