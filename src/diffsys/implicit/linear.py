"""``linear_solve``: a differentiable solve of ``A(params) x = b`` with ``A`` given as a matvec.

The forward solve is dense for small systems (``A`` materialized from the matvec, LU solve)
and matrix-free for large ones (CG for symmetric positive definite ``A``, GMRES or BiCGStab
otherwise, from :mod:`scipy.sparse.linalg`, through a ``LinearOperator`` whose matvec calls
yours). Derivatives never go through the solver's iterations:

- reverse mode: ``lambda = A^-T g`` (one transposed solve: the transpose matvec comes from
  ``diffsys.vjp`` of the matvec unless given or ``symmetric``); ``b`` gets ``lambda`` and the
  parameters get ``-vjp_params(A(params) x)(lambda)``;
- forward mode: ``dx = A^-1 (db - jvp_params(A(params) x)(dparams))``.

Those solves are ``linear_solve`` calls themselves, so derivatives of any order follow.
Convergence is checked: a solve that misses its tolerance raises :class:`ConvergenceError`
(or warns, with ``on_failure="warn"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from ..core.tracer import Tracer
from ..core.transforms import jvp, vjp, vmap
from ..numpy import negative, zeros_like
from ._info import SolveInfo, check_on_failure, report
from ._params import ParamSplit, split_params
from ._prims import PrimitiveFamily

METHODS = ("auto", "dense", "cg", "gmres", "bicgstab")
DENSE_MAX = 200  # "auto" materializes A up to this size


@dataclass(eq=False)
class LinearSpec:
    """A linear system's definition and options (one per call; a primitive parameter)."""

    matvec: Callable  # (x, params) -> A x, x shaped like b
    split: ParamSplit
    transpose: Callable | None = None  # (x, params) -> A^T x
    symmetric: bool = False
    method: str = "auto"
    tol: float = 1e-10
    atol: float = 0.0
    maxiter: int | None = None
    on_failure: str = "raise"
    name: str = "linear_solve"
    info: SolveInfo | None = None
    cache: tuple | None = field(default=None, repr=False)

    def apply(self, x, leaves):
        return self.matvec(x, self.split.rebuild(leaves))

    def transposed(self) -> LinearSpec:
        """The spec of ``A^T x = b`` (the adjoint system)."""
        if self.symmetric:
            return replace(self, info=None, cache=None)
        if self.transpose is not None:
            return replace(
                self, matvec=self.transpose, transpose=self.matvec, info=None, cache=None
            )
        matvec = self.matvec

        def transpose(v, params):
            # the VJP of a linear map, at any point, is its transpose
            _, pull = vjp(lambda u: matvec(u, params), zeros_like(v))
            return pull(v)[0]

        return replace(
            self,
            matvec=transpose,
            transpose=matvec,
            info=None,
            cache=None,
            name=self.name + " (adjoint)",
        )


# --- the forward solve on plain arrays ------------------------------------------------------------


def _plain_matvec(spec: LinearSpec, leaves, shape, dtype):
    def mv(v):
        out = spec.apply(np.asarray(v, dtype=dtype).reshape(shape), leaves)
        if isinstance(out, Tracer):
            raise TypeError(
                f"{spec.name}: the matvec returned a traced value for a plain input: it closes "
                "over a value being differentiated; pass that value through `params` instead"
            )
        out = np.asarray(out)
        if out.shape != shape:
            raise ValueError(
                f"{spec.name}: the matvec must return the shape of its input {shape}, got "
                f"{out.shape}"
            )
        return out.reshape(-1)

    return mv


def _materialize(spec: LinearSpec, leaves, shape, dtype) -> np.ndarray:
    """``A`` as a dense (n, n) matrix: the matvec of every basis vector (vmapped if it can be)."""
    n = int(np.prod(shape, dtype=np.int64))
    basis = np.eye(n, dtype=dtype).reshape((n, *shape))
    mv = _plain_matvec(spec, leaves, shape, dtype)
    mv(basis[0])  # checks the shape, and that the matvec closes over no traced value
    try:
        cols = vmap(lambda e: spec.apply(e, leaves))(basis)
    except Exception:  # a matvec that cannot be batched: one call per column
        cols = None
    if cols is None or isinstance(cols, Tracer):
        cols = np.stack([mv(e) for e in basis])
    return cols.reshape(n, n).T


def _solve_plain(b: np.ndarray, leaves, spec: LinearSpec) -> np.ndarray:
    b = np.asarray(b)
    shape, dtype = b.shape, np.result_type(b.dtype, np.float64)
    n = b.size
    mv = _plain_matvec(spec, leaves, shape, dtype)
    method = spec.method
    if method == "auto":
        method = "dense" if n <= DENSE_MAX else ("cg" if spec.symmetric else "gmres")
    bnorm = float(np.linalg.norm(b))
    target = max(spec.tol * bnorm, spec.atol)
    if n == 0:
        spec.info = SolveInfo(spec.name, method, True, 0.0, target, 0)
        return b.copy()
    if method == "dense":
        A = _materialize(spec, leaves, shape, dtype)
        try:
            if spec.symmetric:
                x = scipy.linalg.solve(A, b.reshape(-1), assume_a="sym")
            else:
                x = scipy.linalg.solve(A, b.reshape(-1))
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError) as exc:
            raise np.linalg.LinAlgError(
                f"{spec.name}: the {n}x{n} system matrix is singular ({exc})"
            ) from exc
        iterations = 1
    else:
        op = spla.LinearOperator((n, n), matvec=mv, dtype=dtype)
        count = [0]

        def callback(_):
            count[0] += 1

        solver = {"cg": spla.cg, "gmres": spla.gmres, "bicgstab": spla.bicgstab}[method]
        kwargs = {"rtol": spec.tol, "atol": spec.atol, "maxiter": spec.maxiter}
        if method == "gmres":
            kwargs["callback_type"] = "pr_norm"
        x, _ = solver(op, b.reshape(-1).astype(dtype), callback=callback, **kwargs)
        iterations = count[0]
    residual = float(np.linalg.norm(mv(x) - b.reshape(-1)))
    converged = bool(np.isfinite(residual) and residual <= 10.0 * target + 1e-300)
    spec.info = report(
        SolveInfo(spec.name, method, converged, residual, target, iterations),
        spec.on_failure,
        hint="raise maxiter, loosen tol, or choose another method" if method != "dense" else "",
    )
    return x.reshape(shape).astype(b.dtype, copy=False)


