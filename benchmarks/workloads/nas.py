"""One first-order DARTS step on a supernet for 8x8 images, float64, batch 32 + 32.

The supernet (``systems.nas.Supernet``): a stem conv3x3 (1 -> 8 channels) + ReLU, one cell
of 2 nodes (3 edges), each edge mixing ``skip``, ``conv3x3`` and ``conv5x5`` (+ ReLU) with
``softmax(alpha[e])``, the sum of the nodes, a 2x2 average pool and a linear head (10
classes). The step: the gradient of the cross-entropy on a validation batch to ``alpha``
(the architecture step) and on a training batch to every weight (the weight step), two
full backward passes. The reference is a hand-written NumPy adjoint.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._common import torch_single_thread
from ._spec import Impl, Thunk, Workload

C, B, CLASSES = 8, 32, 10
CANDS = ("skip", "conv3x3", "conv5x5")
EDGES = ((0, 1), (0, 2), (1, 2))


def _inputs():
    """(params, xt, yt, xv, yv): params a dict of float64 arrays."""
    rng = np.random.default_rng(0)
    p = {"stem_w": rng.normal(0, 0.3, (C, 1, 3, 3)), "stem_b": rng.normal(0, 0.1, C),
         "head_w": rng.normal(0, 0.1, (CLASSES, C * 16)), "head_b": np.zeros(CLASSES),
         "alpha": rng.normal(0, 0.5, (3, 3))}
    for e in range(3):
        for k in (3, 5):
            p[f"w{e}_{k}"] = rng.normal(0, 0.3 / k, (C, C, k, k))
            p[f"b{e}_{k}"] = rng.normal(0, 0.1, C)
    xt, xv = rng.random((B, 1, 8, 8)), rng.random((B, 1, 8, 8))
    yt, yv = rng.integers(0, CLASSES, B), rng.integers(0, CLASSES, B)
    return p, xt, yt, xv, yv


# --- hand-written NumPy ----------------------------------------------------------------------


def _cols(x, k):
    """Same-padded columns of ``x`` (N, C, H, W): (N, H, W, C * k * k)."""
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))  # (N, C, H, W, k, k)
    n, c, h, w = x.shape
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n, h, w, c * k * k)


def _conv_relu(x, w, b):
    cols = _cols(x, w.shape[-1])
    y = cols @ w.reshape(w.shape[0], -1).T + b  # (N, H, W, O)
    y = np.maximum(y, 0.0).transpose(0, 3, 1, 2)
    return y, cols


def _conv_relu_back(g, y, cols, w, x_shape):
    """Gradients of ``relu(conv(x))`` given the output's gradient ``g``: (gx, gw, gb)."""
    k = w.shape[-1]
    g = (g * (y > 0)).transpose(0, 2, 3, 1)  # (N, H, W, O)
    gw = (g.reshape(-1, w.shape[0]).T @ cols.reshape(-1, cols.shape[-1])).reshape(w.shape)
    gb = g.sum(axis=(0, 1, 2))
    gcols = (g @ w.reshape(w.shape[0], -1)).reshape(g.shape[:3] + (w.shape[1], k, k))
    n, c, h, wd = x_shape
    pad = k // 2
    gxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    for u in range(k):
        for v in range(k):
            gxp[:, :, u : u + h, v : v + wd] += gcols[..., u, v].transpose(0, 3, 1, 2)
    return gxp[:, :, pad : pad + h, pad : pad + wd], gw, gb


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_value_and_grad(p, x, y):
    """Cross-entropy of the supernet on (x, y) and its gradient to every parameter."""
    n0, cols0 = _conv_relu(x, p["stem_w"], p["stem_b"])
    nodes, tape = [n0], []
    for j in (1, 2):
        total = 0.0
        for e, (i, jj) in enumerate(EDGES):
            if jj != j:
                continue
            h = nodes[i]
            y3, c3 = _conv_relu(h, p[f"w{e}_3"], p[f"b{e}_3"])
            y5, c5 = _conv_relu(h, p[f"w{e}_5"], p[f"b{e}_5"])
            outs = (h, y3, y5)
            wts = _softmax(p["alpha"][e])
            total = total + sum(wk * o for wk, o in zip(wts, outs, strict=True))
            tape.append((e, i, outs, (c3, c5), wts))
        nodes.append(total)
    s = nodes[1] + nodes[2]
    pooled = s.reshape(B, C, 4, 2, 4, 2).mean(axis=(3, 5)).reshape(B, -1)
    z = pooled @ p["head_w"].T + p["head_b"]
    prob = _softmax(z)
    loss = -np.mean(np.log(prob[np.arange(B), y]))
    gz = prob.copy()
    gz[np.arange(B), y] -= 1.0
    gz /= B
    g = {"head_w": gz.T @ pooled, "head_b": gz.sum(0), "alpha": np.zeros((3, 3))}
    gpool = (gz @ p["head_w"]).reshape(B, C, 4, 1, 4, 1)
    gs = np.broadcast_to(gpool / 4.0, (B, C, 4, 2, 4, 2)).reshape(B, C, 8, 8)
    gnodes = [np.zeros_like(n0), gs.copy(), gs.copy()]
    for e, i, outs, (c3, c5), wts in reversed(tape):  # edges into later nodes first
        j = EDGES[e][1]
        gm = gnodes[j]
        dots = np.array([np.sum(gm * o) for o in outs])
        g["alpha"][e] = wts * (dots - wts @ dots)
        gnodes[i] = gnodes[i] + wts[0] * gm
        for k, o, cols, idx in ((3, outs[1], c3, 1), (5, outs[2], c5, 2)):
            gx, gw, gb = _conv_relu_back(wts[idx] * gm, o, cols, p[f"w{e}_{k}"], outs[0].shape)
            g[f"w{e}_{k}"], g[f"b{e}_{k}"] = gw, gb
            gnodes[i] = gnodes[i] + gx
    _, g["stem_w"], g["stem_b"] = _conv_relu_back(gnodes[0], n0, cols0, p["stem_w"], x.shape)
    return loss, g


