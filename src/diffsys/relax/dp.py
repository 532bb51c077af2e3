"""Differentiable dynamic programming with smoothed max operators (Mensch & Blondel 2018).

A smoothed max ``max_Omega(x) = max_{p in simplex} <p, x> - Omega(p)`` with a strongly convex
``Omega`` scaled by ``temperature`` is smooth, and its gradient is the maximising ``p``:

================  ===============================  ==========================  ============
regularization    ``max_Omega(x)``                 gradient                    gap to max
================  ===============================  ==========================  ============
``"entropy"``     ``T logsumexp(x / T)``           ``softmax(x / T)``          <= T log n
``"l2"``          ``<p, x> - T/2 ||p||^2``         ``p = sparsemax(x / T)``    <= T/2
================  ===============================  ==========================  ============

Replacing ``max``/``min`` in a dynamic programme by them gives a smooth value whose gradient
is the expected (entropy) or sparse (l2) path. Built here, each with a ``.hard`` form (the
exact DP, ``temperature -> 0``):

- :func:`smoothed_max`, :func:`smoothed_min`;
- :func:`soft_dtw` (Cuturi & Blondel 2017) on two series, :func:`soft_dtw_cost` on a cost
  matrix: O(n m) time; the backward pass is the DP's own reverse recursion over
  anti-diagonals (NumPy, no tape of every cell); under forward mode or nested transforms the
  same recursion is traced instead, so every derivative order works;
- :func:`soft_edit_distance` (smoothed Wagner-Fischer, prices may be traced);
- :func:`soft_viterbi` (the forward algorithm at ``temperature = 1``, entropy) and
  :func:`soft_shortest_path` on a DAG.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import concrete, custom_vjp, vjp
from ..core.tracer import Tracer
from ..numpy import (
    asarray,
    concatenate,
    full,
    maximum,
    negative,
    stack,
    sum,
    where,
)
from . import _dp_kernels
from ._ops import logsumexp
from .smooth import relaxation

Array = Any

_REGS = ("entropy", "l2")


def _check_reg(regularization: str, name: str) -> None:
    if regularization not in _REGS:
        raise ValueError(f"{name}: regularization must be one of {_REGS}, got {regularization!r}")


def _sparsemax_support(z: np.ndarray, axis: int) -> np.ndarray:
    """The support of the Euclidean projection of ``z`` onto the simplex (plain values)."""
    zs = -np.sort(-z, axis=axis)
    cs = np.cumsum(np.where(np.isfinite(zs), zs, 0.0), axis=axis)
    k = np.arange(1, z.shape[axis] + 1).reshape([-1 if a == axis % z.ndim else 1
                                                 for a in range(z.ndim)])
    ok = (1 + k * zs > cs) & np.isfinite(zs)
    kz = np.sum(ok, axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # no finite entry: empty support
        tau = (np.take_along_axis(cs, kz - 1, axis) - 1) / kz
    return z > tau


def _hard_max(x, regularization="entropy", axis=-1):
    return np.max(concrete(x), axis=axis)


@relaxation(hard=_hard_max)
def smoothed_max(
    x: Array, temperature: float | Array = 1.0, regularization: str = "entropy", axis: int = -1
) -> Array:
    """Smoothed ``max`` along ``axis`` (see the module table); ``-inf`` entries are ignored.

    >>> import numpy as np
    >>> from diffsys.relax import smoothed_max
    >>> x = np.array([1.0, 3.0, 2.9])
    >>> float(smoothed_max(x, 0.1, "l2")), float(smoothed_max.hard(x))
    (2.95, 3.0)
    """
    _check_reg(regularization, "smoothed_max")
    ignored = np.isneginf(np.asarray(concrete(x)))
    if ignored.any():
        # -inf entries take no part, with zero derivatives (not 0 * inf = NaN, also in the
        # temperature); a slice of only -inf is -inf, computed on zeros so its derivatives
        # are zero too
        empty = np.all(ignored, axis=axis, keepdims=True)
        z = where(ignored, -np.inf, where(ignored, 0.0, x) / temperature)
        best = temperature * _smoothed_max_unit(where(empty, 0.0, z), regularization, axis)
        return where(np.squeeze(empty, axis=axis), -np.inf, best)
    return temperature * _smoothed_max_unit(x / temperature, regularization, axis)


def _smoothed_max_unit(z, regularization: str, axis: int):
    """``smoothed_max`` at temperature 1."""
    if regularization == "entropy":
        return logsumexp(z, axis=axis)
    support = _sparsemax_support(np.asarray(concrete(z)), axis)
    count = np.sum(support, axis=axis, keepdims=True)
    z = where(support, z, 0.0)  # entries off the support (maybe -inf) get p = 0
    tau = (sum(z, axis=axis, keepdims=True) - 1.0) / count
    p = where(support, maximum(z - tau, 0.0), 0.0)
    return sum(p * z - 0.5 * p * p, axis=axis)


def _hard_min(x, regularization="entropy", axis=-1):
    return np.min(concrete(x), axis=axis)


@relaxation(hard=_hard_min)
def smoothed_min(
    x: Array, temperature: float | Array = 1.0, regularization: str = "entropy", axis: int = -1
) -> Array:
    """``-smoothed_max(-x)``: a smoothed ``min``; ``+inf`` entries are ignored."""
    return negative(smoothed_max(negative(x), temperature, regularization, axis))


# --- soft-DTW ------------------------------------------------------------------------------------


def _diag_cells(k: int, n: int, m: int) -> tuple[int, int]:
    """Rows ``i`` (1-based) of anti-diagonal ``k = i + j`` inside the ``n x m`` grid."""
    return max(1, k - m), min(n, k - 1)


def _skew(A: np.ndarray, fill: float) -> np.ndarray:
    """``A`` ``(n+2, m+2)`` (1-based grid with borders) in diagonal-major layout:
    ``S[k, i] = A[i, k - i]`` for ``k = i + j``, ``fill`` outside ``A``."""
    n2, m2 = A.shape
    k = np.arange(n2 + m2 - 1)[:, None]
    i = np.arange(n2)[None, :]
    j = k - i
    ok = (j >= 0) & (j < m2)
    return np.where(ok, A[i, np.clip(j, 0, m2 - 1)], fill)


def _unskew(S: np.ndarray, n2: int, m2: int) -> np.ndarray:
    i = np.arange(n2)[:, None]
    j = np.arange(m2)[None, :]
    return S[i + j, i]


def _softmin3(a, b, c, gamma):
    z = np.stack([a, b, c])
    mn = z.min(axis=0)
    with np.errstate(invalid="ignore"):
        out = mn - gamma * np.log(np.exp((mn - z) / gamma).sum(axis=0))
    return np.where(np.isinf(mn), mn, out)


def _sdtw_numpy(D: np.ndarray, gamma: float, hard: bool = False) -> np.ndarray:
    """The DP table ``R`` (``(n+2, m+2)``, borders ``inf``), by anti-diagonals. Each diagonal
    is a contiguous row of a diagonal-major copy, so a step is a few slices, not gathers."""
    n, m = D.shape
    Dp = np.zeros((n + 2, m + 2))
    Dp[1 : n + 1, 1 : m + 1] = D
    Dk = _skew(Dp, 0.0)
    Q = np.full(Dk.shape, np.inf)
    Q[0, 0] = 0.0
    for k in range(2, n + m + 1):
        lo, hi = _diag_cells(k, n, m)
        a, b, c = Q[k - 2, lo - 1 : hi], Q[k - 1, lo - 1 : hi], Q[k - 1, lo : hi + 1]
        best = np.minimum(np.minimum(a, b), c) if hard else _softmin3(a, b, c, gamma)
        Q[k, lo : hi + 1] = Dk[k, lo : hi + 1] + best
    return _unskew(Q, n + 2, m + 2)


def _sdtw_grad_numpy(D: np.ndarray, R: np.ndarray, gamma: float) -> np.ndarray:
    """``d R[n, m] / d D`` by the reverse recursion of Cuturi & Blondel (2017, Alg. 2), by
    anti-diagonals in the diagonal-major layout."""
    n, m = D.shape
    Dp = np.zeros((n + 2, m + 2))
    Dp[1 : n + 1, 1 : m + 1] = D
    R = R.copy()
    R[:, m + 1] = -np.inf
    R[n + 1, :] = -np.inf
    R[n + 1, m + 1] = R[n, m]
    Q, Dk = _skew(R, -np.inf), _skew(Dp, 0.0)
    E = np.zeros(Q.shape)
    E[n + m + 2, n + 1] = 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(n + m, 1, -1):
            lo, hi = _diag_cells(k, n, m)
            r = Q[k, lo : hi + 1]
            # (i + 1, j): diagonal k + 1, row i + 1; (i, j + 1): k + 1, row i; (i+1, j+1): k + 2
            a = np.exp((Q[k + 1, lo + 1 : hi + 2] - r - Dk[k + 1, lo + 1 : hi + 2]) / gamma)
            b = np.exp((Q[k + 1, lo : hi + 1] - r - Dk[k + 1, lo : hi + 1]) / gamma)
            c = np.exp((Q[k + 2, lo + 1 : hi + 2] - r - Dk[k + 2, lo + 1 : hi + 2]) / gamma)
            E[k, lo : hi + 1] = (np.nan_to_num(E[k + 1, lo + 1 : hi + 2] * a)
                                 + np.nan_to_num(E[k + 1, lo : hi + 1] * b)
                                 + np.nan_to_num(E[k + 2, lo + 1 : hi + 2] * c))
    return _unskew(E, n + 2, m + 2)[1 : n + 1, 1 : m + 1]


def _sdtw_table(D: np.ndarray, gamma: float, hard: bool = False) -> np.ndarray:
    """The forward table ``R``: compiled (Numba, the ``jit`` extra) where installed, else the
    vectorised NumPy recursion."""
    kernels = _dp_kernels.sdtw_kernels()
    D = np.ascontiguousarray(D, dtype=np.float64)
    if kernels is None:
        return _sdtw_numpy(D, gamma, hard)
    return kernels[0](D, float(gamma), bool(hard))


def _sdtw_grad(D: np.ndarray, R: np.ndarray, gamma: float) -> np.ndarray:
    """``d R[n, m] / d D``: compiled where Numba is installed, else the NumPy recursion."""
    kernels = _dp_kernels.sdtw_kernels()
    D = np.ascontiguousarray(D, dtype=np.float64)
    if kernels is None:
        return _sdtw_grad_numpy(D, R, gamma)
    return kernels[1](D, np.ascontiguousarray(R, dtype=np.float64), float(gamma))


def _sdtw_traced(D: Array, gamma: float) -> Array:
    """The same recursion in diffsys operations (for forward mode and higher orders)."""
    n, m = D.shape
    # diagonal k as a vector over i = 0..n: R[i, k - i] (inf outside the grid)
    prev2 = asarray(np.concatenate([[0.0], np.full(n, np.inf)]))  # k = 0
    prev1 = asarray(np.full(n + 1, np.inf))  # k = 1
    for k in range(2, n + m + 1):
        lo, hi = _diag_cells(k, n, m)
        i = np.arange(lo, hi + 1)
        a, b, c = prev2[i - 1], prev1[i - 1], prev1[i]
        best = negative(gamma * logsumexp(stack([a, b, c]) / -gamma, axis=0))
        vals = D[i - 1, k - i - 1] + best
        parts = [full(lo, np.inf)] if lo else []
        parts.append(vals)
        if hi < n:
            parts.append(full(n - hi, np.inf))
        prev2, prev1 = prev1, concatenate(parts) if len(parts) > 1 else vals
    return prev1[n]


def _sdtw_value(D, gamma):
    if isinstance(D, Tracer):
        return _sdtw_traced(D, gamma)
    return _sdtw_table(np.asarray(D, dtype=np.float64), gamma)[D.shape[0], D.shape[1]]


_sdtw = custom_vjp(_sdtw_value, nondiff_argnums=(1,))


def _sdtw_fwd(D, gamma):
    if isinstance(D, Tracer):
        return _sdtw_traced(D, gamma), (D, None)
    R = _sdtw_table(np.asarray(D, dtype=np.float64), gamma)
    return R[D.shape[0], D.shape[1]], (D, R)


def _sdtw_bwd(gamma, res, g):
    D, R = res
    if R is None:  # traced residuals (a nested transform): differentiate the traced recursion
        _, pull = vjp(lambda d: _sdtw_traced(d, gamma), D)
        return pull(g)
    return (g * _sdtw_grad(np.asarray(D, dtype=np.float64), R, gamma),)


_sdtw.defvjp(_sdtw_fwd, _sdtw_bwd)


def _check_cost(D, name: str) -> None:
    shape = tuple(np.shape(D))
    if len(shape) != 2 or 0 in shape:
        raise ValueError(f"{name}: the cost matrix must be 2-D and non-empty, got shape {shape}")


def _hard_dtw_cost(D, temperature=1.0):
    return _sdtw_table(np.asarray(concrete(D), dtype=np.float64), 1.0, hard=True)[
        np.shape(D)[0], np.shape(D)[1]
    ]


@relaxation(hard=_hard_dtw_cost)
def soft_dtw_cost(D: Array, temperature: float = 1.0) -> Array:
    """soft-DTW value of an ``(n, m)`` cost matrix: ``R[n, m]`` with ``R[i, j] = D[i, j] +
    softmin_T(R[i-1, j-1], R[i-1, j], R[i, j-1])``. ``temperature`` (gamma) is a float.

    >>> import numpy as np
    >>> from diffsys.relax import soft_dtw_cost
    >>> D = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> float(soft_dtw_cost.hard(D)), round(float(soft_dtw_cost(D, 1.0)), 4)
    (0.0, -0.5514)
    """
    _check_cost(D, "soft_dtw_cost")
    return _sdtw(D, float(concrete(temperature)))


def _sq_dists(x, y):
    x = x[:, None] if len(np.shape(x)) == 1 else x
    y = y[:, None] if len(np.shape(y)) == 1 else y
    if np.shape(x)[1] != np.shape(y)[1]:
        raise ValueError(
            f"soft_dtw: series must have the same feature size, got shapes {np.shape(x)} and "
            f"{np.shape(y)}"
        )
    return sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


@relaxation(hard=lambda x, y: _hard_dtw_cost(_sq_dists(concrete(x), concrete(y))))
def soft_dtw(x: Array, y: Array, temperature: float = 1.0) -> Array:
    """soft-DTW between series ``x`` ``(n,)``/``(n, d)`` and ``y`` ``(m,)``/``(m, d)`` with the
    squared Euclidean cost (tslearn's ``soft_dtw``); ``.hard`` is DTW with that cost."""
    return soft_dtw_cost(_sq_dists(x, y), temperature)



# --- plain-array DPs with their own reverse recursions --------------------------------------
#
# Viterbi, edit distance and shortest paths share one scheme (soft-DTW's, made generic): on
# plain arrays the forward pass fills the DP table in NumPy and keeps only that table; the
# backward pass walks the recursion in reverse, recomputing each step's smoothed-max
# distribution from the table, and pushes adjoints to the cells and weights that step read.
# Memory is the table (O(cells)), not a tape of every operation. When an argument is traced
# by an outer transform (forward mode, higher orders), the same recursion runs in diffsys
# operations instead, so every derivative order works.


def _np_smoothed_max(x: np.ndarray, temperature: float, regularization: str, axis: int):
    """``smoothed_max`` on plain arrays and its gradient (the maximising distribution ``p``);
    all ``-inf`` along ``axis`` gives ``-inf`` and ``p = 0``."""
    z = x / temperature
    if regularization == "entropy":
        top = np.max(z, axis=axis, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        e = np.exp(z - top)
        s = np.sum(e, axis=axis, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = temperature * (np.log(s) + top)
            p = np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)
        return np.squeeze(value, axis), p
    support = _sparsemax_support(z, axis)
    count = np.sum(support, axis=axis, keepdims=True)
    zs = np.where(support, z, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (np.sum(zs, axis=axis, keepdims=True) - 1.0) / count
        p = np.where(support, np.maximum(zs - tau, 0.0), 0.0)
    value = temperature * np.sum(p * zs - 0.5 * p * p, axis=axis)
    return np.where(np.squeeze(count, axis) > 0, value, -np.inf), p


def _np_smoothed_min(x, temperature, regularization, axis):
    value, p = _np_smoothed_max(-x, temperature, regularization, axis)
    return -value, p


def _traced(args) -> bool:
    return any(isinstance(a, Tracer) for a in args)


def _dp_rule(name: str, traced, forward, backward, ndiff: int, ncfg: int):
    """A ``custom_vjp`` over ``(*diff, *config)`` for a DP with a plain-array ``forward(*diff,
    *config) -> (value, table)`` and ``backward(*diff, *config, table, g) -> cotangents``; any
    traced argument (or cotangent) runs ``traced(*diff, *config)`` in diffsys operations."""

    def plain(diff):
        return [np.asarray(d, dtype=np.float64) for d in diff]

    def out_dtype(diff):
        return np.result_type(*[np.asarray(d).dtype for d in diff], np.float16)

    def fun(*args):
        diff, cfg = args[:ndiff], args[ndiff:]
        if _traced(diff):
            return traced(*args)
        value = forward(*plain(diff), *cfg)[0]
        return np.asarray(value, dtype=out_dtype(diff))

    fun.__name__ = fun.__qualname__ = name
    rule = custom_vjp(fun, nondiff_argnums=tuple(range(ndiff, ndiff + ncfg)))

    def fwd(*args):
        diff, cfg = args[:ndiff], args[ndiff:]
        if _traced(diff):
            return traced(*args), (diff, None)
        value, table = forward(*plain(diff), *cfg)
        return np.asarray(value, dtype=out_dtype(diff)), (diff, table)

    def bwd(*rest):
        *cfg, (diff, table), g = rest
        if table is None or isinstance(g, Tracer):
            _, pull = vjp(lambda *d: traced(*d, *cfg), *diff)
            return pull(g)
        cts = backward(*plain(diff), *cfg, table, np.asarray(g, dtype=np.float64))
        return tuple(np.asarray(c, dtype=out_dtype([d])).reshape(np.shape(d))
                     for c, d in zip(cts, diff, strict=True))

    rule.defvjp(fwd, bwd)
    return rule


# --- edit distance ------------------------------------------------------------------------------


def _edit(cost, insertion, deletion, temperature, regularization, hard):
    """Anti-diagonal recursion of ``R[i, j] = min(R[i-1, j] + deletion, R[i, j-1] +
    insertion, R[i-1, j-1] + cost[i-1, j-1])`` with ``R[i, 0] = i deletion``,
    ``R[0, j] = j insertion``; diagonal ``k`` is a vector over ``i = 0..n``."""
    n, m = np.shape(cost)
    diags = []  # diagonal k: (lo, values for i = lo..hi)
    for k in range(0, n + m + 1):
        lo, hi = max(0, k - m), min(n, k)
        vals = []
        inner_lo, inner_hi = max(1, k - m), min(n, k - 1)
        if lo == 0:  # R[0, k] = k insertion
            vals.append(asarray(np.zeros(1)) + k * insertion if k else asarray(np.zeros(1)))
        if inner_lo <= inner_hi:
            i = np.arange(inner_lo, inner_hi + 1)
            p_lo, p_vals = diags[k - 1]
            q_lo, q_vals = diags[k - 2]
            up = p_vals[i - 1 - p_lo] + deletion  # R[i-1, j]
            left = p_vals[i - p_lo] + insertion  # R[i, j-1]
            diag = q_vals[i - 1 - q_lo] + cost[i - 1, k - i - 1]  # R[i-1, j-1]
            z = stack([up, left, diag])
            vals.append(_hard_min(z, axis=0) if hard
                        else smoothed_min(z, temperature, regularization, axis=0))
        if hi == k and k > 0:  # R[k, 0] = k deletion
            vals.append(asarray(np.zeros(1)) + k * deletion)
        diags.append((lo, concatenate(vals) if len(vals) > 1 else vals[0]))
    lo, vals = diags[n + m]
    return vals[n - lo]


def _edit_cells(k: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(max(1, k - m), min(n, k - 1) + 1)
    return i, k - i


def _edit_candidates(R, C, ins, dele, i, j):
    return np.stack([R[i - 1, j] + dele, R[i, j - 1] + ins, R[i - 1, j - 1] + C[i - 1, j - 1]])


def _edit_forward(C, ins, dele, temperature, regularization):
    n, m = C.shape
    R = np.empty((n + 1, m + 1))
    R[:, 0] = np.arange(n + 1) * dele
    R[0, :] = np.arange(m + 1) * ins
    for k in range(2, n + m + 1):
        i, j = _edit_cells(k, n, m)
        z = _edit_candidates(R, C, ins, dele, i, j)
        R[i, j] = _np_smoothed_min(z, temperature, regularization, 0)[0]
    return R[n, m], R


def _edit_backward(C, ins, dele, temperature, regularization, R, g):
    n, m = C.shape
    G = np.zeros((n + 1, m + 1))  # adjoint of every cell of R
    G[n, m] = g
    gC = np.zeros_like(C)
    g_ins = g_del = 0.0
    for k in range(n + m, 1, -1):
        i, j = _edit_cells(k, n, m)
        p = _np_smoothed_min(_edit_candidates(R, C, ins, dele, i, j), temperature,
                             regularization, 0)[1]
        a = G[i, j] * p  # (3, cells): to R[i-1, j], R[i, j-1], R[i-1, j-1]
        G[i - 1, j] += a[0]
        G[i, j - 1] += a[1]
        G[i - 1, j - 1] += a[2]
        gC[i - 1, j - 1] = a[2]
        g_del += a[0].sum()
        g_ins += a[1].sum()
    # the borders R[i, 0] = i deletion and R[0, j] = j insertion
    g_del += G[1:, 0] @ np.arange(1, n + 1)
    g_ins += G[0, 1:] @ np.arange(1, m + 1)
    return gC, g_ins, g_del


_edit_rule = _dp_rule(
    "soft_edit_distance",
    lambda c, i, d, t, r: _edit(c, i, d, t, r, False),
    _edit_forward, _edit_backward, 3, 2,
)


@relaxation(hard=lambda cost, insertion=1.0, deletion=1.0, regularization="entropy": _edit(
    np.asarray(concrete(cost)), float(concrete(insertion)), float(concrete(deletion)), 1.0,
    "entropy", True))
def soft_edit_distance(
    cost: Array, insertion: float | Array = 1.0, deletion: float | Array = 1.0,
    temperature: float | Array = 1.0, regularization: str = "entropy",
) -> Array:
    """Smoothed edit distance: ``cost[i, j]`` the price of substituting ``x[i]`` by ``y[j]``
    (0 for a match), ``insertion`` and ``deletion`` per symbol (all may be traced).
    ``.hard`` is the Levenshtein-style DP (Wagner-Fischer) with these prices. O(n m) time;
    the backward pass is the DP's reverse recursion over the ``(n+1, m+1)`` table.

    >>> import numpy as np
    >>> from diffsys.relax import soft_edit_distance
    >>> x, y = np.array(list("kitten")), np.array(list("sitting"))
    >>> float(soft_edit_distance.hard((x[:, None] != y[None, :]).astype(float)))
    3.0
    """
    _check_reg(regularization, "soft_edit_distance")
    _check_cost(cost, "soft_edit_distance")
    if isinstance(temperature, Tracer):
        return _edit(cost, insertion, deletion, temperature, regularization, False)
    return _edit_rule(cost, insertion, deletion, float(temperature), regularization)


# --- Viterbi ------------------------------------------------------------------------------------


def _viterbi(emissions, transitions, temperature, regularization, hard):
    alpha = emissions[0]
    for t in range(1, np.shape(emissions)[0]):
        scores = alpha[:, None] + transitions
        alpha = (_hard_max(scores, axis=0) if hard else
                 smoothed_max(scores, temperature, regularization, axis=0)) + emissions[t]
    return _hard_max(alpha) if hard else smoothed_max(alpha, temperature, regularization)


def _viterbi_forward(E, A, temperature, regularization):
    alpha = np.empty_like(E)
    alpha[0] = E[0]
    for t in range(1, len(E)):
        alpha[t] = _np_smoothed_max(alpha[t - 1][:, None] + A, temperature, regularization,
                                    0)[0] + E[t]
    return _np_smoothed_max(alpha[-1], temperature, regularization, -1)[0], alpha


def _viterbi_backward(E, A, temperature, regularization, alpha, g):
    adj = g * _np_smoothed_max(alpha[-1], temperature, regularization, -1)[1]
    gE, gA = np.empty_like(E), np.zeros_like(A)
    for t in range(len(E) - 1, 0, -1):
        gE[t] = adj
        P = _np_smoothed_max(alpha[t - 1][:, None] + A, temperature, regularization, 0)[1]
        flow = P * adj[None, :]
        gA += flow
        adj = flow.sum(axis=1)
    gE[0] = adj
    return gE, gA


_viterbi_rule = _dp_rule(
    "soft_viterbi",
    lambda e, a, t, r: _viterbi(e, a, t, r, False),
    _viterbi_forward, _viterbi_backward, 2, 2,
)


@relaxation(hard=lambda e, tr, regularization="entropy": _viterbi(e, tr, 1.0, "entropy", True))
def soft_viterbi(
    emissions: Array, transitions: Array, temperature: float | Array = 1.0,
    regularization: str = "entropy",
) -> Array:
    """Smoothed best-path score of a chain: ``emissions`` ``(T, S)``, ``transitions[i, j]``
    the score of ``i -> j``. Entropy at temperature 1 is the forward algorithm (the log
    partition function); its gradient is the posterior marginals. ``.hard`` is Viterbi. The
    backward pass is the backward algorithm on the ``(T, S)`` table of forward scores.

    >>> import numpy as np
    >>> from diffsys.relax import soft_viterbi
    >>> e, tr = np.log([[0.5, 0.5], [0.9, 0.1]]), np.log([[0.5, 0.5], [0.5, 0.5]])
    >>> round(float(np.exp(soft_viterbi(e, tr, 1.0))), 4)   # sum over state paths
    0.5
    """
    _check_reg(regularization, "soft_viterbi")
    if np.ndim(emissions) != 2 or np.shape(transitions) != (np.shape(emissions)[1],) * 2:
        raise ValueError(
            f"soft_viterbi: emissions must be (T, S) and transitions (S, S), got shapes "
            f"{np.shape(emissions)} and {np.shape(transitions)}"
        )
    if isinstance(temperature, Tracer):
        return _viterbi(emissions, transitions, temperature, regularization, False)
    return _viterbi_rule(emissions, transitions, float(temperature), regularization)


# --- shortest paths -----------------------------------------------------------------------------


def _check_square(weights, name: str) -> int:
    shape = tuple(np.shape(weights))
    if len(shape) != 2 or shape[0] != shape[1] or not shape[0]:
        raise ValueError(f"{name}: weights must be a square (n, n) matrix, got shape {shape}")
    return shape[0]


def _shortest(weights, temperature, regularization, hard):
    n = np.shape(weights)[0]
    dist = [asarray(np.zeros(()))]
    for j in range(1, n):
        cand = stack(dist) + weights[:j, j]
        dist.append(_hard_min(cand) if hard else
                    smoothed_min(cand, temperature, regularization, axis=-1))
    return dist[-1]


def _dag_forward(W, temperature, regularization):
    n = len(W)
    dist = np.empty(n)
    dist[0] = 0.0
    for j in range(1, n):
        dist[j] = _np_smoothed_min(dist[:j] + W[:j, j], temperature, regularization, -1)[0]
    return dist[-1], dist


def _dag_backward(W, temperature, regularization, dist, g):
    n = len(W)
    G = np.zeros(n)
    G[-1] = g
    gW = np.zeros_like(W)
    for j in range(n - 1, 0, -1):
        p = _np_smoothed_min(dist[:j] + W[:j, j], temperature, regularization, -1)[1]
        gW[:j, j] = G[j] * p
        G[:j] += gW[:j, j]
    return (gW,)


_dag_rule = _dp_rule(
    "soft_shortest_path",
    lambda w, t, r: _shortest(w, t, r, False),
    _dag_forward, _dag_backward, 1, 2,
)


@relaxation(hard=lambda w, regularization="entropy": _shortest(concrete(w), 1.0, "entropy", True))
def soft_shortest_path(
    weights: Array, temperature: float | Array = 1.0, regularization: str = "entropy"
) -> Array:
    """Smoothed length of the shortest path ``0 -> n-1`` in a DAG whose nodes are in
    topological order: ``weights[i, j]`` (``i < j``) the edge lengths, ``inf`` for no edge
    (entries on and below the diagonal are not read). General graphs: :func:`soft_bellman_ford`.

    >>> import numpy as np
    >>> from diffsys.relax import soft_shortest_path
    >>> W = np.array([[np.inf, 1.0, 4.0], [np.inf, np.inf, 1.0], [np.inf, np.inf, np.inf]])
    >>> float(soft_shortest_path.hard(W)), round(float(soft_shortest_path(W, 0.01)), 4)
    (2.0, 2.0)
    """
    _check_reg(regularization, "soft_shortest_path")
    _check_square(weights, "soft_shortest_path")
    if isinstance(temperature, Tracer):
        return _shortest(weights, temperature, regularization, False)
    return _dag_rule(weights, float(temperature), regularization)


def _bf_candidates(d, W):
    """Round of Bellman-Ford on the time-expanded graph: stay (row 0) or come over an edge."""
    return concatenate([d[None, :], d[:, None] + W], axis=0)


def _bf_traced(weights, temperature, regularization, source, rounds):
    n = np.shape(weights)[0]
    d = asarray(np.where(np.arange(n) == source, 0.0, np.inf))
    for _ in range(rounds):
        d = smoothed_min(_bf_candidates(d, weights), temperature, regularization, axis=0)
    return d


def _bf_forward(W, temperature, regularization, source, rounds):
    n = len(W)
    D = np.full((rounds + 1, n), np.inf)
    D[0, source] = 0.0
    for t in range(rounds):
        cand = np.concatenate([D[t][None, :], D[t][:, None] + W])
        D[t + 1] = _np_smoothed_min(cand, temperature, regularization, 0)[0]
    return D[-1], D


def _bf_backward(W, temperature, regularization, source, rounds, D, g):
    G = np.array(g, dtype=np.float64)
    gW = np.zeros_like(W)
    for t in range(rounds - 1, -1, -1):
        cand = np.concatenate([D[t][None, :], D[t][:, None] + W])
        flow = _np_smoothed_min(cand, temperature, regularization, 0)[1] * G[None, :]
        gW += flow[1:]
        G = flow[0] + flow[1:].sum(axis=1)
    return (gW,)


_bf_rule = _dp_rule("soft_bellman_ford", _bf_traced, _bf_forward, _bf_backward, 1, 4)


def _bellman_ford_hard(W: np.ndarray, source: int, rounds: int) -> np.ndarray:
    d = np.where(np.arange(len(W)) == source, 0.0, np.inf)
    for _ in range(rounds):
        d = np.minimum(d, np.min(d[:, None] + W, axis=0))
    return d


def _check_bellman_ford(weights, source, rounds) -> tuple[int, int]:
    n = _check_square(weights, "soft_bellman_ford")
    if not isinstance(source, int | np.integer) or not 0 <= source < n:
        raise ValueError(f"soft_bellman_ford: source must be a node index in [0, {n}), "
                         f"got {source!r}")
    W = np.asarray(concrete(weights), dtype=np.float64)
    if np.isnan(W).any() or (W == -np.inf).any():
        raise ValueError("soft_bellman_ford: weights must be finite edge lengths or +inf (no "
                         "edge); found NaN or -inf")
    if rounds is not None:
        if not isinstance(rounds, int | np.integer) or rounds < 0:
            raise ValueError(f"soft_bellman_ford: rounds must be an int >= 0, got {rounds!r}")
        return n, int(rounds)
    # n - 1 rounds reach every shortest path, unless a negative cycle makes them unbounded:
    # then one more round still lowers some distance
    d = _bellman_ford_hard(W, source, n - 1)
    more = np.minimum(d, np.min(d[:, None] + W, axis=0))
    if (more < d).any():
        node = int(np.argmax(d - more))
        raise ValueError(
            f"soft_bellman_ford: the graph ({n} nodes) has a negative cycle reachable from "
            f"source {source}: node {node}'s distance still falls after {n - 1} rounds, so "
            "shortest paths are unbounded. Make every cycle's length >= 0, or pass rounds=k "
            "for paths of at most k edges"
        )
    return n, n - 1


def _hard_bellman_ford(weights, regularization="entropy", source=0, rounds=None):
    n, rounds = _check_bellman_ford(weights, source, rounds)
    return _bellman_ford_hard(np.asarray(concrete(weights), dtype=np.float64), source, rounds)


@relaxation(hard=_hard_bellman_ford)
def soft_bellman_ford(
    weights: Array, temperature: float | Array = 1.0, regularization: str = "entropy",
    source: int = 0, rounds: int | None = None,
) -> Array:
    """Smoothed shortest-path lengths from ``source`` to every node of a general directed
    graph (cycles and negative edges allowed): ``weights[i, j]`` the length of ``i -> j``,
    ``inf`` for no edge. Bellman-Ford with a smoothed ``min``: ``d_{t+1}[j] = softmin(d_t[j],
    d_t[i] + weights[i, j] for all i)``, ``rounds`` times (default ``n - 1``, after checking
    that no negative cycle is reachable: that is a ``ValueError``). This is the soft shortest
    path on the time-expanded DAG (node ``j`` at round ``t``), so the gap to the hard
    distances is at most ``T rounds log(n + 1)`` (entropy). Unreachable nodes stay ``inf``.
    ``.hard`` is Bellman-Ford, equal to ``scipy.sparse.csgraph.shortest_path``. O(rounds n^2)
    time; the backward pass is the reverse recursion over the ``(rounds + 1, n)`` table.

    >>> import numpy as np
    >>> from diffsys.relax import soft_bellman_ford
    >>> W = np.array([[np.inf, 4.0, 1.0], [np.inf, np.inf, np.inf], [np.inf, -2.0, np.inf]])
    >>> soft_bellman_ford.hard(W), soft_bellman_ford(W, 0.01).round(2)
    (array([ 0., -1.,  1.]), array([-0.  , -1.  ,  0.99]))
    """
    _check_reg(regularization, "soft_bellman_ford")
    _, rounds = _check_bellman_ford(weights, source, rounds)
    if isinstance(temperature, Tracer):
        return _bf_traced(weights, temperature, regularization, source, rounds)
    return _bf_rule(weights, float(temperature), regularization, int(source), rounds)
