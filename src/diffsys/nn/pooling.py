"""Pooling layers: max, average and adaptive average pooling in 1-d and 2-d.

Each layer holds its configuration (static fields) and calls the functional form of its
family with them; one base class checks the input rank for all of them.

>>> import numpy as np
>>> from diffsys import nn
>>> x = np.ones((1, 3, 8, 8))
>>> nn.MaxPool2d(2)(x).shape, nn.AvgPool2d(3, stride=1, padding=1)(x).shape
((1, 3, 4, 4), (1, 3, 8, 8))
>>> nn.AdaptiveAvgPool2d(1)(np.ones((2, 3, 7, 5))).shape
(2, 3, 1, 1)
"""

from __future__ import annotations

from ._pool_op import adaptive_avg_pool, avg_pool, max_pool
from .module import Module, _field_specs

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "MaxPool1d",
    "MaxPool2d",
]


class _Pool(Module):
    """``__call__`` for every pooling layer: ``pool(x, *fields, op=name)``."""

    _nd = 2

    @staticmethod
    def pool(x, *config, op: str):
        raise NotImplementedError

    def __call__(self, x, *, key=None):
        shape = tuple(getattr(x, "shape", ()))
        name = type(self).__name__
        if len(shape) != self._nd + 2:
            raise ValueError(
                f"{name}: expected an input of shape (N, C, {self._nd} spatial dims), got {shape}"
            )
        config = [self.__dict__[field] for field, _ in _field_specs(type(self))]
        return self.pool(x, *config, op=name)


def _layer(family: type, nd: int, doc: str) -> type:
    """The ``nd``-d layer of a pooling family (``_MaxPool``, 2 -> ``MaxPool2d``)."""
    name = f"{family.__name__.lstrip('_')}{nd}d"
    namespace = {"_nd": nd, "__doc__": doc, "__module__": __name__, "__qualname__": name}
    return type(name, (family,), namespace)


class _MaxPool(_Pool):
    kernel_size: object
    stride: object = None
    padding: object = 0
    dilation: object = 1
    pool = staticmethod(max_pool)


class _AvgPool(_Pool):
    kernel_size: object
    stride: object = None
    padding: object = 0
    count_include_pad: bool = True
    pool = staticmethod(avg_pool)


class _AdaptiveAvgPool(_Pool):
    output_size: object
    pool = staticmethod(adaptive_avg_pool)


MaxPool1d = _layer(_MaxPool, 1, "1-d max pooling over ``(N, C, L)``.")
MaxPool2d = _layer(
    _MaxPool, 2, "2-d max pooling over ``(N, C, H, W)`` (``stride`` defaults to ``kernel_size``)."
)
AvgPool1d = _layer(_AvgPool, 1, "1-d average pooling over ``(N, C, L)``.")
AvgPool2d = _layer(_AvgPool, 2, "2-d average pooling over ``(N, C, H, W)``.")
AdaptiveAvgPool1d = _layer(
    _AdaptiveAvgPool, 1, "Average pooling of ``(N, C, L)`` to a fixed length."
)
AdaptiveAvgPool2d = _layer(
    _AdaptiveAvgPool,
    2,
    "Average pooling of ``(N, C, H, W)`` to a fixed ``output_size`` (``None`` keeps an axis).",
)
