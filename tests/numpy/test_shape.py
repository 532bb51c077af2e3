"""Shape operations: values equal NumPy's, derivatives match finite differences (order 2,
forward and reverse), batching rules agree with a loop, float32 stays float32."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsys as ds
import diffsys.numpy as dnp


def rnd(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(dtype)


def assert_same(actual, expected):
    """Equal values, shapes and dtypes; lists/tuples compared element by element."""
    if isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple), type(actual)
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same(a, e)
        return
    assert not isinstance(actual, ds.Tracer)
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual, expected)


def check_op(f, f_np, *args):
    """Values (plain and traced) equal NumPy's; derivatives pass check_grads to order 2."""
    expected = f_np(*args)
    assert_same(f(*args), expected)
    out, _ = ds.jvp(f, args, tuple(np.ones_like(a) for a in args))
    assert_same(out, expected)
    out, _ = ds.vjp(f, *args)
    assert_same(out, expected)
    ds.check_grads(f, args, order=2, modes=("fwd", "rev"))


# --- unary shape operations, each with the matching NumPy call -----------------------------------

UNARY = [
    # (id, function (dnp or np module as ``m``), input shape)
    ("reshape_2d", lambda m, x: m.reshape(x, (6, 4)), (2, 3, 4)),
    ("reshape_minus1", lambda m, x: m.reshape(x, (4, -1)), (2, 3, 4)),
    ("reshape_flat", lambda m, x: m.reshape(x, -1), (2, 3, 4)),
    ("reshape_F", lambda m, x: m.reshape(x, (4, 6), order="F"), (2, 3, 4)),
    ("reshape_F_minus1", lambda m, x: m.reshape(x, (-1, 2), order="F"), (3, 4)),
    ("reshape_0d_to_11", lambda m, x: m.reshape(x, (1, 1)), ()),
    ("reshape_1_to_0d", lambda m, x: m.reshape(x, ()), (1,)),
    ("ravel", lambda m, x: m.ravel(x), (2, 3, 4)),
    ("ravel_F", lambda m, x: m.ravel(x, order="F"), (2, 3, 4)),
    ("ravel_0d", lambda m, x: m.ravel(x), ()),
    ("transpose_none", lambda m, x: m.transpose(x), (2, 3, 4)),
    ("transpose_perm", lambda m, x: m.transpose(x, (2, 0, 1)), (2, 3, 4)),
    ("transpose_neg", lambda m, x: m.transpose(x, (-1, 0, 1)), (2, 3, 4)),
    ("transpose_0d", lambda m, x: m.transpose(x), ()),
    ("swapaxes", lambda m, x: m.swapaxes(x, 0, 2), (2, 3, 4)),
    ("swapaxes_neg", lambda m, x: m.swapaxes(x, -1, 0), (2, 3, 4)),
    ("moveaxis", lambda m, x: m.moveaxis(x, 0, -1), (2, 3, 4)),
    ("moveaxis_multi", lambda m, x: m.moveaxis(x, [0, 1], [-1, -3]), (2, 3, 4, 5)),
    ("moveaxis_multi2", lambda m, x: m.moveaxis(x, [2, 0], [0, 3]), (2, 3, 4, 5)),
    ("moveaxis_multi3", lambda m, x: m.moveaxis(x, (0, 1), (2, 0)), (2, 3, 4, 5)),
    ("expand_dims_0", lambda m, x: m.expand_dims(x, 0), (2, 3)),
    ("expand_dims_neg", lambda m, x: m.expand_dims(x, -1), (2, 3)),
    ("expand_dims_mid_neg", lambda m, x: m.expand_dims(x, -2), (2, 3)),
    ("expand_dims_tuple", lambda m, x: m.expand_dims(x, (0, 2)), (2, 3)),
    ("expand_dims_tuple_neg", lambda m, x: m.expand_dims(x, (-1, 0)), (2, 3)),
    ("expand_dims_0d", lambda m, x: m.expand_dims(x, 0), ()),
    ("squeeze_none", lambda m, x: m.squeeze(x), (1, 3, 1, 2)),
    ("squeeze_int", lambda m, x: m.squeeze(x, 2), (1, 3, 1, 2)),
    ("squeeze_neg", lambda m, x: m.squeeze(x, -2), (1, 3, 1, 2)),
    ("squeeze_tuple", lambda m, x: m.squeeze(x, (0, 2)), (1, 3, 1, 2)),
    ("squeeze_to_0d", lambda m, x: m.squeeze(x), (1, 1)),
    ("squeeze_0d", lambda m, x: m.squeeze(x), ()),
    ("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 3)), (3,)),
    ("broadcast_to_0d", lambda m, x: m.broadcast_to(x, (2, 2)), ()),
    ("broadcast_to_mid", lambda m, x: m.broadcast_to(x, (2, 3, 4)), (3, 1)),
    ("broadcast_to_int_shape", lambda m, x: m.broadcast_to(x, 4), (1,)),
    ("atleast_1d_0d", lambda m, x: m.atleast_1d(x), ()),
    ("atleast_1d_2d", lambda m, x: m.atleast_1d(x), (2, 3)),
    ("atleast_2d_0d", lambda m, x: m.atleast_2d(x), ()),
    ("atleast_2d_1d", lambda m, x: m.atleast_2d(x), (3,)),
    ("atleast_2d_3d", lambda m, x: m.atleast_2d(x), (2, 3, 4)),
    ("atleast_3d_0d", lambda m, x: m.atleast_3d(x), ()),
    ("atleast_3d_1d", lambda m, x: m.atleast_3d(x), (3,)),
    ("atleast_3d_2d", lambda m, x: m.atleast_3d(x), (2, 3)),
    ("atleast_3d_4d", lambda m, x: m.atleast_3d(x), (2, 1, 3, 2)),
    ("split_sections", lambda m, x: m.split(x, 3), (6, 2)),
    ("split_indices", lambda m, x: m.split(x, [1, 4]), (6, 2)),
    ("split_axis1", lambda m, x: m.split(x, 2, axis=1), (3, 4)),
    ("split_neg_axis", lambda m, x: m.split(x, [1], axis=-1), (3, 4)),
    ("split_indices_past_end", lambda m, x: m.split(x, [2, 9]), (5,)),
    ("split_indices_unsorted", lambda m, x: m.split(x, [3, 1]), (5,)),
    ("array_split_unequal", lambda m, x: m.array_split(x, 3), (7, 2)),
    ("array_split_more_than_len", lambda m, x: m.array_split(x, 5), (3,)),
    ("array_split_indices", lambda m, x: m.array_split(x, [2, 3], axis=1), (2, 5)),
    ("hsplit", lambda m, x: m.hsplit(x, 2), (3, 4)),
    ("vsplit", lambda m, x: m.vsplit(x, [1]), (3, 4)),
    ("dsplit", lambda m, x: m.dsplit(x, 2), (2, 3, 4)),
    ("atleast_multi", lambda m, x: m.atleast_2d(x, x[0]), (2, 3)),
]


@pytest.mark.parametrize("name, fn, shape", UNARY, ids=[u[0] for u in UNARY])
def test_unary_shape_op(name, fn, shape):
    x = rnd(*shape)
    check_op(lambda x: fn(dnp, x), lambda x: fn(np, x), x)


@pytest.mark.parametrize("name, fn, shape", UNARY, ids=[u[0] for u in UNARY])
def test_unary_shape_op_vmap(name, fn, shape):
    """The batching rules: one call on the batch equals a loop over it."""
    xs = rnd(3, *shape)
    expected = [fn(np, x) for x in xs]
    out = ds.vmap(lambda x: fn(dnp, x))(xs)
    if isinstance(expected[0], list | tuple):
        assert len(out) == len(expected[0])
        for k in range(len(out)):
            assert_same(out[k], np.stack([e[k] for e in expected]))
    else:
        assert_same(out, np.stack(expected))


@pytest.mark.parametrize("name, fn, shape", UNARY, ids=[u[0] for u in UNARY])
def test_unary_shape_op_float32(name, fn, shape):
    """Outputs and gradients keep float32."""
    x = rnd(*shape, dtype=np.float32)

    def loss(x):
        out = fn(dnp, x)
        outs = out if isinstance(out, list | tuple) else [out]
        total = 0.0
        for k, o in enumerate(outs):
            assert o.dtype == x.dtype
            total = total + dnp.sum(o * (k + 1.5))
        return total

    g = ds.grad(loss)(x)
    assert g.dtype == np.float32
    assert g.shape == x.shape
    # The gradient of a linear map: each input element's weight summed over its copies.
    g64 = ds.grad(loss)(x.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-6)


# --- joining: concatenate, stack and friends --------------------------------------------------

JOIN = [
    ("concat_axis0", lambda m, a, b, c: m.concatenate([a, b, c]), [(2, 3), (1, 3), (4, 3)]),
    ("concat_axis1", lambda m, a, b, c: m.concatenate((a, b, c), axis=1), [(2, 1), (2, 3), (2, 2)]),
    (
        "concat_neg",
        lambda m, a, b, c: m.concatenate([a, b, c], axis=-1),
        [(2, 2, 1), (2, 2, 3), (2, 2, 2)],
    ),
    (
        "concat_none",
        lambda m, a, b, c: m.concatenate([a, b, c], axis=None),
        [(2, 3), (4,), (1, 2, 2)],
    ),
    ("concat_1d", lambda m, a, b, c: m.concatenate([a, b, c]), [(1,), (3,), (2,)]),
    ("stack0", lambda m, a, b, c: m.stack([a, b, c]), [(2, 3)] * 3),
    ("stack1", lambda m, a, b, c: m.stack([a, b, c], axis=1), [(2, 3)] * 3),
    ("stack_neg", lambda m, a, b, c: m.stack([a, b, c], axis=-1), [(2, 3)] * 3),
    ("stack_0d", lambda m, a, b, c: m.stack([a, b, c]), [()] * 3),
    ("hstack_1d", lambda m, a, b, c: m.hstack([a, b, c]), [(2,), (3,), (1,)]),
    ("hstack_2d", lambda m, a, b, c: m.hstack([a, b, c]), [(2, 1), (2, 3), (2, 2)]),
    ("hstack_0d", lambda m, a, b, c: m.hstack([a, b, c]), [(), (), ()]),
    ("vstack_1d", lambda m, a, b, c: m.vstack([a, b, c]), [(3,), (3,), (3,)]),
    ("vstack_2d", lambda m, a, b, c: m.vstack([a, b, c]), [(1, 3), (2, 3), (3,)]),
    ("vstack_0d", lambda m, a, b, c: m.vstack([a, b, c]), [(), (), ()]),
    ("dstack_1d", lambda m, a, b, c: m.dstack([a, b, c]), [(3,), (3,), (3,)]),
    ("dstack_2d", lambda m, a, b, c: m.dstack([a, b, c]), [(2, 3), (2, 3), (2, 3)]),
    ("dstack_3d", lambda m, a, b, c: m.dstack([a, b, c]), [(2, 3, 1), (2, 3, 2), (2, 3)]),
    ("column_stack_1d", lambda m, a, b, c: m.column_stack([a, b, c]), [(3,), (3,), (3,)]),
    ("column_stack_mixed", lambda m, a, b, c: m.column_stack([a, b, c]), [(3,), (3, 2), (3,)]),
    ("column_stack_0d", lambda m, a, b, c: m.column_stack([a, b, c]), [(), (), ()]),
    ("broadcast_arrays", lambda m, a, b, c: m.broadcast_arrays(a, b, c), [(3,), (2, 1), ()]),
]


@pytest.mark.parametrize("name, fn, shapes", JOIN, ids=[j[0] for j in JOIN])
def test_join(name, fn, shapes):
    args = tuple(rnd(*s, seed=i) for i, s in enumerate(shapes))
    f_np = lambda *a: (
        [np.asarray(r) for r in fn(np, *a)] if name == "broadcast_arrays" else (fn(np, *a))
    )
    check_op(lambda *a: fn(dnp, *a), f_np, *args)


@pytest.mark.parametrize("name, fn, shapes", JOIN, ids=[j[0] for j in JOIN])
def test_join_one_traced_argument(name, fn, shapes):
    """Constants (plain arrays) may be mixed with tracers; only the traced one is
    differentiated and its gradient is the matching block of the cotangent."""
    a, b, c = (rnd(*s, seed=i) for i, s in enumerate(shapes))
    f = lambda b: fn(dnp, a, b, c)
    expected = fn(np, a, b, c)
    out, vjp_fn = ds.vjp(f, b)
    if isinstance(expected, list | tuple):
        expected = [np.asarray(e) for e in expected]
    assert_same(out, expected)
    ds.check_grads(f, (b,), order=2)
    # Mark b's entries with distinct values and read them back through the cotangent.
    marker = np.arange(1.0, b.size + 1).reshape(b.shape)
    out_marked = fn(np, np.zeros_like(a), marker, np.zeros_like(c))
    (g,) = vjp_fn(out_marked if not isinstance(out_marked, list | tuple) else list(out_marked))
    if name != "broadcast_arrays":
        np.testing.assert_array_equal(g, marker)


@pytest.mark.parametrize("name, fn, shapes", JOIN, ids=[j[0] for j in JOIN])
def test_join_vmap(name, fn, shapes):
    args = [rnd(3, *s, seed=i) for i, s in enumerate(shapes)]

    def stacked(results):
        if isinstance(results[0], list | tuple):
            return [np.stack([r[k] for r in results]) for k in range(len(results[0]))]
        return np.stack(results)

    expected = stacked([fn(np, *row) for row in zip(*args, strict=True)])
    assert_same(ds.vmap(lambda *a: fn(dnp, *a))(*args), expected)
    # One argument unbatched, in either position.
    a, b, c = args
    expected = stacked([fn(np, ai, b[0], ci) for ai, ci in zip(a, c, strict=True)])
    out = ds.vmap(lambda a, b, c: fn(dnp, a, b, c), in_axes=(0, None, 0))(a, b[0], c)
    assert_same(out, expected)
    expected = stacked([fn(np, a[0], bi, c[0]) for bi in b])
    out = ds.vmap(lambda a, b, c: fn(dnp, a, b, c), in_axes=(None, 0, None))(a[0], b, c[0])
    assert_same(out, expected)


@pytest.mark.parametrize("name, fn, shapes", JOIN, ids=[j[0] for j in JOIN])
def test_join_float32(name, fn, shapes):
    args = [rnd(*s, dtype=np.float32, seed=i) for i, s in enumerate(shapes)]

    def loss(a, b, c):
        out = fn(dnp, a, b, c)
        outs = out if isinstance(out, list | tuple) else [out]
        return sum(dnp.sum(o * o) for o in outs)

    grads = ds.grad(loss, argnums=(0, 1, 2))(*args)
    for g, a in zip(grads, args, strict=True):
        assert g.dtype == np.float32 and g.shape == a.shape


def test_split_values_and_gradients_per_piece():
    """Each piece's cotangent lands in its own block; unused pieces give zero gradient."""
    x = rnd(7, 2)

    def f(x):
        parts = dnp.array_split(x, 3)
        return dnp.sum(parts[0]) + 2.0 * dnp.sum(parts[2] ** 2)

    g = ds.grad(f)(x)
    expected = np.zeros_like(x)
    expected[:3] = 1.0
    expected[5:] = 4.0 * x[5:]
    np.testing.assert_allclose(g, expected)


def test_stack_of_list_of_tracers_from_iteration():
    x = rnd(4, 3)
    f = lambda x: dnp.stack([row * (i + 1) for i, row in enumerate(x)], axis=1)
    check_op(f, lambda x: np.stack([row * (i + 1) for i, row in enumerate(x)], axis=1), x)


def test_reshape_keyword_shape_and_tuple_forms():
    x = rnd(2, 6)
    f = lambda x: dnp.reshape(x, shape=(3, 4))
    check_op(f, lambda x: np.reshape(x, (3, 4)), x)


# --- errors ----------------------------------------------------------------------------------


def _raises_in_grad(f, x, exc, *fragments):
    with pytest.raises(exc) as info:
        ds.grad(lambda x: dnp.sum(f(x)))(x)
    for frag in fragments:
        assert frag in str(info.value), str(info.value)


def test_concatenate_mismatch_names_shapes():
    a, b = rnd(2, 3), rnd(2, 4)
    _raises_in_grad(lambda a: dnp.concatenate([a, b]), a, ValueError, "(2, 3)", "(2, 4)")


def test_concatenate_rank_mismatch_names_shapes():
    a, b = rnd(2, 3), rnd(3)
    _raises_in_grad(lambda a: dnp.concatenate([a, b]), a, ValueError, "(2, 3)", "(3,)")


def test_stack_mismatch_names_shapes():
    a, b = rnd(2, 3), rnd(3, 2)
    _raises_in_grad(lambda a: dnp.stack([a, b]), a, ValueError, "(2, 3)", "(3, 2)")


def test_reshape_bad_size_names_shape():
    _raises_in_grad(lambda x: dnp.reshape(x, (4, 2)), rnd(2, 3), ValueError, "6", "(4, 2)")


def test_reshape_two_unknowns():
    _raises_in_grad(lambda x: dnp.reshape(x, (-1, -1)), rnd(2, 3), ValueError, "-1")


def test_split_unequal_raises():
    _raises_in_grad(lambda x: dnp.split(x, 4)[0], rnd(6), ValueError, "6", "4")


def test_squeeze_non_unit_axis_raises():
    _raises_in_grad(lambda x: dnp.squeeze(x, 1), rnd(1, 3), ValueError, "(1, 3)")


def test_broadcast_to_incompatible_raises():
    with pytest.raises(ValueError):
        ds.grad(lambda x: dnp.sum(dnp.broadcast_to(x, (2, 4))))(rnd(3))


def test_transpose_bad_permutation_raises():
    _raises_in_grad(lambda x: dnp.transpose(x, (0, 0, 1)), rnd(2, 3, 4), ValueError, "permutation")


def test_moveaxis_repeated_axis_raises():
    _raises_in_grad(
        lambda x: dnp.moveaxis(x, [0, 0], [1, 0]), rnd(2, 3), ValueError, "moveaxis", "source"
    )
    _raises_in_grad(
        lambda x: dnp.moveaxis(x, [0, 1], [1, -1]), rnd(2, 3), ValueError, "moveaxis", "destination"
    )


def test_axis_out_of_range_raises():
    with pytest.raises(np.exceptions.AxisError):
        ds.grad(lambda x: dnp.sum(dnp.swapaxes(x, 0, 2)))(rnd(2, 3))
    with pytest.raises(np.exceptions.AxisError):
        ds.grad(lambda x: dnp.sum(dnp.concatenate([x, x], axis=2)))(rnd(2, 3))


# --- Jacobians and Hessians of compositions -----------------------------------------------------


def fd_jacobian(f, x, eps=1e-6):
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = eps
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    return np.stack(cols, axis=-1).reshape(np.shape(f(x)) + x.shape)


def fd_hessian(f, x, eps=1e-4):
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    h = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = eps
            ej[j] = eps
            ei, ej = ei.reshape(x.shape), ej.reshape(x.shape)
            h[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * eps * eps
            )
    return h.reshape(x.shape + x.shape)


def shape_pipeline(x):
    """(2, 3) -> a vector, through most shape operations (with products between copies so
    the Jacobian is not constant)."""
    y = dnp.transpose(x)  # (3, 2)
    y = dnp.concatenate([y, dnp.swapaxes(dnp.expand_dims(x[0], 0), 0, 1)], axis=1)  # (3, 3)
    a, b = dnp.split(dnp.moveaxis(dnp.stack([y, y * y]), 0, -1), [1], axis=0)
    z = dnp.squeeze(a, 0) * dnp.broadcast_to(dnp.atleast_3d(b[0, 0, 0]), (1, 3, 2))
    w = dnp.vstack([dnp.ravel(z), dnp.reshape(x, -1, order="F")])
    return dnp.hstack([w[0], w[1] * w[1][::-1]])


def test_jacfwd_jacrev_finite_differences():
    x = rnd(2, 3)
    jf = ds.jacfwd(shape_pipeline)(x)
    jr = ds.jacrev(shape_pipeline)(x)
    fd = fd_jacobian(shape_pipeline, x)
    assert jf.shape == jr.shape == fd.shape
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jf, fd, rtol=1e-6, atol=1e-7)
    ds.check_grads(shape_pipeline, (x,), order=2)


