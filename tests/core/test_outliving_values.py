"""What outlives a call (a vjp function, a traced graph) is immune to later in-place changes
of the caller's arrays: inputs, outputs, aux, closure constants, index arrays, cotangents.
Each case computes the reference first on fresh arrays, then does the same on arrays it
changes in place afterwards (with values far from the originals)."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.implicit as implicit
import diffsys.numpy as dnp

rng = np.random.default_rng(0)
A = np.eye(3) * 3 + rng.standard_normal((3, 3))

# (name, function of the differentiated inputs, inputs): unary, binary, reductions,
# products, indexing, shape ops, linear algebra, rules reading their output (exp, tanh,
# sqrt) or their inputs (sin, multiply, matmul, solve).
CASES = [
    ("exp", dnp.exp, (rng.uniform(0.5, 1.5, 5),)),
    ("sin", dnp.sin, (rng.uniform(0.5, 1.5, 5),)),
    ("tanh", dnp.tanh, (rng.uniform(0.5, 1.5, 5),)),
    ("sqrt", dnp.sqrt, (rng.uniform(0.5, 1.5, 5),)),
    ("log", dnp.log, (rng.uniform(0.5, 1.5, 5),)),
    ("square", lambda x: x**2, (rng.uniform(0.5, 1.5, 5),)),
    ("multiply", lambda x, y: x * y, (rng.uniform(0.5, 1.5, 5), rng.uniform(0.5, 1.5, 5))),
    ("divide", lambda x, y: x / y, (rng.uniform(0.5, 1.5, 5), rng.uniform(0.5, 1.5, 5))),
    ("power", lambda x, y: x**y, (rng.uniform(0.5, 1.5, 5), rng.uniform(0.5, 1.5, 5))),
    ("matmul", lambda a, b: a @ b, (rng.standard_normal((3, 4)), rng.standard_normal((4, 2)))),
    ("sum", lambda x: dnp.sum(x**2, axis=0), (rng.standard_normal((3, 4)),)),
    ("prod", lambda x: dnp.prod(x, axis=1), (rng.uniform(0.5, 1.5, (3, 4)),)),
    ("max", lambda x: dnp.max(x, axis=1), (rng.standard_normal((3, 4)),)),
    ("getitem", lambda x: x[1:, ::2] ** 3, (rng.standard_normal((3, 4)),)),
    ("reshape_T", lambda x: x.reshape(4, 3).T * x, (rng.standard_normal((3, 4)),)),
    ("identity", lambda x: x, (rng.standard_normal(4),)),
    ("view_out", lambda x: dnp.exp(x)[1:], (rng.standard_normal(4),)),
    ("logsumexp", lambda x: dnp.log(dnp.sum(dnp.exp(x))) * x, (rng.standard_normal(4),)),
    ("solve", lambda a, b: dnp.linalg.solve(a, b), (A, rng.standard_normal(3))),
    ("inv", lambda a: dnp.linalg.inv(a), (A,)),
    ("det", lambda a: dnp.linalg.det(a), (A,)),
    ("where", lambda x: dnp.where(x > 0, dnp.sin(x), x**3), (rng.standard_normal(6),)),
    (
        "dict_input",
        lambda p: p["w"] * dnp.exp(p["b"]),
        ({"w": rng.standard_normal(3), "b": rng.standard_normal(3)},),
    ),
    ("two_outputs", lambda x: (dnp.exp(x), dnp.sin(x) * x), (rng.standard_normal(3),)),
    ("checkpoint", ds.checkpoint(lambda x: dnp.exp(dnp.sin(x)) * x), (rng.standard_normal(3),)),
]


def _copy(tree):
    return ds.tree_map(lambda a: np.array(a, copy=True), tree)


def _ones_like(tree):
    return ds.tree_map(lambda a: np.ones(np.shape(a), dtype=np.result_type(a)), tree)


def _scribble(tree):
    """Overwrite every writeable array in ``tree`` with values far from the originals."""
    for leaf in ds.tree_leaves(tree):
        if isinstance(leaf, np.ndarray) and leaf.flags.writeable:
            leaf[...] = 1e3


@pytest.mark.parametrize("name,fun,args", CASES, ids=[c[0] for c in CASES])
def test_vjp_fn_ignores_later_changes_of_inputs_and_outputs(name, fun, args):
    out0, f0 = ds.vjp(fun, *_copy(args))
    ct = _ones_like(out0)
    want = f0(ct)
    mine = _copy(args)
    out, f = ds.vjp(fun, *mine)
    _scribble(mine)
    refused = 0
    for leaf in ds.tree_leaves(out):
        if isinstance(leaf, np.ndarray):
            try:
                leaf -= 1e3
            except ValueError as e:  # the outputs are read-only
                assert "read-only" in str(e)
                refused += 1
    assert refused == sum(isinstance(x, np.ndarray) for x in ds.tree_leaves(out))
    for got, exp in zip(ds.tree_leaves(f(ct)), ds.tree_leaves(want), strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12)
    for got, exp in zip(ds.tree_leaves(out), ds.tree_leaves(out0), strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12)


def test_issue_examples():
    y, f = ds.vjp(dnp.exp, np.array([1.0]))
    with pytest.raises(ValueError, match="read-only"):
        y -= 1
    np.testing.assert_allclose(f(np.ones(1)), [[np.e]])
    x = np.array([0.5])
    y, f = ds.vjp(dnp.sin, x)
    x[:] = 0
    np.testing.assert_allclose(f(np.ones(1)), [[np.cos(0.5)]])


def test_vjp_fn_ignores_later_changes_of_closure_constants_and_index_arrays():
    c = rng.standard_normal(4)
    m = rng.standard_normal((4, 4))
    idx = np.array([0, 2, 3])
    mask = np.array([True, False, True, True])

    def fun(x):
        return dnp.sum(dnp.where(mask, x * c, 0.0)[idx] ** 2) + dnp.sum((m @ x) ** 2)

    x = rng.standard_normal(4)
    want = ds.vjp(fun, x.copy())[1](1.0)
    out, f = ds.vjp(fun, x.copy())
    for a in (c, m):
        a[...] = 7.0
    idx[...] = 1
    mask[...] = False
    np.testing.assert_allclose(f(1.0)[0], want[0], rtol=1e-12)


def test_vjp_aux_is_read_only_and_changes_nothing():
    def fun(x):
        h = dnp.exp(x)
        return dnp.sum(h * x), h

    out, f, aux = ds.vjp(fun, np.arange(3.0), has_aux=True)
    with pytest.raises(ValueError, match="read-only"):
        aux *= 0.0
    np.testing.assert_allclose(f(1.0)[0], np.exp(np.arange(3.0)) * (1 + np.arange(3.0)))


def test_vjp_fn_called_again_with_a_changed_cotangent():
    # an implicit solve caches its adjoint per (cotangent, output) identity: a caller that
    # changes its cotangent array in place between two calls must get the new answer
    def fun(a):
        return implicit.fixed_point(lambda x, a: 0.5 * dnp.cos(x) + a, np.zeros(2), a)

    a = np.array([0.1, 0.2])
    _, f = ds.vjp(fun, a)
    ct = np.array([1.0, 0.0])
    first = f(ct)[0].copy()
    ct[:] = [0.0, 1.0]
    np.testing.assert_allclose(f(ct)[0], ds.vjp(fun, a)[1](np.array([0.0, 1.0]))[0])
    assert not np.allclose(first, f(ct)[0])


def test_a_read_only_input_is_not_copied():
    x = np.arange(3.0)
    x.flags.writeable = False
    out, f = ds.vjp(lambda v: v, x)
    assert np.shares_memory(out, x)


# --- graphs --------------------------------------------------------------------------------


def test_graph_constants_ignore_later_changes():
    c = np.array([1.0, 2.0, 3.0])
    g = ds.trace(lambda x: x * c + c)(np.zeros(3))
    c[:] = -100.0
    np.testing.assert_allclose(g(np.ones(3)), [2.0, 4.0, 6.0])
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(g(x)))(np.ones(3)), [1.0, 2.0, 3.0])


def test_graph_constant_outputs_are_read_only():
    c = np.array([1.0, 2.0])
    g = ds.trace(lambda x: (x * 2.0, c))(np.zeros(2))
    _, out_c = g(np.ones(2))
    with pytest.raises(ValueError, match="read-only"):
        out_c += 1.0
    np.testing.assert_allclose(g(np.ones(2))[1], [1.0, 2.0])


def test_graph_params_and_frozen_graphs_ignore_later_changes():
    from diffsys import nn

    model = nn.Linear(2, 1, key=0)
    g = ds.trace(lambda m, x: m(x))(model, np.ones((1, 2)))
    before = {k: np.array(v) for k, v in g.params.items()}
    for leaf in ds.tree_leaves(model):
        if isinstance(leaf, np.ndarray) and leaf.flags.writeable:
            leaf[...] = 42.0
    for k, v in g.params.items():
        np.testing.assert_array_equal(v, before[k])

    w = np.array([1.0, 2.0])
    h = ds.trace(lambda w, x: dnp.sum(w * x))(w, np.ones(2)).freeze({0: w})
    w[:] = 0.0
    assert float(h(np.ones(2))) == 3.0
