"""Pool-adjacent-violators (PAV) on plain arrays: the block structure of isotonic regression.

Both problems are *decreasing* isotonic regressions along the last axis, row by row:

- ``l2``: ``argmin_{v1 >= ... >= vn} 1/2 ||v - y||^2``; a block's value is the mean of ``y``.
- ``kl``: ``argmin_{v1 >= ... >= vn} sum_i exp(y_i - v_i) + exp(w_i) v_i``; a block's value is
  ``logsumexp(y_B) - logsumexp(w_B)``.

PAV scans left to right and pools adjacent blocks while the left one is not strictly larger
(ties are pooled too, so consecutive blocks of the result have strictly decreasing values).
``isotonic_blocks`` returns the *structure* of the solution: a boolean ``starts`` array, true
where a block begins; the values are then a differentiable function of the input given the
structure (block means / log-sum-exps, see ``isotonic.py``). ``isotonic_l2_values`` returns
the least-squares solution itself, and ``starts_from_values`` reads the structure back off it.

Three backends give the same blocks:

- ``_blocks_scipy``: SciPy's compiled PAVA, one call per row: O(n) per row, ~5 us call
  overhead. Used for long rows. The KL problem runs through it as a weighted least-squares
  PAV of the ratios ``exp(y - w)`` with weights ``exp(w)`` (same pooling decisions, since a
  KL block value is the log of the weighted mean of the ratios), for rows whose exponents
  cannot overflow or underflow; other rows go to the exact log-space backend below.
- ``_blocks_lockstep``: pure NumPy, all rows together: a loop over the n positions whose
  every step is a few vectorized operations on all rows (a per-row stack of blocks, merged
  while rows still violate). O(n) NumPy calls in total (plus the extra merges), so it wins for
  many short rows; exact in log space for KL.
- ``blocks_reference``: a plain Python stack, one row at a time: the readable definition, used
  by the tests as an oracle.
"""

from __future__ import annotations

import numpy as np

try:  # SciPy >= 1.12: the compiled PAVA behind scipy.optimize.isotonic_regression
    from scipy.optimize._pava_pybind import pava as _scipy_pava
except ImportError:  # pragma: no cover - older SciPy: the pure NumPy backend does all rows
    _scipy_pava = None

# exp() of a value spread over more than this (after centring) may overflow or underflow.
_SAFE_EXP_SPREAD = 1400.0


def _l2_value(a, b):
    return a / b


def _kl_value(a, b):
    with np.errstate(invalid="ignore"):
        return a - b


def blocks_reference(y, w=None, kind: str = "l2") -> np.ndarray:
    """Block starts of the decreasing isotonic regression, by a plain Python PAV (the oracle)."""
    y = np.asarray(y, dtype=np.float64)
    rows = y.reshape(-1, y.shape[-1])
    ws = (
        None
        if w is None
        else np.broadcast_to(np.asarray(w, np.float64), y.shape).reshape(rows.shape)
    )
    starts = np.zeros(rows.shape, dtype=bool)
    for r, row in enumerate(rows):
        stack: list[list[float]] = []  # [start, a, b]
        for i, yi in enumerate(row):
            if kind == "l2":
                blk = [i, float(yi), 1.0]
            else:
                blk = [i, float(yi), float(ws[r, i])]
            stack.append(blk)
            while len(stack) > 1:
                p, q = stack[-2], stack[-1]
                if kind == "l2":
                    violated = p[1] / p[2] <= q[1] / q[2]
                else:
                    violated = _kl_value(p[1], p[2]) <= _kl_value(q[1], q[2])
                if not violated:
                    break
                if kind == "l2":
                    p[1] += q[1]
                    p[2] += q[2]
                else:
                    p[1] = float(np.logaddexp(p[1], q[1]))
                    p[2] = float(np.logaddexp(p[2], q[2]))
                stack.pop()
        for blk in stack:
            starts[r, blk[0]] = True
    return starts.reshape(y.shape)


