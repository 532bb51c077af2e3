"""A small regression problem for the data-parallel tests; its functions travel to the workers
by value (cloudpickle), as a script's would, since this folder is not importable there."""

from __future__ import annotations

import numpy as np

import diffsys.numpy as dnp
from diffsys import nn
from diffsys.core.custom import stop_gradient


def make_data(n: int = 61, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.sin(x @ np.array([1.0, -2.0, 0.5])) + 0.1 * rng.normal(size=n)
    return {"x": x, "y": y}


def init_params(seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(size=(3, 8)) / 2,
        "b1": np.zeros(8),
        "w2": rng.normal(size=(8,)) / 3,
        "b2": np.zeros(()),
    }


def loss(params, batch):
    h = dnp.tanh(batch["x"] @ params["w1"] + params["b1"])
    pred = h @ params["w2"] + params["b2"]
    return dnp.mean((pred - batch["y"]) ** 2) + 1e-3 * dnp.sum(params["w1"] ** 2)


class Loader:
    """Shard ``i`` of ``n_shards`` of ``make_data(n)``: made on the worker that holds it."""

    def __init__(self, n_shards: int, n: int = 61) -> None:
        self.n_shards, self.n = n_shards, n

    def __call__(self, i: int) -> dict:
        data = make_data(self.n)
        parts = np.array_split(np.arange(self.n), self.n_shards)
        return {k: v[parts[i]] for k, v in data.items()}


def register_by_value(module) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)



class RunningCenter(nn.Module):
    """A stateful stage module: subtracts the running mean of its inputs (state from before the
    step) and updates that mean with the batch mean, counting the batches: the kind of state
    whose shard-weighted mean equals the full batch's."""

    features: int
    momentum: float
    scale: np.ndarray
    state_name: str | None

    stateful = True

    def __init__(self, features: int, momentum: float = 0.25) -> None:
        self.features, self.momentum = int(features), float(momentum)
        self.scale = np.ones(features)
        self.state_name = None

    def init_state(self) -> dict:
        return {"mean": np.zeros(self.features), "count": np.array(0)}

    def __call__(self, x, state, *, key=None):
        stats = state[self.state_name]
        y = (x - stats["mean"]) * self.scale
        m = self.momentum
        new = {
            "mean": (1 - m) * stats["mean"] + m * stop_gradient(dnp.mean(x, axis=0)),
            "count": stats["count"] + 1,
        }
        return y, state.set(self.state_name, new)


def running_center(features: int, momentum: float = 0.25) -> RunningCenter:
    return RunningCenter(features, momentum)
