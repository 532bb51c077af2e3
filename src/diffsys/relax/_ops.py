"""Small differentiable building blocks that ``diffsys.numpy`` does not (yet) provide.

``logsumexp``, ``softmax``, ``log_softmax``, ``sigmoid``, ``log_sigmoid`` and ``softplus``,
each numerically stable, with VJP, JVP and batching rules (or composed of primitives that
have them), differentiable to any order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from ..core.primitive import Primitive
from ..numpy import exp, logaddexp, negative, reshape, sum

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


def _keep_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _logsumexp_impl(x, axis=(), keepdims=False):
    x = np.asarray(x)
    if x.size == 0 or not axis:
        with np.errstate(divide="ignore"):
            return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0).astype(x.dtype, copy=False)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _lse_weights(ans, x, axes, keepdims):
    """``exp(x - logsumexp(x))`` broadcast back to ``x`` (the softmax)."""
    if not keepdims:
        ans = reshape(ans, _keep_shape(tuple(x.shape), axes))
    return exp(x - ans)


def _lse_vjp(g, ans, x, axis=(), keepdims=False):
    if not keepdims:
        g = reshape(g, _keep_shape(tuple(x.shape), axis))
    return g * _lse_weights(ans, x, axis, keepdims)


def _lse_jvp(t, ans, x, axis=(), keepdims=False):
    return sum(t * _lse_weights(ans, x, axis, keepdims), axis=axis, keepdims=keepdims)


logsumexp_p = Primitive("relax.logsumexp", _logsumexp_impl)
logsumexp_p.defvjp(_lse_vjp)
logsumexp_p.defjvp(_lse_jvp)
logsumexp_p.defbatch(
    lambda args, batched, axis=(), keepdims=False: logsumexp_p(
        args[0], axis=tuple(a + 1 for a in axis), keepdims=keepdims
    )
)


def logsumexp(x: Array, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False) -> Array:
    """``log(sum(exp(x), axis))``, stable for large and ``-inf`` entries.

    >>> import numpy as np
    >>> from diffsys.relax import logsumexp
    >>> round(float(logsumexp(np.array([1000.0, 1000.0])) - 1000.0), 12)
    0.69314718056
    """
    return logsumexp_p(
        x, axis=_axes(axis, np.ndim(x) if not hasattr(x, "ndim") else x.ndim), keepdims=keepdims
    )


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``x - logsumexp(x, axis)``: log-probabilities."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x), axis)``, stable."""
    return exp(log_softmax(x, axis=axis))


sigmoid_p = Primitive("relax.sigmoid", expit)
sigmoid_p.defvjp(lambda g, ans, x: g * (ans * (1.0 - ans)))
sigmoid_p.defjvp(lambda t, ans, x: t * (ans * (1.0 - ans)))
sigmoid_p.defbatch(lambda args, batched: sigmoid_p(args[0]))


def sigmoid(x: Array) -> Array:
    """The logistic function ``1 / (1 + exp(-x))``, stable for any ``x``.

    >>> import numpy as np
    >>> from diffsys.relax import sigmoid
    >>> sigmoid(np.array([-800.0, 0.0, 800.0]))
    array([0. , 0.5, 1. ])
    """
    return sigmoid_p(x)


def softplus(x: Array) -> Array:
    """``log(1 + exp(x))``, stable for any ``x``."""
    return logaddexp(x, 0.0)


def log_sigmoid(x: Array) -> Array:
    """``log(sigmoid(x)) = -softplus(-x)``, stable for any ``x``."""
    return negative(softplus(negative(x)))
