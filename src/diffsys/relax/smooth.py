"""Temperature-controlled relaxations, each with its hard counterpart.

Every relaxation here is a :class:`Relaxation`: calling it gives the smooth surrogate at a
``temperature`` (> 0, may be a traced value, so it can be learned); ``.hard(...)`` gives the
exact operation (for inference); ``.straight_through(...)`` the hard value with the surrogate's
derivative; ``.gap(...)`` the largest absolute difference between the two (the mismatch a
pipeline reports). As ``temperature -> 0`` each surrogate converges to its hard form:

=================  ====================================  ==========================  =========
relaxation         surrogate                             hard form                   error
=================  ====================================  ==========================  =========
``softmax``        ``softmax(x / T)``                    one-hot ``argmax``          ->0 (no ties)
``soft_argmax``    ``sum_i i * softmax(x / T)_i``        ``argmax`` (as a float)     ->0 (no ties)
``soft_argmin``    ``soft_argmax(-x)``                   ``argmin``                  ->0 (no ties)
``soft_max``       ``T * logsumexp(x / T)``              ``max``                     <= T log n
``soft_min``       ``-soft_max(-x)``                     ``min``                     <= T log n
``soft_step``      ``sigmoid(x / T)``                    Heaviside (1/2 at 0)        ->0 (x != 0)
``soft_sign``      ``tanh(x / T)``                       ``sign``                    ->0 (x != 0)
``soft_gate``      ``x * sigmoid((x - t) / T)``          ``x * (x > t)``             ->0 (x != t)
``soft_clip``      ``lo + T sp((x-lo)/T) - T sp((x-hi)/T)`` ``clip(x, lo, hi)``      <= T log 2
``soft_abs``       ``sqrt(x^2 + T^2) - T``               ``abs``                     <= T
=================  ====================================  ==========================  =========

(``sp`` is softplus.) Each is differentiable to any order in its inputs and temperature.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.tracer import Tracer
from ..numpy import (
    abs,
    argmax,
    argmin,
    astype,
    clip,
    equal,
    expand_dims,
    greater,
    max,
    maximum,
    min,
    negative,
    sign,
    sqrt,
    sum,
    tanh,
)
from ._ops import logsumexp, sigmoid, softplus
from ._ops import softmax as _softmax

Array = Any


# --- helpers ---------------------------------------------------------------------------------


def _dtype(x) -> np.dtype:
    dtype = x.dtype if hasattr(x, "dtype") else np.result_type(x)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _check_temperature(temperature, name: str, what: str = "temperature") -> None:
    if isinstance(temperature, Tracer):
        return
    t = np.asarray(temperature)
    if not (np.all(np.isfinite(t)) and np.all(t > 0)):
        raise ValueError(f"{name}: {what} must be finite and > 0, got {temperature!r}")


def _axis_arange(x, axis: int) -> np.ndarray:
    """``0..n-1`` along ``axis`` of ``x``, shaped to broadcast against it."""
    ndim = len(x.shape)
    axis %= ndim
    shape = [1] * ndim
    shape[axis] = x.shape[axis]
    return np.arange(x.shape[axis]).reshape(shape)


def _moved_one_hot(x, axis: int = -1):
    """One-hot of ``argmax(x, axis)`` along ``axis`` (first maximum on ties), in x's dtype."""
    idx = expand_dims(argmax(x, axis=axis), axis)
    return astype(equal(_axis_arange(x, axis), idx), _dtype(x))


# --- the Relaxation type ---------------------------------------------------------------------


