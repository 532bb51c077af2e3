"""Activation functions, numerically stable, differentiable to any order.

Each function takes an array (or tracer) and returns one of the same shape and dtype. Those
that benefit from one fused rule (relu, sigmoid, softplus, softmax, log_softmax, erf) are
primitives with their own VJP, JVP and batching rules; the rest are compositions.

>>> import numpy as np
>>> from diffsys import nn
>>> nn.log_softmax(np.array([1e4, 0.0]))
array([     0., -10000.])
"""

from __future__ import annotations

import math

import numpy as np

from .. import numpy as dnp
from ..core.primitive import Primitive
from ..numpy._softmax import log_softmax_cotangent, log_softmax_tangent, softmax_tangent
from ..scipy import special as dsp
from ._select import select_p

__all__ = [
    "celu",
    "elu",
    "erf",
    "gelu",
    "hard_tanh",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "swish",
    "tanh",
]


def _unary_batch(prim: Primitive) -> None:
    prim.defbatch(lambda args, batched, **params: prim(args[0], **params))


def _axis_batch(prim: Primitive) -> None:
    prim.defbatch(lambda args, batched, axis: prim(args[0], axis=axis + 1))


# --- relu ----------------------------------------------------------------------------------------


def _relu_impl(x):
    x = np.asarray(x)
    return np.maximum(x, np.zeros((), x.dtype))  # a typed zero: no promotion, a faster loop


_relu = Primitive("nn.relu", _relu_impl)
# The derivative is ``where(x > 0, g, 0)``, computed by select_p without NumPy's slow where.
_relu.defvjp(lambda g, ans, x: select_p(g, dnp.greater(x, 0)))
_relu.defjvp(lambda t, ans, x: select_p(t, dnp.greater(x, 0)))
_unary_batch(_relu)


def relu(x):
    """``max(x, 0)``; the derivative at 0 is 0 (as in PyTorch and JAX)."""
    return _relu(x)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return dnp.minimum(relu(x), 6.0)


def leaky_relu(x, negative_slope: float = 0.01):
    """``x`` for ``x >= 0``, ``negative_slope * x`` below."""
    return dnp.where(x >= 0, x, negative_slope * x)


def elu(x, alpha: float = 1.0):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below (no overflow for large ``x``)."""
    return dnp.where(x > 0, x, alpha * dnp.expm1(dnp.minimum(x, 0.0)))


def celu(x, alpha: float = 1.0):
    """``max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return dnp.where(x > 0, x, alpha * dnp.expm1(dnp.minimum(x, 0.0) / alpha))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """Scaled ELU with the self-normalizing constants."""
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def hard_tanh(x, min_val: float = -1.0, max_val: float = 1.0):
    """``clip(x, min_val, max_val)``."""
    return dnp.clip(x, min_val, max_val)


def tanh(x):
    """Hyperbolic tangent."""
    return dnp.tanh(x)


# --- sigmoid family -------------------------------------------------------------------------


def sigmoid(x):
    """``1 / (1 + exp(-x))``, without overflow at either end."""
    return dsp.expit(x)


_softplus = Primitive("nn.softplus", lambda x: np.logaddexp(x, 0))
_softplus.defvjp(lambda g, ans, x: g * sigmoid(x))
_softplus.defjvp(lambda t, ans, x: t * sigmoid(x))
_unary_batch(_softplus)


def softplus(x, beta: float = 1.0):
    """``log(1 + exp(beta * x)) / beta``, stable for large ``|x|``."""
    if beta == 1.0:
        return _softplus(x)
    return _softplus(beta * x) / beta


def log_sigmoid(x):
    """``log(sigmoid(x)) = -softplus(-x)``, stable."""
    return -_softplus(-x)


def silu(x):
    """``x * sigmoid(x)`` (swish)."""
    return x * sigmoid(x)


swish = silu


# --- erf and gelu ---------------------------------------------------------------------------


def erf(x):
    """The error function."""
    return dsp.erf(x)


_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x, approximate: bool = False):
    """Gaussian error linear unit: ``x * Phi(x)``; ``approximate=True`` uses the tanh form."""
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))
        return 0.5 * x * (1.0 + dnp.tanh(inner))
    return 0.5 * x * (1.0 + erf(x * _SQRT_HALF))


# --- softmax and log_softmax -----------------------------------------------------------------


def _log_softmax_impl(x, axis):
    # ufunc reductions directly: np.max and np.sum add microseconds of argument handling
    shifted = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    shifted -= np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


_log_softmax = Primitive("nn.log_softmax", _log_softmax_impl)
# The rules are scipy.special's: accurate where one entry dominates (see numpy/_softmax.py).
_log_softmax.defvjp(lambda g, ans, x, axis: log_softmax_cotangent(dnp.exp(ans), x, g, axis))
_log_softmax.defjvp(lambda t, ans, x, axis: log_softmax_tangent(dnp.exp(ans), x, t, axis))
_axis_batch(_log_softmax)


def _softmax_impl(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


_softmax = Primitive("nn.softmax", _softmax_impl)
_softmax.defvjp(lambda g, ans, x, axis: softmax_tangent(ans, x, g, axis))
_softmax.defjvp(lambda t, ans, x, axis: softmax_tangent(ans, x, t, axis))
_axis_batch(_softmax)


def _axis(x, axis: int, op: str) -> int:
    nd = dnp.ndim(x)
    if not -nd <= axis < max(nd, 1):
        raise ValueError(f"{op}: axis {axis} is out of range for an input of shape {dnp.shape(x)}")
    return axis % max(nd, 1)


def _as_float(x):
    if isinstance(x, int | float | list | tuple):
        return np.asarray(x, dtype=np.float64)
    if isinstance(x, np.ndarray) and not np.issubdtype(x.dtype, np.inexact):
        return x.astype(np.float64)
    return x


def log_softmax(x, axis: int = -1):
    """``x - logsumexp(x, axis)``, stable for any magnitude of ``x``."""
    x = _as_float(x)
    return _log_softmax(x, axis=_axis(x, axis, "log_softmax"))


def softmax(x, axis: int = -1):
    """``exp(x) / sum(exp(x), axis)``, stable for any magnitude of ``x``."""
    x = _as_float(x)
    return _softmax(x, axis=_axis(x, axis, "softmax"))


def logsumexp(x, axis: int | None = None, keepdims: bool = False):
    """``log(sum(exp(x), axis))`` without overflow; the gradient is the softmax (this is
    :func:`diffsys.scipy.special.logsumexp`, whose derivatives stay accurate to any order)."""
    return dsp.logsumexp(_as_float(x), axis=axis, keepdims=keepdims)
