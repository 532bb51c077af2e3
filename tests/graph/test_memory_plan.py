"""memory_plan: the liveness-based prediction against the peak tracemalloc measures."""

import gc
import tracemalloc

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp

N = 100_000  # 800 kB per float64 array: interpreter noise is far below 20 %
rng = np.random.default_rng(3)
X = rng.random(N)
W = rng.random(N)


def chain(x, w):
    h = dnp.tanh(x * w)
    h2 = dnp.exp(h) + x
    h3 = dnp.reshape(h2, (100, 1000)).T  # views allocate nothing
    return dnp.sum(h3 * dnp.transpose(dnp.reshape(h, (100, 1000)))) + dnp.sum(dnp.sin(w))


def wide(x, w):
    parts = [dnp.sin(x * k) for k in (1.0, 2.0, 3.0, 4.0)]  # four values alive at once
    total = parts[0] * parts[1] + parts[2] * parts[3]
    return dnp.sum(total * w)


def measured_peak(fun, *args) -> int:
    fun(*args)  # compile and warm up outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fun(*args)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del out
    return peak


@pytest.mark.parametrize("fun", [chain, wide])
def test_forward_prediction_within_20_percent(fun):
    g = ds.trace(fun)(X, W)
    plan = g.memory_plan()
    actual = measured_peak(g, X, W)
    assert plan.forward_peak_bytes >= 2 * 8 * N  # the test is about real arrays
    assert abs(plan.forward_peak_bytes - actual) <= 0.2 * actual, (plan, actual)


@pytest.mark.parametrize("fun", [chain, wide])
def test_forward_backward_prediction_within_20_percent(fun):
    g = ds.trace(fun)(X, W)
    plan = g.memory_plan()
    vg = ds.trace(ds.value_and_grad(fun, argnums=(0, 1)))(X, W)
    actual = measured_peak(vg, X, W)
    assert abs(plan.forward_backward_peak_bytes - actual) <= 0.2 * actual, (plan, actual)
    # a graph of value_and_grad holds its backward pass: its forward figure is that peak
    assert abs(vg.memory_plan().forward_peak_bytes - actual) <= 0.2 * actual
    assert plan.forward_backward_peak_bytes > plan.forward_peak_bytes


def test_intermediates_are_released_after_last_use():
    # 50 steps of a chain: storing every intermediate would take 50 arrays; the replay
    # keeps at most a few alive at once.
    def long_chain(x):
        for _ in range(50):
            x = dnp.sin(x) + 1.0
        return dnp.sum(x)

    g = ds.trace(long_chain)(X)
    plan = g.memory_plan()
    assert plan.forward_peak_bytes <= 3 * 8 * N
    assert measured_peak(g, X) <= 3 * 8 * N
    assert plan.timeline[-1] == plan.output_bytes  # at the end only the output is alive


def test_plan_fields_and_text():
    g = ds.trace(chain)(X, W)
    plan = g.memory_plan()
    assert plan.placeholder_bytes == 2 * 8 * N
    assert plan.output_bytes == 8
    assert len(plan.timeline) == len(g)
    assert "forward peak" in str(plan) and "MiB" in str(plan)


def test_nothing_to_differentiate():
    g = ds.trace(lambda n: dnp.arange(3) * n)(np.int64(2))
    assert g.memory_plan().forward_backward_peak_bytes is None
