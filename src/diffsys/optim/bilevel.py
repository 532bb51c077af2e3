"""Hypergradients of bilevel problems by a one-step unrolled inner update (DARTS).

A bilevel problem trains weights ``w`` on a training loss and hyperparameters ``h`` (an
architecture's mixing logits, an augmentation policy, ...) on a validation loss::

    min_h  L_val(w*(h), h)     with   w*(h) = argmin_w L_train(w, h)

DARTS (Liu et al. 2019) replaces ``w*(h)`` by one gradient step ``w' = w - lr grad_w
L_train(w, h)``, so the hypergradient is

    d/dh L_val(w', h) = grad_h L_val(w', h) - lr grad^2_{h,w} L_train(w, h) . grad_w' L_val(w', h)

:func:`unrolled_hypergradient` computes it three ways (``method``):

- ``"first_order"``: ``grad_h L_val(w, h)``, the second term dropped (first-order DARTS; it
  is zero when ``L_val`` reads ``h`` only through ``w``, as for an augmentation policy);
- ``"finite_difference"``: the mixed second derivative times ``v = grad_w' L_val`` by a
  central difference, ``(grad_h L_train(w + e v, h) - grad_h L_train(w - e v, h)) / (2 e)``
  with ``e = radius / |v|`` (DARTS's eq. 8): four gradients, no second derivative;
- ``"exact"``: the derivative of ``L_val(w - lr grad_w L_train(w, h), h)`` in ``h`` by
  reverse over reverse (the engine differentiates the inner gradient itself).

Both losses are functions ``loss(w, h) -> scalar`` of two pytrees (split a model with
:func:`diffsys.nn.partition`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..core.pytree import tree_leaves, tree_map
from ..core.transforms import grad, value_and_grad

__all__ = ["Hypergradient", "unrolled_hypergradient"]

METHODS = ("first_order", "finite_difference", "exact")


class Hypergradient(NamedTuple):
    """``value``: ``L_val`` at the unrolled weights ``w'`` (at ``w`` for ``first_order``);
    ``grad``: the hypergradient, a pytree like ``h``; ``weights``: the unrolled ``w'``."""

    value: float
    grad: Any
    weights: Any


def _axpy(a: float, x, y):
    """``a x + y`` leaf by leaf (``None`` leaves stay ``None``)."""
    return tree_map(lambda xi, yi: None if xi is None else a * xi + yi, x, y,
                    is_leaf=lambda v: v is None)


def _norm(tree) -> float:
    return float(np.sqrt(sum(float(np.sum(np.square(leaf))) for leaf in tree_leaves(tree))))


def unrolled_hypergradient(
    train_loss: Callable[[Any, Any], Any],
    val_loss: Callable[[Any, Any], Any],
    weights: Any,
    hyper: Any,
    *,
    lr: float,
    method: str = "finite_difference",
    radius: float = 0.01,
) -> Hypergradient:
    """The hypergradient ``d/dh L_val(w - lr grad_w L_train(w, h), h)`` (see the module text).

    ``lr``: the inner step (0 makes every method first order); ``radius``: the finite
    difference's step, divided by ``|grad_w' L_val|`` (DARTS uses 0.01).

    >>> import numpy as np
    >>> train = lambda w, h: (w - h) ** 2          # w*(h) = h
    >>> val = lambda w, h: (w - 3.0) ** 2          # so the best h is 3
    >>> hg = unrolled_hypergradient(train, val, 1.0, 0.0, lr=0.25, method="exact")
    >>> float(hg.weights), float(hg.grad)          # w' = 1 - 0.25 * 2 (1 - 0) = 0.5
    (0.5, -2.5)
    """
    if method not in METHODS:
        raise ValueError(f"unrolled_hypergradient: method must be one of {METHODS}, got {method!r}")
    lr = float(lr)
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"unrolled_hypergradient: lr must be finite and >= 0, got {lr!r}")
    if method == "first_order":
        value, g_h = value_and_grad(val_loss, argnums=1)(weights, hyper)
        return Hypergradient(float(value), g_h, weights)
    if method == "exact":

        def unrolled(h):
            w1 = _axpy(-lr, grad(train_loss)(weights, h), weights)
            return val_loss(w1, h)

        value, g_h = value_and_grad(unrolled)(hyper)
        w1 = _axpy(-lr, grad(train_loss)(weights, hyper), weights)
        return Hypergradient(float(value), g_h, w1)
    w1 = _axpy(-lr, grad(train_loss)(weights, hyper), weights)
    value, (v, g_h) = value_and_grad(val_loss, argnums=(0, 1))(w1, hyper)
    norm = _norm(v)
    if lr == 0.0 or norm == 0.0:
        return Hypergradient(float(value), g_h, w1)
    eps = float(radius) / norm
    g_plus = grad(train_loss, argnums=1)(_axpy(eps, v, weights), hyper)
    g_minus = grad(train_loss, argnums=1)(_axpy(-eps, v, weights), hyper)
    scale = lr / (2.0 * eps)
    g = tree_map(lambda a, p, m: a - scale * (p - m), g_h, g_plus, g_minus)
    return Hypergradient(float(value), g, w1)
