"""Choosing the tile shape with few measurements: the cost-model loop (fit, choose by
gradient, measure, repeat) against random search at the same number of measurements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import ops
from .exact import Space

__all__ = ["TileSearch", "model_search", "random_tile_search"]


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
