"""The real kernel and its measurements: a tiled 2-D stencil in NumPy whose tile shape is
the choice, timed for real. No tracers.

The stencil: ``out = (N + S + E + W) / 4 - c exp(-c^2)`` over the interior ``c`` of a padded
``(n + 2, n + 2)`` grid, computed tile by tile (``ti`` rows by ``tj`` columns). Small tiles
pay Python's per-tile overhead; large ones make NumPy's temporaries leave the cache. A
configuration is an index per decision into :class:`Space`'s ``tiles``.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(10, 10))
>>> bool(np.allclose(stencil(x, (2, 4)), stencil(x, (8, 8))))
True
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Space", "exhaustive", "measure", "stencil", "stencil_reference"]


@dataclass(frozen=True)
class Space:
    """The choice space: candidate tile sizes along rows and columns (``tiles``, powers of
    two); a configuration is ``(row index, column index)``."""

    tiles: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024)

    @property
    def sizes(self) -> tuple[int, int]:
        return (len(self.tiles), len(self.tiles))

    def config(self, index) -> tuple[int, int]:
        """The tile shape ``(ti, tj)`` of an index pair."""
        i, j = (int(v) for v in index)
        return self.tiles[i], self.tiles[j]

    def all(self) -> list[tuple[int, int]]:
        return list(itertools.product(range(len(self.tiles)), repeat=2))


def stencil_reference(x: np.ndarray) -> np.ndarray:
    """The stencil on the whole grid at once (the untiled reference)."""
    c = x[1:-1, 1:-1]
    return 0.25 * (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:]) - c * np.exp(-c * c)


def stencil(x: np.ndarray, tile: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """The stencil of the padded grid ``x`` computed in tiles of ``tile = (ti, tj)``."""
    if x.ndim != 2 or min(x.shape) < 3:
        raise ValueError(f"stencil: x must be a 2-d padded grid of at least 3x3, got {x.shape}")
    ti, tj = (int(t) for t in tile)
    if ti < 1 or tj < 1:
        raise ValueError(f"stencil: tile sizes must be >= 1, got {tile}")
    n, m = x.shape[0] - 2, x.shape[1] - 2
    out = np.empty((n, m)) if out is None else out
    for i in range(0, n, ti):
        i1 = min(i + ti, n)
        for j in range(0, m, tj):
            j1 = min(j + tj, m)
            c = x[1 + i : 1 + i1, 1 + j : 1 + j1]
            out[i:i1, j:j1] = 0.25 * (
                x[i:i1, 1 + j : 1 + j1]
                + x[2 + i : 2 + i1, 1 + j : 1 + j1]
                + x[1 + i : 1 + i1, j:j1]
                + x[1 + i : 1 + i1, 2 + j : 2 + j1]
            ) - c * np.exp(-c * c)
    return out


def measure(tile: tuple[int, int], n: int = 1024, *, repeats: int = 2, seed: int = 0) -> float:
    """Run time (seconds, minimum of ``repeats``) of :func:`stencil` on an ``n x n`` grid."""
    x = np.random.default_rng(seed).normal(size=(n + 2, n + 2))
    out = np.empty((n, n))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        stencil(x, tile, out)
        best = min(best, time.perf_counter() - start)
    return float(best)


def exhaustive(space: Space, timer: Callable[[tuple[int, int]], float]) -> dict[tuple, float]:
    """``timer`` of every configuration of ``space``, keyed by index pair."""
    return {idx: timer(space.config(idx)) for idx in space.all()}
