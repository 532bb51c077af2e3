"""Taps record values, cotangents and tangents, and change no result at any order."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.debug import Recorder, TapEvent, tap


def f(x, w):
    h = dnp.tanh(x * w)
    return dnp.sum(h**2 * x)


def f_tapped(x, w):
    h = tap(dnp.tanh(tap(x * w, "xw")), "h")
    return dnp.sum(h**2 * x)


def test_records_value_and_cotangent_of_the_tapped_value():
    x, w = np.array([0.3, -0.7, 1.1]), np.array([0.5, 2.0, -1.0])
    with Recorder() as rec:
        g = ds.grad(f_tapped)(x, w)
    np.testing.assert_array_equal(g, ds.grad(f)(x, w))
    h = np.tanh(x * w)
    np.testing.assert_allclose(rec.values("h")[0], h, rtol=1e-15)
    # d loss / d h = 2 h x; through tanh: times (1 - h^2)
    np.testing.assert_allclose(rec.cotangents("h")[0], 2 * h * x, rtol=1e-14)
    np.testing.assert_allclose(rec.cotangents("xw")[0], 2 * h * x * (1 - h**2), rtol=1e-14)
    assert rec.names() == ["xw", "h"]
    kinds = [(e.name, e.kind) for e in rec.events]
    assert kinds == [("xw", "value"), ("h", "value"), ("h", "cotangent"), ("xw", "cotangent")]


def test_records_the_tangent_under_jvp():
    x, w = np.array([0.3, -0.7]), np.array([0.5, 2.0])
    t = np.array([1.0, -2.0])
    with Recorder() as rec:
        out, t_out = ds.jvp(lambda x: f_tapped(x, w), (x,), (t,))
    want = ds.jvp(lambda x: f(x, w), (x,), (t,))
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(t_out, want[1])
    np.testing.assert_allclose(rec.tangents("xw")[0], t * w, rtol=1e-15)
    assert rec.cotangents("xw") == []


@pytest.mark.parametrize("order", [1, 2])
def test_derivatives_unchanged_at_every_order(order):
    x, w = np.array([0.3, -0.7, 1.1]), np.array([0.5, 2.0, -1.0])
    with Recorder():
        ds.check_grads(f_tapped, (x, w), order=order, modes=("fwd", "rev"))
        np.testing.assert_allclose(
            ds.hessian(f_tapped)(x, w), ds.hessian(f)(x, w), rtol=1e-14, atol=1e-15
        )
        np.testing.assert_allclose(
            ds.jacfwd(ds.grad(f_tapped, argnums=1), argnums=0)(x, w),
            ds.jacfwd(ds.grad(f, argnums=1), argnums=0)(x, w),
            rtol=1e-14,
            atol=1e-15,
        )


def test_batched_recordings_carry_the_batch_axis():
    x = np.array([0.3, -0.7])
    with Recorder() as rec:
        ds.jacrev(lambda x: tap(dnp.sin(x), "s"))(x)
    assert rec.values("s")[0].shape == (2,)
    assert rec.cotangents("s")[0].shape == (2, 2)  # one basis cotangent per row
    np.testing.assert_array_equal(rec.cotangents("s")[0], np.eye(2))


def test_pytrees_named_per_leaf_and_callbacks():
    seen: list[TapEvent] = []
    params = {"enc": {"w": np.ones(2)}, "b": [np.zeros(1)]}

    def loss(p):
        p = tap({**p, "steps": 3}, "p", callback=seen.append)
        assert p["steps"] == 3  # non-float leaves pass through untouched
        return dnp.sum(p["enc"]["w"] * 3.0) + dnp.sum(p["b"][0])

    g = ds.grad(loss)(params)
    assert g["enc"]["w"].tolist() == [3.0, 3.0]
    names = [(e.name, e.kind) for e in seen]
    assert ("p.enc.w", "value") in names and ("p.b.0", "value") in names
    cot = {e.name: e.value for e in seen if e.kind == "cotangent"}
    np.testing.assert_array_equal(cot["p.enc.w"], [3.0, 3.0])
    np.testing.assert_array_equal(cot["p.b.0"], [1.0])


def test_recorders_nest_and_close():
    x = np.array([1.0, 2.0])
    with Recorder() as outer:
        with Recorder() as inner:
            tap(x, "a")
        tap(x, "b")
    tap(x, "c")  # no recorder open: nothing recorded, x returned as is
    assert inner.names() == ["a"] and outer.names() == ["a", "b"]
    assert tap(x, "nothing") is x


def test_value_recordings_are_copies_and_name_is_checked():
    x = np.array([1.0, 2.0])
    with Recorder() as rec:
        tap(x, "x")
    x[0] = 5.0
    assert rec.values("x")[0][0] == 1.0
    with pytest.raises(TypeError, match="name must be a str"):
        tap(x, 3)


@pytest.mark.parametrize(
    "module",
    [
        "diffsys.debug._taps",
        "diffsys.debug._report",
        pytest.param(  # anomalies' example: sqrt's derivative at 0 divides by zero on purpose
            "diffsys.debug._anomalies",
            marks=pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
        ),
    ],
)
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(mod, optionflags=flags)
    assert result.failed == 0 and result.attempted > 0
