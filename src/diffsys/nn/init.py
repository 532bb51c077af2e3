"""Parameter initializers, seeded explicitly.

Each takes ``key`` (a ``numpy.random.Generator`` or an int seed), a shape and a dtype and
returns a new array. Fans follow PyTorch: for a weight of shape ``(out, in, *kernel)``,
``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``; a 1-D shape has
``fan_in = fan_out = shape[0]``.

>>> from diffsys.nn import init
>>> w = init.xavier_uniform(0, (3, 4))
>>> w.shape, w.dtype
((3, 4), dtype('float64'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_generator",
    "calculate_gain",
    "constant",
    "fans",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "layer_parameters",
    "lecun_normal",
    "normal",
    "ones",
    "orthogonal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Key = np.random.Generator | int | np.integer


def as_generator(key: Key | None, who: str = "initializer") -> np.random.Generator:
    """``key`` as a Generator: an int seeds a new one; a Generator is used (and advanced)."""
    if isinstance(key, np.random.Generator):
        return key
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return np.random.default_rng(int(key))
    raise TypeError(
        f"{who}: key must be a numpy.random.Generator or an int seed, got "
        f"{type(key).__name__}; randomness in diffsys is always seeded explicitly "
        "(e.g. key=np.random.default_rng(0) or key=0)"
    )


def _shape(shape) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (``(out, in, *kernel)``)."""
    shape = _shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    table = {
        "linear": 1.0,
        "conv": 1.0,
        "sigmoid": 1.0,
        "tanh": 5.0 / 3.0,
        "relu": math.sqrt(2.0),
        "selu": 0.75,
    }
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1.0 + slope**2))
    try:
        return table[nonlinearity]
    except KeyError:
        raise ValueError(
            f"calculate_gain: unknown nonlinearity {nonlinearity!r}; known: "
            f"{sorted([*table, 'leaky_relu'])}"
        ) from None


def _dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"initializers make floating-point arrays, got dtype {dtype}")
    return dtype


def zeros(key: Key | None, shape, dtype=np.float64) -> np.ndarray:
    """All zeros (``key`` is ignored; accepted for a uniform signature)."""
    return np.zeros(_shape(shape), dtype=_dtype(dtype))


def ones(key: Key | None, shape, dtype=np.float64) -> np.ndarray:
    """All ones (``key`` is ignored)."""
    return np.ones(_shape(shape), dtype=_dtype(dtype))


def constant(key: Key | None, shape, dtype=np.float64, value: float = 0.0) -> np.ndarray:
    """All ``value`` (``key`` is ignored)."""
    return np.full(_shape(shape), value, dtype=_dtype(dtype))


def uniform(key: Key, shape, dtype=np.float64, low: float = 0.0, high: float = 1.0):
    """Uniform on ``[low, high)``."""
    rng = as_generator(key, "init.uniform")
    return rng.uniform(low, high, _shape(shape)).astype(_dtype(dtype))


def normal(key: Key, shape, dtype=np.float64, mean: float = 0.0, std: float = 1.0):
    """Normal with ``mean`` and ``std``."""
    rng = as_generator(key, "init.normal")
    return (mean + std * rng.standard_normal(_shape(shape))).astype(_dtype(dtype))


def xavier_uniform(key: Key, shape, dtype=np.float64, gain: float = 1.0) -> np.ndarray:
    """Glorot/Xavier uniform: ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(key, shape, dtype, -a, a)


def xavier_normal(key: Key, shape, dtype=np.float64, gain: float = 1.0) -> np.ndarray:
    """Glorot/Xavier normal: ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    return normal(key, shape, dtype, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _fan(shape, mode: str) -> int:
    fan_in, fan_out = fans(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


def kaiming_uniform(
    key: Key,
    shape,
    dtype=np.float64,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> np.ndarray:
    """Kaiming/He uniform: ``U(-b, b)``, ``b = gain * sqrt(3 / fan)`` (PyTorch's defaults)."""
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / _fan(shape, mode))
    return uniform(key, shape, dtype, -bound, bound)


def kaiming_normal(
    key: Key,
    shape,
    dtype=np.float64,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> np.ndarray:
    """Kaiming/He normal: ``std = gain / sqrt(fan)``."""
    gain = calculate_gain(nonlinearity, a)
    return normal(key, shape, dtype, 0.0, gain / math.sqrt(_fan(shape, mode)))


def lecun_normal(key: Key, shape, dtype=np.float64) -> np.ndarray:
    """LeCun normal: ``std = 1 / sqrt(fan_in)``."""
    return normal(key, shape, dtype, 0.0, 1.0 / math.sqrt(fans(shape)[0]))


def orthogonal(key: Key, shape, dtype=np.float64, gain: float = 1.0) -> np.ndarray:
    """A (semi-)orthogonal matrix, reshaped to ``shape`` (rows = ``shape[0]``).

    The rows (or columns, whichever are fewer) are orthonormal, times ``gain``.
    """
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal: needs at least 2 dimensions, got shape {shape}")
    rng = as_generator(key, "init.orthogonal")
    rows, cols = shape[0], math.prod(shape[1:])
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # a uniform (Haar) distribution
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(_dtype(dtype))


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal
he_uniform = kaiming_uniform
he_normal = kaiming_normal


def layer_parameters(
    rng: np.random.Generator,
    weight_shape: tuple[int, ...],
    fan_in: int,
    bias_size: int | None,
    dtype=np.float64,
    weight_init=None,
    bias_init=None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A layer's ``(weight, bias)`` (``bias`` is ``None`` when ``bias_size`` is).

    The defaults are PyTorch's for linear and convolution layers: both uniform on
    ``±1/sqrt(fan_in)``; ``weight_init``/``bias_init`` are initializers ``(key, shape,
    dtype)``.

    >>> import numpy as np
    >>> w, b = layer_parameters(np.random.default_rng(0), (4, 3), 3, 4)
    >>> w.shape, b.shape, bool(np.all(np.abs(w) <= 1 / np.sqrt(3)))
    ((4, 3), (4,), True)
    """
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    if weight_init is None:
        w = uniform(rng, weight_shape, dtype, -bound, bound)
    else:
        w = np.asarray(weight_init(rng, weight_shape, dtype))
    if bias_size is None:
        return w, None
    if bias_init is None:
        return w, uniform(rng, (bias_size,), dtype, -bound, bound)
    return w, np.asarray(bias_init(rng, (bias_size,), dtype))
