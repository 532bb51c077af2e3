"""Pooling layers: max, average and adaptive average pooling in 1-d and 2-d."""

from __future__ import annotations

from ._pool_op import adaptive_avg_pool, avg_pool, max_pool
from .module import Module

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "MaxPool1d",
    "MaxPool2d",
]


def _check(layer, x, nd: int) -> None:
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != nd + 2:
        raise ValueError(
            f"{type(layer).__name__}: expected an input of shape (N, C, {nd} spatial dims), "
            f"got {shape}"
        )


class _MaxPool(Module):
    kernel_size: object
    stride: object
    padding: object
    dilation: object
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1) -> None:
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def __call__(self, x, *, key=None):
        _check(self, x, self._nd)
        return max_pool(
            x, self.kernel_size, self.stride, self.padding, self.dilation, type(self).__name__
        )


class MaxPool1d(_MaxPool):
    """1-d max pooling over ``(N, C, L)``."""

    _nd = 1


class MaxPool2d(_MaxPool):
    """2-d max pooling over ``(N, C, H, W)`` (``stride`` defaults to ``kernel_size``).

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.MaxPool2d(2)(np.ones((1, 3, 8, 8))).shape
    (1, 3, 4, 4)
    """

    _nd = 2


class _AvgPool(Module):
    kernel_size: object
    stride: object
    padding: object
    count_include_pad: bool
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True) -> None:
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.count_include_pad = count_include_pad

    def __call__(self, x, *, key=None):
        _check(self, x, self._nd)
        return avg_pool(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.count_include_pad,
            type(self).__name__,
        )


class AvgPool1d(_AvgPool):
    """1-d average pooling over ``(N, C, L)``."""

    _nd = 1


class AvgPool2d(_AvgPool):
    """2-d average pooling over ``(N, C, H, W)``.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.AvgPool2d(2)(np.ones((1, 3, 8, 8))).shape
    (1, 3, 4, 4)
    """

    _nd = 2


class _AdaptiveAvgPool(Module):
    output_size: object
    _nd = 2

    def __init__(self, output_size) -> None:
        self.output_size = output_size

    def __call__(self, x, *, key=None):
        _check(self, x, self._nd)
        return adaptive_avg_pool(x, self.output_size, type(self).__name__)


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """Average pooling of ``(N, C, L)`` to a fixed length."""

    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Average pooling of ``(N, C, H, W)`` to a fixed ``output_size`` (``None`` keeps an axis).

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.AdaptiveAvgPool2d(1)(np.ones((2, 3, 7, 5))).shape
    (2, 3, 1, 1)
    """

    _nd = 2
