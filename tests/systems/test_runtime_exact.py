"""diffsys.systems.runtime exact layer: the Lindley dispatch simulator against the
event-by-event reference, the reference against hand-computed schedules, the cache against an
independent LRU, the workloads' structure."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from diffsys.systems.runtime import (
    Jobs,
    Requests,
    cache_features,
    cache_policy,
    dispatch_policy,
    make_jobs,
    make_requests,
    simulate_cache,
    simulate_dispatch,
    simulate_events,
)


def _jobs(arrivals, sizes, speeds=(1.0,)):
    return Jobs(np.array(arrivals, float), np.array(sizes, float), np.array(speeds, float))


def test_events_fifo_and_sjf_by_hand():
    # one server: job 0 runs 0-2; at t=2 jobs 1 (3 units) and 2 (0.5 units) wait
    jobs = _jobs([0.0, 1.0, 1.5], [2.0, 3.0, 0.5])
    fifo = simulate_events(jobs, "least_loaded", "fifo")
    np.testing.assert_allclose(fifo.wait, [0.0, 1.0, 3.5])
    np.testing.assert_allclose(fifo.latency, [2.0, 4.0, 4.0])
    sjf = simulate_events(jobs, "least_loaded", "sjf")
    np.testing.assert_allclose(sjf.wait, [0.0, 1.5, 0.5])
    np.testing.assert_allclose(sjf.latency, [2.0, 4.5, 1.0])


def test_events_round_robin_and_speeds_by_hand():
    jobs = _jobs([0.0, 0.5, 1.0, 1.5], [2.0, 2.0, 2.0, 2.0], speeds=(1.0, 2.0))
    rr = simulate_events(jobs, "round_robin")
    np.testing.assert_array_equal(rr.server, [0, 1, 0, 1])
    # server 0: 0-2, 2-4 (wait 1); server 1: 0.5-1.5, 1.5-2.5 (wait 0)
    np.testing.assert_allclose(rr.wait, [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(rr.latency, [2.0, 1.0, 3.0, 1.0])


@pytest.mark.parametrize("seed", range(4))
def test_lindley_dispatch_equals_event_reference(seed):
    jobs = make_jobs(300, seed=seed)
    rng = np.random.default_rng(seed)
    for theta in (dispatch_policy(4), dispatch_policy(4, "earliest_finish"), rng.normal(size=10)):
        fast, ref = simulate_dispatch(jobs, theta), simulate_events(jobs, theta, "fifo")
        np.testing.assert_array_equal(fast.server, ref.server)
        np.testing.assert_allclose(fast.latency, ref.latency, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fast.wait, ref.wait, rtol=1e-10, atol=1e-10)


def test_least_loaded_beats_round_robin_and_latency_exceeds_service():
    jobs = make_jobs(400, seed=3)
    ll, rr = simulate_dispatch(jobs, dispatch_policy(4)), simulate_events(jobs, "round_robin")
    assert ll.latency.mean() < rr.latency.mean()
    service = jobs.sizes / jobs.speeds[ll.server]
    assert np.all(ll.latency >= service - 1e-12) and np.all(ll.wait >= 0)


def _lru_reference(items, capacity):
    cache = OrderedDict((i, None) for i in range(capacity))  # prefilled, 0 least recent
    hits = []
    for j in items:
        hits.append(j in cache)
        if j in cache:
            cache.move_to_end(j)
        else:
            cache.popitem(last=False)
            cache[j] = None
    return np.array(hits)


@pytest.mark.parametrize("capacity", [1, 5, 20])
def test_cache_lru_equals_ordered_dict_lru(capacity):
    req = make_requests(1500, catalogue=60, seed=capacity)
    res = simulate_cache(req, capacity, cache_policy("lru"))
    np.testing.assert_array_equal(res.hit, _lru_reference(req.items.tolist(), capacity))
    np.testing.assert_allclose(res.cost, np.where(res.hit, 0.0, req.sizes[req.items]))


def test_cache_lfu_keeps_the_frequent_item():
    # item 9 requested often, then a scan of new items: LFU keeps 9, LRU loses it
    items = [9] * 5 + list(range(10, 20)) + [9]
    req = Requests(np.array(items), np.ones(30))
    assert simulate_cache(req, 3, cache_policy("lfu")).hit[-1]
    assert not simulate_cache(req, 3, cache_policy("lru")).hit[-1]


def test_cache_features_track_recency_and_frequency():
    req = Requests(np.array([3, 4, 3]), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    f = cache_features(req, 2)
    np.testing.assert_allclose(f[2, 3], [0.0, np.log1p(2), np.log(4.0)])
    np.testing.assert_allclose(f[2, 4, :2], [np.log1p(1), np.log1p(1)])
    np.testing.assert_allclose(f[2, 1, :2], [np.log1p(3), 0.0])  # prefilled, last at -1


def test_workloads_are_seeded_and_structured():
    a, b = make_jobs(500, seed=1), make_jobs(500, seed=1)
    np.testing.assert_array_equal(a.arrivals, b.arrivals)
    assert np.all(np.diff(a.arrivals) > 0) and np.all(a.sizes > 0)
    assert np.quantile(a.sizes, 0.99) > 5 * np.median(a.sizes)  # heavy tail
    req = make_requests(4000, catalogue=200, drift=1.0, seed=2)
    first = np.bincount(req.items[:1000], minlength=200)
    last = np.bincount(req.items[-1000:], minlength=200)
    assert np.sort(first)[-10:].sum() > 0.2 * 1000  # popular head (Zipf)
    assert np.argmax(first) != np.argmax(last)  # the popular set drifts


def test_errors_name_the_function_and_shape():
    jobs = make_jobs(20)
    with pytest.raises(ValueError, match=r"simulate_dispatch: theta must have shape \(10,\)"):
        simulate_dispatch(jobs, np.zeros(3))
    with pytest.raises(ValueError, match="simulate_events: discipline"):
        simulate_events(jobs, "least_loaded", "lifo")
    with pytest.raises(ValueError, match="simulate_cache: capacity"):
        simulate_cache(make_requests(10, catalogue=5), 5, cache_policy("lru"))
    with pytest.raises(ValueError, match="make_jobs: speeds"):
        make_jobs(5, speeds=(1.0, -1.0))
