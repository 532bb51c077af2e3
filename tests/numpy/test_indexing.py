"""Indexing and functional updates: values equal NumPy's, derivatives match finite
differences (order 2, both modes), batching rules agree with a loop, errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsys as ds
import diffsys.numpy as dnp


def rnd(*shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed * 1000 + sum(shape) + len(shape))
    return rng.standard_normal(shape).astype(dtype)


def assert_same(actual, expected):
    assert not isinstance(actual, ds.Tracer)
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=1e-13, atol=1e-14)


def check_op(f, f_np, *args):
    expected = f_np(*args)
    assert_same(f(*args), expected)
    out, _ = ds.jvp(f, args, tuple(np.ones_like(a) for a in args))
    assert_same(out, expected)
    out, _ = ds.vjp(f, *args)
    assert_same(out, expected)
    ds.check_grads(f, args, order=2, modes=("fwd", "rev"))


MASK5 = np.array([True, False, True, True, False])
MASK222 = np.array([[[True, False], [True, True]], [[False, False], [True, False]]])
MASK45 = np.random.default_rng(3).random((4, 5)) > 0.5

# Indices into an array of shape (4, 5, 6).
INDICES = [
    ("int", 1),
    ("neg_int", -1),
    ("int_tuple", (2, -1, 3)),
    ("slice", slice(1, 3)),
    ("slice_neg_step", slice(None, None, -1)),
    ("slice_neg_step2", (slice(3, 0, -2), slice(None, None, -3))),
    ("slice_out_of_range", slice(2, 100)),
    ("slice_empty", slice(3, 1)),
    ("mixed_basic", (slice(None), slice(None, None, 2), -1)),
    ("ellipsis", (Ellipsis, 1)),
    ("ellipsis_mid", (0, Ellipsis, slice(1, 4))),
    ("ellipsis_only", Ellipsis),
    ("none", None),
    ("none_mid", (slice(None), None, 2)),
    ("newaxis_ellipsis", (np.newaxis, Ellipsis, None)),
    ("int_array", np.array([0, 2, 3])),
    ("repeated", [0, 2, 2, 0, 2]),
    ("int_array_2d", np.array([[0, 1], [3, 3]])),
    ("two_arrays", ([0, 1, 1], [2, 3, 2])),
    ("array_then_slice", (slice(None), [1, 1, 4])),
    ("arrays_adjacent_after_slice", (slice(None), [1, 2], [0, 5])),
    ("arrays_separated_by_slice", ([0, 1, 1], slice(None), [2, 3, 2])),
    ("int_and_array_separated", (1, slice(None), [0, 2])),
    ("array_and_int_separated", ([0, 3], slice(1, 4), -2)),
    ("arrays_separated_broadcast", (np.array([[0], [3]]), slice(None), np.array([1, 2, 5]))),
    ("array_int_array_adjacent", ([0, 1], 2, [2, 3])),
    ("arrays_separated_by_none", ([0, 1], None, [1, 2])),
    ("none_before_separated", (None, [0, 1], slice(None), [1, 2])),
    ("ellipsis_array_none", (Ellipsis, [0, 1], None)),
    ("bool_mask", MASK45),
    ("bool_mask_axis1", (slice(None), MASK5)),
    ("bool_mask_with_int", (MASK45[:, 0], 1)),
    ("bool_mask_and_array_separated", (MASK45[:, 0], slice(None), [1, 2])),
    ("empty_list", []),
    ("negative_array", np.array([-1, -4, 0])),
    # Sequences inside an index tuple are index arrays, tuples as lists (as in NumPy).
    ("tuple_arrays", ((0, 1), (1, 0))),
    ("tuple_and_list", ((0, 3, 3), [4, 0, 2])),
    ("tuple_after_slice", (slice(None), (1, 1, 4))),
    ("tuples_separated_by_slice", ((0, 1), slice(None), (2, 3))),
    ("nested_tuple_2d", (((0, 1), (3, 2)), 2)),
    ("tuple_in_list", [(0, 1), (3, 2)]),
    ("tuple_with_ellipsis", (Ellipsis, (5, 0, -1))),
    ("tuple_of_one", ((2,),)),
    ("empty_tuple_item", ((), 1)),
    ("bool_tuple", ((True, False, True, True),)),
]


@pytest.mark.parametrize("name, idx", INDICES, ids=[i[0] for i in INDICES])
def test_getitem(name, idx):
    x = rnd(4, 5, 6)
    check_op(lambda x: x[idx], lambda x: x[idx], x)
    check_op(lambda x: dnp.getitem(x, idx), lambda x: x[idx], x)
    check_op(lambda x: dnp.at(x)[idx].get(), lambda x: x[idx], x)


@pytest.mark.parametrize("name, idx", INDICES, ids=[i[0] for i in INDICES])
def test_getitem_vmap(name, idx):
    xs = rnd(3, 4, 5, 6)
    expected = np.stack([x[idx] for x in xs])
    assert_same(ds.vmap(lambda x: x[idx])(xs), expected)
    # vmap over a non-leading axis of the input.
    xs_t = np.moveaxis(xs, 0, 2)
    assert_same(ds.vmap(lambda x: x[idx], in_axes=2)(xs_t), expected)


@pytest.mark.parametrize("name, idx", INDICES, ids=[i[0] for i in INDICES])
def test_getitem_float32(name, idx):
    x = rnd(4, 5, 6, dtype=np.float32)
    g = ds.grad(lambda x: dnp.sum(x[idx] ** 2))(x)
    assert g.dtype == np.float32 and g.shape == x.shape
    expected = np.zeros_like(x)
    np.add.at(expected, idx, 2 * x[idx])
    np.testing.assert_allclose(g, expected, rtol=1e-6)


def test_getitem_repeated_indices_accumulate():
    x = rnd(5)
    g = ds.grad(lambda x: dnp.sum(x[[0, 2, 2, 0, 2, 4]] * np.arange(1.0, 7.0)))(x)
    np.testing.assert_array_equal(g, [1.0 + 4.0, 0.0, 2.0 + 3.0 + 5.0, 0.0, 6.0])
    x = rnd(3, 2)
    g = ds.grad(lambda x: dnp.sum(x[[1, 1], [0, 0]]))(x)
    np.testing.assert_array_equal(g, [[0, 0], [2, 0], [0, 0]])


def test_getitem_mask_computed_from_traced_values():
    x = rnd(4, 5)
    check_op(lambda x: x[x > 0.1], lambda x: x[x > 0.1], x)
    g = ds.grad(lambda x: dnp.sum(x[x > 0] ** 2))(x)
    np.testing.assert_allclose(g, np.where(x > 0, 2 * x, 0.0))


def test_getitem_with_traced_integer_index():
    x = rnd(6)
    f = lambda x: x[dnp.argmax(x)] * x[np.int64(1)]
    check_op(f, lambda x: x[np.argmax(x)] * x[1], x)


def test_getitem_0d():
    x = np.float64(1.5)
    for idx in [(), Ellipsis, None, (None, None)]:
        check_op(lambda x: x[idx], lambda x: np.asarray(x)[idx], np.asarray(x))


def test_indexing_composition_jacobians_and_hessian():
    def f(x):  # (4, 5) -> vector
        a = x[
            [0, 2, 2],
            :,
        ][:, [1, 1, 4]]
        b = x[::-1, None, 1:4][..., 0]
        c = x[[0, 3], 1:3][:, ::-1] * x[MASK45][:2, None]
        return dnp.concatenate([dnp.ravel(a * a), dnp.ravel(b), dnp.ravel(c)])

    x = rnd(4, 5)
    jf, jr = ds.jacfwd(f)(x), ds.jacrev(f)(x)
    n = f(x).size
    fd = np.zeros((n,) + x.shape)
    eps = 1e-6
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        fd[(slice(None),) + i] = (f(x + e) - f(x - e)) / (2 * eps)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jf, fd, rtol=1e-6, atol=1e-8)

    def s(x):
        v = f(x)
        return dnp.sum(v * v[::-1])

    h = ds.hessian(s)(x)
    h_fd = ds.jacfwd(ds.grad(s))(x)
    grad_fd = np.zeros(x.shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        grad_fd[i] = (ds.grad(s)(x + e) - ds.grad(s)(x - e)) / (2 * eps)
    np.testing.assert_allclose(h, h_fd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, np.moveaxis(grad_fd, (0, 1), (2, 3)), rtol=1e-5, atol=1e-7)


# --- functional updates ------------------------------------------------------------------------

# (id, index into shape (4, 5), shape of the update value)
UPDATES = [
    ("int", 1, (5,)),
    ("int_scalar_value", (2, 3), ()),
    ("slice", (slice(1, 3), slice(None, None, 2)), (2, 3)),
    ("slice_broadcast_value", slice(1, 3), (5,)),
    ("neg_step", (slice(None, None, -2),), (2, 5)),
    ("ellipsis", (Ellipsis, 1), (4,)),
    ("array", [0, 3], (2, 5)),
    ("two_arrays", ([0, 1, 3], [4, 2, 0]), (3,)),
    ("mask", MASK45, (int(MASK45.sum()),)),
    ("array_and_slice", (slice(None), [1, 3]), (4, 2)),
    ("none", (None, 1), (1, 5)),
]


def _np_update(op, x, idx, v):
    out = np.array(x, copy=True)
    if op == "set":
        out[idx] = v
    elif op == "add":
        np.add.at(out, idx, v)
    elif op == "subtract":
        np.subtract.at(out, idx, v)
    elif op == "multiply":
        np.multiply.at(out, idx, v)
    elif op == "divide":
        np.divide.at(out, idx, v)
    return out


@pytest.mark.parametrize("op", ["set", "add", "subtract", "multiply", "divide"])
@pytest.mark.parametrize("name, idx, vshape", UPDATES, ids=[u[0] for u in UPDATES])
def test_at_update(op, name, idx, vshape):
    x = rnd(4, 5)
    v = rnd(*vshape, seed=1) + (3.0 if op == "divide" else 0.0)
    f = lambda x, v: getattr(dnp.at(x)[idx], op)(v)
    expected = _np_update(op, x, idx, v)
    # Outside transforms (dnp.at on plain arrays), and traced in both arguments.
    before = x.copy()
    assert_same(getattr(dnp.at(x)[idx], op)(v), expected)
    np.testing.assert_array_equal(x, before)  # the input is not modified
    check_op(lambda x, v: getattr(dnp.at(x)[idx], op)(v), lambda x, v: expected, x, v)
    # The .at property of tracers.
    assert_same(ds.vjp(lambda x, v: getattr(x.at[idx], op)(v), x, v)[0], expected)
    # Traced in one argument only.
    ds.check_grads(lambda x: f(x, v), (x,), order=2)
    ds.check_grads(lambda v: getattr(dnp.at(x)[idx], op)(v), (v,), order=2)


@pytest.mark.parametrize("op", ["set", "add", "multiply"])
@pytest.mark.parametrize("name, idx, vshape", UPDATES, ids=[u[0] for u in UPDATES])
def test_at_update_vmap(op, name, idx, vshape):
    xs = rnd(3, 4, 5)
    vs = rnd(3, *vshape, seed=1)
    f = lambda x, v: getattr(dnp.at(x)[idx], op)(v)
    assert_same(
        ds.vmap(f)(xs, vs),
        np.stack([_np_update(op, x, idx, v) for x, v in zip(xs, vs, strict=True)]),
    )
    assert_same(
        ds.vmap(f, in_axes=(0, None))(xs, vs[0]),
        np.stack([_np_update(op, x, idx, vs[0]) for x in xs]),
    )
    assert_same(
        ds.vmap(f, in_axes=(None, 0))(xs[0], vs),
        np.stack([_np_update(op, xs[0], idx, v) for v in vs]),
    )


@pytest.mark.parametrize("op", ["set", "add"])
def test_at_update_vmap_advanced_separated_by_slice(op):
    """NumPy puts the advanced-index dimensions first: the update value follows that layout."""
    idx = ([0, 2], slice(None), [1, 3])
    xs = rnd(3, 4, 5, 6)
    vs = rnd(3, 2, 5, seed=1)
    f = lambda x, v: getattr(dnp.at(x)[idx], op)(v)
    expected = np.stack([_np_update(op, x, idx, v) for x, v in zip(xs, vs, strict=True)])
    assert_same(ds.vmap(f)(xs, vs), expected)
    assert_same(
        ds.vmap(f, in_axes=(None, 0))(xs[0], vs),
        np.stack([_np_update(op, xs[0], idx, v) for v in vs]),
    )
    # Broadcast value (one per column of the region) and batched x only.
    assert_same(
        ds.vmap(f, in_axes=(0, None))(xs, vs[0, 0]),
        np.stack([_np_update(op, x, idx, vs[0, 0]) for x in xs]),
    )
    ds.check_grads(f, (xs[0], vs[0]), order=2)
    jf = ds.jacfwd(f, argnums=(0, 1))(xs[0], vs[0])
    jr = ds.jacrev(f, argnums=(0, 1))(xs[0], vs[0])
    for a, b in zip(jf, jr, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_at_add_repeated_indices_accumulates():
    x = rnd(5)
    idx = [0, 2, 2, 4, 2]
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    expected = x.copy()
    np.add.at(expected, idx, v)
    assert_same(dnp.at(x)[idx].add(v), expected)
    check_op(lambda x, v: dnp.at(x)[idx].add(v), lambda x, v: expected, x, v)
    # d out[2] / d v[k] = 1 for the three entries that land on position 2.
    gv = ds.grad(lambda v: dnp.at(x)[idx].add(v)[2])(v)
    np.testing.assert_array_equal(gv, [0.0, 1.0, 1.0, 0.0, 1.0])
    # Scalar update repeated: position 2 gets it three times.
    assert_same(dnp.at(x)[idx].add(1.5), x + np.bincount(idx, minlength=5) * 1.5)
    g = ds.grad(lambda s: dnp.sum(dnp.at(x)[idx].add(s)))(1.5)
    assert g == 5.0


def test_at_subtract_repeated_indices_accumulates():
    x = rnd(4)
    idx = np.array([1, 1, 3])
    expected = x.copy()
    np.subtract.at(expected, idx, 2.0)
    check_op(lambda x: dnp.at(x)[idx].subtract(2.0), lambda x: expected, x)


def test_at_set_gradients():
    x, v = rnd(5), rnd(2, seed=2)
    gx, gv = ds.grad(lambda x, v: dnp.sum(x.at[[1, 3]].set(v) * np.arange(5.0)), argnums=(0, 1))(
        x, v
    )
    np.testing.assert_array_equal(gx, [0.0, 0.0, 2.0, 0.0, 4.0])
    np.testing.assert_array_equal(gv, [1.0, 3.0])


def test_at_multiply_repeated_indices_not_supported():
    with pytest.raises(NotImplementedError, match="repeated"):
        ds.grad(lambda x: dnp.sum(x.at[[1, 1]].multiply(2.0)))(rnd(3))


def test_at_on_plain_array_outside_transforms():
    x = np.zeros(4)
    out = dnp.at(x)[1].set(5.0)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 5.0, 0.0, 0.0])
    np.testing.assert_array_equal(x, 0.0)
    np.testing.assert_array_equal(dnp.at(x)[[1, 1, 2]].add(1.0), [0.0, 2.0, 1.0, 0.0])
    np.testing.assert_array_equal(dnp.at(np.arange(3.0))[1:].get(), [1.0, 2.0])


def test_at_update_float32():
    x, v = rnd(4, 5, dtype=np.float32), rnd(2, 5, dtype=np.float32, seed=1)
    for op in ("set", "add", "subtract", "multiply", "divide"):
        f = lambda x, v: dnp.sum(getattr(x.at[[0, 2]], op)(v) ** 2)
        gx, gv = ds.grad(f, argnums=(0, 1))(x, v)
        assert gx.dtype == np.float32 and gv.dtype == np.float32, op
        assert ds.vjp(lambda x: getattr(x.at[[0, 2]], op)(v), x)[0].dtype == np.float32
        # A Python scalar update keeps float32 too.
        assert ds.vjp(lambda x: getattr(x.at[1], op)(2.0), x)[0].dtype == np.float32


def test_at_update_hessian():
    def f(x):
        y = x.at[1:3].multiply(x[:2]).at[[0, 0, 3]].add(x[1:4] ** 2).at[2].set(x[0] * x[3])
        return dnp.sum(y * y)

    x = rnd(4)
    h = ds.hessian(f)(x)
    eps = 1e-5
    fd = np.stack([(ds.grad(f)(x + e) - ds.grad(f)(x - e)) / (2 * eps) for e in np.eye(4) * eps])
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(h, ds.jacrev(ds.grad(f))(x), rtol=1e-13, atol=1e-13)


def test_at_update_value_with_leading_unit_axes():
    """NumPy's assignment drops leading length-one axes of the value: so do the updates."""
    x, w = rnd(2, 3), rnd(1, 1, 3, seed=1)
    for op in ("set", "add", "multiply"):
        f = lambda x, w: getattr(dnp.at(x)[0], op)(w)
        expected = _np_update(op, x, 0, w[0, 0])
        assert_same(f(x, w), expected)
        check_op(f, lambda x, w: expected, x, w)
        ws = rnd(4, 1, 3, seed=2)
        assert_same(
            ds.vmap(f, in_axes=(None, 0))(x, ws),
            np.stack([_np_update(op, x, 0, wi[0]) for wi in ws]),
        )


