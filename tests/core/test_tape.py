"""The reverse trace's tape: what a node holds, and that it costs Python's garbage collector
nothing once recorded (a property the eager engine's speed on long loops depends on)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.core.primitive import Primitive
from diffsys.core.reverse import ReverseTrace


def _record(fun, *values):
    """Run ``fun`` on fresh inputs of a new reverse trace; the trace."""
    trace = ReverseTrace()
    fun(*[trace.new_input(v) for v in values])
    return trace


def _step(x, k):
    d = x[1:] - x[:-1]
    length = dnp.sqrt(dnp.sum(d * d, axis=1, keepdims=True))
    f = k * (length - 1.0) / length * d
    zero = np.zeros((1, 3))
    return x + 0.01 * (dnp.concatenate([f, zero]) - dnp.concatenate([zero, f]))


def test_nodes_of_plain_values_are_untracked_after_one_collection():
    x, k = np.random.default_rng(0).standard_normal((8, 3)), np.ones((7, 1))

    def loop(x, k):
        for _ in range(50):
            x = _step(x, k)
        return x

    trace = _record(loop, x, k)
    gc.collect()
    gc.collect()  # a node is checked after the tuples inside it: two passes suffice
    tracked = [node for node in trace.tape if gc.is_tracked(node)]
    assert len(trace.tape) == 50 * 15
    assert tracked == []


def test_equal_parameters_share_one_operation_entry():
    x = np.random.default_rng(1).standard_normal((8, 3))

    def f(x):
        for _ in range(20):
            x = dnp.concatenate([x[1:], x[:1]]) * dnp.sum(x, axis=1, keepdims=True)
        return x

    trace = _record(f, x)
    # getitem x2, concatenate, sum, multiply: one entry each, however many nodes use them
    assert len(trace.ops) == 5
    assert len(trace.tape) == 20 * 5


def test_call_with_does_not_copy_or_change_the_parameters():
    seen = []
    prim = Primitive("test_tape.scale", lambda x, factor: x * factor)
    prim.defvjp(lambda g, ans, x, factor: seen.append(factor) or g * factor)
    params = {"factor": 3.0}
    grad = ds.grad(lambda x: dnp.sum(prim.call_with((x,), params)))(np.ones(2))
    np.testing.assert_array_equal(grad, [3.0, 3.0])
    assert params == {"factor": 3.0} and seen == [3.0]
    np.testing.assert_array_equal(prim.call_with((np.ones(2),), params), [3.0, 3.0])


@pytest.mark.parametrize("consume", [False, True])
def test_backward_matches_with_and_without_consuming_the_tape(consume):
    x, k = np.random.default_rng(2).standard_normal((8, 3)), np.full((7, 1), 2.0)
    trace = ReverseTrace()
    xs, ks = trace.new_input(x), trace.new_input(k)
    out = dnp.sum(_step(_step(xs, ks), ks) ** 2)
    cts = trace.backward([(out._slot, np.ones(()))], 2, consume=consume)
    expected = ds.grad(lambda x, k: dnp.sum(_step(_step(x, k), k) ** 2), argnums=(0, 1))(x, k)
    for got, want in zip(cts, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    assert (len(trace.tape) == 0) == consume
