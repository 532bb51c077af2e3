"""The affine map ``x @ weight.T + bias`` as one primitive (one node on the tape, the bias
added in place)."""

from __future__ import annotations

import numpy as np

from .. import numpy as dnp
from ..core.primitive import Primitive
from ..core.tracer import Tracer


def _linear_impl(x, w, b):
    out = np.matmul(x, w.T)
    if out.dtype == np.result_type(out, b):
        out += b
        return out
    return out + b


def _rows(a, n: int):
    """``a`` with its leading axes merged: shape ``(-1, n)``."""
    shape = dnp.shape(a)
    if len(shape) == 2:
        return a
    return dnp.reshape(a, (-1, n))


def _vjp_x(g, ans, x, w, b):
    return dnp.matmul(g, w)


def _vjp_w(g, ans, x, w, b):
    out_f, in_f = dnp.shape(w)
    if dnp.ndim(x) == 1:
        return dnp.outer(g, x)
    return dnp.matmul(dnp.transpose(_rows(g, out_f)), _rows(x, in_f))


def _vjp_b(g, ans, x, w, b):
    n = dnp.shape(b)[-1] if dnp.ndim(b) else 1
    if dnp.ndim(g) == 1:
        return dnp.unbroadcast(g, b)
    return dnp.unbroadcast(dnp.sum(_rows(g, n), axis=0), b)


linear_p = Primitive("nn.linear", _linear_impl)
linear_p.defvjp(_vjp_x, _vjp_w, _vjp_b)
linear_p.defjvp(
    lambda t, ans, x, w, b: dnp.matmul(t, dnp.transpose(w)),
    lambda t, ans, x, w, b: dnp.matmul(x, dnp.transpose(t)),
    lambda t, ans, x, w, b: dnp.broadcast_to(t, dnp.shape(ans)),
)


def _linear_batch(args, batched):
    x, w, b = args
    bx, bw, bb = batched
    if not bw and not bb:
        return linear_p(x, w, b)  # a batch of inputs shares the parameters: one call
    # Per-example parameters (or jacfwd/jacrev with respect to them): broadcasting matmuls.
    size = dnp.shape(w)[0] if bw else dnp.shape(b)[0]
    lead = tuple(dnp.shape(x)[int(bx) : -1])  # the logical leading axes of x
    if bw:
        x3 = dnp.reshape(x, ((size,) if bx else ()) + (-1, dnp.shape(x)[-1]))
        y = dnp.matmul(x3, dnp.swapaxes(w, -1, -2))  # (B, M, out)
        y = dnp.reshape(y, (size,) + lead + (dnp.shape(y)[-1],))
    else:
        y = dnp.matmul(x, dnp.transpose(w))
    if bb:
        return y + dnp.reshape(b, (size,) + (1,) * len(lead) + (-1,))
    return y + b


linear_p.defbatch(_linear_batch)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` for ``weight`` of shape ``(out, in)``; ``x`` of shape
    ``(..., in)``.

    >>> import numpy as np
    >>> linear(np.ones((2, 3)), np.ones((4, 3)), np.zeros(4)).shape
    (2, 4)
    """
    in_f = dnp.shape(weight)[-1]
    x_shape = x.shape if isinstance(x, np.ndarray | Tracer) else dnp.shape(x)
    if x_shape[-1:] != (in_f,):
        raise ValueError(
            f"linear: input of shape {dnp.shape(x)} does not match weight of shape "
            f"{dnp.shape(weight)} (expected input shape (..., {in_f}))"
        )
    if bias is None:
        return dnp.matmul(x, dnp.transpose(weight))
    return linear_p(x, weight, bias)
