"""NeuralSort (Grover et al. 2019, "Stochastic Optimization of Sorting Networks via Continuous
Relaxations"): a relaxed, unimodal row-stochastic permutation matrix.

For scores ``s`` (n) and temperature ``tau``::

    P[i, :] = softmax(((n + 1 - 2 i) s - A_s 1) / tau),   A_s[j, k] = |s_j - s_k|,  i = 1..n

``P @ s`` approximates ``s`` sorted in descending order, and ``P`` tends to the sorting
permutation matrix as ``tau -> 0``. Cost: O(n^2) time and memory per row for ``P`` itself;
everything else here is O(n log n): the row sums ``A_s 1`` come from a sort and prefix sums
(never the n x n matrix ``A_s``), the softmax shift is the exact row maximum read off the sort
(row i peaks at the i-th largest score, Theorem 1 of the paper), and the backward pass needs
one pass over ``P`` and the cotangent plus a (2 x n) @ (n x n) product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ..numpy import matmul, reshape, sign, sum

Array = Any


def _coefficients(n: int, dtype) -> np.ndarray:
    """``n + 1 - 2 i`` for ``i = 1..n``."""
    return (n - 1 - 2 * np.arange(n)).astype(dtype)


def _abs_row_sums(s: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``sum_k |s_j - s_k|`` for every j, in O(n log n) from the ascending order of ``s``."""
    n = s.shape[-1]
    u = np.take_along_axis(s, order, -1)
    below = np.cumsum(u, axis=-1) - u  # sum of the smaller values
    total = u.sum(-1, keepdims=True)
    p = np.arange(n, dtype=s.dtype)
    sorted_sums = u * p - below + (total - below - u) - u * (n - 1 - p)
    out = np.empty_like(s)
    np.put_along_axis(out, order, sorted_sums, -1)
    return out


def _neuralsort_impl(s, tau=1.0):
    s = np.asarray(s)
    n = s.shape[-1]
    dtype = s.dtype
    order = np.argsort(s, axis=-1)
    a = _coefficients(n, dtype) / dtype.type(tau)  # (n,)
    b = _abs_row_sums(s, order) / dtype.type(tau)  # (..., n)
    # exact row maxima: row i peaks at the i-th largest score
    desc = order[..., ::-1]
    m = a * np.take_along_axis(s, desc, -1) - np.take_along_axis(b, desc, -1)  # (..., n)
    p = a[:, None] * s[..., None, :]  # (..., n, n)
    p -= b[..., None, :]
    p -= m[..., :, None]
    np.exp(p, out=p)
    p *= (1.0 / p.sum(-1, keepdims=True)).astype(dtype, copy=False)
    return p


