"""``MultiHeadAttention`` (batch first), with boolean masks and an optional causal mask."""

from __future__ import annotations

import math

import numpy as np

from .. import numpy as dnp
from .activations import softmax
from .dense import Linear
from .dropout_layer import dropout
from .module import Module

__all__ = ["MultiHeadAttention", "dot_product_attention"]


def dot_product_attention(q, k, v, mask=None, *, dropout_p: float = 0.0, key=None):
    """``softmax(q k^T / sqrt(d) + masked) v`` over the last two axes.

    ``q`` ``(..., L, d)``, ``k`` ``(..., S, d)``, ``v`` ``(..., S, dv)``; ``mask`` is boolean,
    broadcastable to ``(..., L, S)``, ``True`` where a query may attend. A query with no
    allowed key gets uniform weights (never NaN). Returns ``(output, weights)``.
    """
    d = dnp.shape(q)[-1]
    scores = dnp.matmul(q, dnp.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(d))
    if mask is not None:
        dtype = getattr(scores, "dtype", np.dtype(np.float64))
        scores = dnp.where(mask, scores, np.finfo(dtype).min)
    weights = softmax(scores, axis=-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, key, who="attention dropout")
    return dnp.matmul(weights, v), weights


class MultiHeadAttention(Module):
    """Multi-head attention over batch-first inputs ``(N, L, E)``, as in PyTorch.

    ``mask``: boolean, broadcastable to ``(N, num_heads, L, S)`` (or ``(L, S)``), ``True``
    where attention is allowed. ``padding_mask``: boolean ``(N, S)``, ``True`` for real
    (non-padding) keys. ``causal=True`` adds the lower-triangular mask.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> mha = nn.MultiHeadAttention(8, 2, key=0)
    >>> x = np.ones((3, 5, 8))
    >>> mha(x, causal=True).shape
    (3, 5, 8)
    """

    q_proj: Linear
    k_proj: Linear
    v_proj: Linear
    out_proj: Linear
    embed_dim: int
    num_heads: int
    dropout: float
    training: bool

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        *,
        key: np.random.Generator | int,
        dtype=np.float64,
    ) -> None:
        from .init import as_generator, xavier_uniform, zeros

        if embed_dim % num_heads:
            raise ValueError(
                f"MultiHeadAttention: embed_dim={embed_dim} must be divisible by "
                f"num_heads={num_heads}"
            )
        rng = as_generator(key, "MultiHeadAttention")
        kw = {"key": rng, "dtype": dtype, "weight_init": xavier_uniform, "bias_init": zeros}
        self.q_proj = Linear(embed_dim, embed_dim, bias, **kw)
        self.k_proj = Linear(kdim or embed_dim, embed_dim, bias, **kw)
        self.v_proj = Linear(vdim or embed_dim, embed_dim, bias, **kw)
        self.out_proj = Linear(embed_dim, embed_dim, bias, key=rng, dtype=dtype, bias_init=zeros)
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.training = True

    def _heads(self, x):
        n, length = dnp.shape(x)[:2]
        h = self.num_heads
        x = dnp.reshape(x, (n, length, h, self.embed_dim // h))
        return dnp.transpose(x, (0, 2, 1, 3))  # (N, H, L, d)

    def __call__(
        self,
        query,
        keys=None,
        values=None,
        *,
        mask=None,
        padding_mask=None,
        causal: bool = False,
        return_weights: bool = False,
        key=None,
    ):
        keys = query if keys is None else keys
        values = keys if values is None else values
        qs, ks, vs = (tuple(dnp.shape(a)) for a in (query, keys, values))
        if len(qs) != 3 or qs[-1] != self.embed_dim:
            raise ValueError(
                f"MultiHeadAttention(embed_dim={self.embed_dim}): query must be (N, L, "
                f"{self.embed_dim}), got {qs}"
            )
        if len(ks) != 3 or len(vs) != 3 or ks[:2] != vs[:2] or ks[0] != qs[0]:
            raise ValueError(
                f"MultiHeadAttention: keys {ks} and values {vs} must be (N, S, dim) with the "
                f"query's batch size {qs[0]}"
            )
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(keys))
        v = self._heads(self.v_proj(values))
        full = _combine_masks(mask, padding_mask, causal, qs[1], ks[1])
        p = self.dropout if self.training else 0.0
        out, weights = dot_product_attention(q, k, v, full, dropout_p=p, key=key)
        n, h, length, d = dnp.shape(out)
        out = dnp.reshape(dnp.transpose(out, (0, 2, 1, 3)), (n, length, h * d))
        out = self.out_proj(out)
        return (out, weights) if return_weights else out


def _combine_masks(mask, padding_mask, causal: bool, length: int, source: int):
    full = None
    if mask is not None:
        full = np.asarray(mask, dtype=bool)
    if padding_mask is not None:
        pm = np.asarray(padding_mask, dtype=bool)
        if pm.ndim != 2 or pm.shape[1] != source:
            raise ValueError(
                f"MultiHeadAttention: padding_mask must be (N, {source}), got {pm.shape}"
            )
        pm = pm[:, None, None, :]
        full = pm if full is None else full & pm
    if causal:
        if length != source:
            raise ValueError(
                f"MultiHeadAttention: causal=True needs as many queries as keys, got "
                f"{length} and {source}"
            )
        tri = np.tril(np.ones((length, source), dtype=bool))
        full = tri if full is None else full & tri
    return full
