"""ds.scan: values, structures and errors; derivatives under every checkpointing policy (both
modes, nested, closures); step counts; memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.core import remat
from diffsys.scan import revolve

POLICIES = [
    None,
    "all",
    "sqrt",
    ("every_k", 1),
    ("every_k", 3),
    ds.scan_policies.every(4),
    ("binomial", 1),
    ("binomial", 2),
    ds.scan_policies.binomial(3),
    "binomial",
]
IDS = [repr(p) for p in POLICIES]

rng = np.random.default_rng(0)
W = rng.normal(size=(3, 3)) / 2
C0 = rng.normal(size=3)
XS = rng.normal(size=(7, 3))


def rnn_step(w):
    def step(c, x):
        h = dnp.tanh(w @ c + x)
        return h, dnp.sum(h * x)

    return step


def python_loop(step, init, xs):
    c, ys = init, []
    for x in xs:
        c, y = step(c, x)
        ys.append(y)
    return c, dnp.stack(ys)


def loss_scan(policy):
    def loss(w, c0, xs):
        c, ys = ds.scan(rnn_step(w), c0, xs, checkpoint=policy)
        return dnp.sum(c**2) + dnp.sum(ys * dnp.arange(1.0, ys.shape[0] + 1.0))

    return loss


def loss_loop(w, c0, xs):
    c, ys = python_loop(rnn_step(w), c0, xs)
    return dnp.sum(c**2) + dnp.sum(ys * dnp.arange(1.0, ys.shape[0] + 1.0))


# --- values and structures -----------------------------------------------------------------------


def test_values_match_a_python_loop():
    c, ys = ds.scan(rnn_step(W), C0, XS)
    c0, ys0 = python_loop(rnn_step(W), C0, XS)
    np.testing.assert_allclose(c, c0)
    np.testing.assert_allclose(ys, ys0)
    assert ys.shape == (7,)


def test_pytrees_length_and_none():
    def step(carry, x):
        n, (a, b) = carry["n"], carry["ab"]
        a = a + x["u"] * b
        return {"n": n + 1, "ab": (a, b * 0.5)}, {"a": a, "pair": (x["v"], None)}

    init = {"n": np.int64(0), "ab": (np.zeros(2), 1.0)}
    xs = {"u": np.arange(8.0).reshape(4, 2), "v": np.arange(4)}
    carry, ys = ds.scan(step, init, xs)
    assert carry["n"] == 4 and carry["n"].dtype == np.int64
    np.testing.assert_allclose(carry["ab"][1], 0.5**4)
    assert ys["a"].shape == (4, 2) and ys["pair"][1] is None
    np.testing.assert_array_equal(ys["pair"][0], np.arange(4))
    # xs=None: length steps, x is None
    c, ys = ds.scan(lambda c, x: (c * 2.0, x), 1.0, length=5)
    assert float(c) == 32.0 and ys is None
    # zero steps: init back, empty ys shaped like y
    c, ys = ds.scan(rnn_step(W), C0, XS[:0])
    np.testing.assert_array_equal(c, C0)
    assert ys.shape == (0,)


def test_errors():
    step = lambda c, x: (c + x, None)
    with pytest.raises(ValueError, match="length must be given"):
        ds.scan(step, 0.0)
    with pytest.raises(ValueError, match="length=3 but xs has leading size 7"):
        ds.scan(step, C0, XS, length=3)
    with pytest.raises(ValueError, match="different leading sizes"):
        ds.scan(step, 0.0, (np.ones(2), np.ones(3)))
    with pytest.raises(TypeError, match="keep its shape and dtype"):
        ds.scan(lambda c, x: (dnp.concatenate([c, c]), None), C0, length=2)
    with pytest.raises(TypeError, match="keep its shape and dtype"):
        ds.scan(lambda c, x: (c.astype(np.float32), None), C0, length=2)
    with pytest.raises(TypeError, match="structure"):
        ds.scan(lambda c, x: ((c, c), None), C0, length=2)
    with pytest.raises(TypeError, match="pair"):
        ds.scan(lambda c, x: c, C0, length=2)
    with pytest.raises(ValueError, match="unknown checkpoint policy"):
        ds.scan(step, 0.0, length=2, checkpoint="dots")
    with pytest.raises(ValueError, match="needs k"):
        ds.scan(step, 0.0, length=2, checkpoint="every_k")
    with pytest.raises(ValueError, match="positive int"):
        ds.scan_policies.every(0)


# --- derivatives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_gradients_equal_the_python_loop(policy):
    f = loss_scan(policy)
    got = ds.grad(f, (0, 1, 2))(W, C0, XS)
    want = ds.grad(loss_loop, (0, 1, 2))(W, C0, XS)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # w only reaches the loop through the step's closure, with c0 and xs plain
    np.testing.assert_allclose(ds.grad(f)(W, C0, XS), want[0], rtol=1e-12)


@pytest.mark.parametrize("policy", [None, "sqrt", ("every_k", 3), ("binomial", 2)], ids=repr)
def test_check_grads_order_two(policy):
    xs = XS[:5]
    ds.check_grads(lambda w, c0, xs: loss_scan(policy)(w, c0, xs), (W, C0, xs), order=2)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_higher_order_and_other_transforms(policy):
    f = loss_scan(policy)
    np.testing.assert_allclose(ds.hessian(f, 1)(W, C0, XS), ds.hessian(loss_loop, 1)(W, C0, XS))
    gg = ds.grad(lambda c0: dnp.sum(ds.grad(f)(W, c0, XS) ** 2))(C0)
    gg0 = ds.grad(lambda c0: dnp.sum(ds.grad(loss_loop)(W, c0, XS) ** 2))(C0)
    np.testing.assert_allclose(gg, gg0, rtol=1e-10)
    t = rng.normal(size=3)
    np.testing.assert_allclose(
        ds.hvp(lambda c0: f(W, c0, XS), (C0,), (t,)),
        ds.hvp(lambda c0: loss_loop(W, c0, XS), (C0,), (t,)),
        rtol=1e-10,
    )
    c0s = rng.normal(size=(4, 3))
    np.testing.assert_allclose(
        ds.vmap(ds.grad(f, 1), in_axes=(None, 0, None))(W, c0s, XS),
        ds.vmap(ds.grad(loss_loop, 1), in_axes=(None, 0, None))(W, c0s, XS),
        rtol=1e-12,
    )
    # forward mode and vmap of the loop itself
    _, tf = ds.jvp(lambda c0: f(W, c0, XS), (C0,), (t,))
    _, t0 = ds.jvp(lambda c0: loss_loop(W, c0, XS), (C0,), (t,))
    np.testing.assert_allclose(tf, t0, rtol=1e-12)
    np.testing.assert_allclose(
        ds.vmap(lambda c0: f(W, c0, XS))(c0s), ds.vmap(lambda c0: loss_loop(W, c0, XS))(c0s)
    )


@pytest.mark.parametrize("policy", ["sqrt", ("binomial", 2)], ids=repr)
def test_closure_found_only_while_running(policy, monkeypatch):
    """A traced value the closure walk misses: the first step reveals it, the loop starts
    over as a node of its trace."""
    monkeypatch.setattr(remat, "closure_tracers", lambda fun: [])
    want = ds.grad(loss_loop, (0, 1))(W, C0, XS)
    f = loss_scan(policy)
    np.testing.assert_allclose(ds.grad(f)(W, C0, XS), want[0], rtol=1e-12)
    got = ds.grad(f, (0, 1))(W, C0, XS)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


@pytest.mark.parametrize("policy", [None, "sqrt", ("binomial", 2)], ids=repr)
def test_closures_in_objects_globals_and_partials(policy):
    import functools

    class Model:
        def __init__(self, w):
            self.w = w

        def step(self, c, x):
            return dnp.tanh(self.w @ c + x), None

    def step3(w, c, x):
        return dnp.tanh(w @ c + x), None

    want = ds.grad(lambda w: dnp.sum(python_loop(rnn_step(w), C0, XS)[0] ** 2))(W)
    for make in (lambda w: Model(w).step, lambda w: functools.partial(step3, w)):
        got = ds.grad(
            lambda w, make=make: dnp.sum(ds.scan(make(w), C0, XS, checkpoint=policy)[0] ** 2)
        )(W)
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("policy", [None, "sqrt", ("binomial", 2)], ids=repr)
def test_nesting_scans_and_checkpoints(policy):
    def inner_loop(w, c, x):
        def inner(h, _):
            return ds.checkpoint(lambda h: dnp.tanh(w @ h + x))(h), None

        return ds.scan(inner, c, length=3, checkpoint=policy)[0]

    def loss(w, c0):
        c, ys = ds.scan(
            lambda c, x: (inner_loop(w, c, x), dnp.sum(c)), c0, XS[:4], checkpoint=policy
        )
        return dnp.sum(c**2) + dnp.sum(ys)

    def loss0(w, c0):
        c, ys = c0, []
        for x in XS[:4]:
            ys.append(dnp.sum(c))
            for _ in range(3):
                c = dnp.tanh(w @ c + x)
        return dnp.sum(c**2) + sum(ys)

    got = ds.grad(loss, (0, 1))(W, C0)
    want = ds.grad(loss0, (0, 1))(W, C0)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    # a scan inside a checkpoint
    got = ds.grad(ds.checkpoint(loss), (0, 1))(W, C0)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)


@pytest.mark.parametrize("policy", [None, "sqrt", ("binomial", 2), ("every_k", 1)], ids=repr)
def test_integer_carry_and_a_vjp_called_twice(policy):
    def step(c, x):
        n, h = c
        return (n + 1, dnp.tanh(W @ h + x * n)), h[0]

    def final(scan):
        return lambda c0, xs: scan(step, (np.int64(0), c0), xs)[0][1]

    _, f_vjp = ds.vjp(final(lambda *a: ds.scan(*a, checkpoint=policy)), C0, XS)
    _, plain_vjp = ds.vjp(final(python_loop), C0, XS)
    ct = rng.normal(size=3)
    want = plain_vjp(ct)
    for _ in range(2):
        got = f_vjp(ct)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


# --- step counts ---------------------------------------------------------------------------------


def _count_steps(policy, length):
    calls = [0]

    def step(c, x):
        calls[0] += 1
        return dnp.sin(c) * 1.01 + x, None

    ds.grad(lambda c0: dnp.sum(ds.scan(step, c0, np.ones(length), checkpoint=policy)[0]))(
        np.ones(2)
    )
    return calls[0]


@pytest.mark.parametrize("length", [1, 2, 3, 7, 20, 64])
@pytest.mark.parametrize("s", [1, 2, 3, 5, 8])
def test_binomial_evaluates_revolves_minimum(length, s):
    """Step evaluations: Revolve's minimal forward steps t(l, s) = r l - beta(s + 1, r - 1),
    plus one recorded evaluation per step (the forward pass's last step is recorded at once,
    so it counts once)."""
    assert _count_steps(("binomial", s), length) == revolve.forward_steps(length, s) + length


@pytest.mark.parametrize("length", [1, 5, 10, 31, 100])
def test_counts_of_the_other_policies(length):
    assert _count_steps(None, length) == length
    assert _count_steps(("every_k", 1), length) == 2 * length - 1
    for k in (2, 3, 10):
        segments = -(-length // k)
        last = length - (segments - 1) * k  # steps in the last segment
        advances = (segments - 1) * (k - 1) + max(last - 2, 0)
        assert _count_steps(("every_k", k), length) == length + advances + length - 1
    k = int(np.ceil(np.sqrt(length)))
    assert _count_steps("sqrt", length) == _count_steps(("every_k", k), length)


# --- memory ---------------------------------------------------------------------------------


def _peak(policy, length=100):
    x0 = np.linspace(0.0, 1.0, 20_000)  # a 160 kB carry

    def loss(a):
        def step(c, _):
            return dnp.sin(c * a) * 0.5 + c * 0.5, None

        return dnp.sum(ds.scan(step, x0, length=length, checkpoint=policy)[0])

    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        g = ds.grad(loss)(np.asarray(1.1))
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return peak / x0.nbytes, g


def test_checkpointing_bounds_the_memory():
    all_, g = _peak(None)
    carries, g1 = _peak(("every_k", 1))
    sqrt, g2 = _peak("sqrt")
    binomial, g3 = _peak(("binomial", 4))
    for other in (g1, g2, g3):
        np.testing.assert_allclose(other, g, rtol=1e-12)
    # in carries (160 kB each); one recorded step and its cotangents take about 10
    assert all_ > 450  # about 5 arrays per step are kept
    assert 100 < carries < 125  # one carry per step
    assert sqrt < 35  # 10 snapshots, up to 9 carries of a segment, one step
    assert binomial < 20  # 4 snapshots, one step


def _small_carry_peak(length: int) -> int:
    """tracemalloc's peak (bytes) of a binomial-checkpointed gradient through a loop with a
    tiny carry and no per-step outputs: what the loop's own bookkeeping keeps."""

    def loss(x):
        step = lambda c, _: (c * 0.9999 + 1e-3 * dnp.sin(c), None)  # noqa: E731
        return dnp.sum(ds.scan(step, x, length=length, checkpoint=("binomial", 8))[0])

    ds.grad(loss)(np.ones(3))  # warm caches
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        ds.grad(loss)(np.ones(3))
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_binomial_memory_does_not_grow_with_the_length_of_a_loop_without_outputs():
    # a step with no y kept an empty list per step (64 bytes each: 6 MiB for 100,000 steps)
    short, long = _small_carry_peak(1000), _small_carry_peak(10000)
    assert long < short + 64 * 1000, (short, long)


