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
    # one call to trace the forward graph, one inside the traced VJP: none per step
    assert calls[0] == 2


def test_fallbacks_warn_and_stay_correct():
    want = ds.grad(loss(None, False))(W, C0, XS)

    def closure_loss(w):  # w read from the closure: graphs refuse it
        return ds.scan(lambda h, x: (dnp.tanh(w @ h + x), None), C0, XS, replay=True)[0].sum()

    def closure_loss0(w):
        return ds.scan(lambda h, x: (dnp.tanh(w @ h + x), None), C0, XS)[0].sum()

    with pytest.warns(ReplayFallbackWarning, match="cannot be traced"):
        got = ds.grad(closure_loss)(W)
    np.testing.assert_allclose(got, ds.grad(closure_loss0)(W), rtol=1e-12)

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
