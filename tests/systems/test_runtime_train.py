"""diffsys.systems.runtime training and the black-box baselines: equal budgets, the chosen
policy, the comparison on held-out traces; CMA-ES skips without the 'tune' extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from diffsys.systems.runtime import (
    cache_problem,
    cma_search,
    compare,
    dispatch_problem,
    gradient_search,
    make_jobs,
    make_requests,
    random_search,
)


def _sphere(theta):
    return float(np.sum((np.asarray(theta) - 1.0) ** 2))


def test_random_search_spends_the_budget_and_keeps_the_best():
    res = random_search(_sphere, np.zeros(3), 25, spread=1.0, seed=1)
    assert res.evaluations == len(res.history) == 25
    assert res.history[0] == _sphere(np.zeros(3))  # the start is evaluated first
    assert _sphere(res.theta) == min(res.history)


def test_cma_search_budget_and_progress():
    pytest.importorskip("cma")
    res = cma_search(_sphere, np.zeros(4), 61, spread=0.5, seed=0)
    assert len(res.history) == 61
    assert _sphere(res.theta) == min(res.history) < 0.5 * _sphere(np.zeros(4))


def test_cma_search_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cma", None)
    with pytest.raises(ImportError, match="'tune' extra"):
        cma_search(_sphere, np.zeros(2), 5)


def test_gradient_search_lowers_the_relaxed_and_hard_dispatch_latency():
    train = [make_jobs(150, seed=s) for s in range(2)]
    problem = dispatch_problem(train, train[:1], metric="mean")
    res = gradient_search(
        problem.relaxed, problem.theta0, 15, learning_rate=0.05, hard=problem.hard
    )
    assert len(res.history) == len(res.hard_history) == 15
    assert res.history[-1] < res.history[0]
    assert problem.hard(res.theta) < problem.hard(problem.theta0)


def test_gradient_search_best_exact_iterate_counts_its_exact_evaluations():
    train = [make_jobs(120, seed=s) for s in range(2)]
    problem = dispatch_problem(train, train[:1], metric=0.95)
    calls = []

    def hard(theta):
        calls.append(1)
        return problem.hard(theta)

    res = gradient_search(problem.relaxed, problem.theta0, 12, hard=hard, select="best_exact")
    assert res.evaluations == 12 and len(res.history) == len(calls) == 6  # 6 steps + 6 exact
    assert problem.hard(res.theta) == pytest.approx(min(res.hard_history))
    assert problem.hard(res.theta) <= problem.hard(problem.theta0)
    with pytest.raises(ValueError, match="gradient_search: select must be"):
        gradient_search(problem.relaxed, problem.theta0, 4, select="best_exact")


def test_dispatch_quantile_problem_uses_the_exact_quantile_when_hard():
    jobs = [make_jobs(100, seed=4)]
    problem = dispatch_problem(jobs, jobs, metric=0.9, quantile_strength=1e-6)
    from diffsys.systems.runtime import simulate_dispatch

    lat = simulate_dispatch(jobs[0], problem.theta0).latency
    assert problem.hard(problem.theta0) == pytest.approx(np.quantile(lat, 0.9))
    with pytest.raises(ValueError, match="metric"):
        dispatch_problem(jobs, jobs, metric="p99")


def test_compare_reports_every_method_on_held_out_traces():
    train = [make_requests(300, catalogue=40, seed=1)]
    test = [make_requests(300, catalogue=40, seed=2)]
    problem = cache_problem(train, test, 6)
    out = compare(problem, 6, record_mismatch=False)
    expected = {"LRU", "LFU", "smallest-first", "gradient", "random search",
                "gradient, best exact iterate"}  # fmt: skip
    assert expected <= set(out["test"])
    assert out["start"] == out["test"]["LRU"]  # the search starts at LRU
    assert all(r.evaluations == 6 for r in out["runs"].values())
    assert ("CMA-ES" in out["runs"]) == ("cma" in sys.modules or _has_cma())


def _has_cma() -> bool:
    try:
        import cma  # noqa: F401
    except ImportError:
        return False
    return True