def test_binomial_memory_does_not_grow_with_the_length():
    short, _ = _peak(("binomial", 3), length=50)
    long, _ = _peak(("binomial", 3), length=400)
    assert long < short + 2  # the same snapshots and one step, however many steps
    assert _peak(None, length=400)[0] > 4 * _peak(None, length=50)[0]


@pytest.mark.parametrize("policy", [None, "sqrt", ("binomial", 2)], ids=repr)
def test_reverse_runs_from_the_last_x(policy):
    c, ys = ds.scan(rnn_step(W), C0, XS, reverse=True)
    c0, ys0 = python_loop(rnn_step(W), C0, XS[::-1])
    np.testing.assert_allclose(c, c0)
    np.testing.assert_allclose(ys, ys0[::-1])  # ys keep the order of xs

    def reversed_loss(w, c0, xs):  # loss_loop on the flipped sequence, through reverse=True
        c, ys = ds.scan(rnn_step(w), c0, xs, checkpoint=policy, reverse=True)
        return dnp.sum(c**2) + dnp.sum(ys[::-1] * dnp.arange(1.0, 8.0))

    want = ds.grad(lambda w, c0, xs: loss_loop(w, c0, xs[::-1]), (0, 1, 2))(W, C0, XS)
    got = ds.grad(reversed_loss, (0, 1, 2))(W, C0, XS)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
