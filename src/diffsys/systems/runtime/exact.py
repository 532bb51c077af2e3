"""The exact (hard) simulators, plain NumPy and Python, no tracers: what a deployed policy
does, used to evaluate, and the references the relaxed simulators converge to.

Queueing: jobs are dispatched on arrival to one of ``S`` servers (speeds ``mu``) and each
server serves its queue in order. A *dispatch policy* is a vector ``theta`` of
``2 + 2 S`` numbers scoring server ``s`` for a job of size ``x`` as::

    score_s = -theta[0] * backlog_s / m - theta[1] * (x / mu_s) / m
              + theta[2 + s] + theta[2 + S + s] * log(x / m)

(``backlog_s``: the work left at ``s`` when the job arrives, in time; ``m``: the mean service
time, so the weights are unit-free); the job goes to the highest score. Least-loaded is
``theta = (1, 0, 0...)``, earliest-finish ``(1, 1, 0...)``.

- :func:`simulate_dispatch`: Lindley's recursion per server, ``W <- max(0, W - gap)``;
- :func:`simulate_events`: a straightforward event-by-event simulation (an event heap,
  explicit queues), which also runs other queue disciplines (``"sjf"``) and dispatch rules
  (``"round_robin"``): the reference the recursion is checked against.

Caching: a cache of ``capacity`` items (prefilled with items ``0..capacity-1``) serves a
request trace; on a miss the requested item is inserted and the resident item with the
lowest *eviction score* ``features @ theta`` leaves. The features of item ``i`` after
request ``t`` are :data:`CACHE_FEATURES`: ``log1p(t - last access)``, ``log1p(accesses)``
and ``log(size)``. LRU is ``theta = (-1, 0, 0)``; LFU (recency breaking ties)
``(-1e-3, 1, 0)``. :func:`simulate_cache` is the reference (sets and a loop).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .workload import Jobs, Requests

__all__ = [
    "CACHE_FEATURES",
    "CacheResult",
    "QueueResult",
    "cache_features",
    "cache_policy",
    "check_theta",
    "dispatch_policy",
    "dispatch_scores",
    "evaluate",
    "service_scale",
    "simulate_cache",
    "simulate_dispatch",
    "simulate_events",
]

CACHE_FEATURES = ("log1p(recency)", "log1p(frequency)", "log(size)")


@dataclass(frozen=True)
class QueueResult:
    """Per job: ``latency`` (waiting + service time), ``wait`` and ``server``."""

    latency: np.ndarray
    wait: np.ndarray
    server: np.ndarray


@dataclass(frozen=True)
class CacheResult:
    """Per request: ``hit`` (bool) and ``cost`` (the miss cost paid: the size, 0 on a hit)."""

    hit: np.ndarray
    cost: np.ndarray

    @property
    def miss_cost(self) -> float:
        """The mean miss cost per request."""
        return float(self.cost.mean())


def check_theta(theta, size: int, name: str):
    """``theta`` (a NumPy array, or a traced value left as it is) if its shape is ``(size,)``."""
    if not hasattr(theta, "shape"):
        theta = np.asarray(theta, dtype=np.float64)
    if tuple(theta.shape) != (size,):
        raise ValueError(
            f"{name}: theta must have shape ({size},) (2 + 2 * servers for dispatch, 3 for "
            f"eviction), got {tuple(theta.shape)}"
        )
    return theta


def dispatch_policy(servers: int, kind: str = "least_loaded") -> np.ndarray:
    """The ``theta`` of a hand-written dispatch rule: ``"least_loaded"``,
    ``"earliest_finish"`` or ``"zero"`` (all scores equal: the relaxed policy spreads jobs
    evenly, the hard one sends all to server 0)."""
    theta = np.zeros(2 + 2 * servers)
    if kind == "least_loaded":
        theta[0] = 1.0
    elif kind == "earliest_finish":
        theta[:2] = 1.0
    elif kind != "zero":
        raise ValueError(
            "dispatch_policy: kind must be 'least_loaded', 'earliest_finish' or 'zero', "
            f"got {kind!r}"
        )
    return theta


def dispatch_scores(theta, backlog, service, log_size, scale: float):
    """The policy's score of each server (last axis); arithmetic only, so it runs on NumPy
    arrays and on traced values alike."""
    s = service.shape[-1]
    return (
        -theta[0] * backlog / scale
        - theta[1] * service / scale
        + theta[2 : 2 + s]
        + theta[2 + s : 2 + 2 * s] * log_size
    )


def service_scale(jobs: Jobs) -> float:
    """The unit of time the policy's weights are in: mean size over mean speed."""
    return float(np.mean(jobs.sizes) / np.mean(jobs.speeds))


def simulate_dispatch(jobs: Jobs, theta) -> QueueResult:
    """Dispatch ``jobs`` by ``theta`` to FIFO servers; Lindley's recursion per server."""
    mu = jobs.speeds
    theta = check_theta(theta, 2 + 2 * len(mu), "simulate_dispatch")
    scale = service_scale(jobs)
    w = np.zeros(len(mu))
    n = len(jobs)
    lat, wait, server = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
    for i, (gap, x) in enumerate(zip(jobs.gaps, jobs.sizes, strict=True)):
        w = np.maximum(w - gap, 0.0)
        service = x / mu
        s = int(np.argmax(dispatch_scores(theta, w, service, np.log(x / scale), scale)))
        wait[i], lat[i], server[i] = w[s], w[s] + service[s], s
        w[s] += service[s]
    return QueueResult(lat, wait, server)


