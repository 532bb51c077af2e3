"""Checkpointing policies of :func:`diffsys.scan`: which carries the forward pass keeps and how
the backward pass gets back the others.

Every policy but ``None`` works in one model (Griewank & Walther's): the forward pass keeps
some carries (*snapshots*); the backward pass goes through the steps from last to first, and
for step ``i`` it needs the carry ``c_i``: it restores the nearest snapshot, runs the steps
from there forward again (*advances*, nothing recorded), and then runs step ``i`` once more
recording it (*taped*) to pull the cotangents back through it. Only one step's intermediate
values are held at a time, plus the snapshots.

======================  ==============================  =======================================
policy                  snapshots held (carries)        step evaluations (``l`` steps)
======================  ==============================  =======================================
``None`` / ``"all"``    every intermediate of every     ``l`` (nothing recomputed)
                        step (no checkpointing)
``every(1)``            ``l``                           ``2l - 1``
``every(k)``            ``l/k`` + ``k - 1``             about ``3l - l/k``
``"sqrt"``              about ``2 sqrt(l)``             about ``3l - sqrt(l)``
``binomial(s)``         ``s``                           ``l + t(l, s)``, the fewest possible
======================  ==============================  =======================================

``t(l, s)`` is Revolve's minimal number of forward steps
(:func:`diffsys.scan.revolve.forward_steps`): with ``s = 2 sqrt(l)`` snapshots it is about
``2l``, like ``"sqrt"`` with the same memory; with ``s`` of the order of ``log2(l)`` it grows
like ``l log l`` while memory stays logarithmic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from . import revolve


class ScanPolicy:
    """A checkpointing policy: ``forward_snapshots(l)`` tells the forward pass which carries
    to keep (``c_0`` always, and the last step is always recorded), ``backward(l)`` yields
    the actions of the backward pass (see :func:`diffsys.scan.revolve.schedule`)."""

    name = "policy"

    def forward_snapshots(self, l: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, l: int) -> Iterator[tuple]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"scan_policies.{self.name}"


class _Every(ScanPolicy):
    """Keep ``c_0, c_k, c_2k, ...``; the backward pass rebuilds a segment's carries from its
    snapshot, then goes back through the segment."""

    def __init__(self, k: int | None, name: str) -> None:
        self.k = k
        self.name = name

    def period(self, l: int) -> int:
        if self.k is None:  # sqrt
            return max(1, math.isqrt(l - 1) + 1) if l > 1 else 1
        return self.k

    def forward_snapshots(self, l: int):
        return range(0, l, self.period(l))

    def backward(self, l: int) -> Iterator[tuple]:
        k = self.period(l)
        yield ("adjoint", l - 1)  # the forward pass ends holding c_{l-1}, recorded
        for a in reversed(range(0, l, k)):
            b = min(a + k, l - 1)  # steps a .. b-1 are left in this segment
            if b - 1 > a:
                yield ("restore", a)
                for j in range(a + 1, b):
                    yield ("advance", j - 1, j)
                    yield ("snapshot", j)
            for j in range(b - 1, a - 1, -1):
                yield ("restore", j)
                yield ("adjoint", j)
                if j > a:
                    yield ("free", j)
            yield ("free", a)


class _Binomial(ScanPolicy):
    """Revolve with ``s`` snapshots (``c_0`` in one of them)."""

    def __init__(self, s: int | None) -> None:
        self.s = s
        self.name = "binomial" if s is None else f"binomial({s})"

    def snapshots(self, l: int) -> int:
        if self.s is None:
            return max(1, math.isqrt(max(l - 1, 0)) + 1)
        return self.s

    def forward_snapshots(self, l: int):
        return [0, *revolve.first_snapshots(l, self.snapshots(l))]

    def backward(self, l: int) -> Iterator[tuple]:
        return revolve.schedule(l, self.snapshots(l), swept=True)


def every(k: int) -> ScanPolicy:
    """Keep every ``k``-th carry (``every(1)``: all carries, each step recomputed once)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"scan_policies.every: k must be a positive int, got {k!r}")
    return _Every(k, f"every({k})")


def sqrt() -> ScanPolicy:
    """Segments of ``ceil(sqrt(l))`` steps: about ``2 sqrt(l)`` carries held, three
    evaluations of each step."""
    return _Every(None, "sqrt()")


def binomial(s: int | None = None) -> ScanPolicy:
    """Revolve: the fewest step evaluations possible with ``s`` snapshots (default:
    ``ceil(sqrt(l))``)."""
    if s is not None and (not isinstance(s, int) or isinstance(s, bool) or s < 1):
        raise ValueError(f"scan_policies.binomial: s must be a positive int, got {s!r}")
    return _Binomial(s)


_USAGE = (
    "None or 'all' (store everything), 'sqrt', ('every_k', k), ('binomial', s), 'binomial', "
    "or diffsys.scan_policies.every(k) / sqrt() / binomial(s)"
)


def resolve(policy) -> ScanPolicy | None:
    """A :class:`ScanPolicy` for the ``checkpoint=`` argument of ``scan`` (``None``: store all)."""
    if policy is None or policy == "all":
        return None
    if isinstance(policy, ScanPolicy):
        return policy
    if isinstance(policy, str):
        if policy == "sqrt":
            return sqrt()
        if policy in ("binomial", "revolve"):
            return binomial()
        if policy in ("every_k", "every"):
            raise ValueError(
                f"scan: checkpoint={policy!r} needs k: write ('every_k', k) or "
                "diffsys.scan_policies.every(k)"
            )
        raise ValueError(f"scan: unknown checkpoint policy {policy!r}; use {_USAGE}")
    if isinstance(policy, tuple) and len(policy) == 2 and isinstance(policy[0], str):
        kind, n = policy
        if kind in ("every_k", "every"):
            return every(n)
        if kind in ("binomial", "revolve"):
            return binomial(n)
    raise ValueError(f"scan: unknown checkpoint policy {policy!r}; use {_USAGE}")