def test_hessian_of_shape_composition():
    def f(x):
        v = shape_pipeline(x)
        return dnp.sum(v * dnp.concatenate([v[1:], v[:1]]))

    x = rnd(2, 3)
    h = ds.hessian(f)(x)
    assert h.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(h, fd_hessian(f, x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(h, np.swapaxes(np.swapaxes(h, 0, 2), 1, 3), atol=1e-12)


# --- the batching fallback (primitives without a batching rule) -------------------------------

_cube = ds.Primitive("test_shape_cube_no_batch_rule", lambda x: x**3)
_cube.defvjp(lambda g, ans, x: g * 3.0 * x**2)
_cube.defjvp(lambda t, ans, x: t * 3.0 * x**2)
_pair = ds.Primitive(
    "test_shape_pair_no_batch_rule", lambda a, b: (a * b, a - b), multiple_results=True
)
_pair.defvjp(lambda g, ans, a, b: g[0] * b + g[1], lambda g, ans, a, b: g[0] * a - g[1])


def test_fallback_batching_loops_over_the_batch():
    x = rnd(4, 3)
    assert _cube.batch_rule is None
    assert_same(ds.vmap(_cube)(x), x**3)
    assert_same(ds.vmap(_cube, in_axes=1)(x), (x**3).T)
    assert_same(ds.vmap(_cube)(x[:, 0]), x[:, 0] ** 3)
    np.testing.assert_allclose(ds.jacfwd(_cube)(x[0]), np.diag(3 * x[0] ** 2), rtol=1e-14)
    np.testing.assert_allclose(ds.jacrev(_cube)(x[0]), np.diag(3 * x[0] ** 2), rtol=1e-14)
    np.testing.assert_allclose(
        ds.hessian(lambda v: dnp.sum(_cube(v)))(x[0]), np.diag(6 * x[0]), rtol=1e-14
    )


def test_fallback_batching_multiple_results():
    a, b = rnd(4, 3), rnd(3, seed=1)
    p, m = ds.vmap(_pair, in_axes=(0, None))(a, b)
    assert_same(p, a * b)
    assert_same(m, a - b)
    p, m = ds.vmap(_pair)(a, a[::-1])
    assert_same(p, a * a[::-1])
    assert_same(m, a - a[::-1])
    jac = ds.jacrev(lambda a: _pair(a, b)[0])(a[0])
    np.testing.assert_allclose(jac, np.diag(b), rtol=1e-14)


# --- property-based: random permutations and reshapes -------------------------------------------


@st.composite
def _reshape_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3))
    perm = draw(st.permutations(range(len(shape))))
    size = int(np.prod(shape, dtype=int))
    # A random target shape of the same size: split the prime factors among a few axes.
    factors = [p for p in (2, 3) for k in range(1, 8) if size % p**k == 0]
    ndim = draw(st.integers(0, 4)) if size > 1 else draw(st.integers(0, 2))
    target = [1] * max(ndim, 1 if factors else 0)
    for f in factors:
        target[draw(st.integers(0, len(target) - 1))] *= f
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    order = draw(st.sampled_from("CF"))
    return shape, tuple(perm), tuple(target), order


