"""Parameter constraints: a bijection from unconstrained reals onto the allowed set.

:func:`diffsys.prob.param` stores an unconstrained value ``u`` and hands the model
``transform(u)``; :class:`diffsys.prob.SVI` optimises ``u``, so a ``positive`` scale never
leaves ``(0, inf)``.

>>> import numpy as np
>>> float(positive.transform(positive.inverse(np.float64(2.5))))
2.5
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import diffsys.numpy as dnp

from ..relax import log_softmax, sigmoid

Array = Any


@dataclass(frozen=True)
class Constraint:
    """``transform`` maps reals onto the set, ``inverse`` maps back (a right inverse)."""

    name: str
    transform: Callable[[Array], Array]
    inverse: Callable[[np.ndarray], np.ndarray]

    def __repr__(self) -> str:
        return f"constraints.{self.name}"


def _eye_mask(x):
    k = np.shape(x)[-1]
    return np.eye(k, dtype=bool)


def _cholesky_transform(u):
    mask = _eye_mask(u)
    return dnp.where(mask, dnp.exp(u), dnp.tril(u, -1))


def _cholesky_inverse(tril):
    tril = np.asarray(tril, dtype=np.float64)
    mask = _eye_mask(tril)
    with np.errstate(divide="ignore"):
        return np.where(mask, np.log(np.where(mask, tril, 1.0)), np.tril(tril, -1))


real = Constraint("real", lambda u: u, lambda x: x)
positive = Constraint("positive", dnp.exp, lambda x: np.log(np.asarray(x, dtype=np.float64)))
unit_interval = Constraint(
    "unit_interval",
    sigmoid,
    lambda x: np.log(np.asarray(x, dtype=np.float64)) - np.log1p(-np.asarray(x, dtype=np.float64)),
)
simplex = Constraint(
    "simplex",
    lambda u: dnp.exp(log_softmax(u, axis=-1)),
    lambda x: np.log(np.asarray(x, dtype=np.float64)),
)
lower_cholesky = Constraint("lower_cholesky", _cholesky_transform, _cholesky_inverse)
