"""The relaxed schedule choice of ``diffsys.systems.compiler``: value and gradient of the cost
model at a relaxed matmul schedule (softmax per decision, T = 0.5) with respect to the logits
of all five decisions, over a 6 x 6 x 6 x 6 x 4 space (5,184 schedules, never enumerated).

One call is one step of ``choose_schedule``: per decision a softmax, each feature table
contracted with the probability vectors of its decisions, the ridge model on the expected
features; every framework returns ``(log seconds, d/dlogits per decision)``. The reference is
a hand-written NumPy adjoint; the peers contract the same tables with ``einsum``.
"""

from __future__ import annotations

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

T = 0.5
DECISIONS = ("ti", "tj", "tk", "order", "layout")
LETTERS = {"ti": "a", "tj": "b", "tk": "c", "order": "d", "layout": "e"}


def _inputs():
    from diffsys.systems.compiler import (
        MatmulSpace,
        feature_matrix,
        fit_schedule_model,
        matmul_features,
    )  # fmt: skip

    space = MatmulSpace(tiles=(8, 16, 32, 64, 128, 256))
    groups = matmul_features(space, 512)
    rng = np.random.default_rng(0)
    sample = [tuple(int(rng.integers(k)) for k in space.sizes) for _ in range(60)]
    x = feature_matrix(groups, sample)
    model = fit_schedule_model(x, np.exp(rng.normal(size=len(sample))))
    logits = {d: rng.normal(size=k) for d, k in zip(DECISIONS, space.sizes, strict=True)}
    w = model.coef / model.scale  # cost = const + features @ w
    const = model.bias - float(model.mean @ w)
    return space, groups, model, logits, w, const


def _numpy_value_and_grad(groups, logits, w, const):
    p = {}
    for d, v in logits.items():
        e = np.exp((v - v.max()) / T)
        p[d] = e / e.sum()
    value, gp, col = const, {d: np.zeros_like(v) for d, v in p.items()}, 0
    for g in groups:
        f = g.table.shape[-1]
        tw = g.table @ w[col : col + f]  # the group's cost per option tuple
        col += f
        for i, d in enumerate(g.decisions):  # d/dp_d: contract every other decision
            t = tw
            for j, e in reversed(list(enumerate(g.decisions))):
                if j != i:
                    t = np.tensordot(t, p[e], axes=([j], [0]))
            gp[d] += t
        t = tw
        for d in reversed(g.decisions):
            t = t @ p[d]
        value += float(t)
    grads = {d: p[d] * (gp[d] - p[d] @ gp[d]) / T for d in DECISIONS}
    return value, grads


def _flat(value, grads):
    return (np.asarray(value),) + tuple(np.asarray(grads[d]) for d in DECISIONS)


def reference() -> tuple[np.ndarray, ...]:
    _, groups, _, logits, w, const = _inputs()
    return _flat(*_numpy_value_and_grad(groups, logits, w, const))


def _numpy() -> Thunk:
    _, groups, _, logits, w, const = _inputs()
    return lambda: _flat(*_numpy_value_and_grad(groups, logits, w, const))


def _diffsys() -> Thunk:
    import diffsys as ds
    from diffsys.systems.compiler import relaxed_schedule_cost

    _, groups, model, logits, _, _ = _inputs()
    f = ds.value_and_grad(lambda lg: relaxed_schedule_cost(lg, model, groups, T))
    return lambda: _flat(*f(logits))


def _einsum_cost(xp, softmax, groups, logits, w, const):
    p = {d: softmax(v / T) for d, v in logits.items()}
    value, col = const, 0
    for g in groups:
        f = g.table.shape[-1]
        letters = "".join(LETTERS[d] for d in g.decisions)
        spec = f"{letters}z,z," + ",".join(LETTERS[d] for d in g.decisions) + "->"
        value = value + xp.einsum(spec, g.table_x, w[col : col + f], *(p[d] for d in g.decisions))
        col += f
    return value


class _Group:
    def __init__(self, g, convert):
        self.decisions, self.table = g.decisions, g.table
        self.table_x = convert(g.table)


def _torch() -> Thunk:
    torch = torch_single_thread()
    _, groups, _, logits, w, const = _inputs()
    tg = [_Group(g, torch.tensor) for g in groups]
    tl = {d: torch.tensor(v, requires_grad=True) for d, v in logits.items()}
    tw = torch.tensor(w)

    def run():
        value = _einsum_cost(torch, lambda z: torch.softmax(z, 0), tg, tl, tw, const)
        gs = torch.autograd.grad(value, [tl[d] for d in DECISIONS])
        return (value.detach().numpy(),) + tuple(g.numpy() for g in gs)

    return run


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    _, groups, _, logits, w, const = _inputs()
    ag = [_Group(g, np.asarray) for g in groups]

    def softmax(z):
        e = anp.exp(z - anp.max(z))
        return e / anp.sum(e)

    f = autograd.value_and_grad(lambda lg: _einsum_cost(anp, softmax, ag, lg, w, const))
    return lambda: _flat(*f(logits))


def _jax() -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    _, groups, _, logits, w, const = _inputs()
    jg = [_Group(g, jnp.asarray) for g in groups]
    jw = jnp.asarray(w)
    f = jax_blocking(jax.jit(jax.value_and_grad(
        lambda lg: _einsum_cost(jnp, jax.nn.softmax, jg, lg, jw, const))))  # fmt: skip
    jl = {d: jnp.asarray(v) for d, v in logits.items()}
    return lambda: _flat(*f(jl))


WORKLOAD = Workload(
    name="compiler_relaxed_schedule",
    title="Relaxed matmul schedule (5 decisions, 5,184 schedules): value and gradient",
    description=__doc__.split("\n\n", 1)[1].replace("\n", " "),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("compiler_relaxed_schedule", "torch", 1.0),  # no slower than PyTorch
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`relaxed_schedule_cost`, `ds.value_and_grad`"),
        "numpy": Impl(_numpy, "hand-written adjoint"),
        "autograd": Impl(_autograd, "`einsum` per feature group, `autograd.value_and_grad`"),
        "torch": Impl(_torch, "`torch.einsum` per feature group, `torch.autograd.grad`"),
        "jax-jit": Impl(_jax, "`jnp.einsum` per feature group under `jax.jit`"),
    },
    own_target=True,
)