def test_at_update_value_shape_mismatch_names_shapes():
    for op in ("set", "add", "subtract", "multiply", "divide"):
        with pytest.raises(ValueError) as info:
            ds.grad(lambda x: dnp.sum(getattr(x.at[:, 1:], op)(np.ones(3))))(rnd(2, 3))
        msg = str(info.value)
        assert "(3,)" in msg and "(2, 2)" in msg and "(2, 3)" in msg, msg


# Scalar functions mixing indexing and functional updates, for nested transforms.
NESTED = {
    "getitem_separated": lambda x: dnp.sum(x[[0, 1], :, [1, 0]] ** 2 * x[1:, 0, :1]),
    "at_add_repeated": lambda x: dnp.sum(dnp.at(x)[[0, 0, 1], 1].add(x[0, 0] * x[1, :, 1]) ** 2),
    "at_set_separated": lambda x: dnp.sum(
        dnp.sin(dnp.at(x)[[0, 1], :, [1, 0]].set(x[0, :2, :].T * 3.0))
    ),
    "at_multiply": lambda x: dnp.sum(dnp.at(x)[1].multiply(x[0]) ** 2),
    "at_divide_mask": lambda x: dnp.sum(dnp.at(x)[MASK222].divide(x[MASK222] ** 2 + 1.0) * x),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_nested_transforms(name):
    f = NESTED[name]
    x = rnd(2, 2, 2)
    xs = rnd(3, 2, 2, 2, seed=4)
    g = ds.grad(f)
    assert_same(ds.vmap(g)(xs), np.stack([g(xi) for xi in xs]))
    h = ds.hessian(f)(x)
    np.testing.assert_allclose(h, ds.jacrev(g)(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, ds.jacfwd(g)(x), rtol=1e-12, atol=1e-12)
    vh = ds.vmap(ds.hessian(f))(xs)
    np.testing.assert_allclose(
        vh, np.stack([ds.hessian(f)(xi) for xi in xs]), rtol=1e-12, atol=1e-12
    )
    ds.check_grads(f, (x,), order=3)


# --- errors ------------------------------------------------------------------------------------


def _error(f, x, exc):
    with pytest.raises(exc) as info:
        ds.grad(lambda x: dnp.sum(f(x)))(x)
    return str(info.value)


def test_setitem_on_tracer_names_alternatives():
    def f(x):
        x[0] = 1.0
        return x

    msg = _error(f, rnd(3), TypeError)
    assert "x.at[idx].set(v)" in msg and ".add" in msg and "dnp.where" in msg


def test_float_index_raises():
    msg = _error(lambda x: x[1.5], rnd(3), IndexError)
    assert "float" in msg and "integer" in msg
    msg = _error(lambda x: x[np.array([0.0, 1.0])], rnd(3), IndexError)
    assert "float64" in msg and "integer" in msg


def test_traced_float_index_raises():
    msg = _error(lambda x: x[x[0]], rnd(3), TypeError)
    assert "float64" in msg and "index" in msg
    msg = _error(lambda x: x[x[:2]], rnd(3), TypeError)
    assert "float64" in msg and "index" in msg


def test_out_of_bounds_names_shape():
    msg = _error(lambda x: x[:, 3], rnd(2, 3), IndexError)
    assert "(2, 3)" in msg and "3" in msg
    msg = _error(lambda x: x[[0, 2]], rnd(2, 3), IndexError)
    assert "(2, 3)" in msg
    msg = _error(lambda x: x[-3], rnd(2, 3), IndexError)
    assert "(2, 3)" in msg
    msg = _error(lambda x: x.at[5].set(1.0), rnd(2, 3), IndexError)
    assert "(2, 3)" in msg


def test_too_many_indices_raises():
    msg = _error(lambda x: x[0, 0, 0], rnd(2, 3), IndexError)
    assert "too many indices" in msg


def test_mask_shape_mismatch_raises():
    with pytest.raises(IndexError):
        ds.grad(lambda x: dnp.sum(x[np.array([True, False])]))(rnd(3))


def test_two_ellipses_raise():
    _error(lambda x: x[..., 0, ...], rnd(2, 3, 4), IndexError)


# --- property-based: random basic and integer-array indices --------------------------------------


@st.composite
def _index_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    if draw(st.booleans()):
        idx = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    else:
        idx = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(max_dims=2)))
    return shape, idx