def _blocks_lockstep(y: np.ndarray, w: np.ndarray | None, kind: str) -> np.ndarray:
    """All rows of ``y`` (R, n) at once: a stack of blocks per row, advanced in lockstep.

    The stacks live in flat (R * n) buffers indexed by ``row * n + depth``.
    """
    R, n = y.shape
    a = np.empty(R * n)
    b = np.empty(R * n)
    first = np.empty(R * n, dtype=np.intp)  # first element of each stacked block
    base = np.arange(R, dtype=np.intp) * n  # flat index of each row's stack bottom
    top = base - 1  # flat index of each row's stack top
    value = _l2_value if kind == "l2" else _kl_value
    ones = np.ones(R)
    all_rows = np.arange(R)
    for j in range(n):
        top += 1
        a[top] = y[:, j]
        b[top] = ones if w is None else w[:, j]
        first[top] = j
        act = all_rows if j else all_rows[:0]  # rows whose top two blocks may violate
        t = top[act]
        while act.size:
            a1, a2, b1, b2 = a[t - 1], a[t], b[t - 1], b[t]
            viol = value(a1, b1) <= value(a2, b2)
            if not viol.all():
                act, t = act[viol], t[viol]
                if not act.size:
                    break
                a1, a2, b1, b2 = a1[viol], a2[viol], b1[viol], b2[viol]
            if kind == "l2":
                a[t - 1] = a1 + a2
                b[t - 1] = b1 + b2
            else:
                a[t - 1] = np.logaddexp(a1, a2)
                b[t - 1] = np.logaddexp(b1, b2)
            t = t - 1
            top[act] = t
            more = t > base[act]  # the new top still has a block below it
            act, t = act[more], t[more]
    depth = top - base  # index of the top block in each row's stack
    live = (np.arange(n) <= depth[:, None]).reshape(-1)
    starts = np.zeros(R * n, dtype=bool)
    starts[np.repeat(base, n)[live] + first[live]] = True
    return starts.reshape(R, n)


def _scipy_rows(x: np.ndarray, wt: np.ndarray | None) -> np.ndarray:
    """The *decreasing* (weighted) isotonic regression of the rows of ``x`` (R, n), float64.

    The decreasing regression of ``x`` is minus the increasing one of ``-x``, which SciPy's
    PAVA computes in place, one row at a time in preallocated buffers (the per-row cost is
    ~1.5 us of call overhead plus the O(n) pass).
    """
    R, n = x.shape
    neg = np.empty((R, n))  # C-contiguous: PAVA writes into the rows of this very buffer
    np.negative(x, out=neg)
    weights = np.empty(n)
    r = np.empty(n + 1, dtype=np.intp)
    pava = _scipy_pava
    for i in range(R):
        if wt is None:
            weights.fill(1.0)  # PAVA overwrites its weights
        else:
            weights[:] = wt[i]
        pava(neg[i], weights, r)  # neg[i] now holds the solution
    return np.negative(neg, out=neg)


def starts_from_values(v: np.ndarray) -> np.ndarray:
    """Block starts of a PAV solution: where the value changes along the last axis.

    Exact for PAV output: every element of a block holds the same stored value, and ties are
    pooled, so consecutive blocks differ.
    """
    v = np.asarray(v)
    starts = np.empty(v.shape, dtype=bool)
    if v.shape and v.shape[-1]:
        starts[..., 0] = True
        np.not_equal(v[..., 1:], v[..., :-1], out=starts[..., 1:])
    return starts


