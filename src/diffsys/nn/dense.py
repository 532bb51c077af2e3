"""Dense layers: ``Linear``, ``Identity``, ``Flatten``, ``Embedding``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .. import numpy as dnp
from ..core.tracer import Tracer
from . import init
from ._linear_op import linear
from .module import Module

__all__ = ["Embedding", "Flatten", "Identity", "Linear"]


def _shape_of(x) -> tuple[int, ...]:
    return tuple(dnp.shape(x))


class Linear(Module):
    """``y = x @ weight.T + bias``, ``weight`` of shape ``(out_features, in_features)``.

    Default initialization as in PyTorch: both uniform on ``±1/sqrt(in_features)``.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> layer = nn.Linear(3, 2, key=0)
    >>> layer(np.ones((5, 3))).shape
    (5, 2)
    """

    weight: np.ndarray
    bias: np.ndarray | None
    in_features: int
    out_features: int

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        key: np.random.Generator | int,
        dtype=np.float64,
        weight_init: Callable | None = None,
        bias_init: Callable | None = None,
    ) -> None:
        rng = init.as_generator(key, "Linear")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight, self.bias = init.layer_parameters(
            rng,
            (self.out_features, self.in_features),
            self.in_features,
            self.out_features if bias else None,
            dtype,
            weight_init,
            bias_init,
        )

    def __call__(self, x, *, key=None):
        if _shape_of(x)[-1:] != (self.in_features,):
            raise ValueError(
                f"Linear({self.in_features} -> {self.out_features}): expected an input of "
                f"shape (..., {self.in_features}), got {_shape_of(x)}"
            )
        return linear(x, self.weight, self.bias)


class Identity(Module):
    """Returns its input."""

    def __call__(self, x, *, key=None):
        return x


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` (default: all but the first).

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.Flatten()(np.ones((2, 3, 4))).shape
    (2, 12)
    """

    start_dim: int
    end_dim: int

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim = start_dim
        self.end_dim = end_dim

    def __call__(self, x, *, key=None):
        shape = _shape_of(x)
        nd = len(shape)
        s, e = self.start_dim % nd, self.end_dim % nd
        if s > e:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}): empty range for "
                f"an input of shape {shape}"
            )
        new = shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :]
        return dnp.reshape(x, new)


class Embedding(Module):
    """A lookup table: integer indices of any shape -> vectors of size ``embedding_dim``.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.Embedding(10, 4, key=0)(np.array([[1, 2, 3]])).shape
    (1, 3, 4)
    """

    weight: np.ndarray
    num_embeddings: int
    embedding_dim: int

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        key: np.random.Generator | int,
        dtype=np.float64,
        weight_init: Callable | None = None,
    ) -> None:
        rng = init.as_generator(key, "Embedding")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        shape = (self.num_embeddings, self.embedding_dim)
        make = init.normal if weight_init is None else weight_init
        self.weight = np.asarray(make(rng, shape, dtype))

    def __call__(self, indices, *, key=None):
        if isinstance(indices, Tracer):
            # A traced index (a graph input, a vmapped batch) stays an operand of the gather,
            # so a traced graph works for any index; out-of-range raises when it runs.
            self._check_index_dtype(np.dtype(indices.dtype))
            return dnp.take(self.weight, indices, axis=0)
        idx = np.asarray(indices)
        self._check_index_dtype(idx.dtype)
        if idx.size and (idx.min() < -self.num_embeddings or idx.max() >= self.num_embeddings):
            raise IndexError(
                f"Embedding({self.num_embeddings}, {self.embedding_dim}): index out of range "
                f"[{idx.min()}, {idx.max()}] for {self.num_embeddings} embeddings"
            )
        return self.weight[idx]

    def _check_index_dtype(self, dtype: np.dtype) -> None:
        if not np.issubdtype(dtype, np.integer):
            raise TypeError(
                f"Embedding({self.num_embeddings}, {self.embedding_dim}): indices must be "
                f"integers, got dtype {dtype}"
            )
