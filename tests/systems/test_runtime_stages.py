"""diffsys.systems.runtime modules and stages: relaxed in train(), exact in infer(), the
mismatch reported, and a pipeline step that trains the policy's weights."""

from __future__ import annotations

import numpy as np
import pytest

from diffsys import optim
from diffsys import pipeline as pl
from diffsys.systems.runtime import (
    DispatchPolicy,
    EvictionPolicy,
    cache_stage,
    dispatch_stage,
    make_jobs,
    make_requests,
    relaxed_cache,
    simulate_cache,
    simulate_dispatch,
    smooth_dispatch,
)


def test_dispatch_stage_trains_relaxed_and_infers_exact():
    jobs = make_jobs(80, seed=3)
    policy = DispatchPolicy(jobs.speeds)
    batch = {"arrivals": np.asarray(jobs.arrivals), "sizes": np.asarray(jobs.sizes)}
    pipe = pl.Pipeline([dispatch_stage("dispatch", policy)], batch_keys=("arrivals", "sizes"))
    pipe.add_loss("latency", lambda lat: lat.mean(), inputs=("dispatch",))
    pipe.train()
    relaxed = smooth_dispatch(jobs, policy.theta, wait_temperature=0.01, assign_temperature=0.02)
    np.testing.assert_allclose(pipe(batch), relaxed)
    pipe.infer()
    exact = simulate_dispatch(jobs, policy.theta).latency
    np.testing.assert_array_equal(pipe(batch), exact)
    assert pipe.mismatch(batch)["dispatch"].max_abs == pytest.approx(np.abs(relaxed - exact).max())
    pipe.train()
    ts = pipe.init(optim.adam(0.05))
    for _ in range(3):
        ts, _ = pipe.step(ts, batch)
    assert not np.allclose(ts.params["dispatch"].theta, policy.theta)


def test_cache_stage_trains_relaxed_and_infers_exact():
    req = make_requests(120, catalogue=20, seed=2)
    policy = EvictionPolicy(4, req.sizes, temperature=0.5)
    batch = {"items": np.asarray(req.items)}
    pipe = pl.Pipeline([cache_stage("cache", policy)], batch_keys=("items",))
    pipe.add_loss("cost", lambda c: c.mean(), inputs=("cache",))
    pipe.train()
    np.testing.assert_allclose(pipe(batch), relaxed_cache(req, 4, policy.theta, temperature=0.5))
    pipe.infer()
    np.testing.assert_array_equal(pipe(batch), simulate_cache(req, 4, policy.theta).cost)


def test_policy_errors_name_the_module():
    with pytest.raises(ValueError, match=r"DispatchPolicy: theta must have shape \(6,\)"):
        DispatchPolicy((1.0, 2.0), np.zeros(3))
    with pytest.raises(ValueError, match=r"DispatchPolicy\(servers=2\): arrivals must be 1-d"):
        DispatchPolicy((1.0, 2.0)).hard(np.zeros((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"EvictionPolicy: theta must have shape \(3,\)"):
        EvictionPolicy(2, np.ones(5), np.zeros(4))
