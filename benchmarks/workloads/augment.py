"""One step of the ``match`` objective of a learned augmentation policy, float64.

A two-stage policy over the eight operations of ``systems.augment`` (rotate, shear,
translate_x, translate_y, scale, blur, brightness, contrast) relaxes its choices with the
Gumbel-softmax and relaxed Bernoulli gates (``apply_policy``, temperature 0.5) on 16 noisy
8x8 digits; the objective is the kernel MMD to 16 validation images, and the step returns
it with its gradient to the three ``(2, 8)`` logit arrays. The reference differentiates the
relaxed policy by central differences, written in NumPy with the operations of
``systems.augment.apply_operation`` on plain arrays (no tracing; the tests hold those to the
image-by-image exact layer, ``transform_image``).
"""

from __future__ import annotations

import numpy as np

from ._common import torch_single_thread
from ._spec import Impl, Thunk, Workload

S, B, T = 2, 16, 0.5
BANDWIDTHS = (2.0, 4.0, 8.0)


def _inputs():
    from diffsys.systems.augment import OPERATIONS, draw_noise

    rng = np.random.default_rng(0)
    k = len(OPERATIONS)
    x, xv = rng.random((B, 1, 8, 8)), rng.random((B, 1, 8, 8))
    logits = [rng.normal(0, 0.5, (S, k)) for _ in range(3)]
    return x, xv, logits, draw_noise(1, S, B, k)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _mmd_numpy(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)

    def k(u, v):
        d2 = ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * h * h)).mean() for h in BANDWIDTHS)

    return k(a, a) + k(b, b) - 2 * k(a, b)


def _relaxed_numpy(x, logits, prob_logits, mag_logits, noise):
    from diffsys.systems.augment import OPERATIONS, apply_operation

    mags = _sigmoid(mag_logits)
    for s in range(S):
        z = (logits[s] + noise.gumbel[s]) / T
        c = np.exp(z - z.max(1, keepdims=True))
        c /= c.sum(1, keepdims=True)
        w = c * _sigmoid((prob_logits[s] + noise.logistic[s]) / T)  # (B, K)
        out = x * (1.0 - w.sum(1))[:, None, None, None]
        for k, op in enumerate(OPERATIONS):
            y = apply_operation(op, x, mags[s, k], noise.u[s, :, k])
            out = out + w[:, k, None, None, None] * y
        x = out
    return x


def reference() -> tuple[np.ndarray, ...]:
    x, xv, logits, noise = _inputs()

    def f(ls):
        return _mmd_numpy(_relaxed_numpy(x, *ls, noise), xv)

    eps, grads = 1e-5, []
    for i in range(3):
        g = np.zeros_like(logits[i])
        for idx in np.ndindex(g.shape):
            up = [a.copy() for a in logits]
            dn = [a.copy() for a in logits]
            up[i][idx] += eps
            dn[i][idx] -= eps
            g[idx] = (f(up) - f(dn)) / (2 * eps)
        grads.append(g)
    return (np.asarray(f(logits)), *grads)


def _diffsys() -> Thunk:
    import diffsys as ds
    from diffsys.systems import augment as A

    x, xv, logits, noise = _inputs()
    f = ds.value_and_grad(
        lambda lg, pl, ml: A.mmd(A.apply_policy(x, lg, pl, ml, noise, temperature=T), xv,
                                 BANDWIDTHS),
        argnums=(0, 1, 2),
    )

    def step():
        value, grads = f(*logits)
        return (value, *grads)

    return step


def _torch() -> Thunk:
    torch = torch_single_thread()
    F = torch.nn.functional
    from diffsys.systems.augment import LIMITS, OPERATIONS

    x, xv, logits, noise = _inputs()
    tx, tv = torch.tensor(x), torch.tensor(xv)
    tl = [torch.tensor(a, requires_grad=True) for a in logits]
    gum, logi, u = (torch.tensor(a) for a in noise)
    taps = torch.arange(-3.0, 4.0, dtype=torch.float64)

    def affine(img, a, b_, tx_, c, d, ty):
        theta = torch.stack([torch.stack([a, b_, tx_], -1), torch.stack([c, d, ty], -1)], -2)
        grid = F.affine_grid(theta, list(img.shape), align_corners=False)
        return F.grid_sample(img, grid, padding_mode="zeros", align_corners=False)

    def op(name, img, m, uu):
        v = m * LIMITS[name] * uu
        one, zero = torch.ones_like(uu), torch.zeros_like(uu)
        if name == "rotate":
            t = v * (np.pi / 180.0)
            return affine(img, t.cos(), -t.sin(), zero, t.sin(), t.cos(), zero)
        if name == "shear":
            return affine(img, one, v, zero, zero, one, zero)
        if name == "translate_x":
            return affine(img, one, zero, 2 * v, zero, one, zero)
        if name == "translate_y":
            return affine(img, one, zero, zero, zero, one, 2 * v)
        if name == "scale":
            s = 1.0 / (1.0 + v)
            return affine(img, s, zero, zero, zero, s, zero)
        if name == "blur":
            w = torch.exp(-0.5 * (taps / (0.05 + m * LIMITS["blur"])) ** 2)
            w = w / w.sum()
            h = F.conv2d(F.pad(img, (3, 3, 0, 0), mode="reflect"), w.view(1, 1, 1, 7))
            return F.conv2d(F.pad(h, (0, 0, 3, 3), mode="reflect"), w.view(1, 1, 7, 1))
        vb = v.view(-1, 1, 1, 1)
        if name == "brightness":
            return img * (1 + vb)
        mean = img.mean(dim=(1, 2, 3), keepdim=True)
        return (img - mean) * (1 + vb) + mean

    def mmd(a, b):
        a, b = a.flatten(1), b.flatten(1)

        def k(p, q):
            d2 = (p * p).sum(1)[:, None] + (q * q).sum(1)[None, :] - 2 * p @ q.T
            d2 = d2.clamp_min(0.0)
            return sum(torch.exp(-d2 / (2 * h * h)).mean() for h in BANDWIDTHS)

        return k(a, a) + k(b, b) - 2 * k(a, b)

    def step():
        lg, pl, ml = tl
        img = tx
        mags = torch.sigmoid(ml)
        for s in range(S):
            c = torch.softmax((lg[s] + gum[s]) / T, dim=1)
            w = c * torch.sigmoid((pl[s] + logi[s]) / T)
            outs = torch.stack([op(n, img, mags[s, k], u[s, :, k])
                                for k, n in enumerate(OPERATIONS)], 1)
            img = torch.einsum("bk,bkchw->bchw", w, outs) + (1 - w.sum(1)).view(-1, 1, 1, 1) * img
        value = mmd(img, tv)
        grads = torch.autograd.grad(value, tl)
        return (value.detach(), *grads)

    return step


WORKLOAD = Workload(
    name="augment_match_step",
    title="Learned augmentation: one match-objective step (2 stages x 8 operations)",
    description=(
        "The relaxed two-stage augmentation policy of systems.augment (8 operations: affine "
        "resampling, blur, brightness, contrast; Gumbel-softmax choice, relaxed Bernoulli "
        "gates) on 16 8x8 images, the kernel MMD to 16 validation images, and its gradient "
        "to the policy's three (2, 8) logit arrays; float64."
    ),
    unit="ms",
    scale=1e3,
    target=60.0,
    own_target=True,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.value_and_grad` of `mmd(apply_policy(...))`"),
        "torch": Impl(_torch, "`F.affine_grid`/`F.grid_sample` policy + `autograd.grad`"),
    },
    tolerance=1e-6,
)
