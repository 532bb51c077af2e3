"""Straight-through estimators: the hard operation's value, a surrogate's derivative.

``straight_through(hard_fn, surrogate_fn)`` builds ``f`` with ``f(x) == hard_fn(x)`` exactly
(bit for bit) and ``f'(x) == surrogate_fn'(x)`` in every mode and at every order::

    f(x) = stop_gradient(hard_fn(x)) + (s - stop_gradient(s)),   s = surrogate_fn(x)

``s - stop_gradient(s)`` is exactly zero in value and carries the surrogate's derivative.
The ready-made estimators: :func:`ste_round`, :func:`ste_floor`, :func:`ste_sign`,
:func:`ste_binarize`, :func:`quantize` (uniform, learnable step, LSQ gradient) and
:func:`ste_argmax_onehot` (one-hot argmax forward, softmax backward).

:func:`lower_bound` is a clamp ``max(x, bound)`` whose reverse derivative lets a gradient
through below the bound when it points back up towards it (Balle et al.'s ``LowerBound``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.custom import stop_gradient
from ..core.primitive import Primitive
from ..core.pytree import tree_map
from ..core.tracer import Tracer
from ..numpy import astype, clip, floor, greater, greater_equal, less, logical_or, rint, sign, where
from ._ops import sigmoid, softmax
from .smooth import _check_temperature, _dtype, _moved_one_hot

Array = Any


def straight_through(hard_fn: Callable, surrogate_fn: Callable) -> Callable:
    """A function with ``hard_fn``'s values and ``surrogate_fn``'s derivatives.

    Both take the same arguments and return the same structure (arrays or pytrees of them);
    hard results are cast to the surrogate's dtype (e.g. an integer argmax to float).

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> from diffsys.relax import straight_through
    >>> st_round = straight_through(dnp.round, lambda x: x)
    >>> x = np.array([0.4, 1.6])
    >>> st_round(x), ds.grad(lambda x: dnp.sum(st_round(x) ** 2))(x)  # d/dx round(x)^2 = 2 round(x)
    (array([0., 2.]), array([0., 4.]))
    """

    def combine(h, s):
        h = stop_gradient(astype(h, _dtype(s)))
        return h + (s - stop_gradient(s))

    @functools.wraps(hard_fn)
    def st(*args, **kwargs):
        return tree_map(combine, hard_fn(*args, **kwargs), surrogate_fn(*args, **kwargs))

    return st


def _identity(x):
    return x


def ste_round(x: Array) -> Array:
    """Round half to even in value, identity in derivative.

    >>> import numpy as np
    >>> from diffsys.relax import ste_round
    >>> ste_round(np.array([0.4, 1.5, 2.5]))
    array([0., 2., 2.])
    """
    return straight_through(rint, _identity)(x)


def ste_floor(x: Array) -> Array:
    """Floor in value, identity in derivative."""
    return straight_through(floor, _identity)(x)


_SIGN_SURROGATES = ("identity", "clip", "tanh")


def ste_sign(x: Array, surrogate: str = "clip") -> Array:
    """``sign(x)`` in value; in derivative ``"clip"`` (hardtanh: 1 on [-1, 1], 0 outside, as in
    binarized networks), ``"identity"`` or ``"tanh"``.

    >>> import numpy as np
    >>> from diffsys.relax import ste_sign
    >>> ste_sign(np.array([-0.3, 2.0]))
    array([-1.,  1.])
    """
    if surrogate == "identity":
        sur = _identity
    elif surrogate == "clip":
        sur = lambda x: clip(x, -1.0, 1.0)
    elif surrogate == "tanh":
        from ..numpy import tanh

        sur = tanh
    else:
        raise ValueError(
            f"ste_sign: surrogate must be one of {_SIGN_SURROGATES}, got {surrogate!r}"
        )
    return straight_through(sign, sur)(x)


def ste_binarize(
    x: Array,
    threshold: float | Array = 0.5,
    *,
    surrogate: str = "identity",
    temperature: float | Array = 1.0,
) -> Array:
    """``1.0`` where ``x > threshold`` else ``0.0`` in value; in derivative ``"identity"``
    (w.r.t. ``x``) or ``"sigmoid"`` (``sigmoid((x - threshold) / temperature)``, which also
    gives the threshold a gradient).

    >>> import numpy as np
    >>> from diffsys.relax import ste_binarize
    >>> ste_binarize(np.array([0.2, 0.7]))
    array([0., 1.])
    """
    dtype = _dtype(x)

    def hard(x, threshold):
        return astype(greater(x, threshold), dtype)

    if surrogate == "identity":
        sur = lambda x, threshold: x
    elif surrogate == "sigmoid":
        _check_temperature(temperature, "ste_binarize")
        sur = lambda x, threshold: sigmoid((x - threshold) / temperature)
    else:
        raise ValueError(
            f"ste_binarize: surrogate must be 'identity' or 'sigmoid', got {surrogate!r}"
        )
    return straight_through(hard, sur)(x, threshold)


def quantize(
    x: Array,
    step: float | Array = 1.0,
    *,
    low: int | None = None,
    high: int | None = None,
) -> Array:
    """Uniform quantization ``step * round(clip(x / step, low, high))`` with a learnable step.

    Straight-through rounding gives the LSQ gradients (Esser et al. 2019): w.r.t. ``x``, 1
    inside the range and 0 where clipped; w.r.t. ``step``, ``round(x/step) - x/step`` inside
    and ``low`` / ``high`` where clipped. ``low``/``high`` are integer levels (e.g. -128, 127
    for int8); ``None`` leaves that side open.

    >>> import numpy as np
    >>> from diffsys.relax import quantize
    >>> quantize(np.array([0.26, -0.9, 3.0]), 0.5, low=-1, high=4)
    array([ 0.5, -0.5,  2. ])
    """
    if not isinstance(step, Tracer) and not np.all(np.asarray(step) > 0):
        raise ValueError(f"quantize: step must be > 0, got {step!r}")
    v = x / step
    if low is not None or high is not None:
        lo = -np.inf if low is None else float(low)
        hi = np.inf if high is None else float(high)
        if lo > hi:
            raise ValueError(f"quantize: low ({low}) must not exceed high ({high})")
        v = clip(v, lo, hi)
    return ste_round(v) * step


def ste_argmax_onehot(logits: Array, temperature: float | Array = 1.0, axis: int = -1) -> Array:
    """One-hot of ``argmax(logits)`` in value, ``softmax(logits / temperature)`` in derivative.

    >>> import numpy as np
    >>> from diffsys.relax import ste_argmax_onehot
    >>> ste_argmax_onehot(np.array([0.1, 2.0, -1.0]))
    array([0., 1., 0.])
    """
    _check_temperature(temperature, "ste_argmax_onehot")
    return straight_through(
        lambda z: _moved_one_hot(z, axis),
        lambda z: softmax(z / temperature, axis=axis),
    )(logits)


def _lower_bound_impl(x, bound):
    return np.maximum(x, np.asarray(bound, dtype=np.result_type(x)))


def _lower_bound_vjp(g, ans, x, bound):
    # Pass the cotangent where x is above the bound, and below it where a descent step
    # (-g) would raise x towards the bound: g < 0. Elsewhere the clamp holds, and 0.
    return where(logical_or(greater_equal(x, bound), less(g, 0)), g, 0.0 * g)


def _lower_bound_jvp(t, ans, x, bound):
    # Forward mode does not see the cotangent's sign: it gives the clamp's own derivative.
    return where(greater_equal(x, bound), t, 0.0 * t)


lower_bound_p = Primitive("relax.lower_bound", _lower_bound_impl)
lower_bound_p.defvjp(_lower_bound_vjp)
lower_bound_p.defjvp(_lower_bound_jvp)
lower_bound_p.defbatch(lambda args, batched, bound: lower_bound_p(args[0], bound=bound))


def lower_bound(x: Array, bound: float) -> Array:
    """``max(x, bound)`` in value; in reverse mode the gradient passes where ``x >= bound``
    and also where ``x < bound`` if it is negative (a descent step raises ``x``).

    A plain clamp has zero derivative below its bound, so a parameter or a likelihood that
    strays below it never comes back; this one lets the optimiser push it back up (Balle et
    al. 2018, CompressAI's ``LowerBound``), while the value never drops below ``bound``
    (e.g. a likelihood kept >= 1e-9, so ``-log2`` of it stays finite). Forward mode gives
    the clamp's own derivative (1 above, 0 below): it cannot see a cotangent's sign.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> from diffsys.relax import lower_bound
    >>> x = np.array([-1.0, 2.0])
    >>> lower_bound(x, 0.5)
    array([0.5, 2. ])
    >>> ds.grad(lambda x: dnp.sum(-lower_bound(x, 0.5)))(x)  # descent raises x: passes
    array([-1., -1.])
    >>> ds.grad(lambda x: dnp.sum(lower_bound(x, 0.5)))(x)   # descent would lower it: held
    array([0., 1.])
    """
    if isinstance(bound, Tracer) or np.ndim(bound) != 0:
        raise TypeError(
            f"lower_bound: bound must be a Python or NumPy scalar (a fixed bound), got "
            f"{type(bound).__name__} with shape {np.shape(bound)}"
        )
    return lower_bound_p(x, bound=float(bound))
