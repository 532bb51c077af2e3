"""Compiled soft-DTW recursions (Numba), used by :mod:`diffsys.relax.dp` on plain arrays.

The loops below are plain Python; :func:`sdtw_kernels` compiles them with
``numba.njit(cache=True)`` on first use, so ``import diffsys`` does not import Numba. Where
Numba is not installed (the ``jit`` extra) it returns ``None`` and ``dp`` keeps its
vectorised NumPy recursions. Both tables use the ``(n + 2, m + 2)`` layout of ``dp``: row and
column 0 and ``n + 1`` / ``m + 1`` are borders.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_FLOAT_MAX = float(np.finfo(np.float64).max)


def _sdtw_forward(D: np.ndarray, gamma: float, hard: bool) -> np.ndarray:
    """``R`` ``(n+2, m+2)``: ``R[0, 0] = 0``, borders ``inf``, ``R[i, j] = D[i-1, j-1] +
    softmin_gamma(R[i-1, j-1], R[i-1, j], R[i, j-1])`` (the hard min when ``hard``)."""
    n, m = D.shape
    R = np.full((n + 2, m + 2), np.inf)
    R[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            a = R[i - 1, j - 1]
            b = R[i - 1, j]
            c = R[i, j - 1]
            mn = min(a, min(b, c))
            if hard or math.isinf(mn):
                best = mn
            else:
                s = math.exp((mn - a) / gamma) + math.exp((mn - b) / gamma)
                s += math.exp((mn - c) / gamma)
                best = mn - gamma * math.log(s)
            R[i, j] = D[i - 1, j - 1] + best
    return R


def _sdtw_backward(D: np.ndarray, R: np.ndarray, gamma: float) -> np.ndarray:
    """``d R[n, m] / d D`` ``(n, m)`` by the reverse recursion of Cuturi & Blondel (2017,
    Alg. 2) on the forward table ``R``."""
    n, m = D.shape
    Dp = np.zeros((n + 2, m + 2))
    Dp[1 : n + 1, 1 : m + 1] = D
    Rb = R.copy()
    Rb[:, m + 1] = -np.inf
    Rb[n + 1, :] = -np.inf
    Rb[n + 1, m + 1] = R[n, m]
    E = np.zeros((n + 2, m + 2))
    E[n + 1, m + 1] = 1.0
    for i in range(n, 0, -1):
        for j in range(m, 0, -1):
            r = Rb[i, j]
            a = math.exp((Rb[i + 1, j] - r - Dp[i + 1, j]) / gamma)
            b = math.exp((Rb[i, j + 1] - r - Dp[i, j + 1]) / gamma)
            c = math.exp((Rb[i + 1, j + 1] - r - Dp[i + 1, j + 1]) / gamma)
            s = 0.0
            for t in (E[i + 1, j] * a, E[i, j + 1] * b, E[i + 1, j + 1] * c):
                # np.nan_to_num of each term, as the NumPy backward
                if t != t:
                    t = 0.0
                elif t == math.inf:
                    t = _FLOAT_MAX
                elif t == -math.inf:
                    t = -_FLOAT_MAX
                s += t
            E[i, j] = s
    return E[1 : n + 1, 1 : m + 1].copy()


_KERNELS: Any = None  # (forward, backward) once compiled; False where Numba is missing


def sdtw_kernels() -> tuple[Any, Any] | None:
    """The compiled ``(forward, backward)`` soft-DTW kernels, or ``None`` without Numba."""
    global _KERNELS
    if _KERNELS is None:
        try:
            import numba
        except ImportError:
            _KERNELS = False
        else:
            jit = numba.njit(cache=True, error_model="numpy")
            _KERNELS = (jit(_sdtw_forward), jit(_sdtw_backward))
    return _KERNELS or None