def _numpy_step(p, xt, yt, xv, yv):
    _, gv = numpy_value_and_grad(p, xv, yv)
    _, gt = numpy_value_and_grad(p, xt, yt)
    gt.pop("alpha")  # the result: alpha's gradient, then the weights' by name
    return (gv["alpha"],) + tuple(gt[k] for k in sorted(gt))


def reference() -> tuple[np.ndarray, ...]:
    return _numpy_step(*_inputs())


def _numpy() -> Thunk:
    args = _inputs()
    return lambda: _numpy_step(*args)


# --- diffsys ---------------------------------------------------------------------------------


def _supernet(p):
    from diffsys import nn
    from diffsys.systems import nas

    net = nas.Supernet(C, nodes=2, candidates=CANDS, key=0)
    convs = [{"conv3x3": nn.Conv2d(C, C, 3, padding=1, key=0),
              "conv5x5": nn.Conv2d(C, C, 5, padding=2, key=0)} for _ in range(3)]
    for e in range(3):
        for k, name in ((3, "conv3x3"), (5, "conv5x5")):
            convs[e][name] = convs[e][name].replace(weight=p[f"w{e}_{k}"], bias=p[f"b{e}_{k}"])
    return net.replace(stem=net.stem.replace(weight=p["stem_w"], bias=p["stem_b"]),
                       head=net.head.replace(weight=p["head_w"], bias=p["head_b"]),
                       convs=convs, alpha=p["alpha"])


def _diffsys() -> Thunk:
    import diffsys as ds
    from diffsys import nn

    p, xt, yt, xv, yv = _inputs()
    net = _supernet(p)
    weights, arch = nn.partition(net, frozen="alpha")
    arch, _ = nn.partition(arch)
    loss = lambda w, a, x, y: nn.cross_entropy(nn.combine(w, a)(x), y)  # noqa: E731
    g_arch = ds.grad(loss, argnums=1)
    g_weights = ds.grad(loss, argnums=0)

    def step():
        ga = g_arch(weights, arch, xv, yv).alpha
        gw = g_weights(weights, arch, xt, yt)
        named = {"stem_w": gw.stem.weight, "stem_b": gw.stem.bias, "head_w": gw.head.weight,
                 "head_b": gw.head.bias}
        for e in range(3):
            for k, name in ((3, "conv3x3"), (5, "conv5x5")):
                named[f"w{e}_{k}"] = gw.convs[e][name].weight
                named[f"b{e}_{k}"] = gw.convs[e][name].bias
        return (ga,) + tuple(named[k] for k in sorted(named))

    return step


def _torch() -> Thunk:
    torch = torch_single_thread()
    F = torch.nn.functional
    p, xt, yt, xv, yv = _inputs()
    names = sorted(p)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    data = [(torch.tensor(x), torch.tensor(y)) for x, y in ((xt, yt), (xv, yv))]

    def loss(x, y):
        nodes = [F.relu(F.conv2d(x, tp["stem_w"], tp["stem_b"], padding=1))]
        for j in (1, 2):
            total = 0
            for e, (i, jj) in enumerate(EDGES):
                if jj != j:
                    continue
                h = nodes[i]
                wts = torch.softmax(tp["alpha"][e], 0)
                total = total + wts[0] * h
                c3 = F.conv2d(h, tp[f"w{e}_3"], tp[f"b{e}_3"], padding=1)
                c5 = F.conv2d(h, tp[f"w{e}_5"], tp[f"b{e}_5"], padding=2)
                total = total + wts[1] * F.relu(c3) + wts[2] * F.relu(c5)
            nodes.append(total)
        pooled = F.avg_pool2d(nodes[1] + nodes[2], 2).flatten(1)
        return F.cross_entropy(F.linear(pooled, tp["head_w"], tp["head_b"]), y)

    weight_names = [k for k in names if k != "alpha"]

    def step():
        (ga,) = torch.autograd.grad(loss(*data[1]), [tp["alpha"]])
        gw = torch.autograd.grad(loss(*data[0]), [tp[k] for k in weight_names])
        return (ga,) + tuple(gw)

    return step


WORKLOAD = Workload(
    name="nas_darts_step",
    title="DARTS first-order step (supernet, 8x8 images)",
    description=(
        "One first-order DARTS step on a supernet for 8x8 images (stem conv3x3 to 8 channels, "
        "a cell of 2 nodes whose 3 edges mix skip, conv3x3 and conv5x5, average pool, linear "
        "head), float64: the validation-batch gradient to the architecture logits and the "
        "training-batch gradient to every weight (batch 32 each)."
    ),
    unit="ms",
    scale=1e3,
    target=60.0,
    own_target=True,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.grad` of `nas.Supernet` (alpha, then weights)"),
        "numpy": Impl(_numpy, "hand-written adjoint (im2col convolutions)"),
        "torch": Impl(_torch, "`F.conv2d` supernet + `autograd.grad`"),
    },
    tolerance=1e-10,
)
