"""Convolution layers: ``Conv1d``, ``Conv2d``, ``Conv3d``, ``ConvTranspose1d/2d``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .. import numpy as dnp
from . import init
from ._conv_op import conv, conv_transpose
from .module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d"]


def _tuple(v, nd: int) -> tuple[int, ...]:
    if isinstance(v, int | np.integer):
        return (int(v),) * nd
    return tuple(int(a) for a in v)


def _padding(p, nd: int):
    if isinstance(p, str):
        return p
    if isinstance(p, int | np.integer):
        return (int(p),) * nd
    return tuple(p if isinstance(p, int) else tuple(p) for p in p)


def _setup(layer, in_channels, out_channels, kernel_size, stride, dilation, groups, params):
    """Set the fields convolutions and transposed convolutions share, and the parameters.

    ``params`` is ``(bias, key, dtype, weight_init, bias_init)``. The weight is
    ``(out, in // groups, *kernel)``, or ``(in, out // groups, *kernel)`` when transposed.
    """
    bias, key, dtype, weight_init, bias_init = params
    nd = layer._nd
    name = type(layer).__name__
    rng = init.as_generator(key, name)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{name}: groups={groups} must divide in_channels={in_channels} and "
            f"out_channels={out_channels}"
        )
    layer.in_channels = int(in_channels)
    layer.out_channels = int(out_channels)
    layer.kernel_size = _tuple(kernel_size, nd)
    layer.stride = _tuple(stride, nd)
    layer.dilation = _tuple(dilation, nd)
    layer.groups = int(groups)
    a, b = (in_channels, out_channels) if layer._transposed else (out_channels, in_channels)
    w_shape = (a, b // groups) + layer.kernel_size
    fan_in = (b // groups) * math.prod(layer.kernel_size)
    layer.weight, layer.bias = init.layer_parameters(
        rng, w_shape, fan_in, out_channels if bias else None, dtype, weight_init, bias_init
    )


class _Conv(Module):
    """``__call__`` of convolution layers: check the input, apply ``_op`` to the fields
    named in ``_args``."""

    _nd = 2
    _transposed = False
    _op = staticmethod(conv)
    _args = ("weight", "bias", "stride", "padding", "dilation", "groups")

    def __call__(self, x, *, key=None):
        shape = tuple(dnp.shape(x))
        if len(shape) != self._nd + 2 or shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}({self.in_channels} -> {self.out_channels}, kernel "
                f"{self.kernel_size}): expected an input of shape (N, {self.in_channels}, "
                f"{self._nd} spatial dims), got {shape}"
            )
        return self._op(x, *[self.__dict__[n] for n in self._args], op=type(self).__name__)


class _ConvNd(_Conv):
    weight: np.ndarray
    bias: np.ndarray | None
    in_channels: int
    out_channels: int
    kernel_size: tuple
    stride: tuple
    padding: object
    dilation: tuple
    groups: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        *,
        key: np.random.Generator | int,
        dtype=np.float64,
        weight_init: Callable | None = None,
        bias_init: Callable | None = None,
    ) -> None:
        params = (bias, key, dtype, weight_init, bias_init)
        _setup(self, in_channels, out_channels, kernel_size, stride, dilation, groups, params)
        self.padding = _padding(padding, self._nd)


class Conv1d(_ConvNd):
    """1-d convolution over ``(N, C, L)``; see :class:`Conv2d`."""

    _nd = 1


class Conv2d(_ConvNd):
    """2-d convolution (cross-correlation) over ``(N, C, H, W)``, as in PyTorch.

    ``padding`` is an int, a tuple (per axis, or ``(lo, hi)`` pairs), ``"valid"`` or
    ``"same"``; ``stride``, ``dilation`` and ``groups`` as in PyTorch. Weight
    ``(out, in // groups, kh, kw)``, default init uniform on ``±1/sqrt(fan_in)``.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.Conv2d(3, 8, 3, padding="same", key=0)(np.ones((2, 3, 16, 16))).shape
    (2, 8, 16, 16)
    """

    _nd = 2


class Conv3d(_ConvNd):
    """3-d convolution over ``(N, C, D, H, W)``; see :class:`Conv2d`."""

    _nd = 3


class _ConvTransposeNd(_Conv):
    weight: np.ndarray
    bias: np.ndarray | None
    in_channels: int
    out_channels: int
    kernel_size: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple
    dilation: tuple
    groups: int

    _transposed = True
    _op = staticmethod(conv_transpose)
    _args = ("weight", "bias", "stride", "padding", "output_padding", "dilation", "groups")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        *,
        key: np.random.Generator | int,
        dtype=np.float64,
        weight_init: Callable | None = None,
        bias_init: Callable | None = None,
    ) -> None:
        params = (bias, key, dtype, weight_init, bias_init)
        _setup(self, in_channels, out_channels, kernel_size, stride, dilation, groups, params)
        self.padding = _tuple(padding, self._nd)
        self.output_padding = _tuple(output_padding, self._nd)


class ConvTranspose1d(_ConvTransposeNd):
    """1-d transposed convolution; see :class:`ConvTranspose2d`."""

    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-d transposed convolution (the input-gradient of Conv2d), PyTorch semantics and
    weight layout ``(in, out // groups, kh, kw)``.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, key=0)(
    ...     np.ones((1, 4, 8, 8))).shape
    (1, 2, 16, 16)
    """

    _nd = 2
