"""The discrete side of architecture search, plain Python and NumPy: cells as genotypes,
discretisation of architecture logits, parameter counts, random cells of a given budget.

A cell has an input node ``0`` (the stem's feature map) and ``nodes`` intermediate nodes;
node ``j`` sums one operation on every earlier node, so the edges are ``(i, j)`` for
``0 <= i < j <= nodes`` in the order of :func:`edge_list`. A :class:`Genotype` names the
operation on each edge (``"zero"`` drops it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .ops import CANDIDATES, CONV_SHAPES

__all__ = [
    "Genotype",
    "discretise",
    "edge_list",
    "network_parameter_count",
    "op_parameter_count",
    "random_genotypes",
]


def edge_list(nodes: int) -> list[tuple[int, int]]:
    """The edges ``(i, j)`` of a cell with ``nodes`` intermediate nodes, grouped by ``j``.

    >>> edge_list(2)
    [(0, 1), (0, 2), (1, 2)]
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int | np.integer) or nodes < 1:
        raise ValueError(f"edge_list: nodes must be an integer >= 1, got {nodes!r}")
    return [(i, j) for j in range(1, nodes + 1) for i in range(j)]


def _check_candidates(who: str, candidates: Sequence[str]) -> tuple[str, ...]:
    candidates = tuple(candidates)
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates or len(set(candidates)) != len(candidates):
        raise ValueError(
            f"{who}: candidates must be distinct names from {CANDIDATES}, got {candidates}"
        )
    return candidates


@dataclass(frozen=True)
class Genotype:
    """A discrete cell: ``ops[e]`` is the operation on edge ``edge_list(nodes)[e]``.

    >>> g = Genotype(("conv3x3", "skip", "max_pool3x3"), nodes=2)
    >>> print(g)
    n1 = conv3x3(n0); n2 = skip(n0) + max_pool3x3(n1)
    """

    ops: tuple[str, ...]
    nodes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        edges = edge_list(self.nodes)
        if len(self.ops) != len(edges):
            raise ValueError(
                f"Genotype: a cell with {self.nodes} nodes has {len(edges)} edges, got "
                f"{len(self.ops)} operations"
            )
        bad = [op for op in self.ops if op not in CANDIDATES]
        if bad:
            raise ValueError(
                f"Genotype: unknown operations {bad}; expected names from {CANDIDATES}"
            )

    def edges(self) -> list[tuple[int, int, str]]:
        """``(i, j, op)`` per edge."""
        return [(i, j, op) for (i, j), op in zip(edge_list(self.nodes), self.ops, strict=True)]

    def __str__(self) -> str:
        parts = []
        for j in range(1, self.nodes + 1):
            terms = [f"{op}(n{i})" for i, jj, op in self.edges() if jj == j and op != "zero"]
            parts.append(f"n{j} = " + (" + ".join(terms) if terms else "0"))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"ops": list(self.ops), "nodes": self.nodes}

    @classmethod
    def from_dict(cls, d: dict) -> Genotype:
        return cls(tuple(d["ops"]), int(d["nodes"]))


def discretise(
    alpha: np.ndarray,
    candidates: Sequence[str] = CANDIDATES,
    *,
    nodes: int,
    exclude: Sequence[str] = (),
) -> Genotype:
    """The genotype of architecture logits ``alpha`` ``(edges, K)``: on each edge the
    candidate with the largest logit (the first on ties), skipping those in ``exclude``
    (DARTS excludes ``"zero"``; the default keeps it, so the result is the ``T -> 0`` limit
    of the mixed operations).

    >>> import numpy as np
    >>> str(discretise(np.array([[0.0, 2.0], [1.0, 0.5], [0.0, 0.1]]), ("zero", "skip"), nodes=2))
    'n1 = skip(n0); n2 = skip(n1)'
    """
    candidates = _check_candidates("discretise", candidates)
    a = np.asarray(alpha, dtype=np.float64)
    n_edges = len(edge_list(nodes))
    if a.shape != (n_edges, len(candidates)):
        raise ValueError(
            f"discretise: alpha must have shape (edges, K) = ({n_edges}, {len(candidates)}) for "
            f"{nodes} nodes and {len(candidates)} candidates, got {a.shape}"
        )
    allowed = np.array([c not in exclude for c in candidates])
    if not allowed.any():
        raise ValueError(f"discretise: exclude={tuple(exclude)} leaves no candidate")
    masked = np.where(allowed, a, -np.inf)
    return Genotype(tuple(candidates[k] for k in np.argmax(masked, axis=1)), nodes)


def op_parameter_count(op: str, channels: int) -> int:
    """Weights and biases of candidate ``op`` on ``channels`` channels (0 for the
    parameter-free ones)."""
    if op not in CANDIDATES:
        raise ValueError(
            f"op_parameter_count: unknown operation {op!r}; expected one of {CANDIDATES}"
        )
    if op not in CONV_SHAPES:
        return 0
    k, _ = CONV_SHAPES[op]
    return channels * channels * k * k + channels


def network_parameter_count(genotype: Genotype, channels: int, classes: int = 10,
                            image: int = 8, in_channels: int = 1) -> int:
    """Parameters of the whole discrete network: stem ``conv3x3`` (``in_channels`` to
    ``channels``), the cell, and the linear head on the 2x2-average-pooled map."""
    stem = in_channels * channels * 9 + channels
    head = channels * (image // 2) ** 2 * classes + classes
    return stem + sum(op_parameter_count(op, channels) for op in genotype.ops) + head


def random_genotypes(
    rng: np.random.Generator | int,
    count: int,
    *,
    nodes: int,
    candidates: Sequence[str] = CANDIDATES,
    channels: int,
    target: int | None = None,
    tolerance: float = 0.1,
    max_tries: int = 100_000,
) -> list[Genotype]:
    """``count`` distinct genotypes drawn uniformly (each edge's operation independently),
    kept only when their network has within ``tolerance`` (relative) of ``target``
    parameters (any count when ``target`` is None): random cells with the same budget.

    >>> gs = random_genotypes(0, 3, nodes=2, channels=4, target=1000, tolerance=0.5)
    >>> len(gs), all(abs(network_parameter_count(g, 4) - 1000) <= 500 for g in gs)
    (3, True)
    """
    candidates = _check_candidates("random_genotypes", candidates)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n_edges = len(edge_list(nodes))
    found: list[Genotype] = []
    seen = set()
    for _ in range(max_tries):
        ops = tuple(candidates[k] for k in gen.integers(0, len(candidates), n_edges))
        g = Genotype(ops, nodes)
        if ops in seen:
            continue
        if target is not None:
            n = network_parameter_count(g, channels)
            if abs(n - target) > tolerance * target:
                continue
        seen.add(ops)
        found.append(g)
        if len(found) == count:
            return found
    raise ValueError(
        f"random_genotypes: found only {len(found)} of {count} cells within {tolerance:.0%} of "
        f"{target} parameters in {max_tries} draws; raise tolerance or change channels"
    )
