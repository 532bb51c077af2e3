"""The compiled kernel with a real schedule space: a blocked matrix multiply ``C = A B``
generated as Python source for each loop order and data layout, compiled by Numba (the
``jit`` extra) and timed for real. No tracers.

A :class:`Schedule` has five decisions:

- ``ti``, ``tj``, ``tk``: the tile sizes along the rows of ``C``, its columns and the
  reduction;
- ``order``: the loop order, a permutation of ``"ijk"`` (outermost first), used both for the
  loops over tiles and for the loops inside a tile;
- ``layout``: how ``A`` and ``B`` are stored for the kernel, ``"n"`` (as given, row-major) or
  ``"t"`` (packed transposed) each: ``"nn"``, ``"nt"``, ``"tn"``, ``"tt"``. Packing is part
  of the measured time: a layout is a decision with a cost, not a free input.

The loop order and the layout together set the stride of every operand in the innermost
loop (contiguous, strided or invariant): the main effect on the run time, and an
interaction a cost model has to learn. Tiles set the working set and the loop overhead.

Measured times are noisy on a shared machine. :func:`measure_matmul` takes the minimum of
several runs, and :func:`exhaustive_matmul` measures the whole space in interleaved passes
(every schedule once per pass) so a burst of load slows one pass of all schedules rather
than a block of neighbours: the ranking it gives is what the searches are judged against.

>>> import numpy as np
>>> src = matmul_source("ikj", "nt")
>>> "B[j, k]" in src and src.count("for ") == 6
True
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LAYOUTS",
    "ORDERS",
    "MatmulSpace",
    "Schedule",
    "compile_matmul",
    "exhaustive_matmul",
    "heuristic_schedule",
    "matmul",
    "matmul_source",
    "measure_matmul",
]

ORDERS: tuple[str, ...] = ("ijk", "ikj", "jik", "jki", "kij", "kji")
LAYOUTS: tuple[str, ...] = ("nn", "nt", "tn", "tt")


@dataclass(frozen=True)
class Schedule:
    """One hard configuration of the kernel (see the module docstring)."""

    ti: int
    tj: int
    tk: int
    order: str = "ikj"
    layout: str = "nn"

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"Schedule: order must be one of {ORDERS}, got {self.order!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"Schedule: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if min(self.ti, self.tj, self.tk) < 1:
            raise ValueError(f"Schedule: tile sizes must be >= 1, got {self.tiles}")

    @property
    def tiles(self) -> tuple[int, int, int]:
        return (self.ti, self.tj, self.tk)

    def __str__(self) -> str:
        return f"{self.ti}x{self.tj}x{self.tk} {self.order} {self.layout}"


@dataclass(frozen=True)
class MatmulSpace:
    """The choice space: candidate ``tiles`` (each of ``ti``, ``tj``, ``tk``), ``orders`` and
    ``layouts``. A configuration is one index per decision, in :attr:`decisions` order.

    >>> space = MatmulSpace(tiles=(16, 64))
    >>> space.sizes, len(space.all()), str(space.schedule((1, 0, 1, 1, 3)))
    ((2, 2, 2, 6, 4), 192, '64x16x64 ikj tt')
    """

    tiles: tuple[int, ...] = (8, 16, 32, 64, 128)
    orders: tuple[str, ...] = ORDERS
    layouts: tuple[str, ...] = LAYOUTS

    @property
    def decisions(self) -> dict[str, tuple]:
        """Each decision's name and options, in index order."""
        return {
            "ti": self.tiles, "tj": self.tiles, "tk": self.tiles,
            "order": self.orders, "layout": self.layouts,
        }  # fmt: skip

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.decisions.values())

    def schedule(self, index) -> Schedule:
        """The :class:`Schedule` of an index tuple."""
        i, j, k, o, lay = (int(v) for v in index)
        return Schedule(self.tiles[i], self.tiles[j], self.tiles[k], self.orders[o],
                        self.layouts[lay])  # fmt: skip

    def index(self, schedule: Schedule) -> tuple[int, ...]:
        """The index tuple of a :class:`Schedule` of this space."""
        try:
            return (self.tiles.index(schedule.ti), self.tiles.index(schedule.tj),
                    self.tiles.index(schedule.tk), self.orders.index(schedule.order),
                    self.layouts.index(schedule.layout))  # fmt: skip
        except ValueError:
            raise ValueError(f"MatmulSpace.index: {schedule} is not in {self}") from None

    def all(self) -> list[tuple[int, ...]]:
        """Every index tuple, in row-major order of :attr:`sizes`."""
        return list(itertools.product(*(range(s) for s in self.sizes)))


def heuristic_schedule(space: MatmulSpace, n: int, cache_bytes: int = 32 * 1024) -> Schedule:
    """The textbook rule: ``ikj`` order over row-major operands (the innermost loop walks
    rows of ``B`` and ``C`` contiguously), square tiles, the largest whose three ``t x t``
    float64 blocks fit in ``cache_bytes`` (an L1 data cache), capped at ``n``.

    >>> str(heuristic_schedule(MatmulSpace(), 256))
    '32x32x32 ikj nn'
    """
    fits = [t for t in space.tiles if 3 * t * t * 8 <= cache_bytes and t <= n] or [
        min(space.tiles)
    ]
    t = max(fits)
    order = "ikj" if "ikj" in space.orders else space.orders[0]
    layout = "nn" if "nn" in space.layouts else space.layouts[0]
    return Schedule(t, t, t, order, layout)


