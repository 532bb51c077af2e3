"""The differentiable side: a cost model of the stencil's run time learned from measurements,
and a relaxed choice of the tile shape optimised through it by gradient.

Cost model (log seconds) of tile ``(ti, tj)`` on an ``n x n`` grid, ``a = log(ti tj)``::

    log t = logaddexp(w0 + log(n / ti) + log(n / tj),            # per-tile overhead
                      w1 + 2 log n + w2 softplus(a - w3) + w4 log tj)  # per-element cost,
                                                                  # rising past a cache size

Relaxed choice: logits ``L`` (2, K) over the ``K`` candidate sizes of each axis;
``p = softmax(L / T)`` and the model is evaluated at the expected log sizes ``p @ log(tiles)``.
As ``T -> 0``, ``p`` is one-hot and the relaxed cost is the model's cost of ``argmax L``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import numpy as dnp
from ... import optim
from ...core import grad
from ...relax import softmax, softplus

__all__ = ["choose_tiles", "fit_cost_model", "init_cost_model", "predict_log_time", "relaxed_cost"]

Array = Any


def init_cost_model() -> np.ndarray:
    """Starting weights ``w`` of the cost model (a Python call ~10 us, an element ~1 ns,
    a 32K-element working set)."""
    return np.array([np.log(1e-5), np.log(1e-9), 0.5, np.log(32768.0), 0.0])


def predict_log_time(w: Array, log_ti: Array, log_tj: Array, n: int) -> Array:
    """The model's log run time (see the module docstring); differentiable in all inputs.

    >>> float(predict_log_time(init_cost_model(), np.log(64.0), np.log(64.0), 1024)) < 0
    True
    """
    log_n = float(np.log(n))
    overhead = w[0] + (log_n - log_ti) + (log_n - log_tj)
    work = w[1] + 2 * log_n + w[2] * softplus(log_ti + log_tj - w[3]) + w[4] * log_tj
    return dnp.logaddexp(overhead, work)


def fit_cost_model(
    tiles: np.ndarray, seconds: np.ndarray, n: int, *, steps: int = 300, w0=None
) -> np.ndarray:
    """Least squares on log times of measured tiles ``(m, 2)`` by Adam; the weights."""
    tiles = np.asarray(tiles, dtype=np.float64)
    if tiles.ndim != 2 or tiles.shape[1] != 2 or len(tiles) != len(seconds):
        raise ValueError(
            f"fit_cost_model: tiles must be (m, 2) with m = len(seconds), got {tiles.shape} "
            f"and {len(seconds)} times"
        )
    lt, target = np.log(tiles), np.log(np.asarray(seconds, dtype=np.float64))

    def loss(w):
        return dnp.mean((predict_log_time(w, lt[:, 0], lt[:, 1], n) - target) ** 2)

    w = init_cost_model() if w0 is None else np.array(w0, dtype=np.float64)
    opt = optim.adam(0.05)
    state, g_fn = opt.init(w), grad(loss)
    for _ in range(steps):
        updates, state = opt.update(g_fn(w), state, w)
        w = np.asarray(optim.apply_updates(w, updates))
    return w


def relaxed_cost(logits: Array, w: Array, tiles, n: int, temperature: float | Array = 0.5):
    """The model's log time at the expected log tile sizes under ``softmax(logits / T)``."""
    log_tiles = np.log(np.asarray(tiles, dtype=np.float64))
    p = softmax(logits, temperature)
    e = dnp.matmul(p, log_tiles)
    return predict_log_time(w, e[0], e[1], n)


def choose_tiles(
    w: Array, tiles, n: int, *, temperature: float = 0.5, steps: int = 200, seed: int = 0
) -> tuple[int, int]:
    """Minimise :func:`relaxed_cost` over the logits by Adam from small random logits; the
    hard choice ``argmax`` per axis, as indices into ``tiles``."""
    k = len(tiles)
    logits = 0.01 * np.random.default_rng(seed).normal(size=(2, k))
    opt = optim.adam(0.1)
    state = opt.init(logits)
    g_fn = grad(lambda lg: relaxed_cost(lg, w, tiles, n, temperature))
    for _ in range(steps):
        updates, state = opt.update(g_fn(logits), state, logits)
        logits = np.asarray(optim.apply_updates(logits, updates))
    i, j = np.argmax(logits, axis=1)
    return int(i), int(j)
