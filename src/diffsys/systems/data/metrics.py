"""Image quality metrics on plain arrays (exact evaluation, no tracing)."""

from __future__ import annotations

import numpy as np

__all__ = ["psnr"]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(peak^2 / MSE)`` (``inf`` when equal).

    >>> import numpy as np
    >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
    20.0
    """
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))