@settings(max_examples=40, deadline=None)
@given(case=_reshape_case(), seed=st.integers(0, 2**16))
def test_transpose_reshape_random(case, seed):
    shape, perm, target, order = case
    x = np.random.default_rng(seed).standard_normal(shape)

    def f(x):
        return dnp.reshape(dnp.transpose(x, perm), target, order=order)

    f_np = lambda x: np.reshape(np.transpose(x, perm), target, order=order)
    check_op(f, f_np, x)
    # The VJP of a permutation of entries is the inverse permutation of the cotangent.
    g = np.random.default_rng(seed + 1).standard_normal(f_np(x).shape)
    (gx,) = ds.vjp(f, x)[1](g)
    idx = f_np(np.arange(x.size).reshape(shape)).ravel()
    expected = np.zeros(x.size)
    expected[idx] = g.ravel()
    np.testing.assert_array_equal(gx, expected.reshape(shape))


def test_fallback_batching_empty_batch():
    """A batch of length 0: the loop has nothing to stack; shapes and dtypes still follow."""
    x = np.zeros((0, 3), dtype=np.float32)
    out = ds.vmap(_cube)(x)
    assert out.shape == (0, 3) and out.dtype == np.float32
    p, m = ds.vmap(_pair, in_axes=(0, None))(np.zeros((0, 2)), np.ones(2))
    assert p.shape == m.shape == (0, 2)


