"""Binomial checkpointing (Griewank & Walther's Revolve): optimal recomputation for reversing
``l`` steps with ``s`` snapshots.

The model: a state ``c_i`` can be advanced one step (a *forward step*); the adjoint of step
``i`` needs ``c_i`` and includes one taped evaluation of that step; at most ``s`` states are
held in snapshots at a time, the initial state ``c_0`` in one of them. Griewank & Walther
(ACM TOMS 26(1), 2000, "Algorithm 799: revolve") show that the minimal number of forward
steps (not counting the taped ones) is

    t(l, s) = r * l - beta(s + 1, r - 1),   beta(s, r) = (s + r)! / (s! r!),

where the *repetition number* ``r`` is the smallest integer with ``beta(s, r) >= l``: no step
is evaluated more than ``r`` times forward. :func:`split` chooses where to put the next
snapshot; :func:`schedule` expands the recursion into actions, whose advances total
``t(l, s)`` (the tests check this against the formula and a brute-force search).
"""

from __future__ import annotations

from math import comb


def beta(s: int, r: int) -> int:
    """``(s + r)! / (s! r!)``: the most steps ``s`` snapshots reverse with repetition ``r``."""
    if s < 0 or r < 0:
        return 0
    return comb(s + r, s)


def repetition_number(l: int, s: int) -> int:
    """The smallest ``r`` with ``beta(s, r) >= l``."""
    _check(l, s)
    return _rep(l, s)


def forward_steps(l: int, s: int) -> int:
    """Griewank & Walther's minimal number of forward steps to reverse ``l`` steps with ``s``
    snapshots (the initial state in one of them): ``r * l - beta(s + 1, r - 1)``."""
    _check(l, s)
    r = repetition_number(l, s)
    return r * l - beta(s + 1, r - 1)


def split(l: int, s: int) -> int:
    """How many steps to advance from the snapshot at the start of a range of ``l`` steps
    before taking the next snapshot, with ``s`` snapshots for the range (its start's
    included): an optimal one (``1 <= result < l``).

    Reversing ``m`` steps with ``s`` snapshots costs ``t(m, s) = sum(r(i, s) for i <= m)``
    forward steps (each added step costs its repetition number), so splitting at ``m`` costs
    ``m + t(m, s) + t(l - m, s - 1)``, a convex function of ``m`` whose increment is
    ``1 + r(m + 1, s) - r(l - m, s - 1)``: the first ``m`` where it is not negative is optimal.
    """
    if l < 2 or s < 2:
        return l - 1
    lo, hi = 1, l - 1  # the increment at l - 1 counts as positive
    while lo < hi:
        m = (lo + hi) // 2
        if 1 + _rep(m + 1, s) - _rep(l - m, s - 1) >= 0:
            hi = m
        else:
            lo = m + 1
    return lo


def _rep(l: int, s: int) -> int:
    r = 0
    while beta(s, r) < l:
        r += 1
    return r


def first_snapshots(l: int, s: int) -> list[int]:
    """The snapshots a forward sweep takes on its way to ``c_{l-1}`` (after ``c_0``)."""
    _check(l, s)
    positions = []
    start = 0
    while l - start > 1 and s > 1:
        start += split(l - start, s)
        positions.append(start)
        s -= 1
    return positions


def schedule(l: int, s: int, *, swept: bool = False):
    """The actions reversing ``l`` steps with ``s`` snapshots, as a generator:
    ``("advance", i, j)`` (steps ``i .. j-1`` forward, untaped), ``("snapshot", i)``,
    ``("restore", i)``, ``("free", i)``, ``("adjoint", i)`` (step ``i`` taped from ``c_i``,
    then its adjoint). The advances total :func:`forward_steps` ``(l, s)``.

    With ``swept``, a forward sweep has already run: it took :func:`first_snapshots` and holds
    ``c_{l-1}`` (taped), so the actions start at the first adjoint and the advances total
    ``forward_steps(l, s) - (l - 1)``.
    """
    _check(l, s)
    if not swept:
        yield ("snapshot", 0)
    stack = [[0, l, s]]  # frames: reverse steps start .. end-1 with s snapshots
    while stack:
        frame = stack[-1]
        start, end, k = frame
        first = swept and end == l  # on the forward sweep's path: its snapshots exist
        if end - start > 1:
            if k <= 1:
                if not first:
                    yield ("restore", start)
                    yield ("advance", start, end - 1)
                yield ("adjoint", end - 1)
                frame[1] = end - 1
                continue
            mid = start + split(end - start, k)
            if not first:
                yield ("restore", start)
                yield ("advance", start, mid)
                yield ("snapshot", mid)
            frame[1] = mid
            stack.append([mid, end, k - 1])
            continue
        if not (first and start == l - 1):
            yield ("restore", start)
        yield ("adjoint", start)
        stack.pop()
        if stack:
            yield ("free", start)


def count_advances(actions) -> int:
    """The forward steps of a schedule."""
    return sum(a[2] - a[1] for a in actions if a[0] == "advance")


def _check(l: int, s: int) -> None:
    if l < 1:
        raise ValueError(f"revolve: need at least one step, got l={l}")
    if s < 1:
        raise ValueError(f"revolve: need at least one snapshot, got s={s}")
