"""One SGD training step of an MLP 784-512-512-10 (tanh), batch 256, float32 and float64.

Forward, softmax cross-entropy (mean over the batch), backward, ``p - lr * g``. Weights are
``(out, in)`` (``y = x @ W.T + b``) in every framework. Each call starts from the same
parameters and returns the gradients, then the updated parameters; both are compared with the
hand-written NumPy step in float64. The gradients are what the float32 tolerance (1e-4) is
meant for: an updated parameter ``p - lr * g`` would hide a gradient error of several percent.
"""

from __future__ import annotations

import numpy as np

from ._common import torch_single_thread
from ._spec import Impl, Thunk, Workload

SIZES = (784, 512, 512, 10)
BATCH = 256
LR = 0.1


def _inputs(dtype) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        bound = 1.0 / np.sqrt(n_in)
        params.append(rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype))
        params.append(rng.uniform(-bound, bound, n_out).astype(dtype))
    x = rng.standard_normal((BATCH, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], BATCH)
    return params, x, y


def _numpy_step(params, x, y):
    """The hand-written step: forward, exact backward, SGD."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.tanh(x @ w1.T + b1)
    h2 = np.tanh(h1 @ w2.T + b2)
    z = h2 @ w3.T + b3
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    g = p
    g[np.arange(len(y)), y] -= 1
    g /= len(y)
    gw3, gb3 = g.T @ h2, g.sum(0)
    g = (g @ w3) * (1 - h2 * h2)
    gw2, gb2 = g.T @ h1, g.sum(0)
    g = (g @ w2) * (1 - h1 * h1)
    gw1, gb1 = g.T @ x, g.sum(0)
    grads = (gw1, gb1, gw2, gb2, gw3, gb3)
    return grads + tuple(w - LR * gw for w, gw in zip(params, grads, strict=True))


def _reference(dtype):
    def reference() -> tuple[np.ndarray, ...]:
        params, x, y = _inputs(np.float64)  # the float64 step is the reference for both
        params = [p.astype(dtype).astype(np.float64) for p in params]
        return _numpy_step(params, x.astype(dtype).astype(np.float64), y)

    return reference


def _numpy(dtype) -> Thunk:
    params, x, y = _inputs(dtype)
    return lambda: _numpy_step(params, x, y)


def _diffsys(dtype) -> Thunk:
    import diffsys as ds
    from diffsys import nn, optim

    params, x, y = _inputs(dtype)
    model = nn.Sequential(
        [
            nn.Linear(784, 512, key=0, dtype=dtype),
            nn.tanh,
            nn.Linear(512, 512, key=0, dtype=dtype),
            nn.tanh,
            nn.Linear(512, 10, key=0, dtype=dtype),
        ]
    )
    leaves, treedef = ds.tree_flatten(model)
    model = ds.tree_unflatten(treedef, params)
    opt = optim.sgd(LR)
    opt_state = opt.init(model)
    loss_and_grad = ds.value_and_grad(lambda m, x, y: nn.cross_entropy(m(x), y))

    def step():
        _, grads = loss_and_grad(model, x, y)
        updates, _ = opt.update(grads, opt_state, model)
        new = optim.apply_updates(model, updates)
        return tuple(ds.tree_leaves(grads)) + tuple(ds.tree_leaves(new))

    return step


def _autograd(dtype) -> Thunk:
    import autograd
    import autograd.numpy as anp

    params, x, y = _inputs(dtype)

    def loss(params):
        w1, b1, w2, b2, w3, b3 = params
        h = anp.tanh(anp.dot(x, w1.T) + b1)
        h = anp.tanh(anp.dot(h, w2.T) + b2)
        z = anp.dot(h, w3.T) + b3
        z = z - anp.max(z, axis=1, keepdims=True)
        logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.mean(logp[np.arange(len(y)), y])

    grad = autograd.grad(loss)

    def step():
        g = tuple(grad(params))
        return g + tuple(p - LR * gp for p, gp in zip(params, g, strict=True))

    return step


def _torch(dtype) -> Thunk:
    torch = torch_single_thread()
    params, x, y = _inputs(dtype)
    tparams = [torch.tensor(p, requires_grad=True) for p in params]
    tx, ty = torch.tensor(x), torch.tensor(y)
    F = torch.nn.functional

    def step():
        w1, b1, w2, b2, w3, b3 = tparams
        h = torch.tanh(F.linear(tx, w1, b1))
        h = torch.tanh(F.linear(h, w2, b2))
        loss = F.cross_entropy(F.linear(h, w3, b3), ty)
        grads = torch.autograd.grad(loss, tparams)
        with torch.no_grad():
            return grads + tuple(p - LR * g for p, g in zip(tparams, grads, strict=True))

    return step


def _workload(dtype, name: str, factor: float, numpy_ms: float, refs: dict[str, float]) -> Workload:
    bits = np.dtype(dtype).itemsize * 8
    return Workload(
        name=name,
        title=f"MLP training step, float{bits}",
        description=(
            f"One SGD step (lr {LR}) of an MLP 784-512-512-10 with tanh, softmax "
            f"cross-entropy, batch {BATCH}, float{bits}: forward, backward, update. diffsys "
            "uses `nn.Sequential` of `nn.Linear`, `nn.cross_entropy`, `ds.value_and_grad` and "
            "`optim.sgd`; the reference is the hand-written NumPy step in float64. Checked: "
            "the gradients and the updated parameters."
        ),
        unit="ms",
        scale=1e3,
        # The issue states the target relative to the hand-written step ("<= 1.10 x NumPy"):
        # compare with this run's NumPy row; the issue's absolute figure is the fallback.
        target=factor * numpy_ms,
        relative_target=(name, "numpy", factor),
        reference=_reference(dtype),
        impls={
            "diffsys": Impl(lambda: _diffsys(dtype), "`value_and_grad` + `optim.sgd`"),
            "numpy": Impl(lambda: _numpy(dtype), "hand-written backward"),
            "autograd": Impl(lambda: _autograd(dtype), "`autograd.grad`"),
            "torch": Impl(lambda: _torch(dtype), "`torch.autograd.grad`"),
        },
        issue_refs=refs,
        tolerance=1e-8 if dtype == np.float64 else 1e-4,
        dtype=np.dtype(dtype).name,
    )


# Targets: 1.10x (float32) and 1.05x (float64) the issue's hand-written NumPy step.
WORKLOAD_F32 = _workload(
    np.float32, "mlp_step_f32", 1.10, 8.59, {"numpy": 8.59, "torch": 11.0, "autograd": 18.9}
)
WORKLOAD_F64 = _workload(
    np.float64, "mlp_step_f64", 1.05, 20.2, {"numpy": 20.2, "torch": 30.1, "autograd": 22.0}
)