@st.composite
def _concat_case(draw):
    base = list(draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    n = draw(st.integers(1, 4))
    shapes = []
    for _ in range(n):
        s = list(base)
        s[axis] = draw(st.integers(0, 3))
        shapes.append(tuple(s))
    return shapes, axis


@settings(max_examples=40, deadline=None)
@given(case=_concat_case(), seed=st.integers(0, 2**16))
def test_concatenate_split_random(case, seed):
    shapes, axis = case
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in shapes]
    expected = np.concatenate(xs, axis=axis)
    out, vjp_fn = ds.vjp(lambda *xs: dnp.concatenate(xs, axis=axis), *xs)
    assert_same(out, expected)
    g = rng.standard_normal(expected.shape)
    bounds = np.cumsum([s[axis] for s in shapes])[:-1]
    for ct, part in zip(vjp_fn(g), np.split(g, bounds, axis=axis), strict=True):
        assert_same(ct, part)
    # split is concatenate's inverse, traced and batched.
    parts = ds.vjp(lambda y: dnp.split(y, bounds, axis=axis), expected)[0]
    assert_same(parts, np.split(expected, bounds, axis=axis))
    batched = ds.vmap(lambda *xs: dnp.concatenate(xs, axis=axis))(*[np.stack([x, -x]) for x in xs])
    assert_same(batched, np.stack([expected, -expected]))


