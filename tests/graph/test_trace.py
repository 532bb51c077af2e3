"""ds.trace: recording, listing, replay on arrays, transforms over graphs, call checks."""

import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.graph import GraphCallError, GraphSpecializationWarning, GraphTraceError

rng = np.random.default_rng(0)


def f(x, y):
    return dnp.sum(dnp.sin(x) * y + dnp.exp(x) / (1.0 + y**2))


X = rng.standard_normal(5)
Y = rng.standard_normal(5)


def test_replay_matches_eager():
    g = ds.trace(f)(X, Y)
    x2, y2 = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_allclose(g(x2, y2), f(x2, y2), rtol=1e-14)
    assert g.count() == len(g.nodes) > 0


def test_value_and_grad_graph_records_forward_and_backward():
    vg = ds.value_and_grad(f, argnums=(0, 1))
    g = ds.trace(vg)(X, Y)
    assert g.count("cos") >= 1  # the VJP of sin is part of the graph
    x2, y2 = rng.standard_normal(5), rng.standard_normal(5)
    value, (gx, gy) = g(x2, y2)
    v_ref, (gx_ref, gy_ref) = vg(x2, y2)
    np.testing.assert_allclose(value, v_ref, rtol=1e-14)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-14)
    np.testing.assert_allclose(gy, gy_ref, rtol=1e-14)


