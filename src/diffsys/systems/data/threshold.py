"""``Binarize``: a learnable binarization ``x > threshold``, relaxed by a sigmoid in training.

Built on :mod:`diffsys.relax`: the relaxed form is ``relax.soft_step`` of the scaled distance
to the threshold, the straight-through form ``relax.straight_through``. (It was called
``SoftThreshold``; that name, still importable with a DeprecationWarning, also meant two
other formulas elsewhere.)"""

from __future__ import annotations

import numpy as np

from ... import numpy as dnp
from ...nn.module import Module
from ...relax import soft_step, straight_through
from ._common import as_float_array, cast_like, channel_param, per_channel

__all__ = ["Binarize", "binarization_penalty"]


class Binarize(Module):
    """Binarize ``x > threshold`` with a learnable threshold and sharpness.

    - ``relaxed(x) = soft_step((x - threshold) * sharpness)`` = ``sigmoid((x - threshold) *
      sharpness)`` (also ``__call__``): smooth in ``x``, ``threshold`` and ``sharpness``; it
      tends to the hard step as the sharpness grows (``sharpness`` is ``1 / temperature``).
    - ``hard(x) = (x > threshold)`` in ``x``'s dtype: the inference operation (zero
      gradient almost everywhere).
    - ``straight_through(x)``: the hard values with the relaxed derivatives.

    ``sharpness = exp(log_sharpness)`` stays positive; with ``learn_sharpness=False`` it is a
    fixed setting, not a parameter. With ``channels=C`` there is one threshold (and sharpness)
    per channel, on axis 1 of the input; otherwise the stage is elementwise on any shape.

    >>> import numpy as np
    >>> from diffsys.systems.data import Binarize
    >>> st = Binarize(threshold=0.5, sharpness=20.0)
    >>> x = np.array([0.2, 0.5, 0.9])
    >>> st.relaxed(x).round(3), st.hard(x)
    (array([0.002, 0.5  , 1.   ]), array([0., 0., 1.]))
    """

    threshold: np.ndarray
    log_sharpness: np.ndarray | float
    channels: int | None

    def __init__(
        self,
        threshold=0.5,
        sharpness=10.0,
        *,
        channels: int | None = None,
        learn_sharpness: bool = True,
        dtype=np.float64,
    ) -> None:
        who = "Binarize"
        t = channel_param(who, threshold, channels, "threshold", np.float64)
        k = channel_param(who, sharpness, channels, "sharpness", np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"{who}: threshold must be finite, got {threshold!r}")
        if not np.all(np.isfinite(k)) or np.any(k <= 0):
            raise ValueError(f"{who}: sharpness must be positive and finite, got {sharpness!r}")
        self.threshold = t.astype(dtype)
        if learn_sharpness:
            self.log_sharpness = np.log(k).astype(dtype)
        else:
            if k.ndim:
                raise ValueError(
                    f"{who}: a fixed sharpness (learn_sharpness=False) must be one number"
                )
            self.log_sharpness = float(np.log(k))
        self.channels = None if channels is None else int(channels)

    @property
    def sharpness(self):
        """The current sharpness, ``exp(log_sharpness)``."""
        return (
            dnp.exp(self.log_sharpness)
            if not isinstance(self.log_sharpness, float)
            else (float(np.exp(self.log_sharpness)))
        )

    def _describe(self) -> str:
        ch = "" if self.channels is None else f"channels={self.channels}"
        return f"Binarize({ch})"

    def _check(self, x):
        who = self._describe()
        x = as_float_array(who, x)
        if self.channels is not None:
            shape = tuple(x.shape)
            if len(shape) < 2 or shape[1] != self.channels:
                raise ValueError(
                    f"{who}: expected {self.channels} channel(s) on axis 1 (B, C, ...), got "
                    f"shape {shape}"
                )
        return x

    def _params(self, x):
        ndim = len(x.shape)
        t = cast_like(per_channel(self.threshold, ndim), x)
        k = self.sharpness
        if not isinstance(k, float):
            k = cast_like(per_channel(k, ndim), x)
        return t, k

    def relaxed(self, x, *, key=None):
        """``soft_step((x - threshold) * sharpness)``, i.e. ``sigmoid((x - threshold) *
        sharpness)``."""
        x = self._check(x)
        t, k = self._params(x)
        return soft_step((x - t) * k)

    __call__ = relaxed

    def hard(self, x, *, key=None):
        """``(x > threshold)`` as 0/1 in ``x``'s dtype."""
        x = self._check(x)
        t, _ = self._params(x)
        return dnp.astype(dnp.greater(x, t), x.dtype)

    def straight_through(self, x, *, key=None):
        """The hard values, the relaxed derivatives (``relax.straight_through``)."""
        return straight_through(self.hard, self.relaxed)(x)


def binarization_penalty(y):
    """``mean(y (1 - y))``: zero exactly when every value of ``y`` (in ``[0, 1]``) is 0 or 1.

    A loss term on a relaxed threshold's output that pushes it towards its hard form, so the
    relaxed (training) and hard (inference) pipelines agree; ramp its weight up with a
    schedule.

    >>> import numpy as np
    >>> float(binarization_penalty(np.array([0.0, 1.0, 0.5])))
    0.08333333333333333
    """
    y = as_float_array("binarization_penalty", y)
    return dnp.mean(y * (1.0 - y))