def matmul_source(order: str, layout: str) -> str:
    """The Python source of ``kernel(A, B, C, ti, tj, tk)`` accumulating ``A B`` into ``C``
    with loop ``order`` and operand ``layout`` (``A`` is ``(n, p)``, or ``(p, n)`` when
    packed transposed; ``B`` is ``(p, m)`` or ``(m, p)``)."""
    if order not in ORDERS or layout not in LAYOUTS:
        raise ValueError(
            f"matmul_source: order must be in {ORDERS} and layout in {LAYOUTS}, "
            f"got {order!r}, {layout!r}"
        )
    a = "A[i, k]" if layout[0] == "n" else "A[k, i]"
    b = "B[k, j]" if layout[1] == "n" else "B[j, k]"
    extent = {"i": "n", "j": "m", "k": "p"}
    lines = [
        "def kernel(A, B, C, ti, tj, tk):",
        "    n, m = C.shape",
        f"    p = A.shape[{1 if layout[0] == 'n' else 0}]",
    ]
    tile = {"i": "ti", "j": "tj", "k": "tk"}
    pad = "    "
    for v in order:  # loops over tiles
        lines.append(f"{pad}for {v}0 in range(0, {extent[v]}, {tile[v]}):")
        pad += "    "
        lines.append(f"{pad}{v}1 = min({v}0 + {tile[v]}, {extent[v]})")
    for v in order:  # loops inside a tile
        lines.append(f"{pad}for {v} in range({v}0, {v}1):")
        pad += "    "
    lines.append(f"{pad}C[i, j] += {a} * {b}")
    return "\n".join(lines) + "\n"


_COMPILED: dict[tuple[str, str], Callable] = {}


def _numba():
    try:
        import numba
    except ImportError as exc:
        raise ImportError(
            "diffsys.systems.compiler's compiled kernels need Numba, the optional 'jit' "
            "extra: pip install 'diffsys[jit]' (or pip install numba)"
        ) from exc
    return numba


def compile_matmul(order: str, layout: str, *, python: bool = False) -> Callable:
    """The kernel of :func:`matmul_source` compiled by Numba (once per order and layout, then
    cached). ``python=True``: the plain Python function (no Numba; slow, for tests)."""
    namespace: dict = {}
    exec(compile(matmul_source(order, layout), f"<matmul {order} {layout}>", "exec"), namespace)
    if python:
        return namespace["kernel"]
    key = (order, layout)
    if key not in _COMPILED:
        _COMPILED[key] = _numba().njit(cache=False, nogil=True)(namespace["kernel"])
    return _COMPILED[key]


def _pack(x: np.ndarray, flag: str) -> np.ndarray:
    return np.ascontiguousarray(x.T) if flag == "t" else x


def matmul(a: np.ndarray, b: np.ndarray, schedule: Schedule, *, python: bool = False) -> np.ndarray:
    """``a @ b`` by the compiled kernel of ``schedule`` (operands packed into its layout).

    >>> import numpy as np
    >>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
    >>> matmul(a, b, Schedule(2, 1, 2, "kji", "tt"), python=True)
    array([[ 3.,  3.],
           [12., 12.]])
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: need a (n, p) and b (p, m), got {a.shape} and {b.shape}")
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    kernel = compile_matmul(schedule.order, schedule.layout, python=python)
    c = np.zeros((a.shape[0], b.shape[1]))
    kernel(_pack(a, schedule.layout[0]), _pack(b, schedule.layout[1]), c, *schedule.tiles)
    return c


def _operands(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)), rng.normal(size=(n, n)), np.zeros((n, n))


def _time_once(kernel, a, b, c, schedule: Schedule) -> float:
    start = time.perf_counter()
    c.fill(0.0)
    kernel(_pack(a, schedule.layout[0]), _pack(b, schedule.layout[1]), c, *schedule.tiles)
    return time.perf_counter() - start


def measure_matmul(schedule: Schedule, n: int = 128, *, repeats: int = 3, seed: int = 0) -> float:
    """Seconds of one ``n x n`` product under ``schedule`` (packing included): the minimum
    of ``repeats`` runs after one warm-up run (which also compiles)."""
    kernel = compile_matmul(schedule.order, schedule.layout)
    a, b, c = _operands(n, seed)
    _time_once(kernel, a, b, c, schedule)
    return float(min(_time_once(kernel, a, b, c, schedule) for _ in range(repeats)))


def exhaustive_matmul(
    space: MatmulSpace, n: int = 128, *, passes: int = 3, seed: int = 0
) -> dict[tuple[int, ...], float]:
    """Seconds of every configuration of ``space`` (index tuple -> minimum over ``passes``
    interleaved passes over the whole space; kernels compiled and warmed up first)."""
    a, b, c = _operands(n, seed)
    configs = space.all()
    kernels = {}
    for o in space.orders:
        for lay in space.layouts:
            kernels[(o, lay)] = compile_matmul(o, lay)
            _time_once(kernels[(o, lay)], a, b, c, Schedule(n, n, n, o, lay))
    best = {idx: np.inf for idx in configs}
    for _ in range(passes):
        for idx in configs:
            s = space.schedule(idx)
            best[idx] = min(best[idx], _time_once(kernels[(s.order, s.layout)], a, b, c, s))
    return {idx: float(t) for idx, t in best.items()}
