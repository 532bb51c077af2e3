"""Soft quantization for learned compression, and the gap between training proxies and rounding.

Rounding ``q = step * round(x / step)`` has zero derivative almost everywhere. Training uses a
proxy instead:

- :func:`noisy_quantize` (Balle et al. 2017): ``x + step * u``, ``u ~ Uniform(-1/2, 1/2)``:
  additive uniform noise, the usual proxy for the rate term (its density is the quantized
  density convolved with a box). Derivative 1 in ``x``, ``u`` in ``step``.
- :func:`~diffsys.relax.quantize`: straight-through rounding (exact values, identity
  derivative inside the range, LSQ gradient for the step), the usual proxy for distortion.
- :data:`soft_round` (Agustsson & Theis 2020): a smooth rounding with a temperature, which
  tends to ``round`` as ``temperature -> 0`` (a :class:`~diffsys.relax.Relaxation`).

:func:`quantization_gap` measures how far each proxy is from hard rounding on given data
(and, with a loss, how far the loss is), which is the train/inference mismatch a pipeline
reports. For uniform noise the expected squared gap to hard rounding is about ``step^2 / 6``
(rounding error and noise, each of variance ``step^2 / 12``); for straight-through it is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..numpy import floor, tanh
from .sampling import RNG, as_generator
from .smooth import _dtype, relaxation
from .straight_through import quantize

Array = Any


def noisy_quantize(x: Array, step: float | Array = 1.0, *, rng: RNG) -> Array:
    """``x + step * u`` with ``u ~ Uniform(-1/2, 1/2)``: the additive-noise proxy of rounding.

    >>> import numpy as np
    >>> from diffsys.relax import noisy_quantize
    >>> y = noisy_quantize(np.zeros(1000), 0.5, rng=0)
    >>> bool(np.all(np.abs(y) <= 0.25)), round(float(y.var() * 12 / 0.25), 1)
    (True, 1.0)
    """
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    u = as_generator(rng, "noisy_quantize").uniform(-0.5, 0.5, size=shape).astype(_dtype(x))
    return x + step * u


def _hard_round(x):
    from ..numpy import rint

    return rint(x)


@relaxation(hard=_hard_round)
def soft_round(x: Array, temperature: float | Array = 0.5) -> Array:
    """Smooth rounding (Agustsson & Theis 2020), ``alpha = 1 / temperature``::

        floor(x) + 1/2 + tanh(alpha * r) / (2 tanh(alpha / 2)),   r = x - floor(x) - 1/2

    Continuous and increasing; tends to ``round(x)`` as ``temperature -> 0`` and to ``x`` as
    ``temperature -> inf``. Its derivative is smooth between integers.

    >>> import numpy as np
    >>> from diffsys.relax import soft_round
    >>> soft_round(np.array([0.2, 0.7, 1.5]), temperature=0.01).round(6)
    array([0. , 1. , 1.5])
    """
    alpha = 1.0 / temperature
    base = floor(x)
    r = x - base - 0.5
    return base + 0.5 + tanh(alpha * r) / (2.0 * tanh(alpha / 2.0))


@dataclass(frozen=True)
class QuantizationGap:
    """How far the training proxies of rounding are from hard rounding on some data.

    ``noise_mse`` / ``noise_max``: mean squared / largest ``|noisy - hard|`` (over the draws);
    ``ste_max``: largest ``|straight-through - hard|`` (0 up to float rounding);
    ``loss_hard``, ``loss_noisy`` (mean over the draws), ``loss_ste``: a loss at each
    (when a loss is given, else NaN); ``loss_gap = loss_noisy - loss_hard``.
    """

    step: float
    noise_mse: float
    noise_max: float
    ste_max: float
    loss_hard: float
    loss_noisy: float
    loss_ste: float
    loss_gap: float
    n_draws: int

    def summary(self) -> str:
        text = (
            f"step {self.step:g}: noisy proxy vs rounding: MSE {self.noise_mse:.4g} "
            f"(theory ~ step^2/6 = {self.step**2 / 6:.4g}), max {self.noise_max:.4g}; "
            f"straight-through vs rounding: max {self.ste_max:.2g}"
        )
        if not np.isnan(self.loss_gap):
            text += (
                f"; loss: hard {self.loss_hard:.6g}, noisy {self.loss_noisy:.6g} "
                f"(gap {self.loss_gap:+.4g}), straight-through {self.loss_ste:.6g}"
            )
        return text


def quantization_gap(
    x: Array,
    step: float = 1.0,
    *,
    rng: RNG,
    loss: Callable[[np.ndarray], float] | None = None,
    n_draws: int = 16,
) -> QuantizationGap:
    """Measure the noisy and straight-through proxies against hard rounding on ``x``.

    >>> import numpy as np
    >>> from diffsys.relax import quantization_gap
    >>> rep = quantization_gap(np.linspace(-3, 3, 10001), 0.5, rng=0)
    >>> round(rep.noise_mse / (0.5**2 / 6), 1), rep.ste_max
    (1.0, 0.0)
    """
    x = np.asarray(x, dtype=np.float64)
    gen = as_generator(rng, "quantization_gap")
    hard = step * np.rint(x / step)
    ste = np.asarray(quantize(x, step))
    noisy = np.stack([noisy_quantize(x, step, rng=gen) for _ in range(int(n_draws))])
    diff = noisy - hard
    nan = float("nan")
    if loss is None:
        l_hard = l_noisy = l_ste = nan
    else:
        l_hard = float(loss(hard))
        l_noisy = float(np.mean([loss(n) for n in noisy]))
        l_ste = float(loss(ste))
    return QuantizationGap(
        step=float(step),
        noise_mse=float(np.mean(diff**2)),
        noise_max=float(np.max(np.abs(diff))) if diff.size else 0.0,
        ste_max=float(np.max(np.abs(ste - hard))) if x.size else 0.0,
        loss_hard=l_hard,
        loss_noisy=l_noisy,
        loss_ste=l_ste,
        loss_gap=l_noisy - l_hard if loss is not None else nan,
        n_draws=int(n_draws),
    )
