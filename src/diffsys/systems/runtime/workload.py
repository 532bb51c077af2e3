"""Generated workloads with the structure real traces have: diurnal drift, bursts, heavy tails,
Zipf popularity. Plain NumPy, seeded; every generator returns frozen arrays.

>>> jobs = make_jobs(100, seed=0)
>>> jobs.arrivals.shape, bool((jobs.sizes > 0).all())
((100,), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Jobs", "Requests", "make_jobs", "make_requests"]


def _frozen(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@dataclass(frozen=True)
class Jobs:
    """A job trace: ``arrivals`` (sorted times, shape ``(n,)``), ``sizes`` (work, ``(n,)``)
    and the servers' ``speeds`` (``(S,)``): job ``i`` takes ``sizes[i] / speeds[s]`` on ``s``."""

    arrivals: np.ndarray
    sizes: np.ndarray
    speeds: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """Inter-arrival times (the first measured from time 0)."""
        return np.diff(self.arrivals, prepend=0.0)

    def __len__(self) -> int:
        return len(self.arrivals)


@dataclass(frozen=True)
class Requests:
    """A cache trace: ``items`` (requested ids, ``(T,)``) over a catalogue of
    ``len(sizes)`` items with ``sizes`` (``(N,)``, the cost of a miss in bytes)."""

    items: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.items)


def make_jobs(
    n: int,
    *,
    speeds=(1.0, 1.0, 2.0, 4.0),
    load: float = 0.8,
    burstiness: float = 3.0,
    period: float | None = None,
    seed: int | np.random.Generator = 0,
) -> Jobs:
    """``n`` jobs for servers of the given ``speeds`` at mean utilisation ``load``.

    Sizes are a mix of many small jobs and a heavy (Pareto, shape 1.5) tail; the arrival
    rate follows a day cycle of ``period`` (default: the whole trace is two days) and
    switches into bursts (rate times ``burstiness``) a tenth of the time.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    speeds = np.asarray(speeds, dtype=np.float64)
    if speeds.ndim != 1 or len(speeds) < 1 or not (speeds > 0).all():
        raise ValueError(f"make_jobs: speeds must be a 1-d array of positive rates, got {speeds}")
    small = rng.exponential(0.3, n)
    heavy = 0.6 * (rng.pareto(1.5, n) + 1.0)
    sizes = np.where(rng.random(n) < 0.8, small, heavy)
    rate = load * speeds.sum() / sizes.mean()  # jobs per unit time at the mean
    period = period if period is not None else n / rate / 2
    # thinning of a Poisson process with rate(t) = base(t) * burst(t)
    times, t, burst = [], 0.0, False
    peak = rate * 1.5 * burstiness
    while len(times) < n:
        t += rng.exponential(1.0 / peak)
        if rng.random() < 0.02:
            burst = rng.random() < 0.1
        r = rate * (1.0 + 0.5 * np.sin(2 * np.pi * t / period)) * (burstiness if burst else 1.0)
        if rng.random() < r / peak:
            times.append(t)
    arrivals = np.array(times)
    out = Jobs(arrivals, sizes, speeds)
    _frozen(out.arrivals, out.sizes, out.speeds)
    return out


def make_requests(
    length: int,
    *,
    catalogue: int = 200,
    zipf: float = 0.9,
    drift: float = 1.0,
    burst_every: int = 400,
    seed: int | np.random.Generator = 0,
) -> Requests:
    """``length`` requests over ``catalogue`` items: Zipf(``zipf``) popularity whose ranking
    drifts through the trace (``drift`` full rotations of the popular set per trace, like a
    day cycle), with bursts (one item hot for a short window every ``burst_every`` requests)
    and log-normal item sizes (the miss cost)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    ranks = np.arange(1, catalogue + 1, dtype=np.float64)
    p = ranks**-zipf
    p /= p.sum()
    order = rng.permutation(catalogue)
    base = rng.choice(catalogue, size=length, p=p)  # popularity rank of each request
    shift = (np.arange(length) * drift * catalogue / max(length, 1)).astype(np.int64)
    items = order[(base + shift) % catalogue]
    for start in range(burst_every // 2, length, burst_every):
        hot, end = rng.integers(catalogue), min(length, start + burst_every // 8)
        mask = rng.random(end - start) < 0.5
        items[start:end][mask] = hot
    sizes = np.exp(rng.normal(0.0, 1.0, catalogue))
    out = Requests(items.astype(np.int64), sizes)
    _frozen(out.items, out.sizes)
    return out