@settings(max_examples=60, deadline=None)
@given(case=_index_case(), seed=st.integers(0, 2**16))
def test_getitem_random(case, seed):
    shape, idx = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    expected = x[idx]
    out, vjp_fn = ds.vjp(lambda x: x[idx], x)
    assert_same(out, np.asarray(expected))
    w = rng.standard_normal(np.shape(expected))
    (g,) = vjp_fn(w)
    scatter = np.zeros_like(x)
    np.add.at(scatter, idx, w)
    np.testing.assert_allclose(g, scatter, rtol=1e-14, atol=1e-15)
    tx = rng.standard_normal(shape)
    _, t = ds.jvp(lambda x: x[idx], (x,), (tx,))
    np.testing.assert_array_equal(t, tx[idx])
    xs = np.stack([x, 2 * x])
    assert_same(ds.vmap(lambda x: x[idx])(xs), np.stack([x[idx], (2 * x)[idx]]))
    # Functional add at the same index: numpy.add.at semantics.
    added = x.copy()
    np.add.at(added, idx, w)
    assert_same(ds.vjp(lambda x, w: x.at[idx].add(w), x, w)[0], added)


def _as_sequences(item, kind):
    """An index array as nested tuples or lists of Python ints."""
    if not isinstance(item, np.ndarray) or item.ndim == 0:
        return item
    nested = item.tolist()
    if kind == "tuple":

        def to_tuple(v):
            return tuple(to_tuple(e) for e in v) if isinstance(v, list) else v

        nested = to_tuple(nested)
    return nested


