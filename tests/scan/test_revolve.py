"""Revolve (binomial checkpointing): the formula for the minimal number of forward steps
against a brute-force search, and the schedules against the formula."""

from __future__ import annotations

from functools import cache

import pytest

from diffsys.scan import policies, revolve


@cache
def brute_force(l: int, s: int) -> int:
    """Fewest forward steps reversing ``l`` steps with ``s`` snapshots (``c_0`` in one):
    advance ``j`` steps and take a snapshot, reverse the last ``l - j`` steps with the
    ``s - 1`` others, then the first ``j`` with all ``s``; with one snapshot, re-advance from
    ``c_0`` for every step."""
    if l == 1:
        return 0
    if s == 1:
        return l * (l - 1) // 2
    return min(j + brute_force(l - j, s - 1) + brute_force(j, s) for j in range(1, l))


def test_beta_and_repetition_number():
    assert revolve.beta(2, 3) == 10
    assert revolve.beta(0, 5) == 1
    assert revolve.repetition_number(1, 3) == 0
    assert revolve.repetition_number(10, 2) == 3  # beta(2, 2) = 6 < 10 <= beta(2, 3) = 10
    assert revolve.repetition_number(11, 2) == 4
    with pytest.raises(ValueError):
        revolve.forward_steps(0, 3)
    with pytest.raises(ValueError):
        revolve.forward_steps(5, 0)


@pytest.mark.parametrize("s", range(1, 8))
def test_formula_is_the_brute_force_minimum(s):
    for l in range(1, 70):
        assert revolve.forward_steps(l, s) == brute_force(l, s), (l, s)


def _simulate(l: int, s: int, swept: bool) -> int:
    """Run a schedule on symbolic states: advances, snapshot bound, adjoint order."""
    snaps, current, advances, adjoints = {0}, 0, 0, []
    if swept:
        snaps |= set(revolve.first_snapshots(l, s))
        current, advances = l - 1, l - 1
    peak = len(snaps)
    for action in revolve.schedule(l, s, swept=swept):
        kind = action[0]
        if kind == "restore":
            assert action[1] in snaps
            current = action[1]
        elif kind == "advance":
            assert current == action[1] < action[2]
            advances += action[2] - action[1]
            current = action[2]
        elif kind == "snapshot":
            assert current == action[1]
            snaps.add(action[1])
        elif kind == "free":
            snaps.remove(action[1])
        else:
            assert kind == "adjoint" and current == action[1]
            adjoints.append(action[1])
        peak = max(peak, len(snaps))
    assert adjoints == list(range(l - 1, -1, -1))
    assert peak <= s
    return advances


@pytest.mark.parametrize("swept", [False, True])
@pytest.mark.parametrize("s", [1, 2, 3, 4, 6, 10])
def test_schedules_reach_the_minimum(s, swept):
    for l in list(range(1, 60)) + [100, 257, 1000]:
        assert _simulate(l, s, swept) == revolve.forward_steps(l, s), (l, s)


def test_split_is_optimal_and_in_range():
    for s in range(2, 7):
        for l in range(2, 60):
            m = revolve.split(l, s)
            assert 1 <= m < l
            cost = m + brute_force(l - m, s - 1) + brute_force(m, s)
            assert cost == brute_force(l, s)


def test_large_schedules_are_lazy_and_iterative():
    actions = revolve.schedule(100_000, 2000, swept=True)  # no recursion-depth limit
    assert next(actions)[0] in ("adjoint", "restore")
    assert revolve.forward_steps(100_000, 10) == 832_040


def test_policy_schedules_visit_every_step_once():
    for policy in (policies.every(1), policies.every(3), policies.sqrt(), policies.binomial(4)):
        for l in (1, 2, 5, 17, 100):
            snaps = set(policy.forward_snapshots(l))
            current = l - 1  # the forward pass ends holding c_{l-1}
            adjoints = []
            for action in policy.backward(l):
                kind = action[0]
                if kind == "restore":
                    assert action[1] in snaps, (policy, l, action)
                    current = action[1]
                elif kind == "advance":
                    current = action[2]
                elif kind == "snapshot":
                    snaps.add(action[1])
                elif kind == "free":
                    snaps.discard(action[1])
                else:
                    assert current == action[1], (policy, l, action)
                    adjoints.append(action[1])
            assert adjoints == list(range(l - 1, -1, -1)), (policy, l)
