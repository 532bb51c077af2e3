"""``Supernet`` (every candidate on every edge, mixed) and ``DiscreteNet`` (one operation
per edge): small convolutional networks on ``(B, C, H, W)`` images, e.g. 8x8 digits.

Both share the layout: a stem ``conv3x3`` + ReLU to ``channels`` maps (node 0), one cell
(see :mod:`.exact`), the sum of the cell's intermediate nodes, a 2x2 average pool and a
linear head to the class logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ... import numpy as dnp
from ...nn import Conv2d, Linear, avg_pool, relu
from ...nn.module import Module
from ..data._common import check_images
from .exact import Genotype, _check_candidates, discretise, edge_list
from .ops import CANDIDATES, CONV_SHAPES, apply_candidate, mixed_op, mixing_weights

__all__ = ["DiscreteNet", "Supernet"]


def _convs(ops: Sequence[str], channels: int, rng: np.random.Generator, dtype) -> dict:
    out = {}
    for op in ops:
        if op in CONV_SHAPES:
            k, d = CONV_SHAPES[op]
            out[op] = Conv2d(channels, channels, k, padding=d * (k // 2), dilation=d,
                             key=int(rng.integers(2**31)), dtype=dtype)
    return out


def _stem_and_head(channels, in_channels, image, classes, rng, dtype):
    stem = Conv2d(in_channels, channels, 3, padding=1, key=int(rng.integers(2**31)), dtype=dtype)
    head = Linear(channels * (image // 2) ** 2, classes, key=int(rng.integers(2**31)), dtype=dtype)
    return stem, head


def _run_cell(stem, head, nodes: int, x, edge_fn):
    """Stem, then node ``j`` = sum of ``edge_fn(e, node_i)`` over its edges, then readout."""
    states = [relu(stem(x))]
    e = 0
    for j in range(1, nodes + 1):
        total = None
        for i in range(j):
            y = edge_fn(e, states[i])
            total = y if total is None else total + y
            e += 1
        states.append(total)
    out = states[1]
    for s in states[2:]:
        out = out + s
    pooled = avg_pool(out, 2)
    return head(dnp.reshape(pooled, (pooled.shape[0], -1)))


class Supernet(Module):
    """The DARTS supernet: every edge mixes all ``candidates`` with ``softmax(alpha[e] / T)``.

    ``alpha`` ``(edges, K)``: the architecture logits (start at 0: a uniform mixture);
    ``temperature``: the softmax temperature (static; change it with ``replace``).
    ``relaxed(x)`` (also ``__call__``): the mixture on every edge (:func:`.ops.mixed_op`);
    ``hard(x)``: only the argmax operation on each edge (``mixed_op.hard``), the network
    :meth:`discretise` returns with inherited weights. Split weights from ``alpha`` with
    ``nn.partition(net, frozen="alpha")`` for bilevel training.

    >>> import numpy as np
    >>> net = Supernet(channels=4, nodes=2, key=0)
    >>> x = np.random.default_rng(0).random((3, 1, 8, 8))
    >>> net(x).shape, net.alpha.shape, net.hard(x).shape
    ((3, 10), (3, 7), (3, 10))
    """

    stem: Conv2d
    convs: list
    head: Linear
    alpha: np.ndarray
    candidates: tuple
    nodes: int
    channels: int
    temperature: float

    def __init__(
        self,
        channels: int = 8,
        nodes: int = 3,
        candidates: Sequence[str] = CANDIDATES,
        *,
        classes: int = 10,
        in_channels: int = 1,
        image: int = 8,
        temperature: float = 1.0,
        key: np.random.Generator | int,
        dtype=np.float64,
    ) -> None:
        self.candidates = _check_candidates("Supernet", candidates)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"Supernet: channels must be an integer >= 1, got {channels!r}")
        if not float(temperature) > 0:
            raise ValueError(f"Supernet: temperature must be > 0, got {temperature!r}")
        rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)
        n_edges = len(edge_list(nodes))
        self.stem, self.head = _stem_and_head(channels, in_channels, image, classes, rng, dtype)
        self.convs = [_convs(self.candidates, channels, rng, dtype) for _ in range(n_edges)]
        self.alpha = np.zeros((n_edges, len(self.candidates)), dtype=dtype)
        self.nodes = int(nodes)
        self.channels = int(channels)
        self.temperature = float(temperature)

    def _describe(self) -> str:
        return f"Supernet(channels={self.channels}, nodes={self.nodes}, K={len(self.candidates)})"

    def _candidate(self, e: int, op: str, x):
        conv = self.convs[e].get(op)
        if conv is None:
            return apply_candidate(op, x)
        return apply_candidate(op, x, conv.weight, conv.bias)

    def _mixed_edge(self, e, x):
        outs = dnp.stack([self._candidate(e, op, x) for op in self.candidates])
        return mixed_op(outs, self.alpha[e], self.temperature)

    def relaxed(self, x, *, key=None):
        """Logits of the supernet with every edge mixed at ``self.temperature``."""
        x = check_images(self._describe(), x)
        return _run_cell(self.stem, self.head, self.nodes, x, self._mixed_edge)

    __call__ = relaxed

    def hard(self, x, *, key=None):
        """Logits with only each edge's argmax operation (the discretised network)."""
        x = check_images(self._describe(), x)
        ops = self.genotype().ops
        return _run_cell(self.stem, self.head, self.nodes, x,
                         lambda e, h: self._candidate(e, ops[e], h))

    def weights(self):
        """``softmax(alpha / T)``: each edge's mixing weights ``(edges, K)``."""
        return mixing_weights(self.alpha, self.temperature)

    def genotype(self, exclude: Sequence[str] = ()) -> Genotype:
        """The discretised cell: each edge's argmax candidate (see :func:`.exact.discretise`)."""
        return discretise(np.asarray(self.alpha), self.candidates, nodes=self.nodes,
                          exclude=exclude)

    def discretise(self, exclude: Sequence[str] = ()) -> DiscreteNet:
        """The discrete network of :meth:`genotype`, inheriting this supernet's weights."""
        g = self.genotype(exclude)
        convs = [{op: c[op]} if op in c else {} for op, c in zip(g.ops, self.convs, strict=True)]
        fresh = DiscreteNet(g, self.channels, key=0)  # the structure; its weights are replaced
        return fresh.replace(stem=self.stem, convs=convs, head=self.head)


