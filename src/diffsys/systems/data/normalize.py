"""``Normalize``: per-channel standardization followed by a learnable affine map."""

from __future__ import annotations

import numpy as np

from ... import numpy as dnp
from ...nn.module import Module, static
from ._common import as_float_array, cast_like, channel_param, per_channel

__all__ = ["Normalize"]

_STATS = ("fixed", "instance")


class Normalize(Module):
    """``y = (x - mean) / std * scale + shift``, per channel (axis 1 of ``(B, C, ...)``).

    ``scale`` and ``shift`` are parameters (initially 1 and 0). ``mean`` and ``std`` are
    either fixed settings (``stats="fixed"``: given, or measured on data with
    :meth:`Normalize.fit`) or each sample's own statistics over its spatial axes
    (``stats="instance"``, instance normalization with ``eps`` added to the variance).
    The operation is exact: the same in training and at inference.

    >>> import numpy as np
    >>> from diffsys.systems.data import Normalize
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 2, 4, 4))
    >>> norm = Normalize.fit(x)
    >>> y = norm(x)
    >>> bool(abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-12)
    True
    """

    scale: np.ndarray
    shift: np.ndarray
    mean: np.ndarray = static()
    std: np.ndarray = static()
    channels: int = static()
    stats: str = static()
    eps: float = static()

    def __init__(
        self,
        channels: int,
        *,
        mean=0.0,
        std=1.0,
        stats: str = "fixed",
        eps: float = 1e-5,
        dtype=np.float64,
    ) -> None:
        who = "Normalize"
        if isinstance(channels, bool) or not isinstance(channels, int | np.integer) or channels < 1:
            raise ValueError(f"{who}: channels must be a positive integer, got {channels!r}")
        if stats not in _STATS:
            raise ValueError(f"{who}: stats must be one of {_STATS}, got {stats!r}")
        channels = int(channels)
        m = channel_param(who, mean, channels, "mean", np.float64)
        s = channel_param(who, std, channels, "std", np.float64)
        if not np.all(np.isfinite(m)) or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"{who}: mean must be finite and std positive, got {mean!r}, {std!r}")
        if not float(eps) > 0:
            raise ValueError(f"{who}: eps must be positive, got {eps!r}")
        self.scale = np.ones(channels, dtype=dtype)
        self.shift = np.zeros(channels, dtype=dtype)
        self.mean = m
        self.std = s
        self.channels = channels
        self.stats = stats
        self.eps = float(eps)

    @classmethod
    def fit(cls, data, *, eps: float = 1e-5, dtype=np.float64) -> Normalize:
        """A fixed-statistics ``Normalize`` whose mean and std are those of ``data``
        ``(N, C, ...)`` per channel (a constant channel gets std 1)."""
        data = np.asarray(data)
        if data.ndim < 2 or not np.issubdtype(data.dtype, np.number):
            raise ValueError(
                f"Normalize.fit: expected numeric data of shape (N, C, ...), got shape "
                f"{data.shape} and dtype {data.dtype}"
            )
        axes = (0,) + tuple(range(2, data.ndim))
        mean = data.mean(axis=axes, dtype=np.float64)
        std = data.std(axis=axes, dtype=np.float64)
        std = np.where(std > 0, std, 1.0)
        return cls(data.shape[1], mean=mean, std=std, eps=eps, dtype=dtype)

    def _describe(self) -> str:
        return f"Normalize(channels={self.channels}, stats={self.stats!r})"

    def __call__(self, x, *, key=None):
        who = self._describe()
        x = as_float_array(who, x)
        shape = tuple(x.shape)
        need = 3 if self.stats == "instance" else 2
        if len(shape) < need or shape[1] != self.channels:
            what = "(B, C, spatial...)" if need == 3 else "(B, C, ...)"
            raise ValueError(
                f"{who}: expected an input {what} with {self.channels} channel(s) on axis 1, "
                f"got shape {shape}"
            )
        ndim = len(shape)
        if self.stats == "fixed":
            mean = np.reshape(self.mean, (-1,) + (1,) * (ndim - 2)).astype(x.dtype)
            inv = np.reshape(1.0 / self.std, (-1,) + (1,) * (ndim - 2)).astype(x.dtype)
            z = (x - mean) * inv
        else:
            axes = tuple(range(2, ndim))
            mu = dnp.mean(x, axis=axes, keepdims=True)
            centred = x - mu
            var = dnp.mean(centred * centred, axis=axes, keepdims=True)
            z = centred / dnp.sqrt(var + np.asarray(self.eps, dtype=x.dtype))
        scale = cast_like(per_channel(self.scale, ndim), x)
        shift = cast_like(per_channel(self.shift, ndim), x)
        return z * scale + shift
