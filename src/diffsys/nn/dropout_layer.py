"""``Dropout``: random zeroing in training, the identity in evaluation."""

from __future__ import annotations

import numpy as np

from .. import numpy as dnp
from .init import as_generator
from .module import Module

__all__ = ["Dropout", "dropout"]


def dropout(x, p: float, key, *, who: str = "dropout"):
    """Zero each entry with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    ``key`` is a ``numpy.random.Generator`` (advanced) or an int seed.

    >>> import numpy as np
    >>> y = dropout(np.ones(1000), 0.5, key=0)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{who}: p must be in [0, 1), got {p}")
    if p == 0.0:
        return x
    if key is None:
        raise TypeError(
            f"{who}: in training mode a random key is needed: call with "
            "key=np.random.default_rng(seed) (or switch to evaluation with nn.eval_mode)"
        )
    rng = as_generator(key, who)
    dtype = getattr(x, "dtype", np.dtype(np.float64))
    draw = np.float32 if dtype == np.float32 else np.float64
    keep = rng.random(tuple(dnp.shape(x)), dtype=draw) >= p
    scale = np.asarray(1.0 / (1.0 - p), dtype=dtype)
    return x * (keep * scale)


class Dropout(Module):
    """Dropout with probability ``p``; off in evaluation mode (``nn.eval_mode``).

    >>> import numpy as np
    >>> from diffsys import nn
    >>> layer = nn.Dropout(0.5)
    >>> layer(np.ones(4), key=np.random.default_rng(0)).shape
    (4,)
    >>> nn.eval_mode(layer)(np.ones(2))
    array([1., 1.])
    """

    p: float
    training: bool

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.training = True

    def __call__(self, x, *, key=None):
        if not self.training or self.p == 0.0:
            return x
        return dropout(x, self.p, key, who=f"Dropout({self.p})")
