"""``AugmentPolicy``: a learnable augmentation policy as an ``nn.Module`` (relaxed/hard)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...nn.module import Module
from ...relax import sigmoid, softmax
from ..data._common import check_images
from .ops import LIMITS, OPERATIONS, apply_policy, draw_noise

__all__ = ["AugmentPolicy"]


def _logit(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))


class AugmentPolicy(Module):
    """``stages`` steps, each choosing one of ``ops`` per image (learnable ``logits``), applied
    with learnable probability ``sigmoid(prob_logits)`` at learnable magnitude
    ``sigmoid(magnitude_logits)`` (all ``(stages, K)``); see :func:`.ops.apply_policy`.

    - ``relaxed(x, key=...)`` (also ``__call__``): the relaxed policy on noise drawn from
      ``key`` (Gumbel-softmax choice, relaxed Bernoulli gates), differentiable in the three
      logit arrays;
    - ``hard(x)``: inference, no augmentation; ``hard(x, key=k)``: the exact sampled policy
      on the same noise as ``relaxed(x, key=k)``.

    ``probability`` and ``magnitude`` set the initial values (scalars).

    >>> import numpy as np
    >>> policy = AugmentPolicy(stages=2)
    >>> x = np.random.default_rng(0).random((3, 1, 8, 8))
    >>> policy(x, key=0).shape, bool(np.array_equal(policy.hard(x), x))
    ((3, 1, 8, 8), True)
    """

    logits: np.ndarray
    prob_logits: np.ndarray
    magnitude_logits: np.ndarray
    ops: tuple
    temperature: float

    def __init__(
        self,
        stages: int = 2,
        ops: Sequence[str] = OPERATIONS,
        *,
        probability: float = 0.5,
        magnitude: float = 0.3,
        temperature: float = 0.5,
        dtype=np.float64,
    ) -> None:
        who = "AugmentPolicy"
        ops = tuple(ops)
        bad = [op for op in ops if op not in LIMITS]
        if bad or not ops or len(set(ops)) != len(ops):
            raise ValueError(f"{who}: ops must be distinct names from {OPERATIONS}, got {ops}")
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise ValueError(f"{who}: stages must be an integer >= 1, got {stages!r}")
        for name, v in (("probability", probability), ("magnitude", magnitude)):
            if not 0.0 < float(v) < 1.0:
                raise ValueError(f"{who}: {name} must be in (0, 1), got {v!r}")
        if not float(temperature) > 0:
            raise ValueError(f"{who}: temperature must be > 0, got {temperature!r}")
        shape = (stages, len(ops))
        self.logits = np.zeros(shape, dtype=dtype)
        self.prob_logits = np.full(shape, _logit(float(probability)), dtype=dtype)
        self.magnitude_logits = np.full(shape, _logit(float(magnitude)), dtype=dtype)
        self.ops = ops
        self.temperature = float(temperature)

    @property
    def stages(self) -> int:
        return int(self.logits.shape[0])

    def _describe(self) -> str:
        return f"AugmentPolicy(stages={self.stages}, ops={len(self.ops)})"

    def noise(self, key, batch: int):
        """The :class:`~.ops.PolicyNoise` that ``relaxed(x, key=key)`` uses."""
        return draw_noise(key, self.stages, batch, len(self.ops), np.dtype(self.logits.dtype))

    def _args(self, x, key):
        return (x, self.logits, self.prob_logits, self.magnitude_logits,
                self.noise(key, int(x.shape[0])), self.ops)

    def relaxed(self, x, *, key=None):
        """The relaxed policy on noise from ``key``."""
        x = check_images(self._describe(), x)
        if key is None:
            raise TypeError(
                f"{self._describe()}: the relaxed (training) policy is random and needs a key: "
                "call with key=np.random.default_rng(seed) or an int seed; hard(x) is the "
                "deterministic inference form (no augmentation)"
            )
        return apply_policy(*self._args(x, key), temperature=self.temperature)

    __call__ = relaxed

    def hard(self, x, *, key=None):
        """No augmentation (``key=None``), or the exact sampled policy on ``key``'s noise."""
        x = check_images(self._describe(), x)
        if key is None:
            return x
        return apply_policy.hard(*self._args(x, key))

    def probabilities(self) -> np.ndarray:
        """``(stages, K)``: the probability that an image gets operation ``k`` in stage ``s``
        (chosen and applied): ``softmax(logits) * sigmoid(prob_logits)``."""
        return np.asarray(softmax(self.logits) * sigmoid(self.prob_logits))

    def magnitudes(self) -> np.ndarray:
        """``(stages, K)``: ``sigmoid(magnitude_logits)``, each in ``[0, 1]``."""
        return np.asarray(sigmoid(self.magnitude_logits))

    def table(self) -> str:
        """One line per operation: its total probability and mean magnitude over stages."""
        p, m = self.probabilities(), self.magnitudes()
        lines = [f"{'operation':12s} {'P(applied)':>10s} {'magnitude':>9s}  (per stage)"]
        for k, op in enumerate(self.ops):
            per = ", ".join(f"{p[s, k]:.2f}@{m[s, k]:.2f}" for s in range(self.stages))
            lines.append(f"{op:12s} {p[:, k].sum():10.3f} {m[:, k].mean():9.2f}  ({per})")
        return "\n".join(lines)
