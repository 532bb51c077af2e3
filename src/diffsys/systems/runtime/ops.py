"""The relaxed simulators: the same systems as :mod:`.exact`, written with smooth recursions
so a latency or a miss cost can be differentiated with respect to the policy.

Queueing (:func:`smooth_dispatch`), one step per job, looped by ``ds.scan``::

    W <- T_w * softplus((W - gap) / T_w)              # Lindley, max(0, .) relaxed
    p  = softmax(score(theta, W, x / mu) / T_a)        # soft assignment to servers
    latency = sum_s p_s (W_s + x / mu_s);  W <- W + p * x / mu

As ``T_w, T_a -> 0`` (no ties among scores) each step tends to :func:`~.exact.simulate_dispatch`'s.

Caching (:func:`relaxed_cache`): a soft occupancy ``m in [0, 1]^N`` (``sum m = capacity``).
Request ``t`` for item ``j`` pays ``(1 - m_j) * size_j``; then the new occupancy is the soft
top-``capacity`` mask (``relax.soft_topk_mask``, l2) of ``score + B m + 2 B e_j``, with
``B`` the power of two above twice the largest ``|score|``, so residents outrank the rest
and the requested item is kept. As the regularization -> 0 it is
:func:`~.exact.simulate_cache` with the learned score.

The carried occupancy's exact derivative is ``(B / T) P`` per step (``P`` the projection onto
the fractional block of the mask): through hundreds of requests it overflows (NaN
gradients at ``T = 0.1`` after ~300 requests). ``carry_gradient="occupancy"`` (default)
keeps the values and replaces that derivative by the hard cache's: an item's occupancy
carries over while it is kept, ``d m'_i / d m_i = keep_i`` (0 for the requested item), so
the gradient stays bounded but is a surrogate; ``"exact"`` differentiates the relaxation
as written (what ``check_grads`` verifies).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core import stop_gradient
from ...relax import soft_relu, soft_sort, soft_topk_mask, softmax
from ...scan import scan
from .exact import check_theta, dispatch_scores, service_scale
from .workload import Jobs, Requests

__all__ = ["relaxed_cache", "smooth_dispatch", "smooth_quantile", "soft_relu"]

Array = Any


def smooth_dispatch(
    jobs: Jobs,
    theta: Array,
    *,
    wait_temperature: float | Array = 0.05,
    assign_temperature: float | Array = 0.1,
    checkpoint=None,
    replay: bool | str = "auto",
) -> Array:
    """The latency of every job (shape ``(n,)``) under the relaxed dispatch policy ``theta``;
    ``wait_temperature`` is in units of the mean service time.

    >>> from diffsys.systems.runtime import make_jobs, dispatch_policy
    >>> jobs = make_jobs(50, seed=1)
    >>> smooth_dispatch(jobs, dispatch_policy(4)).shape
    (50,)
    """
    mu = jobs.speeds
    check_theta(theta, 2 + 2 * len(mu), "smooth_dispatch")
    scale = service_scale(jobs)
    t_w = wait_temperature * scale
    xs = (jobs.gaps, jobs.sizes[:, None] / mu, np.log(jobs.sizes / scale))

    def step(w, x):
        gap, service, log_size = x
        w = soft_relu(w - gap, t_w)
        p = softmax(dispatch_scores(theta, w, service, log_size, scale), assign_temperature)
        return w + p * service, dnp.sum(p * (w + service))

    _, latency = scan(step, np.zeros(len(mu)), xs, checkpoint=checkpoint, replay=replay)
    return latency


def smooth_quantile(x: Array, q: float, regularization_strength: float | Array = 0.1) -> Array:
    """A smooth ``q``-quantile of ``x`` (1-d): the soft-sorted values (``relax.soft_sort``,
    l2) interpolated at position ``q (n - 1)``; the exact quantile as the strength -> 0.

    >>> round(float(smooth_quantile(np.arange(11.0), 0.9, 1e-3)), 6)
    9.0
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"smooth_quantile: q must be in [0, 1], got {q}")
    s = soft_sort(x, regularization_strength=regularization_strength)
    pos = q * (x.shape[-1] - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, x.shape[-1] - 1)
    return (1 - (pos - lo)) * s[lo] + (pos - lo) * s[hi]


def relaxed_cache(
    requests: Requests,
    capacity: int,
    theta: Array,
    *,
    temperature: float | Array = 0.1,
    features: np.ndarray | None = None,
    carry_gradient: str = "occupancy",
    checkpoint=None,
    replay: bool | str = "auto",
) -> Array:
    """The relaxed miss cost of every request (shape ``(T,)``) under eviction score
    ``features @ theta``; ``temperature`` is soft top-k's regularization strength.
    ``features``: :func:`~.exact.cache_features` (computed when not given).
    """
    from .exact import cache_features

    if carry_gradient not in ("occupancy", "exact"):
        raise ValueError(
            f"relaxed_cache: carry_gradient must be 'occupancy' or 'exact', got {carry_gradient!r}"
        )
    surrogate = carry_gradient == "occupancy"
    check_theta(theta, 3, "relaxed_cache")
    n_items = len(requests.sizes)
    if not 0 < capacity < n_items:
        raise ValueError(f"relaxed_cache: capacity must be in 1..{n_items - 1}, got {capacity}")
    if features is None:
        features = cache_features(requests, capacity)
    scores = dnp.matmul(features, theta)  # (T, N)
    # a power of two: piecewise constant in theta, so it never moves under a small change
    big = 2.0 ** np.ceil(np.log2(2.0 * float(np.max(np.abs(stop_gradient(scores)))) + 1.0))
    onehot = np.eye(n_items)[requests.items]
    cost = requests.sizes[requests.items]
    m0 = np.zeros(n_items)
    m0[:capacity] = 1.0

    def step(m, x):
        score, e, c = x
        paid = (1.0 - dnp.sum(m * e)) * c
        fixed = stop_gradient(m) if surrogate else m
        ranked = score + big * fixed + 2 * big * e
        keep = soft_topk_mask(ranked, capacity, regularization_strength=temperature)
        if surrogate:  # same value; d keep_i / d m_i = keep_i (i not requested)
            keep = keep + keep * (1.0 - e) * (m - fixed)
        return keep, paid

    _, paid = scan(step, m0, (scores, onehot, cost), checkpoint=checkpoint, replay=replay)
    return paid
