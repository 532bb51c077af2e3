"""Normalization layers: ``LayerNorm``, ``GroupNorm``, ``BatchNorm`` (train / eval)."""

from __future__ import annotations

import numpy as np

from .. import numpy as dnp
from ..core.custom import stop_gradient
from .module import Module, State

__all__ = ["BatchNorm", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm"]


def _shape(x) -> tuple[int, ...]:
    return tuple(dnp.shape(x))


def _normalize(x, axes, eps):
    mean = dnp.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = dnp.mean(centered * centered, axis=axes, keepdims=True)
    return centered / dnp.sqrt(var + eps)


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` axes, then scale and shift.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> y = nn.LayerNorm(4)(np.arange(8.0).reshape(2, 4))
    >>> np.allclose(y.mean(axis=-1), 0)
    True
    """

    weight: np.ndarray | None
    bias: np.ndarray | None
    normalized_shape: tuple
    eps: float

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        *,
        dtype=np.float64,
    ) -> None:
        if isinstance(normalized_shape, int | np.integer):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps = float(eps)
        self.weight = np.ones(self.normalized_shape, dtype) if elementwise_affine else None
        self.bias = np.zeros(self.normalized_shape, dtype) if elementwise_affine else None

    def __call__(self, x, *, key=None):
        shape = _shape(x)
        k = len(self.normalized_shape)
        if shape[len(shape) - k :] != self.normalized_shape or len(shape) < k:
            raise ValueError(
                f"LayerNorm{self.normalized_shape}: expected an input of shape "
                f"(..., {', '.join(map(str, self.normalized_shape))}), got {shape}"
            )
        axes = tuple(range(len(shape) - k, len(shape)))
        y = _normalize(x, axes, self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y


class GroupNorm(Module):
    """Normalize ``(N, C, *S)`` over groups of ``C // num_groups`` channels (and space).

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.GroupNorm(2, 4)(np.ones((3, 4, 5))).shape
    (3, 4, 5)
    """

    weight: np.ndarray | None
    bias: np.ndarray | None
    num_groups: int
    num_channels: int
    eps: float

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        dtype=np.float64,
    ) -> None:
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_groups={num_groups} must divide num_channels={num_channels}"
            )
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        self.eps = float(eps)
        self.weight = np.ones(num_channels, dtype) if affine else None
        self.bias = np.zeros(num_channels, dtype) if affine else None

    def __call__(self, x, *, key=None):
        shape = _shape(x)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm({self.num_groups}, {self.num_channels}): expected an input of "
                f"shape (N, {self.num_channels}, ...), got {shape}"
            )
        n, c = shape[:2]
        g = self.num_groups
        grouped = dnp.reshape(x, (n, g, c // g) + shape[2:])
        y = _normalize(grouped, tuple(range(2, len(shape) + 1)), self.eps)
        y = dnp.reshape(y, shape)
        if self.weight is not None:
            per_channel = (c,) + (1,) * (len(shape) - 2)
            y = y * dnp.reshape(self.weight, per_channel) + dnp.reshape(self.bias, per_channel)
        return y


class BatchNorm(Module):
    """Batch normalization over ``(N, C, *S)`` (or ``(N, C)``): per-channel statistics.

    In training mode it normalizes with the batch statistics and updates the running ones;
    in evaluation mode (``nn.eval_mode``) it uses the running statistics. The running
    statistics are non-trainable state, kept in an :class:`nn.State`, so a BatchNorm is
    called as ``y, state = bn(x, state)``; see :func:`nn.with_state`.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> bn, state = nn.with_state(nn.BatchNorm(3))
    >>> y, state = bn(np.random.default_rng(0).normal(size=(8, 3)), state)
    >>> y.shape, int(state[bn.state_name]["count"])
    ((8, 3), 1)
    """

    weight: np.ndarray | None
    bias: np.ndarray | None
    num_features: int
    eps: float
    momentum: float
    training: bool
    state_name: str | None

    stateful = True

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        *,
        dtype=np.float64,
    ) -> None:
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.training = True
        self.state_name = None
        self.weight = np.ones(num_features, dtype) if affine else None
        self.bias = np.zeros(num_features, dtype) if affine else None

    def init_state(self) -> dict:
        """The initial running statistics: mean 0, variance 1, no batches seen."""
        dtype = np.float64 if self.weight is None else self.weight.dtype
        return {
            "mean": np.zeros(self.num_features, dtype),
            "var": np.ones(self.num_features, dtype),
            "count": np.array(0),
        }

    def __call__(self, x, state: State | None = None, *, key=None):
        shape = _shape(x)
        if len(shape) < 2 or shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm({self.num_features}): expected an input of shape "
                f"(N, {self.num_features}, ...), got {shape}"
            )
        if state is None or self.state_name is None:
            raise TypeError(
                f"BatchNorm({self.num_features}) keeps running statistics in a State: make it "
                "with `model, state = nn.with_state(model)` and call `y, state = "
                "model(x, state)`"
            )
        stats = state[self.state_name]
        axes = (0,) + tuple(range(2, len(shape)))
        per_channel = (1, self.num_features) + (1,) * (len(shape) - 2)
        if self.training:
            count = int(np.prod([shape[a] for a in axes]))
            if count < 2:
                raise ValueError(
                    f"BatchNorm({self.num_features}): training needs more than one value per "
                    f"channel, got input shape {shape}"
                )
            mean = dnp.mean(x, axis=axes, keepdims=True)
            centered = x - mean
            var = dnp.mean(centered * centered, axis=axes, keepdims=True)
            y = centered / dnp.sqrt(var + self.eps)
            m = self.momentum
            batch_mean = stop_gradient(dnp.reshape(mean, (self.num_features,)))
            batch_var = stop_gradient(dnp.reshape(var, (self.num_features,))) * (
                count / (count - 1)
            )
            new = {
                "mean": (1 - m) * stats["mean"] + m * batch_mean,
                "var": (1 - m) * stats["var"] + m * batch_var,
                "count": stats["count"] + 1,
            }
            state = state.set(self.state_name, new)
        else:
            mean = dnp.reshape(stats["mean"], per_channel)
            var = dnp.reshape(stats["var"], per_channel)
            y = (x - mean) / dnp.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * dnp.reshape(self.weight, per_channel) + dnp.reshape(self.bias, per_channel)
        return y, state


BatchNorm1d = BatchNorm
BatchNorm2d = BatchNorm
