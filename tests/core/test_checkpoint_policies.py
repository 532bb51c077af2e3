"""ds.checkpoint: policies (what is kept, what is recomputed), closures over traced values,
higher order, and memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.core import remat
from diffsys.numpy import _products

POLICIES = [
    None,
    "nothing_saveable",
    "everything_saveable",
    "dots_saveable",
    ds.checkpoint_policies.save_only_these("sin"),
    lambda prim, *args, **params: prim.name == "tanh",
]

rng = np.random.default_rng(0)
A = rng.normal(size=(4, 4)) / 2
W0 = rng.normal(size=4)
X0 = rng.normal(size=4)


def block(w, x):
    return dnp.sin(A @ (x * w)) * dnp.tanh(x) + w


def loss_plain(w, x):
    return dnp.sum(block(w, block(w, x)) ** 2)


def loss_ckpt(policy):
    def loss(w, x):
        f = ds.checkpoint(block, policy=policy)
        return dnp.sum(f(w, f(w, x)) ** 2)

    return loss


@pytest.mark.parametrize("policy", POLICIES)
def test_gradients_equal_the_unchecked_ones(policy):
    f = loss_ckpt(policy)
    for got, want in zip(
        ds.grad(f, (0, 1))(W0, X0), ds.grad(loss_plain, (0, 1))(W0, X0), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    ds.check_grads(f, (W0, X0), order=2)


@pytest.mark.parametrize("policy", POLICIES)
def test_higher_order_through_a_checkpoint(policy):
    f = loss_ckpt(policy)
    np.testing.assert_allclose(ds.hessian(f)(W0, X0), ds.hessian(loss_plain)(W0, X0), rtol=1e-10)
    gg = ds.grad(lambda w: dnp.sum(ds.grad(f, 1)(w, X0) ** 2))(W0)
    gg0 = ds.grad(lambda w: dnp.sum(ds.grad(loss_plain, 1)(w, X0) ** 2))(W0)
    np.testing.assert_allclose(gg, gg0, rtol=1e-10)
    t = rng.normal(size=4)
    np.testing.assert_allclose(
        ds.hvp(lambda w: f(w, X0), (W0,), (t,)),
        ds.hvp(lambda w: loss_plain(w, X0), (W0,), (t,)),
        rtol=1e-10,
    )
    xs = rng.normal(size=(3, 4))
    np.testing.assert_allclose(
        ds.vmap(ds.grad(f), in_axes=(None, 0))(W0, xs),
        ds.vmap(ds.grad(loss_plain), in_axes=(None, 0))(W0, xs),
        rtol=1e-12,
    )
    _, tf = ds.jvp(lambda x: f(W0, x), (X0,), (t,))
    _, t0 = ds.jvp(lambda x: loss_plain(W0, x), (X0,), (t,))
    np.testing.assert_allclose(tf, t0, rtol=1e-12)


@pytest.mark.parametrize("policy", POLICIES)
def test_closures_over_traced_values(policy):
    """The checkpointed function reads ``w`` from its closure, not from its arguments."""

    def loss(w, x):
        f = ds.checkpoint(lambda x: block(w, x), policy=policy)
        return dnp.sum(f(f(x)) ** 2)

    want = ds.grad(loss_plain, (0, 1))(W0, X0)
    got = ds.grad(loss, (0, 1))(W0, X0)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    # only the closure is traced: x is a plain array
    np.testing.assert_allclose(ds.grad(loss)(W0, X0), want[0], rtol=1e-12)
    ds.check_grads(loss, (W0, X0), order=2)


@pytest.mark.parametrize("policy", [None, "dots_saveable"])
def test_a_closure_found_only_while_running(policy, monkeypatch):
    """If the closure walk misses a traced value, running the function reveals it and the
    checkpoint starts over on that value's trace."""
    monkeypatch.setattr(remat, "closure_tracers", lambda fun: [])

    def loss(w, x):
        f = ds.checkpoint(lambda x: block(w, x), policy=policy)
        return dnp.sum(f(x) ** 2)

    want = ds.grad(lambda w, x: dnp.sum(block(w, x) ** 2), (0, 1))(W0, X0)
    np.testing.assert_allclose(ds.grad(loss)(W0, X0), want[0], rtol=1e-12)
    got = ds.grad(loss, (0, 1))(W0, X0)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


# --- what is recomputed: counting primitive evaluations ---------------------------------------


class Counter:
    def __init__(self):
        self.counts = {}

    def wrap(self, monkeypatch, prim):
        impl = prim.impl

        def counted(*args, **params):
            self.counts[prim.name] = self.counts.get(prim.name, 0) + 1
            return impl(*args, **params)

        monkeypatch.setattr(prim, "impl", counted)


def _count(monkeypatch, policy):
    counter = Counter()
    counter.wrap(monkeypatch, _products.matmul_p)
    counter.wrap(monkeypatch, count_exp)
    # the primitive itself, not ``A @ y``: on plain arrays ``@`` would not call it
    f = ds.checkpoint(lambda w, x: count_exp(_products.matmul_p(A, x * w)) * w, policy=policy)
    counter.counts.clear()
    ds.grad(lambda w: dnp.sum(f(w, X0)))(W0)
    return counter.counts


count_exp = ds.Primitive("test_checkpoint_count_exp", np.exp)
count_exp.defvjp(lambda g, ans, x: g * ans)
count_exp.defjvp(lambda t, ans, x: t * ans)


