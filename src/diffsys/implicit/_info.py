"""Convergence reporting shared by the implicit solvers: errors, warnings, and ``SolveInfo``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

ON_FAILURE = ("raise", "warn")


class ConvergenceError(RuntimeError):
    """A solver stopped before reaching its tolerance (its result would give wrong gradients)."""


class ConvergenceWarning(RuntimeWarning):
    """A solver stopped before reaching its tolerance and ``on_failure="warn"`` was asked."""


@dataclass
class SolveInfo:
    """What a solve did: ``converged``, the final ``residual`` (the norm the tolerance is
    compared with), the ``tol`` it had to reach, ``iterations`` and the ``method`` used."""

    name: str
    method: str
    converged: bool
    residual: float
    tol: float
    iterations: int

    def describe(self) -> str:
        state = "converged" if self.converged else "did NOT converge"
        return (
            f"{self.name} ({self.method}) {state}: residual {self.residual:.3e} "
            f"(tolerance {self.tol:.3e}) after {self.iterations} iterations"
        )


def check_on_failure(on_failure: str, name: str) -> None:
    if on_failure not in ON_FAILURE:
        raise ValueError(f"{name}: on_failure must be one of {ON_FAILURE}, got {on_failure!r}")


def report(info: SolveInfo, on_failure: str, hint: str = "") -> SolveInfo:
    """Raise or warn when ``info`` did not converge; return it."""
    if not info.converged:
        message = info.describe() + (f"; {hint}" if hint else "")
        if on_failure == "raise":
            raise ConvergenceError(message + " (pass on_failure='warn' to continue anyway)")
        warnings.warn(message, ConvergenceWarning, stacklevel=4)
    return info
