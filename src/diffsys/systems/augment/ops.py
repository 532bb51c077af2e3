"""Augmentation operations with a magnitude, and the relaxed policy that mixes them.

Each operation ``op(x, magnitude, u)`` transforms images ``(B, C, H, W)``; ``magnitude`` is
a scalar in ``[0, 1]`` (0: the identity) and ``u`` ``(B,)`` a per-image draw in ``[-1, 1]``
(direction and size of a random transform, drawn outside: the operation is a deterministic,
differentiable function of ``x`` and ``magnitude``). The geometric ones resample through
``systems.data.affine_grid`` / ``grid_sample``; ``blur`` is ``systems.data.gaussian_blur``.

A policy (Faster AutoAugment, Hataya et al. 2020; DADA, Li et al. 2020) applies ``S`` stages;
in stage ``s`` each image picks one operation ``k ~ Categorical(softmax(logits[s]))`` and
applies it with probability ``sigmoid(prob_logits[s, k])`` at magnitude
``sigmoid(magnitude_logits[s, k])``. :func:`apply_policy` relaxes both choices with the
Gumbel-softmax and a relaxed Bernoulli gate on fixed noise::

    c = relax.softmax(logits[s] + G, T)          (hard: one-hot argmax, the Gumbel-max sample)
    g = relax.soft_step(prob_logits[s] + L, T)   (hard: the Bernoulli sample, L logistic)
    x <- sum_k c_k (g_k op_k(x, m_k, u_k) + (1 - g_k) x)

so ``apply_policy.hard`` (same noise) is the exact sampled policy and the gap between the two
vanishes as ``T -> 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ... import numpy as dnp
from ...core.tracer import Tracer
from ...relax import gumbel_noise, logistic_noise, relaxation, sigmoid, soft_step, softmax
from ..data import affine_grid, gaussian_blur, grid_sample
from ..data._common import cast_like, check_images

__all__ = [
    "OPERATIONS",
    "PolicyNoise",
    "apply_operation",
    "apply_policy",
    "draw_noise",
    "mmd",
]

Array = Any

#: Largest transform of each operation at magnitude 1 (times ``u`` in ``[-1, 1]``).
LIMITS = {
    "rotate": 30.0,  # degrees
    "shear": 0.4,  # x' = x + shear * y
    "translate_x": 0.25,  # fraction of the width (normalized coordinates / 2)
    "translate_y": 0.25,
    "scale": 0.3,  # zoom 1 + scale
    "blur": 1.5,  # Gaussian sigma in pixels (no random direction)
    "brightness": 0.5,  # x * (1 + b)
    "contrast": 0.8,  # (x - mean) * (1 + c) + mean
}

#: The operations, in the order policies index them.
OPERATIONS = tuple(LIMITS)


def _affine(x, a, b, tx, c, d, ty):
    """Resample ``x`` at ``(a x + b y + tx, c x + d y + ty)`` (per-image ``(B,)`` entries)."""
    theta = dnp.stack([dnp.stack([a, b, tx], axis=-1), dnp.stack([c, d, ty], axis=-1)], axis=-2)
    grid = affine_grid(theta, tuple(x.shape))
    return grid_sample(x, grid, padding_mode="zeros")


def apply_operation(name: str, x: Array, magnitude: Array, u: Array) -> Array:
    """Operation ``name`` (one of :data:`OPERATIONS`) at ``magnitude`` in ``[0, 1]`` with
    per-image draws ``u`` ``(B,)`` in ``[-1, 1]``; differentiable in ``x`` and ``magnitude``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((2, 1, 8, 8))
    >>> bool(np.allclose(apply_operation("rotate", x, 0.0, np.ones(2)), x))
    True
    """
    if name not in LIMITS:
        raise ValueError(
            f"apply_operation: unknown operation {name!r}; expected one of {OPERATIONS}"
        )
    x = check_images(f"apply_operation({name!r})", x)
    u = np.asarray(u, dtype=np.dtype(x.dtype))
    if u.shape != (x.shape[0],):
        raise ValueError(
            f"apply_operation({name!r}): u must have shape (B,) = ({x.shape[0]},), got {u.shape}"
        )
    m = cast_like(dnp.asarray(magnitude), x)
    v = m * LIMITS[name] * u  # (B,)
    one, zero = np.ones_like(u), np.zeros_like(u)
    if name == "rotate":
        t = v * (np.pi / 180.0)
        cos, sin = dnp.cos(t), dnp.sin(t)
        return _affine(x, cos, -sin, zero, sin, cos, zero)
    if name == "shear":
        return _affine(x, one, v, zero, zero, one, zero)
    if name == "translate_x":
        return _affine(x, one, zero, 2.0 * v, zero, one, zero)
    if name == "translate_y":
        return _affine(x, one, zero, zero, zero, one, 2.0 * v)
    if name == "scale":
        s = 1.0 / (1.0 + v)
        return _affine(x, s, zero, zero, zero, s, zero)
    if name == "blur":
        return gaussian_blur(x, 0.05 + m * LIMITS["blur"], 3)
    vb = dnp.reshape(v, (-1, 1, 1, 1))
    if name == "brightness":
        return x * (1.0 + vb)
    mean = dnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (1.0 + vb) + mean


class PolicyNoise(NamedTuple):
    """The randomness of one policy application, ``(S, B, K)`` each: Gumbel noise for the
    operation choice, logistic noise for the application gates, uniform ``u`` in ``[-1, 1]``
    for the operations."""

    gumbel: np.ndarray
    logistic: np.ndarray
    u: np.ndarray


def draw_noise(key, stages: int, batch: int, operations: int, dtype=np.float64) -> PolicyNoise:
    """:class:`PolicyNoise` from ``key`` (a Generator or an int seed)."""
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)
    shape = (stages, batch, operations)
    return PolicyNoise(gumbel_noise(rng, shape, dtype), logistic_noise(rng, shape, dtype),
                       rng.uniform(-1.0, 1.0, shape).astype(dtype))


def _check_policy(logits, prob_logits, magnitude_logits, noise, ops, x) -> None:
    shapes = {n: tuple(a.shape) for n, a in (("logits", logits), ("prob_logits", prob_logits),
                                             ("magnitude_logits", magnitude_logits))}
    s_k = shapes["logits"]
    if len(s_k) != 2 or len(set(shapes.values())) != 1 or s_k[1] != len(ops):
        raise ValueError(
            f"apply_policy: logits, prob_logits and magnitude_logits must all be (S, K) with "
            f"K = {len(ops)} operations, got {shapes}"
        )
    want = (s_k[0], x.shape[0], s_k[1])
    got = [tuple(np.shape(a)) for a in noise]
    if any(g != want for g in got):
        raise ValueError(f"apply_policy: noise must be (S, B, K) = {want} each, got {got}")


def _stage_outputs(x, magnitudes, u, ops):
    return [apply_operation(op, x, magnitudes[k], u[:, k]) for k, op in enumerate(ops)]


def _hard_policy(x, logits, prob_logits, magnitude_logits, noise: PolicyNoise,
                 ops: Sequence[str] = OPERATIONS):
    """The sampled policy: per image and stage the Gumbel-max operation, applied when its
    logistic gate is open; only those operations are computed."""
    x = check_images("apply_policy.hard", x)
    _check_policy(logits, prob_logits, magnitude_logits, noise, ops, x)
    mags = sigmoid(magnitude_logits)
    rows = np.arange(x.shape[0])
    for s in range(logits.shape[0]):
        choice = np.argmax(_concrete(logits[s]) + noise.gumbel[s], axis=1)  # (B,)
        gate = (_concrete(prob_logits[s]) + noise.logistic[s]) > 0  # (B, K)
        applied = gate[rows, choice]
        out = x
        for k, op in enumerate(ops):
            idx = np.flatnonzero((choice == k) & applied)
            if idx.size == 0:
                continue
            y = apply_operation(op, x[idx], mags[s, k], noise.u[s, idx, k])
            put = np.zeros((x.shape[0], idx.size), dtype=np.dtype(x.dtype))  # scatter rows
            put[idx, np.arange(idx.size)] = 1.0
            mask = put.sum(axis=1).reshape(-1, 1, 1, 1)
            out = out * (1.0 - mask) + dnp.tensordot(put, y, axes=1)
        x = out
    return x


def _concrete(a) -> np.ndarray:
    return a.concrete() if isinstance(a, Tracer) else np.asarray(a)


@relaxation(hard=_hard_policy)
def apply_policy(
    x: Array,
    logits: Array,
    prob_logits: Array,
    magnitude_logits: Array,
    noise: PolicyNoise,
    ops: Sequence[str] = OPERATIONS,
    temperature: float | Array = 0.5,
) -> Array:
    """The relaxed policy (see the module text) on images ``x`` with ``noise`` from
    :func:`draw_noise`; differentiable in ``x``, the three ``(S, K)`` logit arrays and
    ``temperature``. ``apply_policy.hard(...)``: the exact sampled policy on the same noise.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((4, 1, 8, 8))
    >>> z = np.zeros((2, len(OPERATIONS)))
    >>> noise = draw_noise(0, 2, 4, len(OPERATIONS))
    >>> apply_policy(x, z, z, z, noise).shape
    (4, 1, 8, 8)
    """
    x = check_images("apply_policy", x)
    _check_policy(logits, prob_logits, magnitude_logits, noise, ops, x)
    mags = sigmoid(magnitude_logits)
    for s in range(logits.shape[0]):
        c = softmax(logits[s] + noise.gumbel[s], temperature)  # (B, K)
        g = soft_step(prob_logits[s] + noise.logistic[s], temperature)  # (B, K)
        w = cast_like(c * g, x)  # weight of each operation's output
        outs = dnp.stack(_stage_outputs(x, mags[s], noise.u[s], ops), axis=1)  # (B, K, C, H, W)
        keep = 1.0 - dnp.sum(w, axis=1)  # (B,): weight of the unchanged image
        x = dnp.einsum("bk,bkchw->bchw", w, outs) + dnp.reshape(keep, (-1, 1, 1, 1)) * x
    return x


def mmd(a: Array, b: Array, bandwidths: Sequence[float] = (2.0, 4.0, 8.0)) -> Array:
    """The squared maximum mean discrepancy between samples ``a`` ``(n, ...)`` and ``b``
    ``(m, ...)`` (flattened per sample) with a sum of Gaussian kernels
    ``exp(-|u - v|^2 / (2 h^2))`` over ``bandwidths``: the biased (V-statistic) estimate,
    ``>= 0`` and 0 when the two samples are equal. Differentiable in both.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 4))
    >>> float(mmd(x, x)), bool(mmd(x, x + 1.0) > 0.1)
    (0.0, True)
    """
    if len(a.shape) < 1 or len(b.shape) < 1 or tuple(a.shape[1:]) != tuple(b.shape[1:]):
        raise ValueError(
            f"mmd: expected two samples (n, ...) and (m, ...) with equal trailing shapes, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    a = dnp.reshape(a, (a.shape[0], -1))
    b = dnp.reshape(b, (b.shape[0], -1))

    def kernel_mean(u, v):
        d2 = dnp.sum(u * u, axis=1)[:, None] + dnp.sum(v * v, axis=1)[None, :] - 2.0 * (u @ v.T)
        d2 = dnp.maximum(d2, 0.0)  # rounding can make a distance slightly negative
        total = 0.0
        for h in bandwidths:
            total = total + dnp.mean(dnp.exp(-d2 / (2.0 * h * h)))
        return total

    return kernel_mean(a, a) + kernel_mean(b, b) - 2.0 * kernel_mean(a, b)
