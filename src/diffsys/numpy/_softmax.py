"""Derivative rules of the softmax family that stay accurate where one entry dominates.

With ``p = softmax(a)`` along some axes, the derivatives are ``dp = p (t - <p, t>)`` and
``d log p = t - <p, t>`` (and the transposes). Where ``p_m`` is close to 1, the entry
``t_m - <p, t>`` is the small number ``sum_{j != m} p_j (t_m - t_j)``, but computed as written
it is ``t_m (1 - p_m) - ...``, and ``1 - p_m`` has lost its digits: in float32 at a gap of 12
between the two largest entries it is 1% off, at a gap of 17 it is 0. Since ``sum(p) = 1``,
shifting ``t`` by a constant ``c`` changes nothing; with ``c = t_m``, the tangent at the
largest entry, the dominant term vanishes exactly and every term left is accurate. For the
transposed map ``g - p sum(g)`` of ``log_softmax``, the entries sum to 0, so the one at a
unique maximum is minus the sum of the others, which are accurate.

These are the rules of ``scipy.special.logsumexp/softmax/log_softmax`` and ``nn.softmax/
log_softmax``; they are written with diffsys operations, so they differentiate again (the
maximum's mask is a zero-derivative comparison).
"""

from __future__ import annotations

import numpy as np

from ..core.ad_util import cast
from ..core.primitive import Primitive
from . import _elementwise as ew
from . import _reductions as red
from ._util import dtype_of, reshape_p, shape_of, unbroadcast


def _max_mask(a, axis):
    """True at the largest entries of ``a`` along ``axis`` (all of them, if tied)."""
    return ew.equal(a, red.max(a, axis=axis, keepdims=True))


def _at_max(v, mask, axis):
    """The mean of ``v`` over the masked (largest) entries, keeping ``axis``."""
    count = red.sum(cast(mask, dtype=dtype_of(v)), axis=axis, keepdims=True)
    return red.sum(ew.where(mask, v, 0.0), axis=axis, keepdims=True) / count


def log_softmax_tangent(p, a, t, axis):
    """``t - <p, t>``: the JVP of ``log_softmax(a)`` (``p = softmax(a)``), accurate."""
    u = t - _at_max(t, _max_mask(a, axis), axis)
    return u - red.sum(p * u, axis=axis, keepdims=True)


def softmax_tangent(p, a, t, axis):
    """``p (t - <p, t>)``: the JVP, and the VJP, of ``softmax(a)``, accurate."""
    return p * log_softmax_tangent(p, a, t, axis)


def log_softmax_cotangent(p, a, g, axis):
    """``g - p sum(g)``: the VJP of ``log_softmax(a)``, accurate.

    The entries sum to 0; at a unique maximum the entry is minus the sum of the others.
    """
    out = g - p * red.sum(g, axis=axis, keepdims=True)
    mask = _max_mask(a, axis)
    count = red.sum(cast(mask, dtype=dtype_of(out)), axis=axis, keepdims=True)
    unique = ew.logical_and(mask, ew.equal(count, 1.0))
    rest = red.sum(ew.where(unique, 0.0, out), axis=axis, keepdims=True)
    return ew.where(unique, ew.negative(rest), out)


# --- the weights exp(a - total) of a log-sum-exp ----------------------------------------------


def _weights_impl(a, total, axis):
    return np.exp(np.subtract(a, total))


# ``softmax_weights(a, total, axis)`` is ``exp(a - total)`` where ``total`` is the log-sum-exp
# of ``a`` over ``axis`` (kept dimensions), held constant: as a function of ``a`` it is the
# softmax, and its rules are the softmax's (the dependence through ``total`` is in them).
softmax_weights = Primitive("softmax_weights", _weights_impl)
softmax_weights.defvjp(
    lambda g, ans, a, total, axis: unbroadcast(softmax_tangent(ans, a, g, axis), a), None
)
softmax_weights.defjvp(lambda t, ans, a, total, axis: softmax_tangent(ans, a, t, axis), None)


def _weights_batch(args, batched, axis):
    a, total = (
        x if b else reshape_p(x, shape=(1,) + shape_of(x))
        for x, b in zip(args, batched, strict=True)
    )
    return softmax_weights(a, total, axis=tuple(ax + 1 for ax in axis))


softmax_weights.defbatch(_weights_batch)