@pytest.mark.parametrize(
    "policy, matmuls, exps",
    [
        (None, 2, 2),  # nothing kept: both recomputed in the backward pass
        ("nothing_saveable", 2, 2),
        ("everything_saveable", 1, 1),  # nothing recomputed
        ("dots_saveable", 1, 2),  # the product kept, the exponential recomputed
        (ds.checkpoint_policies.save_only_these("test_checkpoint_count_exp"), 2, 1),
        (lambda prim, *args, **params: prim.name != "matmul", 2, 1),
    ],
)
def test_what_each_policy_recomputes(monkeypatch, policy, matmuls, exps):
    counts = _count(monkeypatch, policy)
    assert counts.get("matmul", 0) == matmuls
    assert counts.get("test_checkpoint_count_exp", 0) == exps


def test_a_policy_sees_the_primitive_and_its_arguments():
    seen = []

    def policy(prim, *args, **params):
        seen.append((prim.name, [np.shape(a) for a in args], sorted(params)))
        return False

    ds.grad(lambda x: dnp.sum(ds.checkpoint(lambda x: dnp.sum(x * x, axis=0), policy)(x)))(
        np.ones((2, 3))
    )
    assert ("multiply", [(2, 3), (2, 3)], []) in seen
    assert any(name == "sum" and params for name, _, params in seen)


def test_recomputation_runs_python_again_only_without_a_policy():
    calls = []

    def fun(x):
        calls.append(1)
        return dnp.sin(x) * x

    for policy, n in [(None, 2), ("dots_saveable", 1)]:
        calls.clear()
        ds.grad(lambda x: dnp.sum(ds.checkpoint(fun, policy)(x)))(X0)
        assert len(calls) == n


# --- memory: residuals are not held ------------------------------------------------------------


def _held_after_forward(f, x):
    """Bytes still allocated after the forward pass of ``vjp`` (what the tape holds)."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        out, f_vjp = ds.vjp(f, x)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - start
        g = f_vjp(np.ones_like(out))
        del f_vjp, out
    finally:
        tracemalloc.stop()
    return held, g


def _peak(f, x):
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        g = ds.grad(lambda x: dnp.sum(f(x)))(x)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return peak, g


def chain(x):
    for _ in range(6):
        x = dnp.sin(x) * 1.01 + 0.1
    return x


def test_residuals_are_not_held():
    x = np.linspace(0.0, 1.0, 250_000).copy()  # 2 MB per array
    x.flags.writeable = False  # (vjp keeps a copy of an input the caller could change)
    mb = x.nbytes
    plain, g0 = _held_after_forward(chain, x)
    ckpt, g1 = _held_after_forward(ds.checkpoint(chain), x)
    np.testing.assert_allclose(g1, g0, rtol=1e-12)
    assert plain > 12 * mb  # every intermediate of the chain (18 arrays)
    assert ckpt < 1.5 * mb  # the output and some bookkeeping: no residual


def test_peak_memory_of_a_chain_of_checkpointed_blocks():
    x = np.linspace(0.0, 1.0, 250_000)
    mb = x.nbytes

    def model(block):
        def f(x):
            for _ in range(8):
                x = block(x)
            return x

        return f

    plain, g0 = _peak(model(chain), x)
    ckpt, g1 = _peak(model(ds.checkpoint(chain)), x)
    dots, g2 = _peak(model(ds.checkpoint(chain, "dots_saveable")), x)
    np.testing.assert_allclose(g1, g0, rtol=1e-12)
    np.testing.assert_allclose(g2, g0, rtol=1e-12)
    assert plain > 8 * 12 * mb  # 8 blocks x 18 arrays
    assert ckpt < plain / 4  # 8 block outputs, then one block's intermediates at a time
    assert dots < plain / 4  # no matrix product in the chain: nothing kept either


# --- API ---------------------------------------------------------------------------------------


def test_policy_names_and_errors():
    f = lambda x: dnp.sin(x) * 2.0
    assert ds.checkpoint(f, "everything_saveable") is f
    assert ds.grad(ds.checkpoint(f, "checkpoint_dots"))(0.0) == 2.0
    with pytest.raises(ValueError, match="unknown policy 'dots'"):
        ds.checkpoint(f, policy="dots")
    with pytest.raises(TypeError, match="policy"):
        ds.checkpoint(f, policy=3)


def test_pytrees_ints_and_multiple_outputs():
    def fun(p, n):
        return {"a": dnp.sin(p["w"]) * n, "b": (p["w"] * p["v"], n + 1)}

    def loss(p, policy):
        out = ds.checkpoint(fun, policy)(p, 3)
        assert out["b"][1] == 4
        return dnp.sum(out["a"]) + dnp.sum(out["b"][0] ** 2)

    p = {"w": W0, "v": X0}
    want = ds.grad(lambda p: loss(p, "everything_saveable"))(p)
    for policy in (None, "dots_saveable"):
        got = ds.grad(lambda p, policy=policy: loss(p, policy))(p)
        np.testing.assert_allclose(got["w"], want["w"], rtol=1e-12)
        np.testing.assert_allclose(got["v"], want["v"], rtol=1e-12)


@pytest.mark.parametrize("policy", [None, "dots_saveable"])
def test_nested_checkpoints_and_a_vjp_called_twice(policy):
    inner = ds.checkpoint(lambda x: dnp.tanh(A @ x), policy)
    outer = ds.checkpoint(lambda x: inner(inner(x) * x), policy)
    plain = lambda x: dnp.tanh(A @ (dnp.tanh(A @ x) * x))
    out, f_vjp = ds.vjp(outer, X0)
    want_out, want_vjp = ds.vjp(plain, X0)
    np.testing.assert_allclose(out, want_out, rtol=1e-12)
    ct = rng.normal(size=4)
    for _ in range(2):
        np.testing.assert_allclose(f_vjp(ct)[0], want_vjp(ct)[0], rtol=1e-12)
    ds.check_grads(lambda x: dnp.sum(outer(x) ** 2), (X0,), order=2)
