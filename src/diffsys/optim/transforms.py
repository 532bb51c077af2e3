"""The building blocks of optimizers: gradient transformations that compose with ``chain``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .. import numpy as dnp
from ..core.pytree import tree_map, tree_structure
from ..core.tracer import Tracer
from .base import EmptyState, GradientTransformation, global_norm, tree_zeros_like
from .schedules import Schedule

__all__ = [
    "AdamState",
    "CountState",
    "TraceState",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "scale",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_rms",
    "scale_by_schedule",
    "scale_by_trust_ratio",
    "set_to_zero",
    "trace",
]

ScalarOrSchedule = float | Schedule


def _count0() -> np.ndarray:
    return np.zeros((), dtype=np.int64)


def _map(f, *trees):
    return tree_map(f, *trees)


class CountState(NamedTuple):
    count: Any


class TraceState(NamedTuple):
    trace: Any


class AdamState(NamedTuple):
    count: Any
    mu: Any
    nu: Any


class RmsState(NamedTuple):
    nu: Any
    momentum: Any


class AdagradState(NamedTuple):
    sum_of_squares: Any


class LionState(NamedTuple):
    mu: Any


def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by ``step_size``."""

    def update(updates, state, params=None):
        return _map(lambda g: step_size * g, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


def set_to_zero() -> GradientTransformation:
    """Replace the updates by zeros (a frozen group in :func:`multi_transform`)."""

    def update(updates, state, params=None):
        return tree_zeros_like(updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


def scale_by_schedule(schedule: Schedule) -> GradientTransformation:
    """Multiply updates by ``schedule(count)``; ``count`` starts at 0 and counts updates."""

    def init(params):
        return CountState(_count0())

    def update(updates, state, params=None):
        factor = schedule(state.count)
        return _map(lambda g: factor * g, updates), CountState(state.count + 1)

    return GradientTransformation(init, update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, flip_sign: bool = True):
    """Multiply by ``-learning_rate`` (a number or a schedule ``step -> lr``)."""
    sign = -1.0 if flip_sign else 1.0
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    return scale(sign * learning_rate)


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: ``t = decay * t + g``; the update is ``t`` (or ``g + decay * t`` with
    Nesterov), as in PyTorch's SGD."""

    def init(params):
        return TraceState(tree_zeros_like(params))

    def update(updates, state, params=None):
        new = _map(lambda g, t: decay * t + g, updates, state.trace)
        if nesterov:
            out = _map(lambda g, t: g + decay * t, updates, new)
        else:
            out = new
        return out, TraceState(new)

    return GradientTransformation(init, update)


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0
) -> GradientTransformation:
    """Adam's direction: bias-corrected ``m / (sqrt(v) + eps)``."""

    def init(params):
        return AdamState(_count0(), tree_zeros_like(params), tree_zeros_like(params))

    def update(updates, state, params=None):
        mu = _map(lambda g, m: b1 * m + (1.0 - b1) * g, updates, state.mu)
        nu = _map(lambda g, v: b2 * v + (1.0 - b2) * (g * g), updates, state.nu)
        count = state.count + 1
        # a traced step count (a step under ds.jit) stays traced: the bias corrections are
        # then operations of the graph instead of constants fixed to the traced step
        t = count if isinstance(count, Tracer) else int(count)
        c1 = 1.0 - b1**t
        c2 = 1.0 - b2**t
        out = _map(lambda m, v: (m / c1) / (dnp.sqrt(v / c2 + eps_root) + eps), mu, nu)
        return out, AdamState(count, mu, nu)

    return GradientTransformation(init, update)


def scale_by_rms(
    decay: float = 0.99, eps: float = 1e-8, momentum: float = 0.0
) -> GradientTransformation:
    """RMSProp's direction (PyTorch's form): ``g / (sqrt(v) + eps)``, optional momentum."""

    def init(params):
        mom = tree_zeros_like(params) if momentum else None
        return RmsState(tree_zeros_like(params), mom)

    def update(updates, state, params=None):
        nu = _map(lambda g, v: decay * v + (1.0 - decay) * (g * g), updates, state.nu)
        out = _map(lambda g, v: g / (dnp.sqrt(v) + eps), updates, nu)
        mom = state.momentum
        if momentum:
            mom = _map(lambda u, b: momentum * b + u, out, mom)
            out = mom
        return out, RmsState(nu, mom)

    return GradientTransformation(init, update)


def scale_by_adagrad(
    initial_accumulator_value: float = 0.0, eps: float = 1e-10
) -> GradientTransformation:
    """Adagrad's direction: ``g / (sqrt(sum of g**2) + eps)``."""

    def init(params):
        return AdagradState(
            _map(lambda p: np.full(np.shape(p), initial_accumulator_value, p.dtype), params)
        )

    def update(updates, state, params=None):
        acc = _map(lambda g, s: s + g * g, updates, state.sum_of_squares)
        out = _map(lambda g, s: g / (dnp.sqrt(s) + eps), updates, acc)
        return out, AdagradState(acc)

    return GradientTransformation(init, update)


def scale_by_lion(b1: float = 0.9, b2: float = 0.99) -> GradientTransformation:
    """Lion's direction: ``sign(b1 m + (1 - b1) g)``; then ``m = b2 m + (1 - b2) g``."""

    def init(params):
        return LionState(tree_zeros_like(params))

    def update(updates, state, params=None):
        out = _map(lambda g, m: dnp.sign(b1 * m + (1.0 - b1) * g), updates, state.mu)
        mu = _map(lambda g, m: b2 * m + (1.0 - b2) * g, updates, state.mu)
        return out, LionState(mu)

    return GradientTransformation(init, update)


def _leaf_norm(x, min_norm: float):
    n = dnp.sqrt(dnp.sum(x * x))
    return dnp.maximum(n, min_norm) if min_norm else n


def scale_by_trust_ratio(
    min_norm: float = 0.0, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    """LARS/LAMB's layer-wise trust ratio: each leaf's update ``u`` (one parameter array,
    the paper's "layer") is scaled by ``trust_coefficient * ||p|| / (||u|| + eps)``, or left
    as it is where ``||p||`` or ``||u||`` is zero. Norms below ``min_norm`` count as
    ``min_norm``."""

    def leaf(u, p):
        p_norm = _leaf_norm(p, min_norm)
        u_norm = _leaf_norm(u, min_norm)
        zero = dnp.logical_or(dnp.equal(p_norm, 0), dnp.equal(u_norm, 0))
        ratio = trust_coefficient * p_norm / dnp.where(zero, 1.0, u_norm + eps)
        return u * dnp.where(zero, 1.0, ratio)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_trust_ratio: update() needs params")
        return _map(leaf, updates, params), state

    return GradientTransformation(lambda params: EmptyState(), update)


def _resolve_mask(mask, params):
    if mask is None:
        return None
    m = mask(params) if callable(mask) else mask
    if tree_structure(m).num_leaves != tree_structure(params).num_leaves:
        raise ValueError(
            "add_decayed_weights: the mask must have one boolean per parameter leaf, got "
            f"{tree_structure(m).num_leaves} for {tree_structure(params).num_leaves} (in a "
            "module, Python bools are static fields: use np.bool_ or array leaves)"
        )
    return m


def add_decayed_weights(
    weight_decay: float, mask: Any | Callable[[Any], Any] | None = None
) -> GradientTransformation:
    """Add ``weight_decay * params`` to the updates (decoupled weight decay when placed
    before the learning rate). ``mask``: a pytree of bools like ``params`` (or a function of
    ``params`` returning one); ``False`` leaves are not decayed."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights: update() needs params")
        m = _resolve_mask(mask, params)
        if m is None:
            return _map(lambda g, p: g + weight_decay * p, updates, params), state
        return _map(lambda g, p, k: g + weight_decay * p if k else g, updates, params, m), state

    return GradientTransformation(lambda params: EmptyState(), update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale all updates together so that their global 2-norm is at most ``max_norm``."""

    def update(updates, state, params=None):
        norm = global_norm(updates)
        if float(norm) <= max_norm:
            return updates, state
        factor = max_norm / norm
        return _map(lambda g: g * factor, updates), state

    return GradientTransformation(lambda params: EmptyState(), update)


def clip(max_delta: float) -> GradientTransformation:
    """Clip each update entry to ``[-max_delta, max_delta]``."""

    def update(updates, state, params=None):
        return _map(lambda g: dnp.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(lambda params: EmptyState(), update)
