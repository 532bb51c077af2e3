"""Functions with custom derivative rules shared by the tests of core and graph (this folder
is on ``sys.path``: see conftest.py)."""

from __future__ import annotations

import diffsys as ds
import diffsys.numpy as dnp


@ds.custom_jvp
def log1pexp(x):
    """log(1 + exp(x)), whose rule keeps the derivative finite at large x."""
    return dnp.log1p(dnp.exp(x))


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * (1.0 - 1.0 / (1.0 + dnp.exp(x)))