@settings(max_examples=60, deadline=None)
@given(
    case=_index_case(),
    kind=st.sampled_from(["tuple", "list"]),
    seed=st.integers(0, 2**16),
)
def test_getitem_sequence_items_random(case, kind, seed):
    """Index arrays written as nested tuples or lists index as NumPy indexes with them."""
    shape, idx = case
    idx = tuple(_as_sequences(i, kind) for i in (idx if isinstance(idx, tuple) else (idx,)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    try:
        expected = x[idx]
    except IndexError:
        with pytest.raises(IndexError):
            ds.vjp(lambda x: x[idx], x)
        return
    out, vjp_fn = ds.vjp(lambda x: x[idx], x)
    assert_same(out, np.asarray(expected))
    w = rng.standard_normal(np.shape(expected))
    scatter = np.zeros_like(x)
    np.add.at(scatter, idx, w)
    np.testing.assert_allclose(vjp_fn(w)[0], scatter, rtol=1e-14, atol=1e-15)
    assert_same(ds.vmap(lambda x: x[idx])(np.stack([x, 2 * x])), np.stack([x[idx], 2 * x[idx]]))


def test_getitem_sequences_holding_traced_integers():
    """``x[(i, 0), (1, j)]`` with ``i``, ``j`` traced: read when they have a value, operands
    of the gather under vmap."""
    x = rnd(4, 5)
    f = lambda x: x[(dnp.argmax(x[:, 0]), 0), (1, dnp.argmin(x[0]))]  # noqa: E731
    i, j = np.argmax(x[:, 0]), np.argmin(x[0])
    check_op(f, lambda x: x[(i, 0), (1, j)], x)
    labels = np.array([3, 0, 2])
    got = ds.vmap(lambda i: dnp.getitem(x, ((i, 0), [1, i])))(labels)
    assert_same(got, np.stack([x[(i, 0), [1, i]] for i in labels]))
    g = ds.vmap(ds.grad(lambda x, i: dnp.sum(x[(i, 1), (i, 2)] ** 2)), in_axes=(None, 0))(
        x, labels
    )
    for k, i in enumerate(labels):
        want = np.zeros_like(x)
        np.add.at(want, ((i, 1), (i, 2)), 2 * x[(i, 1), (i, 2)])
        np.testing.assert_allclose(g[k], want)


# --- integer indices batched under vmap (index arrays as operands) --------------------------------

# Templates: how a per-example integer index array ``i`` (shape (2, 3), values in [0, 4))
# enters the index of a per-example array of shape (5, 6, 7).
BATCHED_INDEX = [
    ("alone", lambda i: i),
    ("after_slice", lambda i: (slice(None), i)),
    ("int_then_array", lambda i: (0, i)),
    ("separated_by_slice", lambda i: (i[0], slice(None), [1, 2, 0])),
    ("separated_int", lambda i: (slice(None), i, 2)),
    ("none_before", lambda i: (None, slice(None), i)),
    ("with_static_array", lambda i: (slice(1, 3), i[:, :2], np.array([[1], [2]]))),
    ("ellipsis", lambda i: (Ellipsis, i[0, :2])),
    ("twice", lambda i: (i[0], i[1])),
    ("none_between", lambda i: (slice(None), None, i[0], slice(None, None, 2))),
]


def _np_at(op, x, idx, v):
    out = x.copy()
    if op == "set":
        out[idx] = v
    else:
        np.add.at(out, idx, v)
    return out


@pytest.mark.parametrize("name, tmpl", BATCHED_INDEX, ids=[b[0] for b in BATCHED_INDEX])
def test_vmap_over_integer_index_arrays(name, tmpl):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4, 5, 6, 7))
    I = rng.integers(0, 4, size=(4, 2, 3))
    f = lambda x, i: dnp.getitem(x, tmpl(i))
    assert_same(ds.vmap(f)(X, I), np.stack([X[k][tmpl(I[k])] for k in range(4)]))
    assert_same(
        ds.vmap(f, in_axes=(None, 0))(X[1], I), np.stack([X[1][tmpl(I[k])] for k in range(4)])
    )
    # Per-example gradients and Jacobians: the gather's VJP is a scatter with batched indices.
    loss = lambda x, i: dnp.sum(f(x, i) ** 3)
    for transform in (ds.grad, ds.jacfwd):
        out = ds.vmap(transform(loss))(X, I)
        loop = np.stack([transform(lambda x: loss(x, I[k]))(X[k]) for k in range(4)])
        np.testing.assert_allclose(out, loop, rtol=1e-13, atol=1e-13)
    # Functional updates with batched indices (values batched or not).
    region = X[0][tmpl(I[0])].shape
    V = rng.standard_normal((4,) + region)
    for op in ("set", "add"):
        u = lambda x, i, v, op=op: getattr(dnp.at(x)[tmpl(i)], op)(v)
        expected = np.stack([_np_at(op, X[k], tmpl(I[k]), V[k]) for k in range(4)])
        assert_same(ds.vmap(u)(X, I, V), expected)
        expected = np.stack([_np_at(op, X[0], tmpl(I[k]), V[0]) for k in range(4)])
        assert_same(ds.vmap(u, in_axes=(None, 0, None))(X[0], I, V[0]), expected)
        gl = lambda x, i, v, u=u: dnp.sum(u(x, i, v) ** 2)
        gx, gv = ds.vmap(ds.grad(gl, argnums=(0, 2)))(X, I, V)
        for k in range(4):
            ex, ev = ds.grad(lambda x, v: gl(x, I[k], v), argnums=(0, 1))(X[k], V[k])
            np.testing.assert_allclose(gx[k], ex, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(gv[k], ev, rtol=1e-13, atol=1e-13)


def test_vmap_over_labels_hessian_and_plain_array():
    rng = np.random.default_rng(8)
    w = rng.standard_normal((5, 3))
    labels = np.array([0, 4, 4, 2])
    f = lambda w, y: dnp.sum(dnp.tanh(w[y]) ** 2)
    h = ds.vmap(ds.hessian(f), in_axes=(None, 0))(w, labels)
    np.testing.assert_allclose(h, np.stack([ds.hessian(lambda w: f(w, y))(w) for y in labels]))
    # A plain array indexed by a batched index goes through dnp.getitem / dnp.at(...).get().
    assert_same(ds.vmap(lambda y: dnp.getitem(w, y))(labels), w[labels])
    assert_same(ds.vmap(lambda y: dnp.at(w)[y].get())(labels), w[labels])


def test_vmap_over_index_errors():
    x = rnd(4, 5)
    with pytest.raises(IndexError, match="dnp.where"):
        ds.vmap(lambda r: r[r > 0])(x)
    with pytest.raises(NotImplementedError, match="batched"):
        ds.vmap(lambda r, i: dnp.at(r)[i].multiply(2.0))(x, np.array([0, 1, 2, 3]))
    with pytest.raises(IndexError):
        ds.vmap(lambda r, i: r[i])(x, np.array([0, 1, 2, 7]))


def test_at_multiply_divide_on_plain_arrays_repeated_indices():
    """Outside transforms the updates are NumPy's ufunc.at: repeated indices apply again."""
    x = np.arange(1.0, 5.0)
    for op, ufunc in (("multiply", np.multiply), ("divide", np.divide)):
        for idx, v in (([1, 1, 2], 3.0), (slice(1, None), np.array([1.0, 2.0, 3.0]))):
            expected = x.copy()
            ufunc.at(expected, idx, v)
            assert_same(getattr(dnp.at(x)[idx], op)(v), expected)
    assert dnp.at(x.astype(np.float32))[0].multiply(2.0).dtype == np.float32


def test_set_with_repeated_indices_gives_the_gradient_only_to_the_last_write():
    x = np.zeros(3)
    w = np.array([1.0, 2.0, 3.0])
    f = lambda v: dnp.sum(dnp.at(x)[np.array([0, 0])].set(v) * w)
    np.testing.assert_array_equal(ds.grad(f)(np.array([5.0, 7.0])), [0.0, 1.0])
    ds.check_grads(f, (np.array([5.0, 7.0]),), order=2)
    g = lambda v, i: dnp.sum(dnp.at(x)[i].set(v) * w)
    out = ds.vmap(ds.grad(g))(np.array([[5.0, 7.0], [1.0, 2.0]]), np.array([[0, 0], [1, 2]]))
    np.testing.assert_array_equal(out, [[0.0, 1.0], [2.0, 3.0]])


def test_int_and_np_int64_of_traced_integer_valued_arrays_index():
    """``np.int64(x)`` (and ``int(x)``) of a traced array holding integer values gives plain
    integers (no derivative, as ``x.astype(int)``) usable as indices."""
    inds = np.ones(5)[:, None]

    def fun(w):  # autograd's test_cast_to_int
        glued = dnp.concatenate((w, inds), axis=1)
        return w[:, :-1][np.int64(glued[:, -1])]

    w = rnd(5, 10)
    np.testing.assert_array_equal(ds.vjp(fun, w)[0], w[:, :-1][np.ones(5, dtype=np.int64)])
    ds.check_grads(fun, (w,), order=2)

    def g(x):
        i = np.int64(dnp.floor(x[0]))  # a 0-d float tracer holding an integer
        j = int(dnp.sum(x[:1]) + 0.25)
        k = np.int32(dnp.argmax(x))
        return x[i] * x[j] * x[k] + dnp.sum(x[np.asarray(dnp.floor(x[:2]), dtype=np.intp)])

    x = np.array([1.5, 2.5, 3.0, 4.0])
    with pytest.warns(ds.DroppedDerivativeWarning, match="int\\(\\)"):  # int() of a float value
        check_op(g, lambda x: x[1] * x[1] * x[3] + x[1] + x[2], x)
    with pytest.raises(TypeError, match="cannot become a plain numpy.ndarray"):
        ds.grad(lambda x: dnp.sum(np.asarray(x, dtype=np.float64)))(x)  # would drop it
    with pytest.raises(TypeError, match="no single concrete value"):
        ds.vmap(lambda r: r[np.int64(dnp.argmax(r))])(np.eye(3))