class Relaxation:
    """A smooth surrogate with a strength parameter, and the hard operation it relaxes.

    ``r(*args, temperature=T)`` is the surrogate; ``r.hard(*args)`` the exact operation;
    ``r.straight_through(*args, temperature=T)`` the hard value with the surrogate's derivative;
    ``r.gap(*args, temperature=T)`` the largest ``|surrogate - hard|`` (a float);
    ``r.partial(**fixed)`` the same relaxation with some arguments fixed (a pipeline stage
    built from it runs the surrogate in training and ``.hard`` at inference, with no
    hand-written hard form). ``strength`` names the argument that sets how smooth the
    surrogate is (``temperature`` here; ``regularization_strength`` for the sorting
    relaxations); the hard form ignores it.
    """

    def __init__(self, soft: Callable, hard: Callable, *, strength: str = "temperature") -> None:
        functools.update_wrapper(self, soft)
        self.soft = soft
        self._hard = hard
        self.strength = strength
        self._signature = inspect.signature(soft)
        self._name = getattr(soft, "__name__", None) or _fn_label(soft)
        # where the strength is in a call, read without binding the signature (a bind costs
        # more than a small relaxation itself): its position, if positional, and its default
        self._strength_at, self._strength_default = None, 1.0
        for i, p in enumerate(self._signature.parameters.values()):
            if p.name == strength:
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                    self._strength_at = i
                if p.default is not p.empty:
                    self._strength_default = p.default

    def __call__(self, *args, **kwargs):
        at = self._strength_at
        if at is not None and len(args) > at:
            value = args[at]
        else:
            value = kwargs.get(self.strength, self._strength_default)
        if type(value) is float or type(value) is int:  # the common case, checked cheaply
            if not 0 < value < math.inf:
                raise ValueError(
                    f"{self._name}: {self.strength} must be finite and > 0, got {value!r}"
                )
        else:
            _check_temperature(value, self._name, self.strength)
        return self.soft(*args, **kwargs)

    def hard(self, *args, **kwargs):
        """The exact (hard) operation, with the surrogate's arguments (the strength, e.g.
        ``temperature``, is accepted and ignored)."""
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        bound.arguments.pop(self.strength, None)
        return self._hard(*bound.args, **bound.kwargs)

    def straight_through(self, *args, **kwargs):
        """The hard value, differentiated as the surrogate."""
        from .straight_through import straight_through

        return straight_through(self.hard, self)(*args, **kwargs)

    def gap(self, *args, **kwargs) -> float:
        """``max |surrogate - hard|`` over all elements, on plain values."""
        soft = np.asarray(self(*args, **kwargs), dtype=np.float64)
        hard = np.asarray(self.hard(*args, **kwargs), dtype=np.float64)
        return float(np.max(np.abs(soft - hard))) if soft.size else 0.0

    def partial(self, *args, **kwargs) -> Relaxation:
        """This relaxation with leading ``args`` and keyword ``kwargs`` fixed, still a
        :class:`Relaxation` (``functools.partial`` would lose ``.hard``).

        >>> import numpy as np
        >>> from diffsys.relax import soft_topk_mask
        >>> top2 = soft_topk_mask.partial(k=2, regularization_strength=0.1)
        >>> x = np.array([0.1, 3.0, 2.0, -1.0])
        >>> top2(x), top2.hard(x)
        (array([0., 1., 1., 0.]), array([0., 1., 1., 0.]))
        """
        soft = functools.partial(self.soft, *args, **kwargs)
        hard = functools.partial(self.hard, *args, **kwargs)
        fixed = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        out = Relaxation(soft, hard, strength=self.strength)
        out._name = f"{self._name}({fixed})"
        out.__name__ = self._name
        return out

    def __repr__(self) -> str:
        return f"Relaxation({self._name})"


def _fn_label(fn) -> str:
    inner = getattr(fn, "func", None)
    return getattr(inner, "__name__", None) or type(fn).__name__


def relaxation(
    hard: Callable, *, strength: str = "temperature"
) -> Callable[[Callable], Relaxation]:
    """Decorator: make a surrogate function a :class:`Relaxation` with the given hard form."""
    return lambda soft: Relaxation(soft, hard, strength=strength)


# --- relaxations ----------------------------------------------------------------------------


@relaxation(hard=lambda x, axis=-1: _moved_one_hot(x, axis))
def softmax(x: Array, temperature: float | Array = 1.0, axis: int = -1) -> Array:
    """``softmax(x / temperature)`` along ``axis``: a relaxed one-hot argmax.

    >>> import numpy as np
    >>> from diffsys.relax import softmax
    >>> x = np.array([1.0, 3.0])
    >>> softmax(x, temperature=0.01).round(6), softmax.hard(x)
    (array([0., 1.]), array([0., 1.]))
    """
    return _softmax(x / temperature, axis=axis)


def _hard_argmax(x, axis=-1):
    return astype(argmax(x, axis=axis), _dtype(x))


def _hard_argmin(x, axis=-1):
    return astype(argmin(x, axis=axis), _dtype(x))


@relaxation(hard=_hard_argmax)
def soft_argmax(x: Array, temperature: float | Array = 1.0, axis: int = -1) -> Array:
    """The expected index under ``softmax(x / temperature)``: a relaxed ``argmax`` (a float).

    >>> import numpy as np
    >>> from diffsys.relax import soft_argmax
    >>> float(soft_argmax(np.array([0.0, 5.0, 1.0]), temperature=0.01))
    1.0
    """
    p = _softmax(x / temperature, axis=axis)
    return sum(p * _axis_arange(x, axis).astype(_dtype(x)), axis=axis)


@relaxation(hard=_hard_argmin)
def soft_argmin(x: Array, temperature: float | Array = 1.0, axis: int = -1) -> Array:
    """The expected index under ``softmax(-x / temperature)``: a relaxed ``argmin``."""
    return soft_argmax.soft(negative(x), temperature, axis)


