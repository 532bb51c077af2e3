"""Forward solvers on plain arrays: fixed-point iteration, Anderson acceleration, damped Newton.

Each returns ``(x, SolveInfo)``; the residual is the largest absolute entry of ``F(x)`` (for a
fixed point, of ``f(x) - x``) at the returned ``x``, and convergence means ``residual <= tol``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.transforms import jacfwd
from ._info import SolveInfo


def _inf_norm(r) -> float:
    r = np.asarray(r)
    return float(np.max(np.abs(r))) if r.size else 0.0


def iterate(
    f: Callable, x: np.ndarray, *, tol: float, max_iter: int, damping: float, name: str
) -> tuple[np.ndarray, SolveInfo]:
    """``x <- x + damping * (f(x) - x)`` until ``max|f(x) - x| <= tol``."""
    residual = np.inf
    for k in range(max_iter + 1):
        fx = np.asarray(f(x))
        residual = _inf_norm(fx - x)
        if not np.isfinite(residual) or residual <= tol or k == max_iter:
            break
        x = x + damping * (fx - x) if damping != 1.0 else fx
    ok = bool(residual <= tol)
    return x, SolveInfo(name, "iterate", ok, residual, tol, k)


def anderson(
    f: Callable,
    x: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    damping: float,
    memory: int,
    name: str,
) -> tuple[np.ndarray, SolveInfo]:
    """Anderson acceleration (type II, Walker & Ni 2011) of ``x <- f(x)``, ``memory`` steps."""
    shape = x.shape
    xs, gs = [], []
    residual = np.inf
    xv = x.reshape(-1).astype(np.float64)
    for k in range(max_iter + 1):
        g = np.asarray(f(xv.reshape(shape)), dtype=np.float64).reshape(-1)
        r = g - xv
        residual = _inf_norm(r)
        if not np.isfinite(residual) or residual <= tol or k == max_iter:
            break
        xs.append(xv)
        gs.append(g)
        if len(xs) > memory + 1:
            xs.pop(0)
            gs.pop(0)
        if len(xs) == 1:
            xv = xv + damping * r
            continue
        X, G = np.stack(xs, 1), np.stack(gs, 1)
        Fm = G - X  # residual history
        dF, dG = np.diff(Fm, axis=1), np.diff(G, axis=1)
        # least squares min ||r - dF gamma||, lightly regularized
        lhs = dF.T @ dF
        lhs += 1e-12 * (np.trace(lhs) / lhs.shape[0] + 1e-300) * np.eye(lhs.shape[0])
        gamma = np.linalg.solve(lhs, dF.T @ r)
        xv = g - dG @ gamma - (1.0 - damping) * (r - dF @ gamma)
    ok = bool(residual <= tol)
    return xv.reshape(shape).astype(x.dtype), SolveInfo(name, "anderson", ok, residual, tol, k)


def newton(
    F: Callable, x: np.ndarray, *, tol: float, max_iter: int, name: str
) -> tuple[np.ndarray, SolveInfo]:
    """Damped Newton on ``F(x) = 0`` with the dense Jacobian (``diffsys.jacfwd``) and a
    backtracking line search on ``||F||^2``."""
    shape = x.shape
    n = x.size
    jac = jacfwd(F)
    r = np.asarray(F(x))
    residual = _inf_norm(r)
    k = 0
    while np.isfinite(residual) and residual > tol and k < max_iter:
        k += 1
        J = np.asarray(jac(x)).reshape(n, n)
        try:
            step = np.linalg.solve(J, -r.reshape(-1))
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(J, -r.reshape(-1), rcond=None)[0]
        step = step.reshape(shape)
        t, norm0 = 1.0, float(np.sum(r * r))
        while True:
            x_new = x + t * step
            r_new = np.asarray(F(x_new))
            if float(np.sum(r_new * r_new)) <= (1 - 1e-4 * t) * norm0 or t < 1e-8:
                break
            t *= 0.5
        x, r = x_new, r_new
        residual = _inf_norm(r)
    ok = bool(residual <= tol)
    return x, SolveInfo(name, "newton", ok, residual, tol, k)


def newton_polish(
    F: Callable, x: np.ndarray, *, tol: float, max_iter: int, name: str, symmetric: bool
) -> tuple[np.ndarray, SolveInfo]:
    """A few Newton steps from a near solution (after a solver that stalled near it).

    Small problems use :func:`newton`; large ones solve each step matrix-free (CG when the
    Jacobian is symmetric, e.g. a Hessian, else GMRES) with products from ``diffsys.jvp``.
    Only residuals are used, never objective values, so it gets past the precision floor of
    line searches on ``f``.
    """
    from scipy.sparse.linalg import LinearOperator, cg, gmres

    from ..core.transforms import jvp

    if x.size <= 200:
        return newton(F, x, tol=tol, max_iter=max_iter, name=name)
    shape, n = x.shape, x.size
    r = np.asarray(F(x))
    residual = _inf_norm(r)
    k = 0
    while np.isfinite(residual) and residual > tol and k < max_iter:
        k += 1
        point = x
        mv = lambda v, point=point: np.asarray(jvp(F, (point,), (v.reshape(shape),))[1]).reshape(-1)
        op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
        solver = cg if symmetric else gmres
        step, _ = solver(op, -r.reshape(-1), rtol=1e-12, atol=0.1 * tol)
        x = x + step.reshape(shape)
        r = np.asarray(F(x))
        residual = _inf_norm(r)
    return x, SolveInfo(name, "newton polish", bool(residual <= tol), residual, tol, k)
