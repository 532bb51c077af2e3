"""diffsys.systems.runtime relaxed simulators: gradients checked against finite differences,
convergence to the exact simulators as the temperatures go to 0."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys.systems.runtime import (
    cache_policy,
    dispatch_policy,
    make_jobs,
    make_requests,
    relaxed_cache,
    simulate_cache,
    simulate_dispatch,
    smooth_dispatch,
    smooth_quantile,
    soft_relu,
)


@pytest.mark.parametrize("seed", range(3))
def test_smooth_dispatch_converges_to_lindley(seed):
    jobs = make_jobs(60, seed=seed)
    theta = np.random.default_rng(seed).normal(size=10)
    hard = simulate_dispatch(jobs, theta).latency
    gaps = [
        np.abs(smooth_dispatch(jobs, theta, wait_temperature=t, assign_temperature=t) - hard).max()
        for t in (1.0, 1e-2, 1e-6)
    ]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-9


def test_smooth_dispatch_mean_latency_gap_shrinks():
    jobs = make_jobs(200, seed=5)
    theta = dispatch_policy(4)
    hard = simulate_dispatch(jobs, theta).latency.mean()
    soft = [
        float(smooth_dispatch(jobs, theta, wait_temperature=t, assign_temperature=t).mean())
        for t in (0.3, 0.03, 0.003)
    ]
    gaps = [abs(s - hard) for s in soft]
    assert gaps[0] > gaps[1] > gaps[2]


def test_smooth_dispatch_check_grads():
    jobs = make_jobs(8, seed=2)
    theta = np.random.default_rng(0).normal(size=10)
    ds.check_grads(lambda th: smooth_dispatch(jobs, th, replay=False), (theta,), order=2)
    # through the replayed scan too, and in the temperatures
    ds.check_grads(lambda th: smooth_dispatch(jobs, th, replay="auto").sum(), (theta,), order=1)
    ds.check_grads(
        lambda t: smooth_dispatch(jobs, theta, wait_temperature=t[0], assign_temperature=t[1]),
        (np.array([0.2, 0.5]),), order=1,
    )  # fmt: skip


@pytest.mark.parametrize("capacity", [3, 12])
def test_relaxed_cache_converges_to_exact(capacity):
    req = make_requests(400, catalogue=40, seed=capacity)
    theta = np.array([-1.0, 0.4, 0.3])  # the size feature breaks ties
    hard = simulate_cache(req, capacity, theta).cost
    gaps = [
        np.abs(relaxed_cache(req, capacity, theta, temperature=t) - hard).max() for t in (3.0, 1e-4)
    ]
    assert gaps[0] > 0.1 and gaps[1] < 1e-9


def test_relaxed_cache_lru_is_exact_at_low_temperature():
    req = make_requests(300, catalogue=30, seed=9)
    hard = simulate_cache(req, 5, cache_policy("lru")).cost
    np.testing.assert_allclose(relaxed_cache(req, 5, cache_policy("lru"), temperature=1e-4), hard)


def test_relaxed_cache_check_grads():
    req = make_requests(12, catalogue=8, seed=4)
    theta = np.array([-0.7, 0.5, 0.4])
    ds.check_grads(
        lambda th: relaxed_cache(req, 3, th, temperature=2.0, carry_gradient="exact", replay=False),
        (theta,), order=1,
    )  # fmt: skip
    ds.check_grads(
        lambda th: relaxed_cache(req, 3, th, temperature=2.0, carry_gradient="exact").sum(),
        (theta,), order=1,
    )  # fmt: skip


def test_relaxed_cache_occupancy_gradient_stays_finite_on_long_traces():
    req = make_requests(300, catalogue=40, seed=1)
    lru = cache_policy("lru")
    values, grads = {}, {}
    for mode in ("exact", "occupancy"):
        fn = lambda t, mode=mode: relaxed_cache(req, 6, t, carry_gradient=mode).mean()  # noqa: E731
        with np.errstate(all="ignore"):
            values[mode], grads[mode] = ds.value_and_grad(fn)(lru)
    assert values["exact"] == values["occupancy"]  # the surrogate changes no value
    assert not np.all(np.isfinite(grads["exact"]))  # the exact carry derivative overflows
    assert np.all(np.isfinite(grads["occupancy"])) and np.abs(grads["occupancy"]).max() > 0


def test_smooth_quantile():
    x = np.random.default_rng(1).normal(size=41)
    for q in (0.5, 0.9, 0.95):
        assert abs(float(smooth_quantile(x, q, 1e-6)) - np.quantile(x, q)) < 1e-9
    ds.check_grads(lambda v: smooth_quantile(v, 0.9, 0.5), (x,), order=1)
    with pytest.raises(ValueError, match="smooth_quantile: q"):
        smooth_quantile(x, 1.5)


def test_soft_relu_bound_and_hard_form():
    x = np.linspace(-3, 3, 13)
    for t in (1.0, 0.1, 0.01):
        gap = soft_relu.gap(x, temperature=t)
        assert 0 < gap <= t * np.log(2) + 1e-15
    np.testing.assert_array_equal(soft_relu.hard(x), np.maximum(x, 0))
    ds.check_grads(lambda v: soft_relu(v, 0.3), (x,), order=2)


def test_relaxed_errors_name_the_function():
    with pytest.raises(ValueError, match=r"smooth_dispatch: theta must have shape \(10,\)"):
        smooth_dispatch(make_jobs(5), np.zeros(4))
    with pytest.raises(ValueError, match="relaxed_cache: capacity"):
        relaxed_cache(make_requests(10, catalogue=5), 0, cache_policy("lru"))


def test_replayed_scan_gives_the_same_gradient():
    jobs, req = make_jobs(40, seed=7), make_requests(60, catalogue=15, seed=7)
    theta = np.random.default_rng(3).normal(size=10)
    g = [
        ds.grad(lambda th, r=r: smooth_dispatch(jobs, th, replay=r).mean())(theta)
        for r in (False, True)
    ]
    np.testing.assert_allclose(g[0], g[1], rtol=1e-12, atol=1e-14)
    th = np.array([-1.0, 0.2, 0.3])
    g = [
        ds.grad(lambda t, r=r: relaxed_cache(req, 4, t, replay=r).mean())(th) for r in (False, True)
    ]
    np.testing.assert_allclose(g[0], g[1], rtol=1e-12, atol=1e-14)
    assert np.abs(g[0]).max() > 0


def test_relaxed_cache_protects_the_requested_item():
    # "evict the most recent" (MRU) scores the item just requested lowest: the cache must
    # still keep it (the exact cache chooses its victim among the other residents)
    req = make_requests(300, catalogue=30, seed=5)
    mru = np.array([1.0, 0.0, 1e-3])
    hard = simulate_cache(req, 5, mru).cost
    np.testing.assert_allclose(relaxed_cache(req, 5, mru, temperature=1e-5), hard, atol=1e-9)
