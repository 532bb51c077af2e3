"""Activation functions as layers (for ``Sequential`` and printing)."""

from __future__ import annotations

from . import activations as act
from .module import Module

__all__ = [
    "ELU",
    "GELU",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]


class ReLU(Module):
    """``nn.relu`` as a layer."""

    def __call__(self, x, *, key=None):
        return act.relu(x)


class Tanh(Module):
    """``nn.tanh`` as a layer."""

    def __call__(self, x, *, key=None):
        return act.tanh(x)


class Sigmoid(Module):
    """``nn.sigmoid`` as a layer."""

    def __call__(self, x, *, key=None):
        return act.sigmoid(x)


class SiLU(Module):
    """``nn.silu`` as a layer."""

    def __call__(self, x, *, key=None):
        return act.silu(x)


class GELU(Module):
    """``nn.gelu`` as a layer (``approximate=True`` for the tanh form)."""

    approximate: bool = False

    def __call__(self, x, *, key=None):
        return act.gelu(x, self.approximate)


class LeakyReLU(Module):
    """``nn.leaky_relu`` as a layer."""

    negative_slope: float = 0.01

    def __call__(self, x, *, key=None):
        return act.leaky_relu(x, self.negative_slope)


class ELU(Module):
    """``nn.elu`` as a layer."""

    alpha: float = 1.0

    def __call__(self, x, *, key=None):
        return act.elu(x, self.alpha)


class Softplus(Module):
    """``nn.softplus`` as a layer."""

    beta: float = 1.0

    def __call__(self, x, *, key=None):
        return act.softplus(x, self.beta)


class Softmax(Module):
    """``nn.softmax`` over ``axis`` as a layer."""

    axis: int = -1

    def __call__(self, x, *, key=None):
        return act.softmax(x, self.axis)


class LogSoftmax(Module):
    """``nn.log_softmax`` over ``axis`` as a layer."""

    axis: int = -1

    def __call__(self, x, *, key=None):
        return act.log_softmax(x, self.axis)
