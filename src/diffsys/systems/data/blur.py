"""``LearnableBlur``: a separable Gaussian blur whose width is a parameter."""

from __future__ import annotations

import functools
import math

import numpy as np

from ... import numpy as dnp
from ...nn.module import Module
from ._common import cast_like, channel_param, check_images

__all__ = ["PADDING_MODES", "LearnableBlur", "gaussian_blur", "gaussian_kernel"]

#: Boundary handling, NumPy's ``np.pad`` names (SciPy's ``ndimage`` name in brackets):
#: ``reflect`` (``mirror``: d c b | a b c d | c b a), ``symmetric`` (``reflect``:
#: c b a | a b c | c b a), ``edge`` (``nearest``), ``wrap`` (``wrap``), ``zeros``
#: (``constant`` with 0).
PADDING_MODES = ("reflect", "symmetric", "edge", "wrap", "zeros")


def _source_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """The source pixel of (possibly out-of-range) index ``i`` along an axis of ``n``
    pixels; ``-1`` for a zero pad."""
    if mode == "edge":
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return np.mod(i, n)
    if mode == "zeros":
        return np.where((i >= 0) & (i < n), i, -1)
    if mode == "symmetric":
        j = np.mod(i, 2 * n)
        return np.where(j >= n, 2 * n - 1 - j, j)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(i)
        j = np.mod(i, 2 * (n - 1))
        return np.where(j >= n, 2 * (n - 1) - j, j)
    raise ValueError(f"unknown padding mode {mode!r}; expected one of {PADDING_MODES}")


@functools.lru_cache(maxsize=64)
def _tap_matrix(n: int, radius: int, mode: str) -> np.ndarray:
    """``P[i, j, k] = 1`` where tap ``k`` of the kernel centred on output pixel ``i`` reads
    input pixel ``j``; the blur along an axis is then ``(P @ w)`` applied to that axis."""
    taps = 2 * radius + 1
    pos = np.arange(n)[:, None] + np.arange(-radius, radius + 1)[None, :]  # (n, taps)
    src = _source_index(pos, n, mode)
    p = np.zeros((n, n, taps))
    i, k = np.nonzero(src >= 0)
    np.add.at(p, (i, src[i, k], k), 1.0)
    p.setflags(write=False)
    return p


