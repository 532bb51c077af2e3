"""Loss functions, numerically stable, with ``reduction`` in ``"mean"``, ``"sum"``, ``"none"``.

>>> import numpy as np
>>> from diffsys import nn
>>> float(nn.cross_entropy(np.array([[1e4, 0.0]]), np.array([1])))
10000.0
"""

from __future__ import annotations

import numpy as np

from .. import numpy as dnp
from ..core.tracer import Tracer
from ..numpy._indexing import getitem_p
from .activations import log_sigmoid, log_softmax, softplus

__all__ = [
    "bce_with_logits",
    "binary_cross_entropy_with_logits",
    "cosine_embedding",
    "cross_entropy",
    "huber",
    "kl_div",
    "l1",
    "mse",
    "nll",
    "smooth_l1",
]


def _reduce(loss, reduction: str, op: str, weights_sum=None):
    if reduction == "mean":
        if weights_sum is not None:
            return dnp.sum(loss) / weights_sum
        return dnp.mean(loss)
    if reduction == "sum":
        return dnp.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _shape(x) -> tuple[int, ...]:
    return tuple(dnp.shape(x))


def _dtype(x) -> np.dtype:
    dtype = getattr(x, "dtype", None)
    return np.result_type(x) if dtype is None else dtype


def _labels(target, logits_shape, axis: int, op: str, ignore_index=None):
    """The integer class labels of ``target``, checked against the logits' shape.

    Traced labels (batched under ``vmap``, inputs of a graph being traced by ``ds.trace``)
    stay traced: they become operands of the gather (their values are checked when known,
    by the gather itself). Plain labels are checked here, with ``ignore_index`` entries set
    to class 0."""
    labels = target if isinstance(target, Tracer) else np.asarray(target)
    expected = logits_shape[:axis] + logits_shape[axis + 1 :]
    if tuple(labels.shape) != expected:
        raise ValueError(
            f"{op}: integer targets must have shape {expected} for inputs of shape "
            f"{logits_shape} (class axis {axis}), got {tuple(labels.shape)}"
        )
    if isinstance(labels, Tracer):
        if ignore_index is not None:
            labels = dnp.where(labels == ignore_index, 0, labels)
        return labels
    n_classes = logits_shape[axis]
    if ignore_index is not None:
        labels = np.where(labels == ignore_index, 0, labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{op}: class labels must be in [0, {n_classes}), got values in "
            f"[{labels.min()}, {labels.max()}]"
        )
    return labels


def _kept(target, ignore_index, dtype):
    """The mask of samples whose label is not ``ignore_index`` (in ``dtype``), and the
    number of them (at least 1), as the mean's denominator."""
    if isinstance(target, Tracer):
        keep = dnp.astype(target != ignore_index, dtype)
        return keep, dnp.maximum(dnp.sum(keep), 1.0)
    keep = np.asarray(target) != ignore_index
    return keep, max(int(keep.sum()), 1)


def _pick(logp, labels, axis: int):
    """``logp`` at the label of each sample along ``axis`` (shape of ``labels``)."""
    shape = _shape(logp)
    if axis != len(shape) - 1:
        logp = dnp.moveaxis(logp, axis, -1)
    if labels.ndim != 1:
        logp = dnp.reshape(logp, (-1, shape[axis]))
    if isinstance(labels, Tracer):  # a gather whose index is an operand (see dnp.getitem)
        picked = dnp.getitem(logp, (np.arange(labels.size), dnp.reshape(labels, (-1,))))
    elif isinstance(logp, Tracer):  # the labels are checked (_labels): no normalization
        idx = (np.arange(labels.size), labels.reshape(-1))
        picked = getitem_p.call_with((logp,), {"idx": idx})
    else:
        picked = logp[np.arange(labels.size), labels.reshape(-1)]
    return picked if labels.ndim == 1 else dnp.reshape(picked, tuple(labels.shape))


def _class_axis(x, axis: int, op: str) -> int:
    nd = len(_shape(x))
    if nd == 0 or not -nd <= axis < nd:
        raise ValueError(f"{op}: class axis {axis} is out of range for inputs of shape {_shape(x)}")
    return axis % nd


def _is_integer_target(target) -> bool:
    if hasattr(target, "dtype"):
        return np.issubdtype(target.dtype, np.integer)
    return np.issubdtype(np.asarray(target).dtype, np.integer)


def nll(
    log_probs,
    target,
    *,
    axis: int = -1,
    reduction: str = "mean",
    ignore_index: int | None = None,
):
    """Negative log-likelihood of integer class ``target`` under ``log_probs`` (classes on
    ``axis``)."""
    axis = _class_axis(log_probs, axis, "nll")
    labels = _labels(target, _shape(log_probs), axis, "nll", ignore_index)
    if ignore_index is not None:
        keep, count = _kept(target, ignore_index, _dtype(log_probs))
        loss = -_pick(log_probs, labels, axis) * keep
        return _reduce(loss, reduction, "nll", weights_sum=count)
    return _reduce(-_pick(log_probs, labels, axis), reduction, "nll")