def simulate_events(
    jobs: Jobs,
    dispatch: str | np.ndarray = "least_loaded",
    discipline: str = "fifo",
) -> QueueResult:
    """Event-by-event simulation: arrivals and departures from a heap, explicit queues.

    ``dispatch``: a policy ``theta`` (scored on the backlog found by summing the work left
    in each server's queue), ``"round_robin"``, or a name of :func:`dispatch_policy`;
    ``discipline``: ``"fifo"`` or ``"sjf"`` (non-preemptive shortest job first).
    """
    if discipline not in ("fifo", "sjf"):
        raise ValueError(f"simulate_events: discipline must be 'fifo' or 'sjf', got {discipline!r}")
    mu, n, scale = jobs.speeds, len(jobs), service_scale(jobs)
    S = len(mu)
    rr = isinstance(dispatch, str) and dispatch == "round_robin"
    if not rr:
        theta = dispatch_policy(S, dispatch) if isinstance(dispatch, str) else dispatch
        theta = check_theta(theta, 2 + 2 * S, "simulate_events")
    queues: list[list[int]] = [[] for _ in range(S)]
    running: list[tuple[int, float, float] | None] = [None] * S  # (job, start, end)
    start = np.empty(n)
    server = np.empty(n, dtype=np.int64)
    events = [(float(a), 1, i) for i, a in enumerate(jobs.arrivals)]  # (time, kind, who)
    heapq.heapify(events)

    def begin(s: int, now: float) -> None:
        if running[s] is None and queues[s]:
            q = queues[s]
            k = 0
            if discipline == "sjf":
                k = min(range(len(q)), key=lambda j: (jobs.sizes[q[j]], j))
            job = q.pop(k)
            end = now + jobs.sizes[job] / mu[s]
            running[s], start[job] = (job, now, end), now
            heapq.heappush(events, (end, 0, s))  # departures (kind 0) before arrivals

    while events:
        now, kind, who = heapq.heappop(events)
        if kind == 0:
            running[who] = None
            begin(who, now)
            continue
        x = jobs.sizes[who]
        if rr:
            s = who % S
        else:
            backlog = np.array(
                [
                    (0.0 if running[k] is None else running[k][2] - now)
                    + sum(jobs.sizes[j] for j in queues[k]) / mu[k]
                    for k in range(S)
                ]
            )
            s = int(np.argmax(dispatch_scores(theta, backlog, x / mu, np.log(x / scale), scale)))
        server[who] = s
        queues[s].append(who)
        begin(s, now)
    wait = start - jobs.arrivals
    return QueueResult(wait + jobs.sizes / mu[server], wait, server)


def cache_policy(kind: str) -> np.ndarray:
    """The ``theta`` of a hand-written eviction rule: ``"lru"``, ``"lfu"`` (recency breaks
    ties) or ``"size"`` (evict the smallest: keep the costly misses away)."""
    table = {"lru": (-1.0, 0.0, 0.0), "lfu": (-1e-3, 1.0, 0.0), "size": (-1e-3, 0.0, 1.0)}
    if kind not in table:
        raise ValueError(f"cache_policy: kind must be one of {sorted(table)}, got {kind!r}")
    return np.array(table[kind])


def cache_features(requests: Requests, capacity: int) -> np.ndarray:
    """The eviction features of every item after every request, shape ``(T, N, 3)``
    (:data:`CACHE_FEATURES`); the prefilled items ``0..capacity-1`` count as last
    accessed at times ``-capacity..-1``."""
    n_items = len(requests.sizes)
    last = np.full(n_items, -float(len(requests) + capacity))
    last[:capacity] = np.arange(-capacity, 0)
    count = np.zeros(n_items)
    out = np.empty((len(requests), n_items, 3))
    out[:, :, 2] = np.log(requests.sizes)
    for t, j in enumerate(requests.items):
        last[j], count[j] = t, count[j] + 1
        out[t, :, 0] = np.log1p(t - last)
        out[t, :, 1] = np.log1p(count)
    return out


def simulate_cache(requests: Requests, capacity: int, theta) -> CacheResult:
    """Serve ``requests`` with a cache of ``capacity`` items evicting the lowest
    ``features @ theta``; features kept online, a set of residents (the reference)."""
    theta = check_theta(theta, 3, "simulate_cache")
    n_items = len(requests.sizes)
    if not 0 < capacity < n_items:
        raise ValueError(f"simulate_cache: capacity must be in 1..{n_items - 1}, got {capacity}")
    resident = set(range(capacity))
    last = {i: i - capacity for i in range(capacity)}
    count: dict[int, int] = {}
    hit = np.zeros(len(requests), dtype=bool)
    logsize = np.log(requests.sizes)
    never = -float(len(requests) + capacity)
    for t, j in enumerate(requests.items.tolist()):
        hit[t] = j in resident
        last[j], count[j] = t, count.get(j, 0) + 1
        if not hit[t]:
            scores = {
                i: float(
                    theta[0] * np.log1p(t - last.get(i, never))
                    + theta[1] * np.log1p(count.get(i, 0))
                    + theta[2] * logsize[i]
                )
                for i in resident
            }
            victim = min(resident, key=lambda i: (scores[i], i))
            resident.remove(victim)
            resident.add(j)
    return CacheResult(hit, np.where(hit, 0.0, requests.sizes[requests.items]))


def evaluate(simulate: Callable, traces, theta, metric: Callable) -> float:
    """The mean of ``metric(simulate(trace, theta))`` over ``traces``."""
    return float(np.mean([metric(simulate(tr, theta)) for tr in traces]))
