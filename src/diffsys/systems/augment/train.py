"""Learning an augmentation policy by gradient on validation data, and training with one.

:func:`search_policy` has two objectives. ``match`` (after Faster AutoAugment, Hataya et al.
2020): the kernel MMD between augmented training images and validation images, whose
gradient reaches the policy directly through the relaxed augmentation. ``unrolled`` (DADA,
Li et al. 2020): a policy update on the hypergradient of the validation loss through one
unrolled training step on augmented images (:func:`diffsys.optim.unrolled_hypergradient`,
``finite_difference`` or ``exact``; the first-order one is zero here, the validation loss
reads the policy only through the weights), then a weight update on a batch augmented by
the relaxed policy. :func:`train_classifier`
trains a model from scratch with a fixed policy's exact sampled augmentation (or none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import nn, optim
from ...core.transforms import value_and_grad
from ...train.data import endless_batches
from .modules import AugmentPolicy
from .ops import mmd

__all__ = ["PolicySearch", "search_policy", "train_classifier"]


@dataclass
class PolicySearch:
    """``model`` (None for ``objective="match"``) and ``policy`` after the search;
    ``history``: per step ``val_loss`` (the MMD, or the unrolled validation loss) and
    ``train_loss`` (``unrolled`` only), and every ``record_every`` steps the policy's
    ``probabilities`` and ``magnitudes`` (``(S, K)`` arrays)."""

    model: nn.Module | None
    policy: AugmentPolicy
    history: dict = field(default_factory=dict)


def search_policy(
    policy: AugmentPolicy,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    *,
    steps: int,
    objective: str = "match",
    model: nn.Module | None = None,
    batch: int = 32,
    val_batch: int | None = None,
    lr: float = 3e-3,
    lr_policy: float = 0.05,
    unrolled_lr: float = 0.1,
    method: str = "finite_difference",
    bandwidths: tuple = (2.0, 4.0, 8.0),
    seed: int = 0,
    record_every: int = 10,
) -> PolicySearch:
    """Learn ``policy`` (Adam, ``lr_policy``) by gradient on the validation images.

    ``objective="match"`` (Faster AutoAugment's density matching, with a kernel
    :func:`~.ops.mmd` in place of its adversarial critic): make the augmented training
    images look like the validation images; no model. ``objective="unrolled"`` (DADA): the
    validation loss of ``model`` after one SGD step (``unrolled_lr``) on the augmented
    batch, through :func:`diffsys.optim.unrolled_hypergradient` (``method``), with the
    model's own weight updates (Adam, ``lr``) in between. ``val_batch`` (default ``batch``):
    validation images per step.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((40, 1, 8, 8)), rng.integers(0, 10, 40)
    >>> res = search_policy(AugmentPolicy(1), (x, y), (x, y), steps=2, batch=8)
    >>> len(res.history["val_loss"])
    2
    """
    if objective not in ("match", "unrolled"):
        raise ValueError(
            f"search_policy: objective must be 'match' or 'unrolled', got {objective!r}"
        )
    if objective == "unrolled" and model is None:
        raise ValueError("search_policy: objective='unrolled' trains a model: pass model=")
    if method == "first_order":
        raise ValueError(
            "search_policy: the first-order hypergradient of an augmentation policy is zero "
            "(the validation loss reads the policy only through the weights); use "
            "method='finite_difference' or 'exact'"
        )
    (xt, yt), (xv, yv) = train_data, val_data
    p_params, p_rest = nn.partition(policy)
    p_opt = optim.adam(lr_policy)
    p_state = p_opt.init(p_params)
    if model is not None:
        weights, rest = nn.partition(model)
        w_opt = optim.adam(lr)
        w_state = w_opt.init(weights)
    rng = np.random.default_rng(seed)
    tb = endless_batches(len(xt), batch, seed=seed)
    vb = endless_batches(len(xv), val_batch or batch, seed=seed + 1)
    hist = {"objective": objective, "train_loss": [], "val_loss": [], "probabilities": [],
            "magnitudes": []}
    for step in range(steps):
        it, iv, key = next(tb), next(vb), int(rng.integers(2**63))
        if objective == "match":
            value, g = value_and_grad(
                lambda p, it=it, iv=iv, key=key: mmd(
                    nn.combine(p, p_rest).relaxed(xt[it], key=key), xv[iv], bandwidths
                )
            )(p_params)
            updates, p_state = p_opt.update(g, p_state, p_params)
            p_params = optim.apply_updates(p_params, updates)
            hist["val_loss"].append(float(value))
        else:

            def train_loss(w, p, it=it, key=key):
                augmented = nn.combine(p, p_rest).relaxed(xt[it], key=key)
                return nn.cross_entropy(nn.combine(w, rest)(augmented), yt[it])

            def val_loss(w, p, iv=iv):
                return nn.cross_entropy(nn.combine(w, rest)(xv[iv]), yv[iv])

            hg = optim.unrolled_hypergradient(train_loss, val_loss, weights, p_params,
                                              lr=unrolled_lr, method=method)
            updates, p_state = p_opt.update(hg.grad, p_state, p_params)
            p_params = optim.apply_updates(p_params, updates)
            loss, g = value_and_grad(train_loss)(weights, p_params)
            updates, w_state = w_opt.update(g, w_state, weights)
            weights = optim.apply_updates(weights, updates)
            hist["train_loss"].append(float(loss))
            hist["val_loss"].append(hg.value)
        if step % record_every == 0 or step == steps - 1:
            current = nn.combine(p_params, p_rest)
            hist["probabilities"].append(current.probabilities())
            hist["magnitudes"].append(current.magnitudes())
    trained = None if model is None else nn.combine(weights, rest)
    return PolicySearch(trained, nn.combine(p_params, p_rest), hist)


def train_classifier(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    policy: AugmentPolicy | None = None,
    steps: int,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
):
    """``steps`` Adam steps of cross-entropy on batches augmented by ``policy``'s exact
    sampled form (``policy.hard(x, key=...)``, fresh noise each step; none when ``policy``
    is None); ``(model, losses)``."""
    weights, rest = nn.partition(model)
    opt = optim.adam(lr)
    state = opt.init(weights)
    rng = np.random.default_rng(seed)
    batches = endless_batches(len(y), batch, seed=seed)
    losses = []
    for _ in range(steps):
        i = next(batches)
        xb = x[i] if policy is None else np.asarray(policy.hard(x[i], key=rng))
        loss, g = value_and_grad(
            lambda w, xb=xb, yb=y[i]: nn.cross_entropy(nn.combine(w, rest)(xb), yb)
        )(weights)
        updates, state = opt.update(g, state, weights)
        weights = optim.apply_updates(weights, updates)
        losses.append(float(loss))
    return nn.combine(weights, rest), losses