def _np_row_stack(tup):
    return np.vstack(tup)  # numpy.row_stack, without its deprecation warning


NEW_SHAPE_OPS = [
    ("append", lambda m, x: m.append(x, x[:1] * 2.0), (3, 4)),
    ("append_axis", lambda m, x: m.append(x, x[:1] * 2.0, axis=0), (3, 4)),
    ("append_constant", lambda m, x: m.append(np.ones((2, 4)), x, axis=0), (3, 4)),
    ("rollaxis", lambda m, x: m.rollaxis(x, 2), (2, 3, 4)),
    ("rollaxis_start", lambda m, x: m.rollaxis(x, 0, 3), (2, 3, 4)),
    ("rollaxis_neg", lambda m, x: m.rollaxis(x, -1, -2), (2, 3, 4)),
    ("rollaxis_same", lambda m, x: m.rollaxis(x, 1, 2), (2, 3, 4)),
    (
        "row_stack",
        lambda m, x: (m.row_stack if m is dnp else _np_row_stack)([x, x[::-1] * 2.0]),
        (4,),
    ),
]


@pytest.mark.parametrize("name, fn, shape", NEW_SHAPE_OPS, ids=[c[0] for c in NEW_SHAPE_OPS])
def test_append_rollaxis_row_stack(name, fn, shape):
    from surface_check import check

    check(fn, rnd(*shape))


def test_rollaxis_errors():
    with pytest.raises(np.exceptions.AxisError):
        ds.grad(lambda x: dnp.sum(dnp.rollaxis(x, 0, 4)))(rnd(2, 3))
    with pytest.raises(np.exceptions.AxisError):
        ds.grad(lambda x: dnp.sum(dnp.rollaxis(x, 2)))(rnd(2, 3))
