"""ds.scan(replay=True): the step traced once into graphs and replayed; same values and
gradients as running it, and a fallback (with a warning when asked for) where graphs cannot
replay it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.scan import ReplayFallbackWarning

rng = np.random.default_rng(1)
W = rng.normal(size=(3, 3)) / 2
C0 = rng.normal(size=3)
XS = rng.normal(size=(9, 3))


def step(carry, x):
    w, h, n = carry
    h = dnp.tanh(w @ h + x)
    return (w, h, n + 1), {"s": dnp.sum(h * x), "h": h}


def loss(policy, replay):
    def f(w, c0, xs):
        (_, h, n), ys = ds.scan(step, (w, c0, np.int64(0)), xs, checkpoint=policy, replay=replay)
        assert int(n) == xs.shape[0]
        return dnp.sum(h**2) + dnp.sum(ys["s"] * dnp.arange(1.0, 10.0)) + dnp.sum(ys["h"])

    return f


@pytest.mark.parametrize(
    "policy", [None, "sqrt", ("every_k", 2), ("binomial", 1), ("binomial", 3)], ids=repr
)
def test_replay_gives_the_same_gradients(policy):
    want = ds.grad(loss(None, False), (0, 1, 2))(W, C0, XS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayFallbackWarning)
        got = ds.grad(loss(policy, True), (0, 1, 2))(W, C0, XS)
        value = loss(policy, True)(W, C0, XS)  # no transform: the forward graph alone
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(value, loss(None, False)(W, C0, XS), rtol=1e-14)


def test_replay_traces_the_step_once():
    calls = [0]

    def counted(c, x):
        calls[0] += 1
        return step(c, x)

    f = lambda w: ds.scan(counted, (w, C0, np.int64(0)), XS, replay=True)[0][1].sum()
    ds.grad(f)(W)
    # one call to trace the forward graph (its VJP is traced from the graph): none per step
    assert calls[0] == 1


def test_fallbacks_warn_and_stay_correct():
    want = ds.grad(loss(None, False))(W, C0, XS)

    # an outer transform: grad of grad, vmap of grad
    with pytest.warns(ReplayFallbackWarning, match="outer transforms"):
        gg = ds.grad(lambda c0: dnp.sum(ds.grad(loss(None, True))(W, c0, XS) ** 2))(C0)
    gg0 = ds.grad(lambda c0: dnp.sum(ds.grad(loss(None, False))(W, c0, XS) ** 2))(C0)
    np.testing.assert_allclose(gg, gg0, rtol=1e-10)
    with pytest.warns(ReplayFallbackWarning, match="outer transforms"):
        ds.vmap(lambda c0: loss(None, True)(W, c0, XS))(rng.normal(size=(2, 3)))

    # Python control flow on a traced value: a graph would be specialised to one path
    def branchy(c, x):
        return (c * 2.0 if float(c[0]) > 0 else c - 1.0), None

    with pytest.warns(ReplayFallbackWarning, match="Python value"):
        out = ds.scan(branchy, np.array([0.5, 1.0]), length=4, replay=True)[0]
    np.testing.assert_allclose(out, ds.scan(branchy, np.array([0.5, 1.0]), length=4)[0])

    # replay="auto": the same fallbacks, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayFallbackWarning)
        got = ds.grad(lambda w: loss(None, "auto")(w, C0, XS))(W)
        ds.grad(
            lambda w: ds.scan(lambda h, x: (dnp.tanh(w @ h + x), None), C0, XS, replay="auto")[
                0
            ].sum()
        )(W)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="replay"):
        ds.scan(step, (W, C0, 0), XS, replay="yes")


# --- closures: values of the outer transform the step reads become lifted graph inputs ---

B = rng.normal(size=3)
A = rng.normal(size=3)


def rnn_closure(w, b, a):
    """A step reading ``w`` in every step, ``b`` next to it, ``a`` only with ``x``."""

    def step(h, x):
        h = dnp.tanh(w @ h + b * x)
        return h, dnp.sum(dnp.sin(x * a))

    return step


def shared_closure(w, b, a):
    """``w`` both in the carry and in the closure, ``dnp.exp(b)`` computed in the step from
    the closure alone (it runs once, on the outer transform), ``a`` used twice."""

    def step(carry, x):
        v, h = carry
        h = dnp.tanh(v @ h + dnp.exp(b) * x + w @ a)
        return (v, h), a * h

    return step


def closure_loss(make_step, init, policy, replay):
    def f(w, b, a):
        c, ys = ds.scan(make_step(w, b, a), init(w), XS, checkpoint=policy, replay=replay)
        h = c if isinstance(c, np.ndarray | ds.Tracer) else c[1]
        return dnp.sum(h**2) + dnp.sum(ys * dnp.linspace(0.5, 1.5, ys.size).reshape(ys.shape))

    return f


CLOSURE_CASES = {
    "rnn": (rnn_closure, lambda w: C0),
    "shared": (shared_closure, lambda w: (w, C0)),
}
POLICIES = [None, "sqrt", ("every_k", 2), ("binomial", 1), ("binomial", 3)]


@pytest.mark.parametrize("case", CLOSURE_CASES)
@pytest.mark.parametrize("policy", POLICIES, ids=repr)
def test_closures_replay_with_the_eager_gradients_and_no_warning(case, policy):
    make_step, init = CLOSURE_CASES[case]
    args = (W, B, A)
    want = ds.grad(closure_loss(make_step, init, policy, False), (0, 1, 2))(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ReplayFallbackWarning, nor any other
        f = closure_loss(make_step, init, policy, True)
        got = ds.grad(f, (0, 1, 2))(*args)
        value = f(*args)  # no transform: captured values are plain arrays, constants
    for a, b in zip(got, want, strict=True):
        assert np.any(a != 0.0)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(value, closure_loss(make_step, init, policy, False)(*args))


@pytest.mark.parametrize("policy", [None, "sqrt"], ids=repr)
def test_closure_gradients_match_finite_differences(policy):
    f = closure_loss(rnn_closure, lambda w: C0, policy, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayFallbackWarning)
        ds.check_grads(f, (W, B, A), order=1, modes=("rev",))


def test_a_closure_value_is_read_at_every_call_not_baked_in():
    def loss_of(k, replay):
        step = lambda c, _: (c * k + 0.1, None)
        return dnp.sum(ds.scan(step, np.ones(3), length=5, replay=replay)[0] ** 2)

    k1, k2 = np.array([1.1, 1.2, 1.3]), np.array([0.7, -0.4, 0.9])
    for k in (k1, k2, k1):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReplayFallbackWarning)
            value, g = ds.value_and_grad(loss_of)(k, True)
            plain = loss_of(k, True)
        value0, g0 = ds.value_and_grad(loss_of)(k, False)
        np.testing.assert_allclose(value, value0, rtol=1e-14)
        np.testing.assert_allclose(plain, value0, rtol=1e-14)
        np.testing.assert_allclose(g, g0, rtol=1e-13)


def test_a_step_with_closures_is_traced_once():
    calls = [0]

    def f(w, b, a):
        step = rnn_closure(w, b, a)

        def counted(h, x):
            calls[0] += 1
            return step(h, x)

        c, ys = ds.scan(counted, C0, XS, replay=True, checkpoint="sqrt")
        return dnp.sum(c) + dnp.sum(ys)

    ds.grad(f, (0, 1, 2))(W, B, A)
    assert calls[0] == 1


def test_closures_of_outer_transforms_fall_back_correctly():
    def inner(w, b, a, replay):  # grad of grad: the closure holds the outer transform's w
        def h0_loss(h0):
            c, _ = ds.scan(rnn_closure(w, b, a), h0, XS, replay=replay)
            return dnp.sum(c**2)

        return dnp.sum(ds.grad(h0_loss)(C0) ** 2)

    with pytest.warns(ReplayFallbackWarning, match="closure"):
        got = ds.grad(inner, (0, 1, 2))(W, B, A, True)
    want = ds.grad(inner, (0, 1, 2))(W, B, A, False)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)

    def jvp_loss(w, replay):  # forward mode: nothing for a graph to replay
        return ds.scan(rnn_closure(w, B, A), C0, XS, replay=replay)[0]

    dw = rng.normal(size=W.shape)
    with pytest.warns(ReplayFallbackWarning, match="closure"):
        out, tangent = ds.jvp(lambda w: jvp_loss(w, True), (W,), (dw,))
    out0, tangent0 = ds.jvp(lambda w: jvp_loss(w, False), (W,), (dw,))
    np.testing.assert_allclose(out, out0, rtol=1e-14)
    np.testing.assert_allclose(tangent, tangent0, rtol=1e-12)

    ws = rng.normal(size=(2, 3, 3)) / 2  # vmap: the closure holds a batched value
    with pytest.warns(ReplayFallbackWarning, match="closure"):
        batched = ds.vmap(lambda w: jvp_loss(w, True))(ws)
    np.testing.assert_allclose(batched, ds.vmap(lambda w: jvp_loss(w, False))(ws), rtol=1e-14)


def test_step_errors_with_closures_are_still_reported():
    def bad_carry(w):
        step = lambda h, x: ((w @ h).astype(np.float32), None)
        return ds.scan(step, C0, XS, replay=True)[0].sum()

    with pytest.raises(TypeError, match="carry leaf 0 .* float64 .* float32"):
        ds.grad(bad_carry)(W)

    def bad_pair(w):
        return ds.scan(lambda h, x: w @ h, C0, XS, replay=True)[0].sum()

    with pytest.raises(TypeError, match="must return a pair"):
        ds.grad(bad_pair)(W)


@pytest.mark.parametrize("policy", [None, "sqrt", ("binomial", 2)], ids=repr)
def test_replayed_inner_loop_closing_over_an_outer_loops_carry(policy):
    """The inner loop's closure holds ``w`` (of ``ds.grad``) and the outer step's carry ``h``
    (recorded by the outer loop's node when it has a policy)."""

    def loss_of(replay):
        def f(w):
            def outer(h, x):
                inner = lambda c, _: (dnp.tanh(w @ c + h * x), None)
                c, _ = ds.scan(inner, h, length=3, replay=replay)
                return c, dnp.sum(c)

            h, ys = ds.scan(outer, C0, XS[:4], checkpoint=policy)
            return dnp.sum(h**2) + dnp.sum(ys)

        return f

    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayFallbackWarning)
        got = ds.grad(loss_of(True))(W)
    np.testing.assert_allclose(got, ds.grad(loss_of(False))(W), rtol=1e-12)
