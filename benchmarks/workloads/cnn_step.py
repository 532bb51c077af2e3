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
#
# What any implementation on NumPy has to do, written as directly as we can: activations laid
# out channels-first with the samples innermost ((C, H, W, N) in memory), so that the window
# copies (im2col), the matrix products and the strided pooling views all run over long
# contiguous rows; the columns of each convolution kept for its weight gradient; the max-pool
# argmax found in the forward pass. This is the floor the diffsys row is compared with.


def _im2col(xc, k, pad):
    """``xc`` (C, H, W, N) -> columns (C * k * k, OH * OW * N)."""
    if pad:
        c, h, w, n = xc.shape
        xp = np.zeros((c, h + 2 * pad, w + 2 * pad, n), xc.dtype)
        xp[:, pad : pad + h, pad : pad + w] = xc
        xc = xp
    win = sliding_window_view(xc, (k, k), axis=(1, 2))  # (C, OH, OW, N, k, k)
    cols = np.ascontiguousarray(win.transpose(0, 4, 5, 1, 2, 3))
    return cols.reshape(cols.shape[0] * k * k, -1), win.shape[1:4]


def _col2im(dcols, shape, k):
    """The transpose of :func:`_im2col` (no padding): add each window back."""
    c, h, w, n = shape
    oh, ow = h - k + 1, w - k + 1
    d = dcols.reshape(c, k, k, oh, ow, n)
    gx = np.zeros(shape, dcols.dtype)
    for i in range(k):
        for j in range(k):
            gx[:, i : i + oh, j : j + ow] += d[:, i, j]
    return gx


def _pool(a):
    """2x2 max-pool of ``a`` (C, H, W, N): the maxima and the argmax offset in each window."""
    v = [a[:, i::2, j::2] for i in range(2) for j in range(2)]
    best = v[0].copy()
    idx = np.zeros(best.shape, np.int8)
    hit = np.empty(best.shape, np.bool_)
    for k in range(1, 4):
        np.greater(v[k], best, out=hit)  # strictly greater: the first maximum wins
        np.maximum(idx, hit.view(np.int8) * np.int8(k), out=idx)
        np.maximum(best, v[k], out=best)
    return best, idx


def _pool_back(g, idx, shape):
    gx = np.empty(shape, g.dtype)
    for k in range(4):
        i, j = divmod(k, 2)
        np.multiply(g, idx == k, out=gx[:, i::2, j::2])
    return gx


def _numpy_step(params, x, y):
    w1, b1, w2, b2, f1, c1, f2, c2, f3, c3 = params
    n = len(x)
    cols1, (oh1, ow1, _) = _im2col(np.ascontiguousarray(x.transpose(1, 2, 3, 0)), 5, 2)
    a1 = (w1.reshape(6, -1) @ cols1).reshape(6, oh1, ow1, n)
    a1 += b1[:, None, None, None]
    p1, i1 = _pool(np.maximum(a1, 0))
    cols2, (oh2, ow2, _) = _im2col(p1, 5, 0)
    a2 = (w2.reshape(16, -1) @ cols2).reshape(16, oh2, ow2, n)
    a2 += b2[:, None, None, None]
    p2, i2 = _pool(np.maximum(a2, 0))
    h0 = p2.transpose(3, 0, 1, 2).reshape(n, -1)
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
    g = (g @ f1).reshape(n, 16, 5, 5).transpose(1, 2, 3, 0)
    g = _pool_back(g, i2, a2.shape) * (a2 > 0)
    gm = g.reshape(16, -1)
    gw2, gb2 = (gm @ cols2.T).reshape(w2.shape), gm.sum(1)
    g = _col2im(w2.reshape(16, -1).T @ gm, p1.shape, 5)
    g = _pool_back(g, i1, a1.shape) * (a1 > 0)
    gm = g.reshape(6, -1)
    gw1, gb1 = (gm @ cols1.T).reshape(w1.shape), gm.sum(1)
    grads = (gw1, gb1, gw2, gb2, gf1, gc1, gf2, gc2, gf3, gc3)
    return grads + tuple(w - LR * gw for w, gw in zip(params, grads, strict=True))


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
        new = optim.apply_updates(model, updates)
        return tuple(ds.tree_leaves(grads)) + tuple(ds.tree_leaves(new))

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
            return grads + tuple(p - LR * g for p, g in zip(tp, grads, strict=True))

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
        g = tuple(grad(params))
        return g + tuple(p - LR * gp for p, gp in zip(params, g, strict=True))

    return step


WORKLOAD = Workload(
    name="cnn_step",
    title="LeNet-5 training step, float32",
    description=(
        "One SGD step (lr 0.05) of a LeNet-5-like CNN (conv 1->6 5x5 pad 2, relu, max-pool 2, "
        "conv 6->16 5x5, relu, max-pool 2, 400-120-84-10 relu) on 28x28 images, batch 64, "
        "float32, softmax cross-entropy. diffsys uses `nn.Sequential` of `nn.Conv2d`/"
        "`nn.MaxPool2d`/`nn.Linear` with `ds.value_and_grad` and `optim.sgd`; the reference "
        "is the hand-written NumPy step in float64. Checked: the gradients and the updated "
        "parameters."
    ),
    unit="ms",
    scale=1e3,
    target=8.0,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`value_and_grad` + `optim.sgd`"),
        "numpy": Impl(_numpy, "hand-written backward (im2col, samples-last layout)"),
        "autograd": Impl(_autograd, "`autograd.grad`, `autograd.scipy.signal.convolve`"),
        "torch": Impl(_torch, "`torch.autograd.grad`"),
    },
    issue_refs={"torch": 6.49, "autograd": 58.4},
    tolerance=1e-4,
    dtype="float32",
)