def _blocks_scipy(y: np.ndarray, w: np.ndarray | None, kind: str) -> np.ndarray:
    R, n = y.shape
    if kind == "l2":
        return starts_from_values(_scipy_rows(y, None))
    # KL as weighted least squares on ratios exp(y - w) with weights exp(w): safe rows only.
    with np.errstate(invalid="ignore", over="ignore"):
        d = y - w
        d_lo, d_hi = d.min(axis=1), d.max(axis=1)
        w_lo, w_hi = w.min(axis=1), w.max(axis=1)
        safe = (
            np.isfinite(d_lo)
            & np.isfinite(d_hi)
            & np.isfinite(w_lo)
            & np.isfinite(w_hi)
            & (d_hi - d_lo < _SAFE_EXP_SPREAD)
            & (w_hi - w_lo < _SAFE_EXP_SPREAD)
        )
    starts = np.empty((R, n), dtype=bool)
    ok = np.flatnonzero(safe)
    if ok.size:
        ratio = np.exp(d[ok] - 0.5 * (d_lo[ok] + d_hi[ok])[:, None])
        weight = np.exp(w[ok] - 0.5 * (w_lo[ok] + w_hi[ok])[:, None])
        starts[ok] = starts_from_values(_scipy_rows(ratio, weight))
    unsafe = np.flatnonzero(~safe)
    if unsafe.size:
        starts[unsafe] = _blocks_lockstep(y[unsafe], w[unsafe], kind)
    return starts


def _use_lockstep(rows: int, n: int) -> bool:
    """Measured cost model: SciPy ~ rows * 1.5 us (+ the O(n) pass, the same for both);
    lockstep ~ n * (15 us + 0.05 us * rows). Lockstep wins only for many short rows."""
    if _scipy_pava is None:
        return True
    return rows * 1.5 > n * (15.0 + 0.05 * rows)


def isotonic_blocks(y, w=None, kind: str = "l2", backend: str = "auto") -> np.ndarray:
    """Boolean block starts of the decreasing isotonic regression of ``y`` along the last axis.

    ``kind`` is ``"l2"`` or ``"kl"`` (then ``w`` is required and broadcasts against ``y``).
    ``backend``: ``"auto"``, ``"scipy"``, ``"numpy"`` (lockstep) or ``"reference"``.
    """
    y = np.asarray(y)
    shape = y.shape if w is None else np.broadcast_shapes(y.shape, np.shape(w))
    if not shape:
        raise ValueError("isotonic regression needs at least one axis, got a 0-d array")
    n = shape[-1]
    if n == 0 or 0 in shape:
        return np.zeros(shape, dtype=bool)
    y2 = np.broadcast_to(y, shape).reshape(-1, n).astype(np.float64, copy=False)
    w2 = None
    if kind == "kl":
        w2 = np.broadcast_to(np.asarray(w), shape).reshape(-1, n).astype(np.float64, copy=False)
    if backend == "reference":
        return blocks_reference(y2, w2, kind).reshape(shape)
    if n == 1:
        return np.ones(shape, dtype=bool)
    if backend == "auto":
        backend = "numpy" if _use_lockstep(y2.shape[0], n) else "scipy"
    if backend == "scipy" and _scipy_pava is None:
        backend = "numpy"
    if backend == "numpy":
        return _blocks_lockstep(y2, w2, kind).reshape(shape)
    if backend == "scipy":
        return _blocks_scipy(y2, w2, kind).reshape(shape)
    raise ValueError(f"isotonic_blocks: unknown backend {backend!r}")


def isotonic_l2_values(y) -> np.ndarray:
    """The decreasing least-squares isotonic regression of ``y`` along the last axis (float64)."""
    y = np.asarray(y)
    if not y.shape:
        raise ValueError("isotonic regression needs at least one axis, got a 0-d array")
    n = y.shape[-1]
    if n <= 1 or 0 in y.shape:
        return y.astype(np.float64)
    y2 = y.reshape(-1, n)
    if not _use_lockstep(y2.shape[0], n):
        return _scipy_rows(y2, None).reshape(y.shape)
    starts = _blocks_lockstep(y2.astype(np.float64, copy=False), None, "l2")
    idx = np.flatnonzero(starts)
    counts = np.diff(idx, append=starts.size)
    means = np.add.reduceat(y2.reshape(-1).astype(np.float64, copy=False), idx) / counts
    return np.repeat(means, counts).reshape(y.shape)
