"""The differentiable layer: a learned factorised entropy model, quantisation proxies, the
rate-distortion loss.

**Factorised density** (Balle et al. 2018, appendix 6.1; CompressAI's ``EntropyBottleneck``).
Each latent channel ``c`` has its own univariate distribution whose CDF is a small monotone
network squashed by a sigmoid::

    CDF_c(y) = sigmoid(f_K(... f_1(y)))       f_k(x) = g_k(H_k x + b_k)
    H_k = softplus(matrix_k) >= 0             g_k(x) = x + tanh(factor_k) * tanh(x)

``H_k`` has non-negative entries and ``g_k`` has derivative ``1 + tanh(a) (1 - tanh(x)^2)
>= 0`` because ``tanh(a) >= -1``, so every layer is non-decreasing in its input and the CDF
is monotone for any parameter values (no constraint to project, no penalty to tune).
:func:`factorized_logits` is the network before the sigmoid, ``params`` the tuple
``(matrices, biases, factors)`` with shapes ``(C, f_k+1, f_k)``, ``(C, f_k+1, 1)``,
``(C, f_k+1, 1)`` (``f_0 = f_K = 1``).

**Likelihood of an integer bin.** A symbol ``y`` stands for the interval
``[y - 1/2, y + 1/2]``, so its probability is ``CDF(y + 1/2) - CDF(y - 1/2)``
(:func:`factorized_likelihood`). Two tricks make that usable:

- *the sign trick*: far in the right tail both CDF values are ``1 - tiny`` and their
  difference cancels to 0 (float32 keeps 7 digits). With ``s = -sign(l + u)`` of the two
  logits, ``s (sigmoid(s u) - sigmoid(s l))`` is the same number computed from the small
  side: the upper tail as ``sigmoid(-l) - sigmoid(-u)``, no cancellation.
- *the lower bound*: the likelihood is clamped to ``>= bound`` (1e-9) so ``-log2`` stays
  finite (30 bits at most per symbol), with :func:`diffsys.relax.lower_bound`, whose
  gradient still passes below the bound when it would raise the likelihood; a plain clamp
  would cut the gradient of exactly the symbols that cost most.

**Quantisation proxies** (:func:`quantize_latents`): training sees ``y + u``,
``u ~ U(-1/2, 1/2)`` (``"noise"``: the density of ``y + u`` is the bin probability above, so
the rate estimate is unbiased), or ``round(y - m) + m`` with a straight-through derivative
(``"ste"``: the decoder sees the values it will see at inference), or noise for the rate and
straight-through for the reconstruction (``"mixed"``, the common recipe). Inference rounds
(``"round"``). ``m`` is each channel's median, so bins are centred on the mode region.

**Rate-distortion loss** (:func:`rate_distortion_loss`): ``bits/pixel + lmbda * 255^2 *
MSE`` on images in ``[0, 1]`` (CompressAI's convention, ``lmbda`` ~ 1e-3 .. 1e-1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core.custom import stop_gradient
from ...core.pytree import tree_map
from ...core.tracer import concrete
from ...numpy import log2, matmul, mean, reshape, rint, sum, tanh, transpose, where
from ...relax import lower_bound, noisy_quantize, sigmoid, softplus, ste_round

__all__ = [
    "QUANTIZERS",
    "factorized_cdf",
    "factorized_likelihood",
    "factorized_logits",
    "factorized_quantile",
    "quantize_latents",
    "rate_bits",
    "rate_distortion_loss",
]

Array = Any

#: The quantisation modes of :func:`quantize_latents`: ``(latents, reconstruction input)``.
QUANTIZERS = ("noise", "ste", "mixed", "round")


def _check_params(params, y, op: str) -> int:
    matrices, biases, factors = params
    if not (len(matrices) == len(biases) == len(factors) + 1 and matrices):
        raise ValueError(
            f"{op}: params must be (matrices, biases, factors) with len(factors) = "
            f"len(matrices) - 1 >= 0, got {len(matrices)}, {len(biases)}, {len(factors)}"
        )
    channels = matrices[0].shape[0]
    shape = tuple(y.shape)
    if len(shape) != 2 or shape[1] != channels:
        raise ValueError(
            f"{op}: latents must have shape (N, C) with C = {channels} channels (one density "
            f"per channel), got shape {shape}; reshape with y.reshape(-1, {channels})"
        )
    if not np.issubdtype(np.dtype(y.dtype), np.floating):
        raise TypeError(
            f"{op}: latents must be floating point, got dtype {y.dtype}; cast integer symbols "
            f"with y.astype(np.float64)"
        )
    return channels


def factorized_logits(params, y: Array) -> Array:
    """The monotone network ``f_K(... f_1(y))`` per channel: ``CDF = sigmoid(logits)``.

    ``y`` has shape ``(N, C)``; so has the result.

    >>> import numpy as np
    >>> from diffsys.systems.compress import FactorizedPrior
    >>> prior = FactorizedPrior(2, key=0)
    >>> l = factorized_logits(prior.params, np.array([[-1.0, 0.0], [1.0, 2.0]]))
    >>> bool(np.all(l[1] > l[0]))
    True
    """
    matrices, biases, factors = params
    channels = _check_params(params, y, "factorized_logits")
    n = y.shape[0]
    x = reshape(transpose(y), (channels, 1, n))
    last = len(matrices) - 1
    for k in range(len(matrices)):
        x = matmul(softplus(matrices[k]), x) + biases[k]
        if k < last:
            x = x + tanh(factors[k]) * tanh(x)
    return transpose(reshape(x, (channels, n)))


def factorized_cdf(params, y: Array) -> Array:
    """``CDF_c(y)`` per channel, shape ``(N, C)``: monotone in ``y``, in ``(0, 1)``."""
    return sigmoid(factorized_logits(params, y))


def factorized_likelihood(params, y: Array, *, bound: float | None = 1e-9) -> Array:
    """``CDF(y + 1/2) - CDF(y - 1/2)`` per element (sign trick; ``>= bound`` with a
    pass-through gradient; ``bound=None`` for the raw value).

    >>> import numpy as np
    >>> from diffsys.systems.compress import FactorizedPrior
    >>> prior = FactorizedPrior(1, key=0)
    >>> grid = np.arange(-400.0, 401.0)[:, None]
    >>> round(float(factorized_likelihood(prior.params, grid).sum()), 6)
    1.0
    """
    _check_params(params, y, "factorized_likelihood")
    lower = factorized_logits(params, y - 0.5)
    upper = factorized_logits(params, y + 0.5)
    s = stop_gradient(where(lower + upper > 0, -1.0, 1.0))
    lik = s * (sigmoid(s * upper) - sigmoid(s * lower))
    return lik if bound is None else lower_bound(lik, bound)


def rate_bits(likelihoods: Array) -> Array:
    """``-sum(log2(likelihoods))``: the ideal code length in bits."""
    return -sum(log2(likelihoods))


def quantize_latents(
    y: Array, medians: Array, mode: str, *, rng=None
) -> tuple[Array, Array]:
    """``(for the rate, for the decoder)``: the quantised latents seen by the entropy model and
    by the synthesis transform, under ``mode`` (one of :data:`QUANTIZERS`).

    >>> import numpy as np
    >>> y = np.array([[0.3, 1.6]])
    >>> quantize_latents(y, np.zeros(2), "round")[0]
    array([[0., 2.]])
    """
    if mode not in QUANTIZERS:
        raise ValueError(f"quantize_latents: mode must be one of {QUANTIZERS}, got {mode!r}")
    if mode in ("noise", "mixed") and rng is None:
        raise ValueError(
            f"quantize_latents: mode {mode!r} draws uniform noise and needs rng= (an int seed "
            "or a numpy Generator)"
        )
    if mode == "round":
        hard = rint(y - medians) + medians
        return hard, hard
    if mode == "noise":
        noisy = noisy_quantize(y, 1.0, rng=rng)
        return noisy, noisy
    rounded = ste_round(y - medians) + medians
    if mode == "ste":
        return rounded, rounded
    return noisy_quantize(y, 1.0, rng=rng), rounded


def rate_distortion_loss(
    x: Array, x_hat: Array, likelihoods: Array, lmbda: float, *, pixels: int | None = None
) -> tuple[Array, Array, Array]:
    """``(loss, bits per pixel, MSE)`` with ``loss = bpp + lmbda * 255^2 * MSE`` on images in
    ``[0, 1]``; ``pixels`` defaults to ``x.size``.

    >>> import numpy as np
    >>> x = np.full((2, 4), 0.5)
    >>> loss, bpp, mse = rate_distortion_loss(x, x + 0.01, np.full((2, 1), 0.5), 0.01)
    >>> float(bpp), round(float(mse), 6), round(float(loss), 4)
    (0.25, 0.0001, 0.315)
    """
    if tuple(x.shape) != tuple(x_hat.shape):
        raise ValueError(
            f"rate_distortion_loss: x and x_hat must have the same shape, got "
            f"{tuple(x.shape)} and {tuple(x_hat.shape)}"
        )
    n = int(np.prod(x.shape)) if pixels is None else int(pixels)
    bpp = rate_bits(likelihoods) / n
    mse = mean((x - x_hat) ** 2)
    return bpp + lmbda * 255.0**2 * mse, bpp, mse


def factorized_quantile(params, p: float, *, rounds: int = 6, points: int = 32) -> np.ndarray:
    """Per channel, the ``y`` with ``CDF_c(y) = p`` (on concrete values: no derivative).

    CompressAI learns these quantiles with an auxiliary loss; the CDF here is monotone by
    construction, so a search finds them directly: double a bracket until it holds the
    target, then ``rounds`` of ``points``-ary search (each round one batched evaluation of
    the network, shrinking the bracket ``points - 1`` fold: 6 rounds of 32, ~1e-9 of it).

    >>> import numpy as np
    >>> from diffsys.systems.compress import FactorizedPrior
    >>> prior = FactorizedPrior(3, key=0)
    >>> m = factorized_quantile(prior.params, 0.5)
    >>> np.round(factorized_cdf(prior.params, m[None, :]), 6)
    array([[0.5, 0.5, 0.5]])
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"factorized_quantile: p must be in (0, 1), got {p}")
    params = tree_map(lambda a: np.asarray(concrete(a), dtype=np.float64), params)
    channels = params[0][0].shape[0]
    target = np.log(p) - np.log1p(-p)
    logits = lambda y: np.asarray(factorized_logits(params, y))
    lo, hi = np.full(channels, -1.0), np.full(channels, 1.0)
    for _ in range(200):  # widen until the target is bracketed (the CDF spans (0, 1))
        ends = logits(np.stack([lo, hi]))
        below, above = ends[0] > target, ends[1] < target
        if not (below.any() or above.any()):
            break
        lo = np.where(below, 2.0 * lo, lo)
        hi = np.where(above, 2.0 * hi, hi)
    frac = np.linspace(0.0, 1.0, points + 1)[1:-1, None]
    cols = np.arange(channels)
    for _ in range(rounds):
        grid = lo + (hi - lo) * frac  # (points - 1, C), increasing down each column
        n_below = np.sum(logits(grid) < target, axis=0)
        new_lo = np.where(n_below > 0, grid[np.maximum(n_below - 1, 0), cols], lo)
        hi = np.where(n_below < points - 1, grid[np.minimum(n_below, points - 2), cols], hi)
        lo = new_lo
    return 0.5 * (lo + hi)
