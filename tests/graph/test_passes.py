"""Graph passes: each preserves values and derivatives, and does what it says."""

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.graph import IMPURE, mark_impure

rng = np.random.default_rng(1)
W = rng.standard_normal((4, 4))
X = rng.standard_normal(4)


def f(w, x):
    a = dnp.sin(x) * dnp.sin(x)  # a common subexpression
    _unused = dnp.exp(x) * 3.0  # dead code
    wt = dnp.tanh(w).T  # depends on w only: folded once w is frozen
    return dnp.sum(wt @ a + dnp.cos(x) @ wt.T) + dnp.sum(dnp.sum(w, axis=0) * dnp.sum(w, axis=1))


def _same_values_and_grads(g, h, *args):
    np.testing.assert_allclose(h(*args), g(*args), rtol=1e-14)
    nums = tuple(range(len(args)))
    for a, b in zip(ds.grad(h, nums)(*args), ds.grad(g, nums)(*args), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    ds.check_grads(h, args, order=2)


def test_dce_removes_unused_operations():
    g = ds.trace(f)(W, X)
    h = g.dce()
    assert g.count("exp") == 1 and h.count("exp") == 0
    assert len(h) == len(g) - 2  # exp and the multiplication by 3
    _same_values_and_grads(g, h, W, X)


def test_cse_merges_equal_operations_only():
    g = ds.trace(f)(W, X)
    h = g.cse()
    assert g.count("sin") == 2 and h.count("sin") == 1
    # sum over axis 0 and over axis 1 have the same input but different parameters
    assert h.count("sum") == g.count("sum")
    _same_values_and_grads(g, h, W, X)


def test_cse_on_a_value_and_grad_graph():
    g = ds.trace(ds.value_and_grad(f, argnums=(0, 1)))(W, X)
    h = g.cse().dce()
    assert len(h) < len(g)
    w2, x2 = rng.standard_normal((4, 4)), rng.standard_normal(4)
    for a, b in zip(ds.tree_leaves(h(w2, x2)), ds.tree_leaves(g(w2, x2)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_freeze_then_fold_constants():
    g = ds.trace(f)(W, X)
    frozen = g.freeze(0)
    assert [a.name for a in frozen.args] == ["x"]
    folded = frozen.fold_constants()
    assert folded.count("tanh") == 0 and frozen.count("tanh") == 1
    assert len(folded) < len(frozen)
    x2 = rng.standard_normal(4)
    np.testing.assert_allclose(folded(x2), f(W, x2), rtol=1e-14)
    np.testing.assert_allclose(ds.grad(folded)(x2), ds.grad(f, 1)(W, x2), rtol=1e-13)
    ds.check_grads(folded, (x2,), order=2)


def test_freeze_with_given_values():
    g = ds.trace(f)(W, X)
    w2 = rng.standard_normal((4, 4))
    h = g.freeze({0: w2}).optimize()
    np.testing.assert_allclose(h(X), f(w2, X), rtol=1e-14)
    with pytest.raises(ValueError, match="out of range"):
        g.freeze(5)
    with pytest.raises(TypeError, match="shape"):
        g.freeze({0: np.ones((3, 3))})


def test_optimize_pipeline_preserves_everything():
    g = ds.trace(f)(W, X)
    h = g.optimize()
    assert len(h) < len(g)
    _same_values_and_grads(g, h, W, X)
    # the original is untouched
    assert g.count("sin") == 2


def test_impure_primitives_are_never_merged_or_removed():
    calls = []

    def noisy_impl(x):
        calls.append(1)
        return x + 0.0

    noisy = ds.Primitive("tests.graph.noisy", noisy_impl)
    noisy.defvjp(lambda g, ans, x: g)
    mark_impure(noisy)
    try:

        def h(x):
            _ = noisy(x)  # unused, but it has a side effect
            return dnp.sum(noisy(x) + noisy(x))

        g = ds.trace(h)(X)
        assert g.count("tests.graph.noisy") == 3
        opt = g.optimize()
        assert opt.count("tests.graph.noisy") == 3
        calls.clear()
        np.testing.assert_allclose(opt(X), 2 * np.sum(X))
        assert len(calls) == 3
    finally:
        IMPURE.discard("tests.graph.noisy")


def test_pure_duplicates_of_a_custom_primitive_merge():
    def impl(x):
        return x * 2.0

    double = ds.Primitive("tests.graph.double", impl)
    double.defvjp(lambda g, ans, x: 2.0 * g)
    g = ds.trace(lambda x: dnp.sum(double(x) * double(x)))(X)
    assert g.cse().count("tests.graph.double") == 1
    np.testing.assert_allclose(g.cse()(X), np.sum((2 * X) ** 2))


# --- algebraic simplification ---


def test_simplify_lets_arithmetic_broadcast_instead_of_broadcast_to():
    def h(x, y):
        b = dnp.broadcast_to(x[:, None], (4, 3))
        return dnp.sum(b * y + y / b - b)

    x, y = rng.uniform(1.0, 2.0, 4), rng.uniform(1.0, 2.0, (4, 3))
    g = ds.trace(h)(x, y)
    s = g.simplify().dce()
    assert g.count("broadcast_to") == 1 and s.count("broadcast_to") == 0
    _same_values_and_grads(g, s, x, y)


@pytest.mark.parametrize(
    "h",
    [
        lambda x, y: dnp.sum(dnp.broadcast_to(x, (4, 3)) * dnp.broadcast_to(x, (4, 3)) + y),
        lambda x, y: dnp.sum(dnp.broadcast_to(x, (4, 3)) * y[0]),  # other operand is smaller
        lambda x, y: dnp.sum(dnp.exp(dnp.broadcast_to(x, (4, 3))) * y),  # a non-arithmetic reader
        lambda x, y: (dnp.broadcast_to(x, (4, 3)), dnp.sum(dnp.broadcast_to(x, (4, 3)) * y)),
    ],
    ids=["squared", "smaller-other", "exp-reader", "graph-output"],
)
def test_simplify_keeps_a_broadcast_that_the_result_needs(h):
    x, y = rng.standard_normal(3), rng.standard_normal((4, 3))
    g = ds.trace(h)(x, y).cse()
    s = g.simplify().dce()
    assert s.count("broadcast_to") == g.count("broadcast_to") >= 1
    for a, b in zip(ds.tree_leaves(s(x, y)), ds.tree_leaves(g(x, y)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_simplify_adds_a_scattered_cotangent_in_place_of_a_zero_array():
    def energy(x):  # x is read at x[1:] and x[:-1]: their VJPs scatter into zeros and add
        d = x[1:] - x[:-1]
        return dnp.sum(d * d * dnp.cos(x[1:]))

    x = rng.standard_normal((6, 3))
    g = ds.trace(ds.grad(energy))(x)
    s = g.simplify().dce()
    assert s.count("scatter_zeros") < g.count("scatter_zeros")
    assert s.count("index_add") == g.count("scatter_zeros") - s.count("scatter_zeros")
    assert len(s) < len(g)
    _same_values_and_grads(lambda x: dnp.sum(g(x) ** 2), lambda x: dnp.sum(s(x) ** 2), x)


def test_optimize_simplifies():
    def energy(x):
        d = x[1:] - x[:-1]
        return dnp.sum(dnp.sum(d * d, axis=1, keepdims=True) * d)

    x = rng.standard_normal((5, 3))
    g = ds.trace(ds.grad(energy))(x)
    o = g.optimize()
    assert o.count("broadcast_to") == 0 and o.count("scatter_zeros") < g.count("scatter_zeros")
    np.testing.assert_allclose(o(x), g(x), rtol=1e-14)
