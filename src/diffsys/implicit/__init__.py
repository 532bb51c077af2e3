"""Implicit differentiation through solvers (``diffsys.implicit``).

:func:`fixed_point`, :func:`root`, :func:`argmin` and :func:`linear_solve` solve forward with
an iterative method (their own, or scipy.optimize / scipy.sparse.linalg) and differentiate the
solution with the implicit function theorem -- an adjoint linear solve, dense for small
problems and matrix-free (CG / GMRES / BiCGStab) for large ones -- never through the
iterations. Convergence is checked: a solve that misses its tolerance raises
:class:`ConvergenceError` (or warns, and reports its residual in :class:`SolveInfo`).
"""

from ._info import ConvergenceError, ConvergenceWarning, SolveInfo
from .linear import linear_solve
from .solvers import argmin, fixed_point, root

__all__ = [
    "ConvergenceError",
    "ConvergenceWarning",
    "SolveInfo",
    "argmin",
    "fixed_point",
    "linear_solve",
    "root",
]
