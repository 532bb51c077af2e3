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


def _init_params(rng, w_shape, fan_in, bias_size, bias, dtype, weight_init, bias_init):
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    if weight_init is None:
        w = init.uniform(rng, w_shape, dtype, -bound, bound)
    else:
        w = np.asarray(weight_init(rng, w_shape, dtype))
    if not bias:
        b = None
    elif bias_init is None:
        b = init.uniform(rng, (bias_size,), dtype, -bound, bound)
    else:
        b = np.asarray(bias_init(rng, (bias_size,), dtype))
    return w, b


def _set_shape_fields(layer, in_channels, out_channels, kernel_size, stride, dilation, groups, key):
    """The fields convolutions and transposed convolutions share; the layer's generator."""
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
    return rng


def _check_input(layer, x) -> None:
    shape = tuple(dnp.shape(x))
    if len(shape) != layer._nd + 2 or shape[1] != layer.in_channels:
        raise ValueError(
            f"{type(layer).__name__}({layer.in_channels} -> {layer.out_channels}, kernel "
            f"{layer.kernel_size}): expected an input of shape (N, {layer.in_channels}, "
            f"{layer._nd} spatial dims), got {shape}"
        )


class _ConvNd(Module):
    weight: np.ndarray
    bias: np.ndarray | None
    in_channels: int
    out_channels: int
    kernel_size: tuple
    stride: tuple
    padding: object
    dilation: tuple
    groups: int

    _nd = 2

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
        nd = self._nd
        rng = _set_shape_fields(
            self, in_channels, out_channels, kernel_size, stride, dilation, groups, key
        )
        self.padding = _padding(padding, nd)
        w_shape = (out_channels, in_channels // groups) + self.kernel_size
        fan_in = (in_channels // groups) * math.prod(self.kernel_size)
        self.weight, self.bias = _init_params(
            rng, w_shape, fan_in, out_channels, bias, dtype, weight_init, bias_init
        )

    def __call__(self, x, *, key=None):
        _check_input(self, x)
        return conv(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            op=type(self).__name__,
        )


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


class _ConvTransposeNd(Module):
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

    _nd = 2

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
        nd = self._nd
        rng = _set_shape_fields(
            self, in_channels, out_channels, kernel_size, stride, dilation, groups, key
        )
        self.padding = _tuple(padding, nd)
        self.output_padding = _tuple(output_padding, nd)
        w_shape = (in_channels, out_channels // groups) + self.kernel_size
        fan_in = (out_channels // groups) * math.prod(self.kernel_size)
        self.weight, self.bias = _init_params(
            rng, w_shape, fan_in, out_channels, bias, dtype, weight_init, bias_init
        )

    def __call__(self, x, *, key=None):
        _check_input(self, x)
        return conv_transpose(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
            self.groups,
            op=type(self).__name__,
        )


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