def cross_entropy(
    logits,
    target,
    *,
    axis: int = -1,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    ignore_index: int | None = None,
):
    """Cross-entropy from unnormalized ``logits`` (log-sum-exp stable at any magnitude).

    ``target`` is either integer class labels (the shape of ``logits`` without ``axis``) or
    probabilities (the shape of ``logits``). ``label_smoothing`` mixes the targets with the
    uniform distribution, as in PyTorch.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> logits = np.array([[2.0, 0.0, 0.0]])
    >>> round(float(nn.cross_entropy(logits, np.array([0]))), 4)
    0.2395
    >>> round(float(nn.cross_entropy(logits, np.array([[1.0, 0.0, 0.0]]))), 4)
    0.2395
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    axis = _class_axis(logits, axis, "cross_entropy")
    logp = log_softmax(logits, axis=axis)
    n_classes = _shape(logits)[axis]
    if _is_integer_target(target):
        labels = _labels(target, _shape(logits), axis, "cross_entropy", ignore_index)
        keep = None
        if ignore_index is not None:
            keep, count = _kept(target, ignore_index, _dtype(logp))
        loss = -_pick(logp, labels, axis)
        if label_smoothing > 0.0:
            smooth = -dnp.mean(logp, axis=axis)
            loss = (1.0 - label_smoothing) * loss + label_smoothing * smooth
        if keep is not None:
            loss = loss * keep
            return _reduce(loss, reduction, "cross_entropy", count)
        return _reduce(loss, reduction, "cross_entropy")
    if _shape(target) != _shape(logits):
        raise ValueError(
            f"cross_entropy: probability targets must have the logits' shape {_shape(logits)}, "
            f"got {_shape(target)} (integer labels need an integer dtype)"
        )
    if label_smoothing > 0.0:
        target = (1.0 - label_smoothing) * target + label_smoothing / n_classes
    loss = -dnp.sum(target * logp, axis=axis)
    return _reduce(loss, reduction, "cross_entropy")


def _same_shape(a, b, op: str) -> None:
    if _shape(a) != _shape(b):
        raise ValueError(f"{op}: input shape {_shape(a)} and target shape {_shape(b)} differ")


def mse(pred, target, *, reduction: str = "mean"):
    """Mean squared error ``(pred - target)**2``."""
    _same_shape(pred, target, "mse")
    d = pred - target
    return _reduce(d * d, reduction, "mse")


def l1(pred, target, *, reduction: str = "mean"):
    """Mean absolute error ``|pred - target|``."""
    _same_shape(pred, target, "l1")
    return _reduce(dnp.abs(pred - target), reduction, "l1")


def huber(pred, target, *, delta: float = 1.0, reduction: str = "mean"):
    """Huber loss: ``0.5 d**2`` for ``|d| <= delta``, ``delta (|d| - 0.5 delta)`` beyond."""
    if delta <= 0:
        raise ValueError(f"huber: delta must be positive, got {delta}")
    _same_shape(pred, target, "huber")
    d = dnp.abs(pred - target)
    quad = dnp.minimum(d, delta)
    loss = 0.5 * quad * quad + delta * (d - quad)
    return _reduce(loss, reduction, "huber")


def smooth_l1(pred, target, *, beta: float = 1.0, reduction: str = "mean"):
    """PyTorch's smooth L1: ``huber(delta=beta) / beta``."""
    return huber(pred, target, delta=beta, reduction=reduction) / beta


def bce_with_logits(logits, target, *, pos_weight=None, reduction: str = "mean"):
    """Binary cross-entropy from logits: ``softplus(x) - t x`` (stable for any ``x``);
    ``pos_weight`` scales the positive term as in PyTorch."""
    _same_shape(logits, target, "bce_with_logits")
    if pos_weight is None:
        loss = softplus(logits) - target * logits
    else:
        loss = -pos_weight * target * log_sigmoid(logits) - (1.0 - target) * log_sigmoid(-logits)
    return _reduce(loss, reduction, "bce_with_logits")


binary_cross_entropy_with_logits = bce_with_logits


def kl_div(log_pred, target, *, log_target: bool = False, reduction: str = "batchmean"):
    """KL(target || pred) with ``log_pred`` given as log-probabilities (PyTorch's
    ``kl_div``): ``sum target * (log target - log_pred)``; ``0 log 0 = 0``.

    ``reduction="batchmean"`` (the mathematically right one) divides the sum by the batch
    size (axis 0).
    """
    _same_shape(log_pred, target, "kl_div")
    if log_target:
        loss = dnp.exp(target) * (target - log_pred)
    else:
        positive = target > 0
        safe = dnp.where(positive, target, 1.0)
        loss = dnp.where(positive, target * (dnp.log(safe) - log_pred), 0.0)
    if reduction == "batchmean":
        n = _shape(log_pred)[0] if _shape(log_pred) else 1
        return dnp.sum(loss) / n
    return _reduce(loss, reduction, "kl_div")


def cosine_embedding(
    x1, x2, target, *, margin: float = 0.0, eps: float = 1e-8, reduction: str = "mean"
):
    """PyTorch's cosine embedding loss over rows of ``x1``, ``x2`` ``(N, D)``: ``1 - cos``
    where ``target == 1``, ``max(0, cos - margin)`` where ``target == -1``."""
    _same_shape(x1, x2, "cosine_embedding")
    t = np.asarray(target)
    if t.shape != _shape(x1)[:-1]:
        raise ValueError(
            f"cosine_embedding: target must have shape {_shape(x1)[:-1]}, got {t.shape}"
        )
    if not np.all(np.isin(t, (-1, 1))):
        raise ValueError("cosine_embedding: target values must be 1 or -1")
    dot = dnp.sum(x1 * x2, axis=-1)
    n1 = dnp.sum(x1 * x1, axis=-1)
    n2 = dnp.sum(x2 * x2, axis=-1)
    cos = dot / dnp.sqrt(dnp.maximum(n1 * n2, eps * eps))
    loss = dnp.where(t == 1, 1.0 - cos, dnp.maximum(cos - margin, 0.0))
    return _reduce(loss, reduction, "cosine_embedding")
