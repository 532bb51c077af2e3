"""Differentiable pieces of architecture search: the candidate operations and the mixed
operation that relaxes the choice between them.

A DARTS edge (Liu et al. 2019) carries every candidate operation ``o_k`` at once and mixes
their outputs with the softmax of its architecture logits ``alpha``::

    mixed(x) = sum_k softmax(alpha / T)_k o_k(x)        hard: o_argmax(alpha)(x)

:func:`mixed_op` is that mixture as a :class:`diffsys.relax.Relaxation` (built on
``relax.softmax``, whose hard form is the one-hot argmax), so ``mixed_op.hard`` is the
discretised edge and ``mixed_op.gap`` the distance between the two; as ``T -> 0`` the
mixture converges to the hard form (when ``alpha`` has no tie).
"""

from __future__ import annotations

from typing import Any

from ... import numpy as dnp
from ...nn import avg_pool, conv, max_pool, relu
from ...relax import relaxation, softmax

__all__ = ["CANDIDATES", "apply_candidate", "mixed_op", "mixing_weights"]

Array = Any

#: The candidate operations on a feature map ``(B, C, H, W)`` (all keep its shape):
#: ``zero`` (drops the edge), ``skip`` (identity), 3x3 max and average pooling (stride 1),
#: ``conv3x3``, ``conv5x5`` and ``dil_conv3x3`` (dilation 2: a 5x5 field with 9 weights),
#: each convolution followed by a ReLU.
CANDIDATES = (
    "zero",
    "skip",
    "max_pool3x3",
    "avg_pool3x3",
    "conv3x3",
    "conv5x5",
    "dil_conv3x3",
)

#: ``name: (kernel size, dilation)`` of the convolutional candidates.
CONV_SHAPES = {"conv3x3": (3, 1), "conv5x5": (5, 1), "dil_conv3x3": (3, 2)}


def apply_candidate(name: str, x: Array, weight: Array = None, bias: Array = None) -> Array:
    """Candidate ``name`` (one of :data:`CANDIDATES`) on ``x`` ``(B, C, H, W)``; the
    convolutions take their ``weight`` ``(C, C, k, k)`` and ``bias`` ``(C,)``.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> apply_candidate("max_pool3x3", x)[0, 0, 0]
    array([5., 6., 7., 7.])
    """
    if name == "zero":
        return x * 0.0
    if name == "skip":
        return x
    if name == "max_pool3x3":
        return max_pool(x, 3, stride=1, padding=1)
    if name == "avg_pool3x3":
        return avg_pool(x, 3, stride=1, padding=1, count_include_pad=False)
    if name in CONV_SHAPES:
        if weight is None:
            raise ValueError(f"apply_candidate({name!r}): a convolution needs its weight")
        k, d = CONV_SHAPES[name]
        return relu(conv(x, weight, bias, padding=d * (k // 2), dilation=d))
    raise ValueError(f"apply_candidate: unknown candidate {name!r}; expected one of {CANDIDATES}")


def mixing_weights(alpha: Array, temperature: float | Array = 1.0) -> Array:
    """``softmax(alpha / temperature)`` over the last axis: each edge's weights on its
    candidates (``relax.softmax``)."""
    return softmax(alpha, temperature)


def _check_outputs(outputs, alpha) -> None:
    k = alpha.shape[-1] if len(alpha.shape) else None
    if len(alpha.shape) != 1 or len(outputs.shape) < 1 or outputs.shape[0] != k:
        raise ValueError(
            f"mixed_op: expected outputs (K, ...) stacked over the K candidates and alpha (K,), "
            f"got outputs {tuple(outputs.shape)} and alpha {tuple(alpha.shape)}"
        )


def _mix(weights, outputs):
    return dnp.tensordot(weights, outputs, axes=1)


def _hard_mixed(outputs: Array, alpha: Array) -> Array:
    _check_outputs(outputs, alpha)
    return outputs[int(dnp.argmax(alpha))]


@relaxation(hard=_hard_mixed)
def mixed_op(outputs: Array, alpha: Array, temperature: float | Array = 1.0) -> Array:
    """The DARTS mixture ``sum_k softmax(alpha / T)_k outputs[k]`` of the candidate
    outputs stacked on axis 0; ``mixed_op.hard`` picks ``outputs[argmax(alpha)]``.
    Differentiable in ``outputs``, ``alpha`` and ``temperature``.

    >>> import numpy as np
    >>> outs = np.array([[0.0, 0.0], [1.0, 2.0]])
    >>> alpha = np.array([0.0, 1.0])
    >>> mixed_op(outs, alpha, temperature=0.01), mixed_op.hard(outs, alpha)
    (array([1., 2.]), array([1., 2.]))
    """
    _check_outputs(outputs, alpha)
    return _mix(mixing_weights(alpha, temperature), outputs)