TRANSFORMS = {
    "grad": lambda g: ds.grad(g, argnums=(0, 1)),
    "hessian": lambda g: ds.hessian(g),
    "jacfwd": lambda g: ds.jacfwd(g, argnums=1),
    "grad_of_grad": lambda g: ds.grad(lambda x, y: ds.grad(g)(x, y)[2]),
    "vmap": lambda g: ds.vmap(g, in_axes=(0, None)),
    "vmap_of_grad": lambda g: ds.vmap(ds.grad(g), in_axes=(0, None)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_apply_to_graphs(name):
    transform = TRANSFORMS[name]
    g = ds.trace(f)(X, Y)
    args = (rng.standard_normal((3, 5)), Y) if name.startswith("vmap") else (X, Y)
    got = transform(g)(*args)
    want = transform(f)(*args)
    for a, b in zip(ds.tree_leaves(got), ds.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_jvp_and_vjp_of_graph():
    g = ds.trace(f)(X, Y)
    t = rng.standard_normal(5)
    out, tan = ds.jvp(g, (X, Y), (t, np.zeros(5)))
    out_ref, tan_ref = ds.jvp(f, (X, Y), (t, np.zeros(5)))
    np.testing.assert_allclose([out, tan], [out_ref, tan_ref], rtol=1e-13)
    _, pull = ds.vjp(g, X, Y)
    _, pull_ref = ds.vjp(f, X, Y)
    for a, b in zip(pull(np.float64(2.0)), pull_ref(np.float64(2.0)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_check_grads_through_graph():
    g = ds.trace(f)(X, Y)
    ds.check_grads(g, (X, Y), order=2)


def test_pytree_arguments_and_outputs_and_statics():
    def h(params, x, n):
        y = x
        for _ in range(n):
            y = dnp.tanh(params["w"] @ y + params["b"])
        return {"out": y, "norm": dnp.sum(y**2)}, n

    params = {"w": rng.standard_normal((3, 3)), "b": rng.standard_normal(3)}
    x = rng.standard_normal(3)
    g = ds.trace(h)(params, x, 2)
    got, n = g(params, x, 2)
    want, _ = h(params, x, 2)
    assert n == 2
    np.testing.assert_allclose(got["out"], want["out"], rtol=1e-14)
    assert set(g.inputs) == {"params.w", "params.b", "x"}
    with pytest.raises(GraphCallError, match="static leaf"):
        g(params, x, 3)
    with pytest.raises(GraphCallError, match="structure"):
        g({"w": params["w"]}, x, 2)


def test_shape_dtype_and_arity_errors():
    g = ds.trace(f)(X, Y)
    with pytest.raises(GraphCallError, match=r"input 'x' was traced with shape \(5,\)"):
        g(np.ones(4), Y)
    with pytest.raises(GraphCallError, match="dtype float64"):
        g(X.astype(np.float32), Y)
    with pytest.raises(GraphCallError, match="takes 2 positional argument"):
        g(X)
    with pytest.raises(TypeError, match="positional arguments only"):
        ds.trace(f)(X, y=Y)


def test_python_float_argument_is_a_placeholder():
    g = ds.trace(lambda x, s: dnp.sum(x * s))(X, 2.0)
    np.testing.assert_allclose(g(X, 3.0), np.sum(X * 3.0))
    np.testing.assert_allclose(ds.grad(g, argnums=1)(X, 3.0), np.sum(X))


def test_control_flow_specialisation_warns_once():
    def branchy(x):
        if dnp.sum(x) > 0:  # concretizes a traced value
            return dnp.sum(x * 2.0)
        return dnp.sum(x * 3.0)

    x = np.ones(3)
    with pytest.warns(GraphSpecializationWarning, match="specialised") as record:
        g = ds.trace(branchy)(x)
    assert len([w for w in record if w.category is GraphSpecializationWarning]) == 1
    # The graph keeps the path it took: the positive branch, even for negative input.
    assert g(-x) == -6.0
    assert "specialised on" in str(g)


def test_no_warning_without_concretization():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.trace(f)(X, Y)


def test_captured_outer_tracer_is_an_error():
    def outer(y):
        return ds.trace(lambda x: dnp.sum(x * y))(X)(X)

    with pytest.raises(GraphTraceError, match=r"shape \(5,\).*a closure.*lift_closures=True"):
        ds.grad(outer)(Y)


def test_lift_closures_makes_captured_values_the_last_argument():
    seen = {}

    def inner(x):
        return dnp.sum(dnp.sin(x) * seen["y"] + x * seen["y"])

    def outer(y):
        seen["y"] = y
        g, captured = ds.trace(inner, lift_closures=True)(X)
        seen["graph"], seen["captured"] = g, captured
        return g(X, captured)  # called with the tracers: differentiates through them

    got = ds.grad(outer)(Y)
    np.testing.assert_allclose(got, ds.grad(lambda y: outer_eager(y))(Y), rtol=1e-14)
    g, captured = seen["graph"], seen["captured"]
    assert len(captured) == 1 and captured[0] is seen["y"]  # one input for a value used twice
    assert [a.name for a in g.args] == ["x", "closure"]
    assert list(g.inputs) == ["x", "closure.0"]
    assert g.inputs["closure.0"].shape == (5,)
    y2 = rng.standard_normal(5)  # the captured value is an input, not a constant
    np.testing.assert_allclose(g(X, [y2]), _eager(X, y2), rtol=1e-14)
    np.testing.assert_allclose(g.call_flat([X, y2])[0], _eager(X, y2), rtol=1e-14)


def _eager(x, y):
    return np.sum(np.sin(x) * y + x * y)


def outer_eager(y):
    return dnp.sum(dnp.sin(X) * y + X * y)


def test_lift_closures_without_closures_and_name_clashes():
    g, captured = ds.trace(lambda x: x * 2.0, lift_closures=True)(X)
    assert captured == []
    np.testing.assert_allclose(g(X, []), 2.0 * X)
    with pytest.raises(GraphCallError, match="2 positional"):
        g(X)

    def outer(y):
        def fun(closure):  # an argument already named like the lifted one
            return dnp.sum(closure * y)

        g, captured = ds.trace(fun, lift_closures=True)(X)
        assert [a.name for a in g.args] == ["closure", "_closure"]
        assert list(g.inputs) == ["closure", "_closure.0"]
        return g(X, captured)

    np.testing.assert_allclose(ds.grad(outer)(Y), X, rtol=1e-15)


def test_lift_closures_captures_what_the_graph_reads():
    """Operations on captured values alone run on the outer transform while tracing; the
    graph's lifted inputs are the values it reads (here ``y`` and ``y ** 2``)."""
    seen = {}

    def outer(y):
        g, captured = ds.trace(lambda x: dnp.sum(x * y + x * y**2), lift_closures=True)(X)
        seen["captured"] = captured
        return g(X, captured)

    np.testing.assert_allclose(ds.grad(outer)(Y), X + 2.0 * Y * X, rtol=1e-15)
    y_cap, y2_cap = seen["captured"]
    assert isinstance(y_cap, ds.Tracer) and isinstance(y2_cap, ds.Tracer)
    np.testing.assert_allclose(y2_cap._value, Y**2, rtol=1e-15)


def test_listing_is_readable():
    g = ds.trace(lambda x: dnp.sum(dnp.sin(x) * 1.5))(X)
    text = str(g)
    lines = text.splitlines()
    assert lines[0].startswith("graph <lambda>(x)")
    assert "%0 = input 'x' : float64[5]" in text
    assert "= sin(%0) : float64[5]" in text
    assert "%3 = multiply(%2, 1.5) : float64[5]" in text  # scalar constants inline
    assert "%4 = sum(%3, axis=(0,), keepdims=False) : float64[]" in text
    assert lines[-1] == "  return %4"


def test_multiple_results_primitive():
    def h(a):
        q, r = dnp.linalg.qr(a)
        return dnp.sum(q * 2.0) + dnp.sum(r)

    a = rng.standard_normal((4, 3))
    g = ds.trace(h)(a)
    b = rng.standard_normal((4, 3))
    np.testing.assert_allclose(g(b), h(b), rtol=1e-12)
    np.testing.assert_allclose(ds.grad(g)(b), ds.grad(h)(b), rtol=1e-10)


def test_indexing_with_a_traced_integer_array_keeps_it_an_operand():
    # a traced integer index is an operand of the graph (a gather), not read while tracing:
    # no warning, and the graph indexes with the index it is called with. More cases in
    # test_graph_traced_indices.py; docs/graph.md (limits) says what still specialises.
    x = rng.standard_normal(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphSpecializationWarning)
        g = ds.trace(lambda x, i: dnp.sum(x[i]))(x, np.array([0, 1]))
    assert g(x, np.array([2, 3])) == x[2] + x[3]
    np.testing.assert_array_equal(ds.grad(g)(x, np.array([3, 3])), [0.0, 0.0, 0.0, 2.0])


def test_tracing_inside_a_transform_composes():
    def g(x):
        return dnp.sum(dnp.sin(x) ** 2)

    # the graph is traced on (and called with) tracers of the outer grad
    got = ds.grad(lambda y: ds.trace(g)(y)(y * 2.0))(X)
    np.testing.assert_allclose(got, 2.0 * ds.grad(g)(2.0 * X), rtol=1e-13)


def test_call_flat_skips_structure_and_checks():
    def step(state, x):
        pos, vel = state
        return (pos + 0.1 * vel, vel - 0.1 * pos * x), dnp.sum(pos)

    state = (rng.standard_normal(3), rng.standard_normal(3))
    g = ds.trace(step)(state, 2.0)
    assert list(g.inputs) == ["state.0", "state.1", "x"]
    flat = g.call_flat([state[0], state[1], np.asarray(2.0)])
    (p, v), s = step(state, 2.0)
    np.testing.assert_allclose(flat[0], p)
    np.testing.assert_allclose(flat[1], v)
    np.testing.assert_allclose(flat[2], s)
    with pytest.raises(GraphCallError, match="3 placeholder value"):
        g.call_flat([state[0], state[1]])
