"""The implicit function theorem as one primitive: ``x*(params)`` defined by ``F(x*, params) = 0``.

The primitive's operands are the differentiable leaves of ``params``; its implementation runs
a forward solver on plain arrays and checks convergence. Its derivatives solve linear systems
with the Jacobian ``J = dF/dx`` at the solution, through :func:`linear_solve` (dense for small
problems, matrix-free Krylov for large ones), never through the solver's iterations:

- reverse mode: ``J^T mu = g``, then ``params`` get ``-vjp_params(F(x*, .))(mu)``;
- forward mode: ``J dx = -jvp_params(F(x*, .))(dparams)``.

The matvecs ``v -> J v`` and ``v -> J^T v`` are ``diffsys.jvp`` / ``diffsys.vjp`` of ``F`` in
``x``. The linear solves take ``x*`` and ``params`` as their parameters, so derivatives of
any order follow (``J`` depends on both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..core.transforms import jvp, vjp
from ..numpy import negative, zeros_like
from ._info import SolveInfo, report
from ._params import ParamSplit
from ._prims import PrimitiveFamily
from .linear import LinearSpec, linear_solve_p


@dataclass(eq=False)
class RootSpec:
    """``F(x, params) = 0`` with its forward solver and options (a primitive parameter)."""

    F: Callable  # (x, params) -> residual shaped like x
    solve: Callable  # (x0, params) -> (x, SolveInfo), on plain arrays
    x0: np.ndarray
    split: ParamSplit
    name: str
    on_failure: str = "raise"
    symmetric: bool = False  # J symmetric (argmin: the Hessian)
    adjoint: str = "auto"
    adjoint_tol: float = 1e-10
    adjoint_maxiter: int | None = None
    info: SolveInfo | None = None
    cache: tuple | None = field(default=None, repr=False)

    def residual(self, x, leaves):
        return self.F(x, self.split.rebuild(leaves))

    def _linear(self, matvec, symmetric: bool) -> LinearSpec:
        """A linear system in ``J`` whose operands are ``(x*, *leaves)`` (passed as a list)."""
        return LinearSpec(
            matvec=matvec,
            split=_PASS_THROUGH,
            symmetric=symmetric,
            method=self.adjoint,
            tol=self.adjoint_tol,
            maxiter=self.adjoint_maxiter,
            on_failure=self.on_failure,
            name=f"{self.name} (adjoint solve)",
        )

    def jacobian_spec(self) -> LinearSpec:
        """``v -> J v`` with parameters ``(x*, *leaves)``."""
        spec = self

        def matvec(v, p):
            x, *leaves = p
            return jvp(lambda x: spec.residual(x, leaves), (x,), (v,))[1]

        return self._linear(matvec, self.symmetric)

    def jacobian_transpose_spec(self) -> LinearSpec:
        """``v -> J^T v`` with parameters ``(x*, *leaves)``."""
        if self.symmetric:
            return self.jacobian_spec()
        spec = self

        def matvec(v, p):
            x, *leaves = p
            _, pull = vjp(lambda x: spec.residual(x, leaves), x)
            return pull(v)[0]

        return self._linear(matvec, False)


class _PassThrough:
    """A ParamSplit stand-in whose ``rebuild`` returns the operand list itself."""

    positions = ()

    @staticmethod
    def rebuild(leaves):
        return list(leaves)


_PASS_THROUGH = _PassThrough()


def _impl(*leaves, spec: RootSpec):
    params = spec.split.rebuild(leaves)
    x, info = spec.solve(np.array(spec.x0, copy=True), params)
    spec.info = report(info, spec.on_failure, hint="raise max_iter or loosen tol")
    return x


def _cotangents(g, ans, leaves, spec: RootSpec):
    cache = spec.cache
    if cache is not None and cache[0] is g and cache[1] is ans:
        return cache[2]
    mu = linear_solve_p(g, ans, *leaves, spec=spec.jacobian_transpose_spec())
    _, pull = vjp(lambda *ls: spec.residual(ans, list(ls)), *leaves)
    cts = list(pull(negative(mu)))
    spec.cache = (g, ans, cts)
    return cts


def _vjp_rule(k: int):
    return lambda g, ans, *leaves, spec: _cotangents(g, ans, leaves, spec)[k]


def _jvp_all(primals, tangents, ans, spec: RootSpec):
    leaves = list(primals)
    ts = [zeros_like(x) if t is None else t for x, t in zip(leaves, tangents, strict=True)]
    _, dF = jvp(lambda *ls: spec.residual(ans, list(ls)), tuple(leaves), tuple(ts))
    return linear_solve_p(negative(dF), ans, *leaves, spec=spec.jacobian_spec())


_family = PrimitiveFamily("implicit.root", _impl, _vjp_rule, _jvp_all)


def implicit_root_p(*leaves, spec: RootSpec):
    """The solution as a primitive of the parameter leaves (one primitive per leaf count)."""
    return _family(len(leaves))(*leaves, spec=spec)


def solve_implicit(spec: RootSpec, leaves: list) -> Any:
    """Run the primitive (a fresh spec per call keeps ``info`` and the cache per solve)."""
    spec = replace(spec, info=None, cache=None)
    x = implicit_root_p(*leaves, spec=spec)
    return x, spec
