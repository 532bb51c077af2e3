"""soft_rank / soft_sort (Blondel et al. 2020), l2, strength 1, forward + backward.

The timed call is a VJP: the soft rank (sort) of a (64, 1000) batch and the pullback of a
fixed cotangent. The reference is plain NumPy + SciPy written independently of diffsys:
``scipy.optimize.isotonic_regression`` per row and hand-written block-average derivatives.
A scaling series (n = 10^2 .. 10^5) times diffsys alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._spec import Impl, Thunk, Workload

ROWS, N = 64, 1000
STRENGTH = 1.0


def _inputs(rows: int = ROWS, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((rows, n)), rng.standard_normal((rows, n))


def _block_mean(v: np.ndarray, solution: np.ndarray) -> np.ndarray:
    """Average ``v`` over the runs of equal values of ``solution`` (the isotonic blocks)."""
    rows, n = v.shape
    starts = np.ones((rows, n), dtype=bool)
    starts[:, 1:] = solution[:, 1:] != solution[:, :-1]
    idx = np.flatnonzero(starts)
    counts = np.diff(idx, append=starts.size)
    return np.repeat(np.add.reduceat(v.reshape(-1), idx) / counts, counts).reshape(rows, n)


def _isotonic_decreasing(y: np.ndarray) -> np.ndarray:
    from scipy.optimize import isotonic_regression

    return np.stack([isotonic_regression(row, increasing=False).x for row in y])


def numpy_soft_rank_vjp(x: np.ndarray, ct: np.ndarray, eps: float = STRENGTH):
    """soft_rank(x) (ascending ranks) and its VJP with ``ct``, hand-written."""
    n = x.shape[-1]
    theta = x / eps
    perm = np.argsort(-theta, axis=-1)
    s = np.take_along_axis(theta, perm, -1)
    sol = _isotonic_decreasing(s - np.arange(n, 0, -1.0))
    out = np.empty_like(x)
    np.put_along_axis(out, perm, s - sol, -1)
    g = np.take_along_axis(ct, perm, -1)
    g = g - _block_mean(g, sol)  # d(s - v(s - w)) = (I - B) ds
    grad = np.empty_like(x)
    np.put_along_axis(grad, perm, g / eps, -1)
    return out, grad


def numpy_soft_sort_vjp(x: np.ndarray, ct: np.ndarray, eps: float = STRENGTH):
    """soft_sort(x) (ascending) and its VJP with ``ct``, hand-written."""
    n = x.shape[-1]
    w = np.arange(n, 0, -1.0) / eps
    perm = np.argsort(x, axis=-1)  # -x sorted descending = -(x sorted ascending)
    s = -np.take_along_axis(x, perm, -1)
    sol = _isotonic_decreasing(w - s)
    out = sol - w  # -(w - v(w - s))
    g = _block_mean(ct, sol)  # d out = B d(w - s) = -B ds, and ds = -d(x sorted)
    grad = np.empty_like(x)
    np.put_along_axis(grad, perm, g, -1)
    return out, grad


def _diffsys(op: str, rows: int = ROWS, n: int = N) -> Thunk:
    import diffsys as ds
    import diffsys.relax as relax

    fn = getattr(relax, op)
    x, ct = _inputs(rows, n)

    def run() -> Any:
        out, pull = ds.vjp(lambda x: fn(x, "l2", STRENGTH), x)
        return out, pull(ct)[0]

    return run


def _numpy(op: str) -> Thunk:
    fn = numpy_soft_rank_vjp if op == "soft_rank" else numpy_soft_sort_vjp
    x, ct = _inputs()
    return lambda: fn(x, ct)


def _torchsort(op: str) -> Thunk:
    from ._common import torch_single_thread

    torch = torch_single_thread()
    import torchsort  # noqa: F401 - not on PyPI for this torch: reported as not installed

    fn = getattr(torchsort, op)
    x, ct = (torch.tensor(a) for a in _inputs())
    x.requires_grad_(True)

    def run() -> Any:
        out = fn(x, regularization="l2", regularization_strength=STRENGTH)
        (g,) = torch.autograd.grad(out, x, ct)
        return out, g

    return run


def _workload(op: str, target: float, torch_ms: float) -> Workload:
    fn = numpy_soft_rank_vjp if op == "soft_rank" else numpy_soft_sort_vjp
    what = "ranks (ascending)" if op == "soft_rank" else "sorted values (ascending)"
    return Workload(
        name=op,
        title=f"{op}, forward + backward",
        description=(
            f"`diffsys.relax.{op}(x, 'l2', 1.0)`: soft {what} of a ({ROWS}, {N}) float64 batch "
            "(standard normal, seed 0) as a projection onto the permutahedron (sort + "
            "pool-adjacent-violators isotonic regression), then the VJP of a fixed cotangent. "
            "The NumPy row is an independent hand-written version (SciPy's "
            "`isotonic_regression` per row, block-average derivatives), also the reference. "
            "torchsort (the issue's C++ baseline) is not installable here."
        ),
        unit="ms",
        scale=1e3,
        target=target,
        reference=lambda: fn(*_inputs()),
        impls={
            "diffsys": Impl(lambda: _diffsys(op), f"`ds.vjp(relax.{op})`, pullback"),
            "numpy": Impl(lambda: _numpy(op), "NumPy + scipy isotonic_regression per row"),
            "torch": Impl(lambda: _torchsort(op), f"`torchsort.{op}` + `autograd.grad`"),
        },
        issue_refs={"torch": torch_ms},
    )


WORKLOAD_RANK = _workload("soft_rank", target=5.0, torch_ms=4.87)
WORKLOAD_SORT = _workload("soft_sort", target=6.5, torch_ms=6.16)


def _scaling(op: str, n: int, rows: int) -> Workload:
    fn = numpy_soft_rank_vjp if op == "soft_rank" else numpy_soft_sort_vjp
    return Workload(
        name=f"{op}_n{n}",
        title=f"{op} n={n}",
        description="",
        unit="ms",
        scale=1e3,
        target=float("inf"),
        reference=lambda: fn(*_inputs(rows, n)),
        impls={"diffsys": Impl(lambda: _diffsys(op, rows, n), f"`ds.vjp(relax.{op})`")},
        series=(f"{op} forward + backward ({rows} rows of n, l2, strength 1)", n, rows),
    )


SCALING = [
    _scaling(op, n, 16) for op in ("soft_rank", "soft_sort") for n in (100, 1000, 10_000, 100_000)
]