def _signed_counts_and_sums(s: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_k sign(s_j - s_k)`` and ``sum_k h_k sign(s_j - s_k)`` for every j, O(n log n)."""
    n = s.shape[-1]
    order = np.argsort(s, axis=-1)
    hs = np.take_along_axis(h, order, -1)
    below = np.cumsum(hs, axis=-1) - hs
    above = hs.sum(-1, keepdims=True) - below - hs
    p = np.arange(n, dtype=s.dtype)
    counts, sums = np.empty_like(s), np.empty_like(s)
    np.put_along_axis(counts, order, np.broadcast_to(2 * p - (n - 1), hs.shape), -1)
    np.put_along_axis(sums, order, below - above, -1)
    return counts, sums


def _vjp_raw(g, ans, s, tau):
    """The VJP on plain arrays: one fused pass over ``P`` and ``g`` plus a (2, n) @ (n, n)."""
    n = s.shape[-1]
    dtype = ans.dtype
    inner = np.einsum("...ij,...ij->...i", g, ans)  # sum_j g_ij P_ij
    glog = np.subtract(g, inner[..., None])
    glog *= ans  # cotangent of the logits (times tau)
    coef = np.stack([_coefficients(n, dtype), np.ones(n, dtype)])  # (2, n)
    both = np.matmul(coef, glog) / dtype.type(tau)  # (..., 2, n)
    g_direct, g_b = both[..., 0, :], -both[..., 1, :]
    counts, sums = _signed_counts_and_sums(s, g_b)
    return g_direct + g_b * counts + sums


def _vjp_traced(g, ans, s, tau):
    """The same VJP in diffsys.numpy operations (O(n^2)), so that it can be differentiated."""
    n = s.shape[-1]
    glog = ans * (g - sum(g * ans, axis=-1, keepdims=True))
    coef = _coefficients(n, s.dtype)
    g_direct = matmul(reshape(coef, (1, n)), glog)[..., 0, :] / tau
    g_b = -sum(glog, axis=-2) / tau
    sgn = sign(s[..., :, None] - s[..., None, :])  # sgn[j, k] = sign(s_j - s_k)
    return g_direct + g_b * sum(sgn, axis=-1) + matmul(sgn, g_b[..., None])[..., 0]


def _neuralsort_vjp(g, ans, s, tau=1.0):
    if isinstance(g, Tracer) or isinstance(ans, Tracer) or isinstance(s, Tracer):
        return _vjp_traced(g, ans, s, tau)
    return _vjp_raw(np.asarray(g), ans, s, tau)


def _neuralsort_jvp(t, ans, s, tau=1.0):
    n = s.shape[-1]
    coef = reshape(_coefficients(n, s.dtype), (n, 1))
    sgn = sign(s[..., :, None] - s[..., None, :])
    t_b = t * sum(sgn, axis=-1) - matmul(sgn, t[..., None])[..., 0]  # tangent of A_s 1
    t_logits = (coef * t[..., None, :] - t_b[..., None, :]) / tau
    return ans * (t_logits - sum(ans * t_logits, axis=-1, keepdims=True))


neuralsort_p = Primitive("relax.neuralsort", _neuralsort_impl)
neuralsort_p.defvjp(_neuralsort_vjp)
neuralsort_p.defjvp(_neuralsort_jvp)
neuralsort_p.defbatch(lambda args, batched, tau=1.0: neuralsort_p(args[0], tau=tau))


def neural_sort(s: Array, tau: float = 1.0) -> Array:
    """NeuralSort's relaxed permutation matrix of ``s`` along the last axis (descending).

    Returns ``P`` of shape ``s.shape + (n,)``: each row is a probability vector, and
    ``P @ s`` is a soft descending sort (``P[..., ::-1, :] @ s`` ascending). ``tau`` > 0 is
    the temperature. O(n^2) per row (the size of ``P``); derivatives in O(n^2), any order.

    >>> import numpy as np
    >>> from diffsys.relax import neural_sort
    >>> P = neural_sort(np.array([0.0, 5.0, 2.0]), tau=0.01)
    >>> P.round(3)
    array([[0., 1., 0.],
           [0., 0., 1.],
           [1., 0., 0.]])
    """
    shape = np.shape(s) if not hasattr(s, "shape") else tuple(s.shape)
    if len(shape) == 0:
        raise ValueError("neural_sort: expected scores with at least one axis, got shape ()")
    dtype = np.result_type(s) if not hasattr(s, "dtype") else s.dtype
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"neural_sort: expected real floating-point scores, got dtype {dtype}")
    if not (np.isscalar(tau) and np.isfinite(tau) and tau > 0):
        raise ValueError(f"neural_sort: tau must be a finite float > 0, got {tau!r}")
    return neuralsort_p(s, tau=float(tau))


def neural_sort_values(s: Array, tau: float = 1.0, *, descending: bool = True) -> Array:
    """The soft sort ``P @ s`` of NeuralSort (descending by default).

    >>> import numpy as np
    >>> from diffsys.relax import neural_sort_values
    >>> neural_sort_values(np.array([0.0, 5.0, 2.0]), tau=0.01).round(6)
    array([5., 2., 0.])
    """
    P = neural_sort(s, tau)
    if not descending:
        P = P[..., ::-1, :]
    return matmul(P, s[..., :, None])[..., 0]


def neuralsort_reference(s: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """A plain NumPy transcription of the paper's formula (the O(n^2) matrix ``A_s``)."""
    s = np.asarray(s)
    n = s.shape[-1]
    row_sums = np.abs(s[..., :, None] - s[..., None, :]).sum(-1)
    coef = (n + 1 - 2 * (np.arange(n) + 1)).astype(s.dtype)
    logits = (coef[:, None] * s[..., None, :] - row_sums[..., None, :]) / tau
    logits = logits - logits.max(-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(-1, keepdims=True)