def _impl(b, *leaves, spec: LinearSpec):
    return _solve_plain(b, leaves, spec)


# --- derivative rules ---------------------------------------------------------------------------


def _cotangents(g, ans, b, leaves, spec: LinearSpec):
    """All cotangents at once (one adjoint solve), cached for the per-argument rules."""
    cache = spec.cache
    if cache is not None and cache[0] is g and cache[1] is ans:
        return cache[2]
    lam = linear_solve_p(g, *leaves, spec=spec.transposed())
    cts = [lam]
    if leaves:
        _, pull = vjp(lambda *ls: spec.apply(ans, list(ls)), *leaves)
        cts.extend(pull(negative(lam)))
    spec.cache = (g, ans, cts)
    return cts


def _vjp_rule(k: int):
    return lambda g, ans, b, *leaves, spec: _cotangents(g, ans, b, leaves, spec)[k]


def _jvp_all(primals, tangents, ans, spec: LinearSpec):
    b, *leaves = primals
    tb, *tls = tangents
    u = zeros_like(ans) if tb is None else tb
    if any(t is not None for t in tls):
        ts = [zeros_like(x) if t is None else t for x, t in zip(leaves, tls, strict=True)]
        _, dA_x = jvp(lambda *ls: spec.apply(ans, list(ls)), tuple(leaves), tuple(ts))
        u = u - dA_x
    return linear_solve_p(u, *leaves, spec=replace(spec, info=None, cache=None))


_family = PrimitiveFamily("implicit.linear_solve", _impl, _vjp_rule, _jvp_all)


def linear_solve_p(b, *leaves, spec: LinearSpec):
    """The solve as a primitive of ``(b, *leaves)`` (one primitive per operand count)."""
    return _family(1 + len(leaves))(b, *leaves, spec=spec)


# --- public API ---------------------------------------------------------------------------------


def linear_solve(
    matvec: Callable,
    b: Any,
    params: Any = None,
    *,
    symmetric: bool = False,
    transpose_matvec: Callable | None = None,
    method: str = "auto",
    tol: float = 1e-10,
    atol: float = 0.0,
    maxiter: int | None = None,
    on_failure: str = "raise",
    return_info: bool = False,
):
    """Solve ``A x = b`` where ``matvec`` applies ``A``; differentiable in ``b`` and ``params``.

    ``matvec(x)`` (or ``matvec(x, params)`` when ``params`` is given, a pytree) must be linear
    in ``x`` and return its shape. Values that ``A`` depends on and that you differentiate
    must come through ``params``. ``method``: ``"auto"`` (dense up to 200 unknowns, then CG
    when ``symmetric`` -- meaning symmetric positive definite -- else GMRES), ``"dense"``,
    ``"cg"``, ``"gmres"``, ``"bicgstab"``. Converged means ``||A x - b|| <= max(tol ||b||,
    atol)`` (up to a factor 10 of slack); otherwise ``on_failure`` decides: ``"raise"``
    (:class:`ConvergenceError`) or ``"warn"``. ``return_info=True`` also returns the
    :class:`SolveInfo` of the forward solve.

    >>> import numpy as np, diffsys as ds
    >>> from diffsys.implicit import linear_solve
    >>> A = np.array([[3.0, 1.0], [1.0, 2.0]])
    >>> linear_solve(lambda x: A @ x, np.array([9.0, 8.0]))
    array([2., 3.])
    >>> g = ds.grad(lambda s: linear_solve(lambda x, s: s * (A @ x), np.ones(2), s)[0])(2.0)
    >>> round(float(g), 12)  # x = A^-1 b / s, so dx/ds = -x / s
    -0.05
    """
    name = "linear_solve"
    if method not in METHODS:
        raise ValueError(f"{name}: method must be one of {METHODS}, got {method!r}")
    check_on_failure(on_failure, name)
    if transpose_matvec is not None and symmetric:
        raise ValueError(f"{name}: give transpose_matvec or symmetric=True, not both")
    if params is None:
        mv = lambda x, _p: matvec(x)
        tr = None if transpose_matvec is None else (lambda x, _p: transpose_matvec(x))
    else:
        mv, tr = matvec, transpose_matvec
    if not isinstance(b, Tracer):
        b = np.asarray(b)
        if not np.issubdtype(b.dtype, np.inexact):
            b = b.astype(np.float64)
    split, leaves = split_params(params)
    spec = LinearSpec(
        matvec=mv,
        split=split,
        transpose=tr,
        symmetric=symmetric,
        method=method,
        tol=tol,
        atol=atol,
        maxiter=maxiter,
        on_failure=on_failure,
    )
    x = linear_solve_p(b, *leaves, spec=spec)
    return (x, spec.info) if return_info else x
