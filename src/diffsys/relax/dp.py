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
    if regularization == "entropy":
        return temperature * logsumexp(x / temperature, axis=axis)
    z = x / temperature
    support = _sparsemax_support(np.asarray(concrete(z)), axis)
    count = np.sum(support, axis=axis, keepdims=True)
    z = where(support, z, 0.0)  # entries off the support (maybe -inf) get p = 0
    tau = (sum(z, axis=axis, keepdims=True) - 1.0) / count
    p = where(support, maximum(z - tau, 0.0), 0.0)
    return temperature * sum(p * z - 0.5 * p * p, axis=axis)


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
    return _sdtw_numpy(np.asarray(D, dtype=np.float64), gamma)[D.shape[0], D.shape[1]]


_sdtw = custom_vjp(_sdtw_value, nondiff_argnums=(1,))


def _sdtw_fwd(D, gamma):
    if isinstance(D, Tracer):
        return _sdtw_traced(D, gamma), (D, None)
    R = _sdtw_numpy(np.asarray(D, dtype=np.float64), gamma)
    return R[D.shape[0], D.shape[1]], (D, R)


def _sdtw_bwd(gamma, res, g):
    D, R = res
    if R is None:  # traced residuals (a nested transform): differentiate the traced recursion
        _, pull = vjp(lambda d: _sdtw_traced(d, gamma), D)
        return pull(g)
    return (g * _sdtw_grad_numpy(np.asarray(D, dtype=np.float64), R, gamma),)


_sdtw.defvjp(_sdtw_fwd, _sdtw_bwd)


def _check_cost(D, name: str) -> None:
    shape = tuple(np.shape(D))
    if len(shape) != 2 or 0 in shape:
        raise ValueError(f"{name}: the cost matrix must be 2-D and non-empty, got shape {shape}")


def _hard_dtw_cost(D, temperature=1.0):
    return _sdtw_numpy(np.asarray(concrete(D), dtype=np.float64), 1.0, hard=True)[
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


@relaxation(hard=lambda cost, insertion=1.0, deletion=1.0, regularization="entropy": _edit(
    np.asarray(concrete(cost)), float(concrete(insertion)), float(concrete(deletion)), 1.0,
    "entropy", True))
def soft_edit_distance(
    cost: Array, insertion: float | Array = 1.0, deletion: float | Array = 1.0,
    temperature: float | Array = 1.0, regularization: str = "entropy",
) -> Array:
    """Smoothed edit distance: ``cost[i, j]`` the price of substituting ``x[i]`` by ``y[j]``
    (0 for a match), ``insertion`` and ``deletion`` per symbol (all may be traced).
    ``.hard`` is the Levenshtein-style DP (Wagner-Fischer) with these prices.

    >>> import numpy as np
    >>> from diffsys.relax import soft_edit_distance
    >>> x, y = np.array(list("kitten")), np.array(list("sitting"))
    >>> float(soft_edit_distance.hard((x[:, None] != y[None, :]).astype(float)))
    3.0
    """
    _check_reg(regularization, "soft_edit_distance")
    _check_cost(cost, "soft_edit_distance")
    return _edit(cost, insertion, deletion, temperature, regularization, False)


# --- Viterbi and shortest paths --------------------------------------------------------------


def _viterbi(emissions, transitions, temperature, regularization, hard):
    alpha = emissions[0]
    for t in range(1, np.shape(emissions)[0]):
        scores = alpha[:, None] + transitions
        alpha = (_hard_max(scores, axis=0) if hard else
                 smoothed_max(scores, temperature, regularization, axis=0)) + emissions[t]
    return _hard_max(alpha) if hard else smoothed_max(alpha, temperature, regularization)


@relaxation(hard=lambda e, tr, regularization="entropy": _viterbi(e, tr, 1.0, "entropy", True))
def soft_viterbi(
    emissions: Array, transitions: Array, temperature: float | Array = 1.0,
    regularization: str = "entropy",
) -> Array:
    """Smoothed best-path score of a chain: ``emissions`` ``(T, S)``, ``transitions[i, j]``
    the score of ``i -> j``. Entropy at temperature 1 is the forward algorithm (the log
    partition function); its gradient is the posterior marginals. ``.hard`` is Viterbi."""
    _check_reg(regularization, "soft_viterbi")
    return _viterbi(emissions, transitions, temperature, regularization, False)


def _shortest(weights, temperature, regularization, hard):
    n = np.shape(weights)[0]
    dist = [asarray(np.zeros(()))]
    for j in range(1, n):
        cand = stack([dist[i] + weights[i, j] for i in range(j)])
        dist.append(_hard_min(cand) if hard else
                    smoothed_min(cand, temperature, regularization))
    return dist[-1]


@relaxation(hard=lambda w, regularization="entropy": _shortest(concrete(w), 1.0, "entropy", True))
def soft_shortest_path(
    weights: Array, temperature: float | Array = 1.0, regularization: str = "entropy"
) -> Array:
    """Smoothed length of the shortest path ``0 -> n-1`` in a DAG whose nodes are in
    topological order: ``weights[i, j]`` (``i < j``) the edge lengths, ``inf`` for no edge."""
    _check_reg(regularization, "soft_shortest_path")
    return _shortest(weights, temperature, regularization, False)
