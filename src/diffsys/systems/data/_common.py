"""Input checks and small helpers the data stages share."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.tracer import Tracer
from ...numpy import astype, reshape

Array = Any


def stage_label(stage) -> str:
    """``Name(config)`` as used at the start of every error message of a stage."""
    describe = getattr(stage, "_describe", None)
    return describe() if describe is not None else type(stage).__name__


def as_float_array(who: str, x) -> Array:
    """``x`` as an array (a tracer stays one); non-numeric and integer/bool input is an error
    naming the stage."""
    if not isinstance(x, Tracer | np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as err:  # noqa: BLE001 - anything that is not array-like
            raise TypeError(f"{who}: expected an array, got {type(x).__name__}") from err
    dtype = np.dtype(x.dtype)
    if not np.issubdtype(dtype, np.floating):
        numeric = np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)
        if not numeric:
            raise TypeError(f"{who}: expected a floating-point array, got dtype {dtype}")
        raise TypeError(
            f"{who}: expected a floating-point array (float32 or float64), got dtype {dtype}; "
            "cast first, e.g. x.astype(np.float32) / 255"
        )
    return x


def check_images(who: str, x, channels: int | None = None) -> Array:
    """Check that ``x`` is a floating-point batch of images ``(B, C, H, W)``."""
    x = as_float_array(who, x)
    shape = tuple(x.shape)
    if len(shape) != 4:
        hint = ""
        if len(shape) == 3:
            hint = "; add a batch axis with x[None] or a channel axis with x[:, None]"
        elif len(shape) == 2:
            hint = "; a single image needs x[None, None]"
        raise ValueError(
            f"{who}: expected a batch of images of shape (B, C, H, W), got shape {shape}{hint}"
        )
    if channels is not None and shape[1] != channels:
        raise ValueError(
            f"{who}: expected {channels} channel(s) on axis 1 of (B, C, H, W), got shape {shape}"
        )
    if min(shape[2:]) < 1:
        raise ValueError(f"{who}: images must have at least one pixel, got shape {shape}")
    return x


def channel_param(who: str, value, channels: int | None, name: str, dtype) -> np.ndarray:
    """A parameter that is a scalar, or one value per channel when ``channels`` is set."""
    arr = np.asarray(value, dtype=dtype)
    if channels is None:
        if arr.ndim != 0:
            raise ValueError(
                f"{who}: {name} must be a scalar (pass channels=C for one value per channel), "
                f"got shape {arr.shape}"
            )
        return arr.copy()
    if arr.ndim == 0:
        return np.full((channels,), arr, dtype=dtype)
    if arr.shape != (channels,):
        raise ValueError(
            f"{who}: {name} must be a scalar or have shape ({channels},), got {arr.shape}"
        )
    return arr.copy()


def per_channel(p, ndim: int) -> Array:
    """A scalar or per-channel parameter shaped to broadcast against axis 1 of an
    ``ndim``-dimensional array."""
    if len(p.shape) == 0:
        return p
    return reshape(p, (p.shape[0],) + (1,) * (ndim - 2))


def cast_like(p, x) -> Array:
    """``p`` in ``x``'s floating dtype (so float32 images stay float32)."""
    dtype = np.dtype(x.dtype)
    return p if np.dtype(p.dtype) == dtype else astype(p, dtype)


def check_positive(who: str, name: str, value) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{who}: {name} must be a positive finite number, got {value!r}")
    return v