@relaxation(hard=lambda x, axis=-1: max(x, axis=axis))
def soft_max(x: Array, temperature: float | Array = 1.0, axis: int = -1) -> Array:
    """``temperature * logsumexp(x / temperature)``: a smooth upper bound of ``max``
    (``max <= soft_max <= max + temperature * log n``).

    >>> import numpy as np
    >>> from diffsys.relax import soft_max
    >>> float(soft_max(np.array([1.0, 2.0]), temperature=1e-3))
    2.0
    """
    return temperature * logsumexp(x / temperature, axis=axis)


@relaxation(hard=lambda x, axis=-1: min(x, axis=axis))
def soft_min(x: Array, temperature: float | Array = 1.0, axis: int = -1) -> Array:
    """``-soft_max(-x)``: a smooth lower bound of ``min``."""
    return negative(soft_max.soft(negative(x), temperature, axis))


def _heaviside(x):
    dtype = _dtype(x)
    return astype(greater(x, 0), dtype) + 0.5 * astype(equal(x, 0), dtype)


@relaxation(hard=_heaviside)
def soft_step(x: Array, temperature: float | Array = 1.0) -> Array:
    """``sigmoid(x / temperature)``: a relaxed Heaviside step (1/2 at 0).

    >>> import numpy as np
    >>> from diffsys.relax import soft_step
    >>> soft_step(np.array([-1.0, 0.0, 1.0]), temperature=0.01).round(6)
    array([0. , 0.5, 1. ])
    """
    return sigmoid(x / temperature)


@relaxation(hard=lambda x: maximum(x, 0.0))
def soft_relu(x: Array, temperature: float | Array = 1.0) -> Array:
    """``T * softplus(x / T)``: a smooth ``max(x, 0)``, above it by at most ``T log 2``.

    >>> round(float(soft_relu(0.0, temperature=0.1)), 6), float(soft_relu.hard(-1.0))
    (0.069315, 0.0)
    """
    return temperature * softplus(x / temperature)


@relaxation(hard=sign)
def soft_sign(x: Array, temperature: float | Array = 1.0) -> Array:
    """``tanh(x / temperature)``: a relaxed ``sign``."""
    return tanh(x / temperature)


@relaxation(hard=lambda x, threshold=0.0: x * _heaviside(x - threshold))
def soft_gate(x: Array, threshold: float | Array = 0.0, temperature: float | Array = 1.0) -> Array:
    """``x * soft_step(x - threshold)`` = ``x * sigmoid((x - threshold) / temperature)``: a
    relaxed gate that keeps ``x`` above ``threshold`` and zeroes it below (hard form
    ``x * (x > threshold)``). Differentiable in ``threshold`` too.

    Not the "soft thresholding" of sparse coding (``sign(x) * max(|x| - t, 0)``, the proximal
    operator of the L1 norm), hence the name; it was ``soft_threshold`` before.

    >>> import numpy as np
    >>> from diffsys.relax import soft_gate
    >>> soft_gate(np.array([0.2, 1.5]), 1.0, temperature=0.01).round(6)
    array([0. , 1.5])
    """
    return x * sigmoid((x - threshold) / temperature)


def _check_bounds(low, high, name):
    if not isinstance(low, Tracer) and not isinstance(high, Tracer):
        if np.any(np.asarray(low) >= np.asarray(high)):
            raise ValueError(f"{name}: low must be < high, got low={low!r}, high={high!r}")


def _hard_clip(x, low=0.0, high=1.0):
    _check_bounds(low, high, "soft_clip")
    return clip(x, low, high)


@relaxation(hard=_hard_clip)
def soft_clip(
    x: Array, low: float | Array = 0.0, high: float | Array = 1.0, temperature: float | Array = 1.0
) -> Array:
    """A smooth ``clip(x, low, high)``: ``low + T softplus((x - low)/T) - T softplus((x - high)/T)``
    (within ``T log 2`` of the clip; ``low < high``). Differentiable in the bounds too.

    >>> import numpy as np
    >>> from diffsys.relax import soft_clip
    >>> soft_clip(np.array([-3.0, 0.5, 3.0]), 0.0, 1.0, temperature=1e-3)
    array([0. , 0.5, 1. ])
    """
    _check_bounds(low, high, "soft_clip")
    t = temperature
    return low + t * softplus((x - low) / t) - t * softplus((x - high) / t)


@relaxation(hard=abs)
def soft_abs(x: Array, temperature: float | Array = 1.0) -> Array:
    """``sqrt(x^2 + T^2) - T``: a smooth ``|x|`` (0 at 0, within ``T`` of ``|x|``).

    >>> import numpy as np
    >>> from diffsys.relax import soft_abs
    >>> soft_abs(np.array([-2.0, 0.0]), temperature=1e-6).round(5)
    array([2., 0.])
    """
    return sqrt(x * x + temperature * temperature) - temperature
