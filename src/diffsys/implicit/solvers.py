"""``fixed_point``, ``root`` and ``argmin``: solutions of equations, differentiated implicitly.

All three define ``x*(params)`` by an equation ``F(x*, params) = 0`` -- ``f(x) - x`` for a fixed
point, ``F`` itself for a root, the gradient of the objective for an argmin -- solve it
forward with an iterative method on plain arrays, check the result, and differentiate it
with the implicit function theorem (see :mod:`diffsys.implicit._core`): gradients w.r.t.
``params`` (any pytree of arrays) in reverse and forward mode, at any order, without ever
differentiating through the solver's iterations. ``x0`` is only a starting point: the result
does not depend on it, and it gets no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize

from ..core.tracer import Tracer, concrete
from ..core.transforms import grad, hvp, value_and_grad
from ._core import RootSpec, solve_implicit
from ._forward import anderson, iterate, newton, newton_polish
from ._info import SolveInfo, check_on_failure
from ._params import split_params
from .linear import METHODS as ADJOINT_METHODS


def _start(x0, name: str) -> np.ndarray:
    x0 = np.asarray(concrete(x0) if isinstance(x0, Tracer) else x0)
    if not np.issubdtype(x0.dtype, np.floating):
        x0 = x0.astype(np.float64)
    if x0.ndim == 0:
        raise ValueError(f"{name}: x0 must be an array with at least one axis, got a scalar")
    return x0


def _two_args(fun: Callable, params) -> Callable:
    return (lambda x, _p: fun(x)) if params is None else fun


def _check_common(name, tol, max_iter, adjoint, on_failure) -> None:
    check_on_failure(on_failure, name)
    if not tol > 0:
        raise ValueError(f"{name}: tol must be > 0, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"{name}: max_iter must be >= 1, got {max_iter!r}")
    if adjoint not in ADJOINT_METHODS:
        raise ValueError(f"{name}: adjoint must be one of {ADJOINT_METHODS}, got {adjoint!r}")


def _check_shape(out, x, name: str, what: str) -> None:
    shape = tuple(out.shape) if hasattr(out, "shape") else np.shape(out)
    if shape != x.shape:
        raise ValueError(f"{name}: {what} must return the shape of x {x.shape}, got {shape}")


def _run(name, F, solve, x0, params, *, symmetric, adjoint, adjoint_tol, on_failure, return_info):
    split, leaves = split_params(params)
    spec = RootSpec(
        F=F,
        solve=solve,
        x0=x0,
        split=split,
        name=name,
        on_failure=on_failure,
        symmetric=symmetric,
        adjoint=adjoint,
        adjoint_tol=adjoint_tol,
    )
    x, spec = solve_implicit(spec, leaves)
    return (x, spec.info) if return_info else x


# --- fixed_point ------------------------------------------------------------------------------


def fixed_point(
    f: Callable,
    x0: Any,
    params: Any = None,
    *,
    method: str = "anderson",
    tol: float = 1e-10,
    max_iter: int = 1000,
    damping: float = 1.0,
    memory: int = 5,
    adjoint: str = "auto",
    adjoint_tol: float = 1e-10,
    on_failure: str = "raise",
    return_info: bool = False,
) -> Any:
    """The solution of ``x = f(x, params)`` (``f(x)`` when ``params`` is None).

    ``method``: ``"anderson"`` (Anderson acceleration with ``memory`` past iterates) or
    ``"iterate"`` (``x <- x + damping (f(x) - x)``). Converged means ``max|f(x) - x| <= tol``;
    if not reached in ``max_iter`` iterations, ``on_failure="raise"`` raises
    :class:`ConvergenceError`, ``"warn"`` warns (``return_info=True`` also returns the
    :class:`SolveInfo` with the residual). The adjoint system ``(I - df/dx)^T mu = g`` is
    solved ``adjoint``-wise (see :func:`linear_solve`).

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> from diffsys.implicit import fixed_point
    >>> x = fixed_point(lambda x, a: dnp.cos(a * x), np.zeros(1), 1.0)
    >>> x.round(6)  # the Dottie number
    array([0.739085])
    >>> g = ds.grad(lambda a: fixed_point(lambda x, a: dnp.cos(a * x), np.zeros(1), a)[0])(1.0)
    >>> round(float(g), 6)  # -x sin(x) / (1 + sin(x))
    -0.297474
    """
    name = "fixed_point"
    _check_common(name, tol, max_iter, adjoint, on_failure)
    if method not in ("anderson", "iterate"):
        raise ValueError(f"{name}: method must be 'anderson' or 'iterate', got {method!r}")
    if not 0 < damping <= 1:
        raise ValueError(f"{name}: damping must be in (0, 1], got {damping!r}")
    f2 = _two_args(f, params)
    x0 = _start(x0, name)
    _check_shape(f2(x0, params), x0, name, "f")

    def solve(x, p):
        g = lambda x: f2(x, p)
        if method == "iterate":
            return iterate(g, x, tol=tol, max_iter=max_iter, damping=damping, name=name)
        return anderson(g, x, tol=tol, max_iter=max_iter, damping=damping, memory=memory, name=name)

    return _run(
        name,
        lambda x, p: f2(x, p) - x,
        solve,
        x0,
        params,
        symmetric=False,
        adjoint=adjoint,
        adjoint_tol=adjoint_tol,
        on_failure=on_failure,
        return_info=return_info,
    )


# --- root -----------------------------------------------------------------------------------

_SCIPY_ROOT = (
    "hybr",
    "lm",
    "broyden1",
    "broyden2",
    "anderson",
    "linearmixing",
    "diagbroyden",
    "excitingmixing",
    "krylov",
    "df-sane",
)


def root(
    F: Callable,
    x0: Any,
    params: Any = None,
    *,
    method: str = "newton",
    tol: float = 1e-10,
    max_iter: int = 100,
    adjoint: str = "auto",
    adjoint_tol: float = 1e-10,
    on_failure: str = "raise",
    return_info: bool = False,
) -> Any:
    """A solution of ``F(x, params) = 0`` (``F(x)`` when ``params`` is None).

    ``method``: ``"newton"`` (damped Newton with the dense Jacobian from ``diffsys.jacfwd``)
    or any :func:`scipy.optimize.root` method (``"hybr"`` and ``"lm"`` get the exact
    Jacobian; ``"krylov"`` suits large problems). Converged means ``max|F(x)| <= tol``.

    >>> import numpy as np, diffsys as ds
    >>> from diffsys.implicit import root
    >>> r = root(lambda x, c: x ** 3 - c, np.ones(1), 8.0)
    >>> r.round(10)
    array([2.])
    >>> round(float(ds.grad(lambda c: root(lambda x, c: x ** 3 - c, np.ones(1), c)[0])(8.0)), 10)
    0.0833333333
    """
    name = "root"
    _check_common(name, tol, max_iter, adjoint, on_failure)
    if method != "newton" and method not in _SCIPY_ROOT:
        raise ValueError(
            f"{name}: method must be 'newton' or a scipy.optimize.root method {_SCIPY_ROOT}, "
            f"got {method!r}"
        )
    F2 = _two_args(F, params)
    x0 = _start(x0, name)
    _check_shape(F2(x0, params), x0, name, "F")

    def solve(x, p):
        fun = lambda x: F2(x, p)
        if method == "newton":
            return newton(fun, x, tol=tol, max_iter=max_iter, name=name)
        shape = x.shape
        flat = lambda v: np.asarray(fun(v.reshape(shape)), dtype=np.float64).reshape(-1)
        kwargs: dict = {"method": method, "tol": tol}
        if method in ("hybr", "lm"):
            from ..core.transforms import jacfwd

            jac = jacfwd(fun)
            kwargs["jac"] = lambda v: np.asarray(jac(v.reshape(shape))).reshape(v.size, v.size)
            kwargs["options"] = {"maxfev" if method == "hybr" else "maxiter": 100 * max_iter}
        else:
            kwargs["options"] = {"maxiter": max_iter}
        res = scipy.optimize.root(flat, x.reshape(-1).astype(np.float64), **kwargs)
        xs = res.x.reshape(shape).astype(x.dtype)
        residual = float(np.max(np.abs(fun(xs)))) if xs.size else 0.0
        iters = int(getattr(res, "nit", getattr(res, "nfev", 0)) or 0)
        return xs, SolveInfo(name, method, residual <= tol, residual, tol, iters)

    return _run(
        name,
        F2,
        solve,
        x0,
        params,
        symmetric=False,
        adjoint=adjoint,
        adjoint_tol=adjoint_tol,
        on_failure=on_failure,
        return_info=return_info,
    )


# --- argmin ---------------------------------------------------------------------------------


def argmin(
    objective: Callable,
    x0: Any,
    params: Any = None,
    *,
    method: str = "L-BFGS-B",
    tol: float = 1e-8,
    max_iter: int = 1000,
    adjoint: str = "auto",
    adjoint_tol: float = 1e-10,
    polish: bool = True,
    on_failure: str = "raise",
    return_info: bool = False,
) -> Any:
    """A minimizer of ``objective(x, params)`` (a scalar; ``objective(x)`` when ``params`` is
    None), differentiated through its optimality condition ``grad_x objective(x*, params) = 0``.

    ``method``: ``"newton"`` (damped Newton on the gradient, dense Hessian: fast and precise
    for small smooth problems) or a :func:`scipy.optimize.minimize` method (``"L-BFGS-B"``,
    ``"BFGS"``, ``"CG"``, ``"Newton-CG"``, ``"trust-krylov"``...; gradients and
    Hessian-vector products come from diffsys). Converged means ``max|grad| <= tol``; when a
    SciPy method stops short of it (line searches on ``f`` stall near the optimum, where ``f``
    no longer changes in floating point), ``polish`` finishes with up to 10 Newton steps on the
    gradient (dense Hessian when small, CG with Hessian-vector products when large). The
    adjoint system has the (symmetric) Hessian: dense when small, CG when large.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> from diffsys.implicit import argmin
    >>> X, y = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), np.array([1.0, 2.0, 2.0])
    >>> ridge = lambda w, lam: dnp.sum((X @ w - y) ** 2) + lam * dnp.sum(w ** 2)
    >>> w = argmin(ridge, np.zeros(2), 0.5, method="newton")
    >>> np.allclose(w, np.linalg.solve(X.T @ X + 0.5 * np.eye(2), X.T @ y))
    True
    """
    name = "argmin"
    _check_common(name, tol, max_iter, adjoint, on_failure)
    obj2 = _two_args(objective, params)
    x0 = _start(x0, name)
    value = obj2(x0, params)
    if np.ndim(value) != 0:
        raise ValueError(f"{name}: objective must return a scalar, got shape {np.shape(value)}")
    grad_x = grad(obj2)  # d/dx objective(x, params)

    def solve(x, p):
        if method == "newton":
            return newton(lambda x: grad_x(x, p), x, tol=tol, max_iter=max_iter, name=name)
        shape = x.shape
        vg = value_and_grad(lambda v: obj2(v.reshape(shape), p))

        def fun(v):
            val, g = vg(v)
            return float(val), np.asarray(g, dtype=np.float64).reshape(-1)

        kwargs: dict = {"method": method, "jac": True}
        if method in ("Newton-CG", "trust-ncg", "trust-krylov", "trust-exact", "trust-constr"):
            kwargs["hessp"] = lambda v, u: np.asarray(
                hvp(lambda w: obj2(w.reshape(shape), p), (v,), (u,))
            ).reshape(-1)
        options = {"maxiter": max_iter}
        if method in ("L-BFGS-B", "BFGS", "CG", "trust-ncg", "trust-krylov", "trust-exact"):
            options["gtol"] = tol
        elif method == "Newton-CG":
            options["xtol"] = tol * 1e-3  # its only stopping rule: a small step
        if method == "L-BFGS-B":
            options["ftol"] = 0.0
        res = scipy.optimize.minimize(
            fun, x.reshape(-1).astype(np.float64), options=options, **kwargs
        )
        xs = res.x.reshape(shape).astype(x.dtype)
        residual = float(np.max(np.abs(grad_x(xs, p)))) if xs.size else 0.0
        iters = int(getattr(res, "nit", 0) or 0)
        if residual > tol and polish and np.isfinite(residual):
            xs, info = newton_polish(
                lambda x: grad_x(x, p), xs, tol=tol, max_iter=10, name=name, symmetric=True
            )
            method_used = f"{method} + Newton polish"
            return xs, SolveInfo(
                name, method_used, info.converged, info.residual, tol, iters + info.iterations
            )
        return xs, SolveInfo(name, method, residual <= tol, residual, tol, iters)

    return _run(
        name,
        grad_x,
        solve,
        x0,
        params,
        symmetric=True,
        adjoint=adjoint,
        adjoint_tol=adjoint_tol,
        on_failure=on_failure,
        return_info=return_info,
    )