class DiscreteNet(Module):
    """The network of one :class:`~.exact.Genotype`: one operation per edge, fresh weights
    from ``key`` (or inherited, from :meth:`Supernet.discretise`).

    >>> import numpy as np
    >>> from diffsys.systems.nas import Genotype
    >>> net = DiscreteNet(Genotype(("conv3x3", "skip", "zero"), nodes=2), channels=4, key=0)
    >>> net(np.zeros((2, 1, 8, 8))).shape
    (2, 10)
    """

    stem: Conv2d
    convs: list
    head: Linear
    ops: tuple
    nodes: int
    channels: int

    def __init__(
        self,
        genotype: Genotype,
        channels: int = 8,
        *,
        classes: int = 10,
        in_channels: int = 1,
        image: int = 8,
        key: np.random.Generator | int,
        dtype=np.float64,
    ) -> None:
        if not isinstance(genotype, Genotype):
            raise TypeError(f"DiscreteNet: expected a Genotype, got {type(genotype).__name__}")
        rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)
        self.stem, self.head = _stem_and_head(channels, in_channels, image, classes, rng, dtype)
        self.convs = [_convs((op,), channels, rng, dtype) for op in genotype.ops]
        self.ops = genotype.ops
        self.nodes = genotype.nodes
        self.channels = int(channels)

    @property
    def genotype(self) -> Genotype:
        return Genotype(self.ops, self.nodes)

    def _describe(self) -> str:
        return f"DiscreteNet({self.genotype})"

    def _edge(self, e, x):
        conv = self.convs[e].get(self.ops[e])
        if conv is None:
            return apply_candidate(self.ops[e], x)
        return apply_candidate(self.ops[e], x, conv.weight, conv.bias)

    def __call__(self, x, *, key=None):
        x = check_images(self._describe(), x)
        return _run_cell(self.stem, self.head, self.nodes, x, self._edge)
