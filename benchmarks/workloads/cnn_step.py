"""One SGD training step of a LeNet-5-like CNN on 28x28 images, batch 64, float32.

conv 1->6 5x5 (padding 2), relu, max-pool 2 -> conv 6->16 5x5, relu, max-pool 2 -> 400 ->
120 -> 84 -> 10 (relu), softmax cross-entropy, ``p - lr * g``. The reference is a
hand-written NumPy step in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._common import torch_single_thread
from ._spec import Impl, Thunk, Workload

BATCH = 64
LR = 0.05
SHAPES = [
    (6, 1, 5, 5),
    (6,),
    (16, 6, 5, 5),
    (16,),
    (120, 400),
    (120,),
    (84, 120),
    (84,),
    (10, 84),
    (10,),
]


def _inputs(dtype) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = []
    for shape in SHAPES:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else None
        if fan_in is None:
            fan_in = int(np.prod(params[-1].shape[1:]))
        bound = 1.0 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, shape).astype(dtype))
    x = rng.standard_normal((BATCH, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, BATCH)
    return params, x, y


# --- hand-written NumPy ---------------------------------------------------------------------


def _conv(x, w, b, pad):
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))  # (N, C, OH, OW, K, K)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, O)
    return y.transpose(0, 3, 1, 2) + b[:, None, None], win


def _conv_back(g, win, w, x_shape, pad, need_dx):
    gw = np.tensordot(g, win, axes=([0, 2, 3], [0, 2, 3]))  # (O, C, K, K)
    gb = g.sum(axis=(0, 2, 3))
    if not need_dx:
        return gw, gb, None
    n, c, h, wd = x_shape
    k = w.shape[2]
    oh, ow = g.shape[2:]
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), g.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i : i + oh, j : j + ow] += np.einsum("nohw,oc->nchw", g, w[:, :, i, j])
    return gw, gb, dxp[:, :, pad : pad + h, pad : pad + wd]


def _pool(x):
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2)
    m = r.max(axis=(3, 5))
    return m, r, m


def _pool_back(g, r, m):
    mask = r == m[:, :, :, None, :, None]
    out = mask * g[:, :, :, None, :, None]
    n, c, h2, _, w2, _ = r.shape
    return out.reshape(n, c, 2 * h2, 2 * w2)


def _numpy_step(params, x, y):
    w1, b1, w2, b2, f1, c1, f2, c2, f3, c3 = params
    a1, win1 = _conv(x, w1, b1, 2)
    r1 = np.maximum(a1, 0)
    p1, pr1, pm1 = _pool(r1)
    a2, win2 = _conv(p1, w2, b2, 0)
    r2 = np.maximum(a2, 0)
    p2, pr2, pm2 = _pool(r2)
    h0 = p2.reshape(len(x), -1)
    h1 = np.maximum(h0 @ f1.T + c1, 0)
    h2 = np.maximum(h1 @ f2.T + c2, 0)
    z = h2 @ f3.T + c3
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    g = p / len(y)
    gf3, gc3 = g.T @ h2, g.sum(0)
    g = (g @ f3) * (h2 > 0)
    gf2, gc2 = g.T @ h1, g.sum(0)
    g = (g @ f2) * (h1 > 0)
    gf1, gc1 = g.T @ h0, g.sum(0)
    g = (g @ f1).reshape(p2.shape)
    g = _pool_back(g, pr2, pm2) * (a2 > 0)
    gw2, gb2, g = _conv_back(g, win2, w2, p1.shape, 0, True)
    g = _pool_back(g, pr1, pm1) * (a1 > 0)
    gw1, gb1, _ = _conv_back(g, win1, w1, x.shape, 2, False)
    grads = (gw1, gb1, gw2, gb2, gf1, gc1, gf2, gc2, gf3, gc3)
    return tuple(w - LR * gw for w, gw in zip(params, grads, strict=True))


def reference() -> tuple[np.ndarray, ...]:
    params, x, y = _inputs(np.float32)
    return _numpy_step([p.astype(np.float64) for p in params], x.astype(np.float64), y)


def _numpy() -> Thunk:
    params, x, y = _inputs(np.float32)
    return lambda: _numpy_step(params, x, y)


# --- frameworks ---------------------------------------------------------------------------------


def _diffsys() -> Thunk:
    import diffsys as ds
    from diffsys import nn, optim

    params, x, y = _inputs(np.float32)
    model = nn.Sequential(
        [
            nn.Conv2d(1, 6, 5, padding=2, key=0, dtype=np.float32),
            nn.relu,
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, key=0, dtype=np.float32),
            nn.relu,
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120, key=0, dtype=np.float32),
            nn.relu,
            nn.Linear(120, 84, key=0, dtype=np.float32),
            nn.relu,
            nn.Linear(84, 10, key=0, dtype=np.float32),
        ]
    )
    model = ds.tree_unflatten(ds.tree_structure(model), params)
    opt = optim.sgd(LR)
    opt_state = opt.init(model)
    loss_and_grad = ds.value_and_grad(lambda m, x, y: nn.cross_entropy(m(x), y))

    def step():
        _, grads = loss_and_grad(model, x, y)
        updates, _ = opt.update(grads, opt_state, model)
        return tuple(ds.tree_leaves(optim.apply_updates(model, updates)))

    return step


def _torch() -> Thunk:
    torch = torch_single_thread()
    F = torch.nn.functional
    params, x, y = _inputs(np.float32)
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    tx, ty = torch.tensor(x), torch.tensor(y)

    def step():
        w1, b1, w2, b2, f1, c1, f2, c2, f3, c3 = tp
        h = F.max_pool2d(F.relu(F.conv2d(tx, w1, b1, padding=2)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2)), 2).flatten(1)
        h = F.relu(F.linear(h, f1, c1))
        h = F.relu(F.linear(h, f2, c2))
        loss = F.cross_entropy(F.linear(h, f3, c3), ty)
        grads = torch.autograd.grad(loss, tp)
        with torch.no_grad():
            return tuple(p - LR * g for p, g in zip(tp, grads, strict=True))

    return step


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.signal import convolve

    params, x, y = _inputs(np.float32)

    def conv(x, w, pad):
        if pad:
            x = anp.concatenate(
                [
                    anp.zeros(x.shape[:2] + (pad, x.shape[3]), x.dtype),
                    x,
                    anp.zeros(x.shape[:2] + (pad, x.shape[3]), x.dtype),
                ],
                axis=2,
            )
            x = anp.concatenate(
                [
                    anp.zeros(x.shape[:3] + (pad,), x.dtype),
                    x,
                    anp.zeros(x.shape[:3] + (pad,), x.dtype),
                ],
                axis=3,
            )
        # autograd's convolve flips the kernel: flip it back for a cross-correlation
        return convolve(
            x, w[:, :, ::-1, ::-1], axes=([2, 3], [2, 3]), dot_axes=([1], [1]), mode="valid"
        )

    def pool(x):
        n, c, h, w = x.shape
        return anp.max(anp.max(x.reshape(n, c, h // 2, 2, w // 2, 2), axis=5), axis=3)

    def loss(params):
        w1, b1, w2, b2, f1, c1, f2, c2, f3, c3 = params
        h = pool(anp.maximum(conv(x, w1, 2) + b1[:, None, None], 0.0))
        h = pool(anp.maximum(conv(h, w2, 0) + b2[:, None, None], 0.0)).reshape(len(x), -1)
        h = anp.maximum(anp.dot(h, f1.T) + c1, 0.0)
        h = anp.maximum(anp.dot(h, f2.T) + c2, 0.0)
        z = anp.dot(h, f3.T) + c3
        z = z - anp.max(z, axis=1, keepdims=True)
        logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.mean(logp[np.arange(len(y)), y])

    grad = autograd.grad(loss)

    def step() -> Any:
        g = grad(params)
        return tuple(p - LR * gp for p, gp in zip(params, g, strict=True))

    return step


WORKLOAD = Workload(
    name="cnn_step",
    title="LeNet-5 training step, float32",
    description=(
        "One SGD step (lr 0.05) of a LeNet-5-like CNN (conv 1->6 5x5 pad 2, relu, max-pool 2, "
        "conv 6->16 5x5, relu, max-pool 2, 400-120-84-10 relu) on 28x28 images, batch 64, "
        "float32, softmax cross-entropy. diffsys uses `nn.Sequential` of `nn.Conv2d`/"
        "`nn.MaxPool2d`/`nn.Linear` with `ds.value_and_grad` and `optim.sgd`; the reference "
        "is the hand-written NumPy step in float64."
    ),
    unit="ms",
    scale=1e3,
    target=8.0,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`value_and_grad` + `optim.sgd`"),
        "numpy": Impl(_numpy, "hand-written backward (im2col views)"),
        "autograd": Impl(_autograd, "`autograd.grad`, `autograd.scipy.signal.convolve`"),
        "torch": Impl(_torch, "`torch.autograd.grad`"),
    },
    issue_refs={"torch": 6.49, "autograd": 58.4},
    tolerance=1e-4,
)
