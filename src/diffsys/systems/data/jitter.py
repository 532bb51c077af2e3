"""``ColorJitter``: random brightness, contrast and saturation with learnable ranges."""

from __future__ import annotations

import numpy as np

from ... import numpy as dnp
from ...nn.module import Module
from ...relax.sampling import as_generator
from ...relax.smooth import soft_clip
from ._common import cast_like, check_images

__all__ = ["ColorJitter", "jitter_factors"]

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale
_LUMA = np.array([0.299, 0.587, 0.114])


def jitter_factors(key, batch: int, dtype=np.float64) -> np.ndarray:
    """The uniform draws ``u`` in ``[-1, 1]``, ``(3, batch)``: brightness, contrast and
    saturation for each image, from ``key`` (a Generator or an int seed)."""
    rng = as_generator(key, "ColorJitter")
    return rng.uniform(-1.0, 1.0, size=(3, batch)).astype(dtype)


def _gray(x):
    """Per-pixel luminance ``(B, 1, H, W)`` (the image itself when it has one channel)."""
    if x.shape[1] == 1:
        return x
    w = _LUMA.astype(x.dtype).reshape(1, 3, 1, 1)
    return dnp.sum(x * w, axis=1, keepdims=True)


class ColorJitter(Module):
    """Random photometric augmentation whose strengths are parameters.

    Each image gets factors ``f = 1 + r u`` with ``u ~ Uniform(-1, 1)`` drawn from an explicit
    ``key`` and ranges ``r = exp(log_range)`` (learnable, positive): brightness scales the
    pixels, contrast scales them about the image's mean luminance, saturation (RGB only, a
    no-op on one channel) about each pixel's luminance; then values are clipped to
    ``[low, high]``. The draws are reparameterized, so gradients reach the ranges.

    - ``relaxed(x, key=...)`` (also ``__call__``): the random jitter with a smooth clip
      (:func:`diffsys.relax.soft_clip`, ``temperature``), so saturated pixels pass gradient.
    - ``hard(x)``: the inference operation, no augmentation (the hard clip of ``x``);
      ``hard(x, key=k)`` applies the same draws as ``relaxed(x, key=k)`` with a hard clip.

    >>> import numpy as np
    >>> from diffsys.systems.data import ColorJitter
    >>> jit = ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)
    >>> x = np.random.default_rng(0).random((4, 3, 8, 8))
    >>> jit(x, key=0).shape, bool(np.array_equal(jit.hard(x), x))
    ((4, 3, 8, 8), True)
    """

    log_range: np.ndarray  # (3,): brightness, contrast, saturation
    low: float
    high: float
    temperature: float

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        *,
        low: float = 0.0,
        high: float = 1.0,
        temperature: float = 0.02,
        dtype=np.float64,
    ) -> None:
        who = "ColorJitter"
        r = np.array([brightness, contrast, saturation], dtype=np.float64)
        if not np.all(np.isfinite(r)) or np.any(r <= 0):
            raise ValueError(
                f"{who}: brightness, contrast and saturation ranges must be positive (learnable "
                f"as log-ranges), got {tuple(r.tolist())}"
            )
        if not float(low) < float(high):
            raise ValueError(f"{who}: low must be < high, got low={low!r}, high={high!r}")
        if not float(temperature) > 0:
            raise ValueError(f"{who}: temperature must be positive, got {temperature!r}")
        self.log_range = np.log(r).astype(dtype)
        self.low = float(low)
        self.high = float(high)
        self.temperature = float(temperature)

    @property
    def ranges(self):
        """``(brightness, contrast, saturation)`` ranges, ``exp(log_range)``."""
        return dnp.exp(self.log_range)

    def _describe(self) -> str:
        return "ColorJitter"

    def _check(self, x):
        x = check_images(self._describe(), x)
        if x.shape[1] not in (1, 3):
            raise ValueError(
                f"{self._describe()}: expected 1 (gray) or 3 (RGB) channels on axis 1, got "
                f"shape {tuple(x.shape)}"
            )
        return x

    def _jitter(self, x, key):
        B = int(x.shape[0])
        u = jitter_factors(key, B, np.dtype(x.dtype))
        r = cast_like(self.ranges, x)
        f = 1.0 + dnp.reshape(r, (3, 1)) * u  # (3, B)
        fb, fc, fs = (dnp.reshape(f[i], (B, 1, 1, 1)) for i in range(3))
        x = x * fb
        m = dnp.mean(_gray(x), axis=(1, 2, 3), keepdims=True)
        x = (x - m) * fc + m
        if x.shape[1] == 3:
            g = _gray(x)
            x = (x - g) * fs + g
        return x

    def _need_key(self, key):
        if key is None:
            raise TypeError(
                f"{self._describe()}: the relaxed (training) jitter is random and needs a key: "
                "call with key=np.random.default_rng(seed) or an int seed; hard(x) is the "
                "deterministic inference form"
            )

    def relaxed(self, x, *, key=None):
        """Random jitter from ``key``, smooth clip."""
        x = self._check(x)
        self._need_key(key)
        return soft_clip(self._jitter(x, key), self.low, self.high, self.temperature)

    __call__ = relaxed

    def hard(self, x, *, key=None):
        """No augmentation (``key=None``), or the draws of ``key`` with a hard clip."""
        x = self._check(x)
        if key is not None:
            x = self._jitter(x, key)
        return dnp.clip(x, self.low, self.high)
