"""The stable building blocks relaxations use, with relax's conventions (``axis=-1``).

``logsumexp`` and ``sigmoid`` are :mod:`diffsys.scipy.special`'s primitives; ``softmax``,
``log_softmax``, ``log_sigmoid`` and ``softplus`` are compositions, differentiable to any
order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numpy import exp, logaddexp, negative
from ..scipy import special

Array = Any


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int | np.integer):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an array of dimension {ndim}")
        out.append(int(a) % max(ndim, 1))
    return tuple(sorted(set(out)))


def logsumexp(x: Array, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False) -> Array:
    """``log(sum(exp(x), axis))``, stable for large and ``-inf`` entries.

    >>> import numpy as np
    >>> from diffsys.relax import logsumexp
    >>> round(float(logsumexp(np.array([1000.0, 1000.0])) - 1000.0), 12)
    0.69314718056
    """
    return special.logsumexp(
        x, axis=_axes(axis, np.ndim(x) if not hasattr(x, "ndim") else x.ndim), keepdims=keepdims
    )


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``x - logsumexp(x, axis)``: log-probabilities (derivatives accurate where one entry
    dominates: :func:`diffsys.scipy.special.log_softmax`)."""
    ndim = np.ndim(x) if not hasattr(x, "ndim") else x.ndim
    return special.log_softmax(x, axis=_axes(axis, ndim))


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x), axis)``, stable."""
    return exp(log_softmax(x, axis=axis))


def sigmoid(x: Array) -> Array:
    """The logistic function ``1 / (1 + exp(-x))``, stable for any ``x``.

    >>> import numpy as np
    >>> from diffsys.relax import sigmoid
    >>> sigmoid(np.array([-800.0, 0.0, 800.0]))
    array([0. , 0.5, 1. ])
    """
    return special.expit(x)


def softplus(x: Array) -> Array:
    """``log(1 + exp(x))``, stable for any ``x``."""
    return logaddexp(x, 0.0)


def log_sigmoid(x: Array) -> Array:
    """``log(sigmoid(x)) = -softplus(-x)``, stable for any ``x``."""
    return negative(softplus(negative(x)))