@functools.lru_cache(maxsize=64)
def _padded_index(n: int, radius: int, mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    src = _source_index(np.arange(-radius, n + radius), n, mode)
    mask = None
    if mode == "zeros":
        mask = (src >= 0).astype(np.float64)
        src = np.maximum(src, 0)
    src.setflags(write=False)
    return src, mask


def gaussian_kernel(sigma, radius: int):
    """The normalized Gaussian taps ``exp(-k^2 / (2 sigma^2))``, ``k = -radius..radius``
    (shape ``sigma.shape + (2 radius + 1,)``), differentiable in ``sigma``.

    >>> import numpy as np
    >>> gaussian_kernel(np.array(1.0), 1).round(4)
    array([0.2741, 0.4519, 0.2741])
    """
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    s = dnp.expand_dims(sigma, -1)
    logits = -0.5 * (k / s) ** 2
    # Subtracting the centre tap (0) changes nothing, and normalizing by the sum of
    # exponentials of values <= 0 never overflows; tiny sigma tends to a delta.
    w = dnp.exp(logits)
    return w / dnp.sum(w, axis=-1, keepdims=True)


def _blur_axis_matrix(x, w, axis: int, radius: int, mode: str):
    """Blur along ``axis`` (-1 or -2) as one matmul with the banded (n, n) matrix."""
    n = x.shape[axis]
    p = _tap_matrix(n, radius, mode)
    if len(w.shape) == 1:
        m = dnp.matmul(p, w)  # (n, n)
    else:
        m = dnp.einsum("ijk,ck->cij", p, w)[None]  # (1, C, n, n)
    m = cast_like(m, x)
    if axis == -2:
        return dnp.matmul(m, x)
    return dnp.matmul(x, dnp.swapaxes(m, -1, -2))


def _blur_axis_taps(x, w, axis: int, radius: int, mode: str):
    """Blur along ``axis`` as a sum of ``2 radius + 1`` shifted, weighted copies."""
    n = x.shape[axis]
    src, mask = _padded_index(n, radius, mode)
    xp = dnp.take(x, src, axis=axis)
    if mask is not None:
        shape = [1] * 4
        shape[axis] = n + 2 * radius
        xp = xp * mask.reshape(shape).astype(x.dtype)
    w = cast_like(w, x)
    out = None
    for k in range(2 * radius + 1):
        piece = xp[..., k : k + n] if axis == -1 else xp[..., k : k + n, :]
        wk = w[..., k]
        if len(w.shape) == 2:
            wk = dnp.reshape(wk, (w.shape[0], 1, 1))
        term = wk * piece
        out = term if out is None else out + term
    return out


def gaussian_blur(x, sigma, radius: int, padding: str = "reflect", method: str = "auto"):
    """Blur images ``x`` ``(B, C, H, W)`` with a Gaussian of width ``sigma`` (a scalar, or one
    per channel ``(C,)``), truncated at ``radius`` pixels and normalized; separable (rows,
    then columns). Differentiable in ``x`` and ``sigma`` to any order.

    ``method``: ``"matrix"`` (each axis one matmul with a banded ``(n, n)`` matrix built from
    the taps: fastest for small images), ``"taps"`` (``2 radius + 1`` shifted copies:
    O(radius) per pixel, for large images) or ``"auto"`` (matrix up to 64 pixels a side).
    """
    if padding not in PADDING_MODES:
        raise ValueError(f"gaussian_blur: padding must be one of {PADDING_MODES}, got {padding!r}")
    if method not in ("auto", "matrix", "taps"):
        raise ValueError(
            f"gaussian_blur: method must be 'auto', 'matrix' or 'taps', got {method!r}"
        )
    w = gaussian_kernel(sigma, radius)
    for axis in (-1, -2):
        use_matrix = method == "matrix" or (method == "auto" and x.shape[axis] <= 64)
        fn = _blur_axis_matrix if use_matrix else _blur_axis_taps
        x = fn(x, w, axis, radius, padding)
    return x


class LearnableBlur(Module):
    """Gaussian blur with a learnable width: ``sigma = exp(log_sigma)`` stays positive.

    ``sigma``: the initial width in pixels, a scalar or, with ``channels=C``, one per channel.
    ``radius``: the kernel's half-width (``2 radius + 1`` taps, fixed: derivatives stay
    smooth); by default ``ceil(3 max(sigma, 1))``, so widths up to about ``radius / 3`` are
    represented without truncation. ``padding``: one of :data:`PADDING_MODES`.

    Input: images ``(B, C, H, W)``, float32 or float64 (the output keeps the dtype). The blur
    is exact (no relaxation): it is the same operation in training and at inference.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> from diffsys.systems.data import LearnableBlur
    >>> blur = LearnableBlur(sigma=1.0)
    >>> x = np.random.default_rng(0).normal(size=(2, 1, 8, 8))
    >>> blur(x).shape
    (2, 1, 8, 8)
    >>> g = ds.grad(lambda b: dnp.sum(b(x) ** 2))(blur)   # smoothing lowers the energy
    >>> bool(g.log_sigma < 0)
    True
    """

    log_sigma: np.ndarray
    radius: int
    padding: str
    method: str
    channels: int | None

    def __init__(
        self,
        sigma=1.0,
        *,
        channels: int | None = None,
        radius: int | None = None,
        padding: str = "reflect",
        method: str = "auto",
        dtype=np.float64,
    ) -> None:
        who = "LearnableBlur"
        s = channel_param(who, sigma, channels, "sigma", np.float64)
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"{who}: sigma must be positive and finite, got {sigma!r}")
        if radius is None:
            radius = math.ceil(3 * max(float(np.max(s)), 1.0))
        if isinstance(radius, bool) or not isinstance(radius, int | np.integer) or radius < 1:
            raise ValueError(f"{who}: radius must be an integer >= 1, got {radius!r}")
        if padding not in PADDING_MODES:
            raise ValueError(f"{who}: padding must be one of {PADDING_MODES}, got {padding!r}")
        if method not in ("auto", "matrix", "taps"):
            raise ValueError(f"{who}: method must be 'auto', 'matrix' or 'taps', got {method!r}")
        self.log_sigma = np.log(s).astype(dtype)
        self.radius = int(radius)
        self.padding = padding
        self.method = method
        self.channels = None if channels is None else int(channels)

    @property
    def sigma(self):
        """The current width(s) in pixels, ``exp(log_sigma)``."""
        return dnp.exp(self.log_sigma)

    def _describe(self) -> str:
        ch = "" if self.channels is None else f", channels={self.channels}"
        return f"LearnableBlur(radius={self.radius}, padding={self.padding!r}{ch})"

    def __call__(self, x, *, key=None):
        x = check_images(self._describe(), x, self.channels)
        return gaussian_blur(x, self.sigma, self.radius, self.padding, self.method)

    def kernel(self):
        """The current 1-D taps (``(2 radius + 1,)``, or ``(C, 2 radius + 1)``)."""
        return gaussian_kernel(self.sigma, self.radius)
