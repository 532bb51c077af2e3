"""Array creation: constants equal NumPy's; arrays built from tracers, ``full`` and
``linspace`` carry gradients to their traced arguments."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp


def assert_same(actual, expected):
    assert not isinstance(actual, ds.Tracer)
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=1e-14, atol=1e-15)


# --- array / asarray of nested sequences holding tracers ---------------------------------------


def test_array_of_nested_lists_with_tracers():
    def f(x):
        return dnp.array([[x[0], 1.0, x[1] * x[0]], [2.0, x[2], dnp.sin(x[1])]])

    x = np.array([0.3, -1.2, 2.0])
    expected = np.array([[x[0], 1.0, x[1] * x[0]], [2.0, x[2], np.sin(x[1])]])
    assert_same(ds.vjp(f, x)[0], expected)
    ds.check_grads(f, (x,), order=2)
    g = ds.grad(lambda x: dnp.sum(f(x) * np.arange(6.0).reshape(2, 3)))(x)
    np.testing.assert_allclose(g, [0.0 + 2.0 * x[1], 2.0 * x[0] + 5.0 * np.cos(x[1]), 4.0])


def test_array_of_tuples_and_arrays_with_tracers():
    def f(x):
        return dnp.array(((x[:2], np.array([3.0, 4.0])), (x[1:], x[::-2])))

    x = np.array([0.5, 1.5, 2.5])
    assert_same(ds.vjp(f, x)[0], np.array(((x[:2], [3.0, 4.0]), (x[1:], x[::-2]))))
    ds.check_grads(f, (x,), order=2)


def test_array_of_0d_tracers_and_reading_back():
    def f(a, b):
        m = dnp.array([[a, b], [b, a]])
        return m @ m

    a, b = np.float64(0.7), np.float64(-0.4)
    ds.check_grads(f, (a, b), order=2)
    np.testing.assert_allclose(ds.vjp(f, a, b)[0], np.array([[a, b], [b, a]]) @ [[a, b], [b, a]])


def test_asarray_keeps_tracer_and_dtype_casts():
    seen = {}

    def f(x):
        y = dnp.asarray(x)
        seen["same"] = y is x
        z = dnp.array([x[0], x[1]], dtype=np.float32)
        seen["dtype"] = z.dtype
        return dnp.sum(z) + dnp.sum(dnp.array(x, ndmin=3))

    g = ds.grad(f)(np.array([1.0, 2.0]))
    assert seen["same"] and seen["dtype"] == np.float32
    np.testing.assert_array_equal(g, [2.0, 2.0])
    assert g.dtype == np.float64
    out = ds.vjp(lambda x: dnp.array(x, ndmin=3), np.array([1.0, 2.0]))[0]
    assert_same(out, np.array([1.0, 2.0], ndmin=3))


def test_array_float32_tracers_gradient_dtype():
    x = np.array([1.0, 2.0], dtype=np.float32)
    f = lambda x: dnp.array([[x[0], x[1]], [x[1], x[0]]])
    assert ds.vjp(f, x)[0].dtype == np.float32
    g = ds.grad(lambda x: dnp.sum(f(x) ** 2))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 4 * x)


def test_array_plain_inputs_equal_numpy():
    for obj in ([1, 2, 3], [[1.0, 2.0], [3.0, 4.0]], 3.5, (1, 2.0), []):
        assert_same(dnp.array(obj), np.array(obj))
        assert_same(dnp.asarray(obj), np.asarray(obj))
    assert_same(dnp.array([1, 2], dtype=np.float32), np.array([1, 2], dtype=np.float32))
    assert_same(dnp.array(2.0, ndmin=2), np.array(2.0, ndmin=2))
    a = np.arange(3.0)
    assert dnp.asarray(a) is a


def test_array_vmap():
    xs = np.random.default_rng(0).standard_normal((4, 2))
    out = ds.vmap(lambda x: dnp.array([[x[0], 1.0], [x[1], x[0] * x[1]]]))(xs)
    expected = np.stack([[[x[0], 1.0], [x[1], x[0] * x[1]]] for x in xs])
    assert_same(out, expected)


# --- constants --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.zeros(3),
        lambda m: m.zeros((2, 3), dtype=np.float32),
        lambda m: m.ones((2, 1)),
        lambda m: m.ones(4, dtype=int),
        lambda m: m.full((2, 2), 7.5),
        lambda m: m.full(3, 2, dtype=np.float32),
        lambda m: m.arange(5),
        lambda m: m.arange(1.0, 2.0, 0.25),
        lambda m: m.arange(6, 0, -2),
        lambda m: m.linspace(0.0, 1.0, 5),
        lambda m: m.linspace(-1.0, 1.0, 4, endpoint=False),
        lambda m: m.linspace(0.0, 2.0, 5, retstep=True)[0],
        lambda m: np.asarray(m.linspace(0.0, 2.0, 5, retstep=True)[1]),
        lambda m: m.eye(3),
        lambda m: m.eye(2, 4, k=1),
        lambda m: m.eye(3, dtype=np.float32),
        lambda m: m.identity(4),
    ],
)
def test_constants_equal_numpy(call):
    assert_same(call(dnp), call(np))


def test_like_constructors_on_tracers():
    seen = {}

    def f(x):
        z, o = dnp.zeros_like(x), dnp.ones_like(x)
        fl = dnp.full_like(x, 2.5)
        z32 = dnp.zeros_like(x, dtype=np.float32)
        seen.update(z=z, o=o, fl=fl, z32=z32)
        return dnp.sum(x * o + z + fl * x)

    x = np.arange(6.0).reshape(2, 3)
    g = ds.grad(f)(x)
    np.testing.assert_array_equal(g, np.full((2, 3), 3.5))
    assert_same(seen["z"], np.zeros_like(x))
    assert_same(seen["o"], np.ones_like(x))
    assert_same(seen["fl"], np.full_like(x, 2.5))
    assert_same(seen["z32"], np.zeros_like(x, dtype=np.float32))


def test_like_constructors_have_zero_derivative():
    x = np.array([1.0, 2.0])
    ds.check_grads(
        lambda x: x * dnp.ones_like(x) + dnp.zeros_like(x) + dnp.full_like(x, 3.0), (x,), order=2
    )
    g = ds.grad(lambda x: dnp.sum(dnp.ones_like(x)))(x)
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_like_constructors_on_plain_arrays():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert_same(dnp.zeros_like(a), np.zeros_like(a))
    assert_same(dnp.ones_like(a, dtype=int), np.ones_like(a, dtype=int))
    assert_same(dnp.full_like(a, 1.5), np.full_like(a, 1.5))
    assert_same(dnp.zeros_like(a, shape=(4,)), np.zeros_like(a, shape=(4,)))


def test_full_with_traced_fill_value():
    def f(c):
        return dnp.full((2, 3), c) * np.arange(6.0).reshape(2, 3)

    c = np.float64(1.5)
    assert_same(ds.vjp(f, c)[0], np.full((2, 3), c) * np.arange(6.0).reshape(2, 3))
    ds.check_grads(f, (c,), order=2)
    assert ds.grad(lambda c: dnp.sum(f(c)))(c) == 15.0
    # A vector fill value broadcasts over the leading axes.
    v = np.array([1.0, 2.0, 3.0])
    ds.check_grads(lambda v: dnp.full((2, 3), v) ** 2, (v,), order=2)
    np.testing.assert_array_equal(ds.grad(lambda v: dnp.sum(dnp.full((4, 3), v)))(v), [4.0] * 3)


def test_full_like_with_traced_fill_value():
    a = np.zeros((2, 2), dtype=np.float32)
    g = ds.grad(lambda c: dnp.sum(dnp.full_like(a, c) * 2.0))(np.float32(1.0))
    assert g == 8.0 and np.asarray(g).dtype == np.float32
    out = ds.vjp(lambda c: dnp.full_like(a, c), np.float64(1.0))[0]
    assert_same(out, np.full_like(a, 1.0))
    g = ds.grad(lambda c: dnp.sum(dnp.full(3, c, dtype=np.float32)))(np.float64(2.0))
    assert g == 3.0 and np.asarray(g).dtype == np.float64


def test_full_vmap():
    cs = np.array([1.0, 2.0, 3.0])
    assert_same(
        ds.vmap(lambda c: dnp.full((2, 2), c))(cs), np.stack([np.full((2, 2), c) for c in cs])
    )


# --- linspace with traced endpoints ------------------------------------------------------------


@pytest.mark.parametrize("num, endpoint", [(5, True), (4, False), (1, True), (1, False), (2, True)])
def test_linspace_traced_endpoints(num, endpoint):
    f = lambda a, b: dnp.linspace(a, b, num, endpoint=endpoint)
    a, b = np.float64(-0.5), np.float64(2.0)
    assert_same(ds.vjp(f, a, b)[0], np.linspace(a, b, num, endpoint=endpoint))
    ds.check_grads(f, (a, b), order=2)
    # d/da sum(linspace) = sum(1 - t_i), d/db = sum(t_i), t_i = i / div.
    div = (num - 1) if endpoint else num
    t = np.arange(num) / max(div, 1)
    ga, gb = ds.grad(lambda a, b: dnp.sum(f(a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose([ga, gb], [np.sum(1 - t), np.sum(t)], rtol=1e-14)


def test_linspace_one_traced_endpoint_and_retstep():
    f = lambda b: dnp.linspace(1.0, b, 6, retstep=True)
    out, step = ds.vjp(f, np.float64(3.0))[0]
    e_out, e_step = np.linspace(1.0, 3.0, 6, retstep=True)
    assert_same(out, e_out)
    np.testing.assert_allclose(step, e_step, rtol=1e-15)
    ds.check_grads(f, (np.float64(3.0),), order=2)
    ds.check_grads(lambda a: dnp.linspace(a, 1.0, 3), (np.float64(-2.0),), order=2)


def test_linspace_vector_endpoints():
    a, b = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    f = lambda a, b: dnp.linspace(a, b, 4)
    assert_same(ds.vjp(f, a, b)[0], np.linspace(a, b, 4))
    ds.check_grads(f, (a, b), order=2)
    f = lambda a: dnp.linspace(a, 3.0, 5)
    assert_same(ds.vjp(f, a)[0], np.linspace(a, 3.0, 5))


def test_linspace_float32_and_dtype():
    a, b = np.float32(0.0), np.float32(1.0)
    out = ds.vjp(lambda a, b: dnp.linspace(a, b, 3), a, b)[0]
    assert_same(out, np.linspace(a, b, 3))
    ga = ds.grad(lambda a: dnp.sum(dnp.linspace(a, b, 3)))(a)
    assert np.asarray(ga).dtype == np.float32
    out = ds.vjp(lambda b: dnp.linspace(0.0, b, 3, dtype=np.float32), np.float64(1.0))[0]
    assert_same(out, np.linspace(0.0, 1.0, 3, dtype=np.float32))


def test_linspace_vmap():
    bs = np.array([1.0, 2.0, 4.0])
    assert_same(
        ds.vmap(lambda b: dnp.linspace(0.0, b, 5))(bs), np.stack([np.linspace(0, b, 5) for b in bs])
    )


def test_creation_used_in_jacobians():
    def f(x):
        m = dnp.eye(3) * x[0] + dnp.full((3, 3), x[1]) + dnp.array([[x[2], 0, 0]] * 3)
        return m @ dnp.linspace(x[0], x[1], 3)

    x = np.array([0.5, -1.0, 2.0])
    jf, jr = ds.jacfwd(f)(x), ds.jacrev(f)(x)
    eps = 1e-6
    fd = np.stack([(f(x + e) - f(x - e)) / (2 * eps) for e in np.eye(3) * eps], axis=-1)
    np.testing.assert_allclose(jf, jr, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(jf, fd, rtol=1e-7, atol=1e-8)
    h = ds.hessian(lambda x: dnp.sum(f(x) ** 2))(x)
    hr = ds.jacrev(ds.grad(lambda x: dnp.sum(f(x) ** 2)))(x)
    np.testing.assert_allclose(h, hr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, h.T, rtol=1e-12, atol=1e-12)


def test_like_constructors_of_lists_and_scalars_equal_numpy():
    for a in ([1, 2], [[1.5, 2.0]], 2.5, 3, np.float32(1.0)):
        assert_same(dnp.zeros_like(a), np.zeros_like(a))
        assert_same(dnp.ones_like(a), np.ones_like(a))
        assert_same(dnp.full_like(a, 7), np.full_like(a, 7))
        assert dnp.empty_like(a).shape == np.empty_like(a).shape
        assert dnp.empty_like(a).dtype == np.empty_like(a).dtype
    assert_same(dnp.full_like([1, 2], 0.5, dtype=float), np.full_like([1, 2], 0.5, dtype=float))
    g = ds.grad(lambda c: dnp.sum(dnp.full_like([[1.0, 2.0]], c)))(np.float64(3.0))
    assert g == 2.0


def test_linspace_axis_with_traced_endpoints():
    a, b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    for axis in (0, 1, -1):
        f = lambda a, b, axis=axis: dnp.linspace(a, b, 4, axis=axis)
        assert_same(ds.vjp(f, a, b)[0], np.linspace(a, b, 4, axis=axis))
        ds.check_grads(f, (a, b), order=2)


def test_linspace_retstep_matches_numpy_edge_cases():
    for num, endpoint in [(1, True), (1, False), (5, False), (2, True)]:
        out, step = ds.vjp(
            lambda a: dnp.linspace(a, 3.0, num, endpoint=endpoint, retstep=True), np.float64(1.0)
        )[0]
        e_out, e_step = np.linspace(1.0, 3.0, num, endpoint=endpoint, retstep=True)
        assert_same(out, e_out)
        np.testing.assert_array_equal(step, e_step)  # NaN for one sample with the endpoint


def test_empty_batch_under_vmap():
    x = np.zeros((0, 3))
    for f in (
        lambda v: dnp.full((2,), v[0]),
        lambda v: dnp.array([v[0], v[1] * 2.0]),
        lambda v: dnp.linspace(v[0], v[1], 4),
    ):
        out = ds.vmap(f)(x)
        expected = f(np.ones(3))
        assert out.shape == (0,) + expected.shape and out.dtype == expected.dtype
