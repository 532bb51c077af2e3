"""Bilevel architecture search (DARTS) and plain training of the networks it compares.

:func:`search` alternates, per step, an architecture update of ``alpha`` on a validation
batch (the hypergradient of :func:`diffsys.optim.unrolled_hypergradient`: first order,
finite-difference second order, or exact) and a weight update on a training batch.
:func:`train` trains any network (a :class:`~.modules.DiscreteNet`) for a fixed number of
steps; :func:`accuracy` and :func:`mean_loss` evaluate in batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import nn, optim
from ...core.transforms import value_and_grad
from ...train.data import endless_batches
from .exact import Genotype
from .modules import Supernet

__all__ = ["SearchResult", "accuracy", "mean_loss", "search", "train"]


@dataclass
class SearchResult:
    """``net``: the searched supernet; ``genotype``: its discretised cell; ``history``:
    per step ``train_loss``, ``val_loss`` and the mixing weights every ``record_every``
    steps (``weights``: a list of ``(edges, K)`` arrays)."""

    net: Supernet
    genotype: Genotype
    history: dict = field(default_factory=dict)


def _ce(net, x, y):
    return nn.cross_entropy(net(x), y)


def search(
    net: Supernet,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    *,
    steps: int,
    batch: int = 64,
    lr_weights: float = 3e-3,
    lr_arch: float = 3e-2,
    method: str = "first_order",
    unrolled_lr: float | None = None,
    seed: int = 0,
    record_every: int = 10,
    warmup: int = 0,
) -> SearchResult:
    """DARTS on ``net``: ``alpha`` by Adam (``lr_arch``) on the validation loss's
    hypergradient (``method``, inner step ``unrolled_lr``, by default ``lr_weights``),
    the weights by Adam (``lr_weights``) on the training loss; ``steps`` rounds of one each.
    The first ``warmup`` rounds update only the weights (with random weights the architecture
    gradient mostly rewards edges that silence the untrained operations, e.g. ``zero``).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((40, 1, 8, 8)), rng.integers(0, 10, 40)
    >>> res = search(Supernet(4, nodes=1, key=0), (x, y), (x, y), steps=2, batch=8)
    >>> len(res.history["val_loss"]), res.genotype.nodes
    (2, 1)
    """
    if not isinstance(net, Supernet):
        raise TypeError(f"search: expected a Supernet, got {type(net).__name__}")
    (xt, yt), (xv, yv) = train_data, val_data
    weights, arch = nn.partition(net, frozen="alpha")
    arch, _ = nn.partition(arch)
    w_opt, a_opt = optim.adam(lr_weights), optim.adam(lr_arch)
    w_state, a_state = w_opt.init(weights), a_opt.init(arch)
    xi = lr_weights if unrolled_lr is None else float(unrolled_lr)
    tb = endless_batches(len(yt), batch, seed=seed)
    vb = endless_batches(len(yv), batch, seed=seed + 1)
    history = {"train_loss": [], "val_loss": [], "weights": [], "method": method}
    for step in range(steps):
        it, iv = next(tb), next(vb)
        train_loss = lambda w, a, it=it: _ce(nn.combine(w, a), xt[it], yt[it])  # noqa: E731
        val_loss = lambda w, a, iv=iv: _ce(nn.combine(w, a), xv[iv], yv[iv])  # noqa: E731
        if step >= warmup:
            hg = optim.unrolled_hypergradient(train_loss, val_loss, weights, arch, lr=xi,
                                              method=method)
            updates, a_state = a_opt.update(hg.grad, a_state, arch)
            arch = optim.apply_updates(arch, updates)
            val = hg.value
        else:
            val = float(val_loss(weights, arch))
        loss, g = value_and_grad(train_loss)(weights, arch)
        updates, w_state = w_opt.update(g, w_state, weights)
        weights = optim.apply_updates(weights, updates)
        history["train_loss"].append(float(loss))
        history["val_loss"].append(val)
        if step % record_every == 0 or step == steps - 1:
            history["weights"].append(np.asarray(nn.combine(weights, arch).weights()))
    net = nn.combine(weights, arch)
    return SearchResult(net, net.genotype(), history)


def train(net, x: np.ndarray, y: np.ndarray, *, steps: int, batch: int = 64,
          lr: float = 3e-3, seed: int = 0):
    """``steps`` Adam steps of cross-entropy on random batches; ``(net, losses)``."""
    params, rest = nn.partition(net)
    opt = optim.adam(lr)
    state = opt.init(params)
    batches = endless_batches(len(y), batch, seed=seed)
    losses = []
    loss_fn = lambda p, i: _ce(nn.combine(p, rest), x[i], y[i])  # noqa: E731
    for _ in range(steps):
        i = next(batches)
        loss, g = value_and_grad(loss_fn)(params, i)
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        losses.append(float(loss))
    return nn.combine(params, rest), losses


def _logits(net, x, batch: int, hard: bool):
    fn = net.hard if hard else net
    return np.concatenate([np.asarray(fn(x[s : s + batch])) for s in range(0, len(x), batch)])


def accuracy(net, x: np.ndarray, y: np.ndarray, *, hard: bool = False, batch: int = 256) -> float:
    """Top-1 accuracy (``hard=True``: a supernet's :meth:`~.Supernet.hard` form)."""
    return float(np.mean(np.argmax(_logits(net, x, batch, hard), axis=1) == y))


def mean_loss(net, x: np.ndarray, y: np.ndarray, *, hard: bool = False, batch: int = 256) -> float:
    """Mean cross-entropy (``hard=True``: a supernet's hard form)."""
    return float(nn.cross_entropy(_logits(net, x, batch, hard), y))
