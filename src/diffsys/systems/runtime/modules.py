"""Thin ``nn.Module`` wrappers: a policy owns its weights ``theta``; ``relaxed`` runs the
relaxed simulator (also ``__call__``), ``hard`` the exact one, so a ``pl.Stage`` of it trains
on the surrogate and deploys the exact decision.

>>> import numpy as np
>>> from diffsys.systems.runtime import DispatchPolicy, make_jobs
>>> jobs = make_jobs(40, seed=0)
>>> policy = DispatchPolicy(jobs.speeds)
>>> policy.hard(jobs.arrivals, jobs.sizes).shape
(40,)
"""

from __future__ import annotations

import numpy as np

from ...nn.module import Module, static
from . import exact, ops
from .workload import Jobs, Requests

__all__ = ["DispatchPolicy", "EvictionPolicy"]


def _check_1d(x, what: str, who: str) -> None:
    if len(x.shape) != 1:
        raise ValueError(
            f"{who}: {what} must be 1-d (one entry per job or request), got shape {tuple(x.shape)}"
        )


class DispatchPolicy(Module):
    """A dispatch policy for servers of ``speeds`` (static): ``theta`` (``2 + 2 S``, learned,
    by default least-loaded); inputs ``arrivals`` and ``sizes`` ``(n,)``, output the latency
    of each job."""

    theta: np.ndarray
    speeds: tuple = static()
    wait_temperature: float = static()
    assign_temperature: float = static()

    def __init__(self, speeds, theta=None, *, wait_temperature: float = 0.01,
                 assign_temperature: float = 0.02) -> None:  # fmt: skip
        self.speeds = tuple(float(s) for s in np.asarray(speeds, dtype=np.float64).reshape(-1))
        n = 2 + 2 * len(self.speeds)
        self.theta = (
            exact.dispatch_policy(len(self.speeds))
            if theta is None
            else exact.check_theta(np.asarray(theta, dtype=np.float64), n, "DispatchPolicy")
        )
        self.wait_temperature = float(wait_temperature)
        self.assign_temperature = float(assign_temperature)

    def _jobs(self, arrivals, sizes) -> Jobs:
        who = f"DispatchPolicy(servers={len(self.speeds)})"
        _check_1d(arrivals, "arrivals", who)
        _check_1d(sizes, "sizes", who)
        return Jobs(np.asarray(arrivals), np.asarray(sizes), np.asarray(self.speeds))

    def relaxed(self, arrivals, sizes, *, key=None):
        return ops.smooth_dispatch(
            self._jobs(arrivals, sizes), self.theta, wait_temperature=self.wait_temperature,
            assign_temperature=self.assign_temperature,
        )  # fmt: skip

    def hard(self, arrivals, sizes, *, key=None):
        return exact.simulate_dispatch(self._jobs(arrivals, sizes), np.asarray(self.theta)).latency

    __call__ = relaxed


class EvictionPolicy(Module):
    """An eviction score over :data:`~.exact.CACHE_FEATURES` for a cache of ``capacity``
    (static) over items of ``sizes`` (static); ``theta`` (3, learned, by default LRU);
    input the requested ``items`` ``(T,)``, output the miss cost of each request."""

    theta: np.ndarray
    capacity: int = static()
    sizes: tuple = static()
    temperature: float = static()

    def __init__(self, capacity: int, sizes, theta=None, *, temperature: float = 0.1) -> None:
        self.capacity = int(capacity)
        self.sizes = tuple(float(s) for s in np.asarray(sizes, dtype=np.float64).reshape(-1))
        self.theta = (
            exact.cache_policy("lru")
            if theta is None
            else exact.check_theta(np.asarray(theta, dtype=np.float64), 3, "EvictionPolicy")
        )
        self.temperature = float(temperature)

    def _requests(self, items) -> Requests:
        _check_1d(items, "items", f"EvictionPolicy(capacity={self.capacity})")
        return Requests(np.asarray(items).astype(np.int64), np.asarray(self.sizes))

    def relaxed(self, items, *, key=None):
        return ops.relaxed_cache(
            self._requests(items), self.capacity, self.theta, temperature=self.temperature
        )

    def hard(self, items, *, key=None):
        theta = np.asarray(self.theta)
        return exact.simulate_cache(self._requests(items), self.capacity, theta).cost

    __call__ = relaxed
