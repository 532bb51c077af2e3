"""Tracers behave like immutable NumPy arrays inside transforms: properties, methods,
operators (reflected ones with NumPy arrays on the left), comparisons, Python control flow,
and clear errors for mutation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp


def rnd(*shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed * 1000 + sum(shape) + len(shape))
    return rng.standard_normal(shape).astype(dtype)


def assert_same(actual, expected, rtol=1e-13):
    assert not isinstance(actual, ds.Tracer)
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-14)


TRANSFORMS = {
    "grad": lambda f, x: ds.grad(lambda x: dnp.sum(f(x)))(x),
    "jvp": lambda f, x: ds.jvp(f, (x,), (np.ones_like(x),)),
    "vjp": lambda f, x: ds.vjp(f, x),
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_properties(transform):
    seen = {}

    def f(x):
        assert isinstance(x, ds.Tracer)
        seen.update(shape=x.shape, ndim=x.ndim, size=x.size, dtype=x.dtype, len=len(x))
        seen["T"] = x.T.shape
        seen["mT"] = x.mT.shape
        return x

    TRANSFORMS[transform](f, rnd(2, 3, 4, dtype=np.float32))
    assert seen == dict(
        shape=(2, 3, 4), ndim=3, size=24, dtype=np.float32, len=2, T=(4, 3, 2), mT=(2, 4, 3)
    )
    assert isinstance(seen["shape"], tuple) and isinstance(seen["size"], int)


METHODS = [
    ("T", lambda x: x.T, (2, 3)),
    ("T_3d", lambda x: x.T, (2, 3, 4)),
    ("reshape_args", lambda x: x.reshape(2, 3), (6,)),
    ("reshape_tuple", lambda x: x.reshape((2, 3)), (3, 2)),
    ("reshape_minus1", lambda x: x.reshape(-1, 2), (3, 2)),
    ("reshape_F", lambda x: x.reshape((2, 3), order="F"), (3, 2)),
    ("sum", lambda x: x.sum(), (2, 3)),
    ("sum_axis", lambda x: x.sum(axis=0), (2, 3)),
    ("sum_axis_pos", lambda x: x.sum(1), (2, 3)),
    ("sum_keepdims", lambda x: x.sum(axis=-1, keepdims=True), (2, 3)),
    ("mean", lambda x: x.mean(), (2, 3)),
    ("mean_axis", lambda x: x.mean(axis=1), (2, 3)),
    ("max", lambda x: x.max(), (2, 3)),
    ("max_axis", lambda x: x.max(axis=0), (2, 3)),
    ("min_axis", lambda x: x.min(axis=1), (2, 3)),
    ("prod_axis", lambda x: x.prod(axis=0), (2, 3)),
    ("prod", lambda x: x.prod(), (2, 3)),
    ("std_axis", lambda x: x.std(axis=1), (2, 3)),
    ("var_axis", lambda x: x.var(axis=0), (3, 3)),
    ("var", lambda x: x.var(), (2, 3)),
    ("dot_matrix", lambda x: x.dot(x.T), (2, 3)),
    ("dot_vector", lambda x: x.dot(np.arange(3.0)), (2, 3)),
    ("flatten", lambda x: x.flatten(), (2, 3)),
    ("ravel", lambda x: x.ravel(), (2, 3)),
    ("squeeze", lambda x: x.squeeze(), (1, 3, 1)),
    ("squeeze_axis", lambda x: x.squeeze(0), (1, 3, 1)),
    ("transpose_args", lambda x: x.transpose(1, 0), (2, 3)),
    ("transpose_tuple", lambda x: x.transpose((2, 0, 1)), (2, 3, 4)),
    ("transpose_none", lambda x: x.transpose(), (2, 3, 4)),
    ("swapaxes", lambda x: x.swapaxes(0, 1), (2, 3)),
    ("cumsum", lambda x: x.cumsum(axis=1), (2, 3)),
    ("clip", lambda x: x.clip(-0.5, 0.5), (2, 3)),
    ("copy", lambda x: x.copy() * 2.0, (2, 3)),
    ("iteration", lambda x: sum(row * (i + 1.0) for i, row in enumerate(x)), (3, 2)),
    ("unpacking", lambda x: (lambda a, b, c: a * b - c)(*x), (3, 2)),
    ("neg_pos_abs", lambda x: -x + (+x) * abs(x), (2, 3)),
    ("pow_reflected", lambda x: 2.0**x + x**3, (2, 3)),
    (
        "operators_scalars",
        lambda x: (1.0 + x) * 2.0 - 3.0 / (x * x + 1.0) - (5.0 - x) / 4.0,
        (2, 3),
    ),
]


@pytest.mark.parametrize("name, fn, shape", METHODS, ids=[m[0] for m in METHODS])
def test_method(name, fn, shape):
    x = rnd(*shape) + (3.0 if name.startswith("prod") else 0.0)
    expected = np.asarray(fn(x))
    assert_same(ds.vjp(fn, x)[0], expected)
    assert_same(ds.jvp(fn, (x,), (np.ones_like(x),))[0], expected)
    ds.check_grads(fn, (x,), order=2)


@pytest.mark.parametrize("name, fn, shape", METHODS, ids=[m[0] for m in METHODS])
def test_method_vmap(name, fn, shape):
    xs = rnd(3, *shape) + (3.0 if name.startswith("prod") else 0.0)
    assert_same(ds.vmap(fn)(xs), np.stack([np.asarray(fn(x)) for x in xs]), rtol=1e-12)


def test_reflected_operators_with_numpy_arrays_on_the_left():
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    ops = {
        "mul": lambda x: a * x,
        "add": lambda x: a + x,
        "sub": lambda x: a - x,
        "truediv": lambda x: a / (x + 3.0),
        "pow": lambda x: a**x,
        "matmul": lambda x: a.T @ x,
        "scalar_mul": lambda x: np.float64(2.0) * x,
        "scalar_sub": lambda x: np.float32(2.0) - x,
        "broadcast": lambda x: a[:, :1] * x,
    }
    x = rnd(2, 3)
    for name, f in ops.items():
        out = ds.vjp(f, x)[0]
        assert isinstance(out, np.ndarray), name
        assert_same(out, f(x))
        ds.check_grads(f, (x,), order=2)


def test_reflected_operators_keep_tracer_type():
    def f(x):
        y = np.ones(3) * x
        z = np.ones(3) @ x
        traced = isinstance(x, ds.Tracer)  # check_grads also calls f on plain arrays
        assert isinstance(y, ds.Tracer) == traced and isinstance(z, ds.Tracer) == traced
        return y * z

    x = rnd(3)
    ds.check_grads(f, (x,), order=2)
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(f(x)))(x), 2 * np.sum(x) * np.ones(3))


def test_comparisons_return_bool_arrays():
    seen = {}

    def f(x):
        c = {
            "gt": x > 0,
            "ge": x >= 0.5,
            "lt": x < 0,
            "le": x <= -0.5,
            "eq": x == x[0],
            "ne": x != x[0],
            "rgt": 0.0 < x,
            "arr": np.zeros(4) > x,
        }
        for k, v in c.items():
            assert v.dtype == np.bool_, k
            seen[k] = ds.concrete(v)
        return dnp.where(x > 0, x, 0.0)

    x = np.array([1.0, -1.0, 0.5, -0.5])
    g = ds.grad(lambda x: dnp.sum(f(x)))(x)
    np.testing.assert_array_equal(g, [1.0, 0.0, 1.0, 0.0])
    assert_same(seen["gt"], x > 0)
    assert_same(seen["ge"], x >= 0.5)
    assert_same(seen["lt"], x < 0)
    assert_same(seen["le"], x <= -0.5)
    assert_same(seen["eq"], x == x[0])
    assert_same(seen["ne"], x != x[0])
    assert_same(seen["rgt"], 0.0 < x)
    assert_same(seen["arr"], np.zeros(4) > x)


def test_python_control_flow_inside_grad():
    def f(x):
        if x > 0:
            y = x * x
        else:
            y = -x * 3.0
        n = 0
        while y < 10.0:
            y = y * 2.0
            n += 1
        return y

    assert ds.grad(f)(1.5) == pytest.approx(2 * 1.5 * 8.0)  # 2.25 -> 18: n = 3
    assert ds.grad(f)(-1.0) == pytest.approx(-3.0 * 4.0)  # 3 -> 12: n = 2
    ds.check_grads(f, (np.float64(1.5),), order=2)
    # Control flow on an element of a vector, and bool of a reduction.
    g = ds.grad(lambda x: dnp.sum(x) if (x > 0).all() else dnp.sum(x * x))
    np.testing.assert_array_equal(g(np.array([1.0, 2.0])), [1.0, 1.0])
    np.testing.assert_array_equal(g(np.array([1.0, -2.0])), [2.0, -4.0])


def test_float_and_int_of_0d_tracers():
    seen = {}

    def f(x):
        seen["float"] = float(x[0])
        seen["int"] = int(x[1])
        seen["index"] = [10, 20, 30][int(x[1])]
        seen["item"] = x[2].item()
        return x * float(x[0])  # float() gives a constant

    x = np.array([1.5, 2.7, -3.0])
    with pytest.warns(ds.DroppedDerivativeWarning):  # float()/int() drop the derivative
        g = ds.grad(lambda x: dnp.sum(f(x)))(x)
    assert seen == {"float": 1.5, "int": 2, "index": 30, "item": -3.0}
    assert type(seen["float"]) is float and type(seen["int"]) is int
    np.testing.assert_array_equal(g, [1.5, 1.5, 1.5])


def test_float_of_tracer_inside_jvp_and_nested_grad():
    f = lambda x: x * x * float(x)
    with pytest.warns(ds.DroppedDerivativeWarning):
        assert ds.jvp(f, (2.0,), (1.0,))[1] == pytest.approx(8.0)
    with pytest.warns(ds.DroppedDerivativeWarning):
        assert ds.grad(ds.grad(lambda x: x**3 * (1.0 if float(x) > 0 else -1.0)))(2.0) == 12.0


def test_astype_float32_float64_gradient_dtype():
    x32 = rnd(3, dtype=np.float32)
    seen = {}

    def f(x):
        y = x.astype(np.float64)
        seen["y"] = y.dtype
        z = (y * y).astype("float32")
        seen["z"] = z.dtype
        return z

    out = ds.vjp(f, x32)[0]
    assert out.dtype == np.float32 and seen == {"y": np.float64, "z": np.float32}
    g = ds.grad(lambda x: dnp.sum(f(x)))(x32)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * x32, rtol=1e-6)
    x64 = rnd(3)
    g = ds.grad(lambda x: dnp.sum(x.astype(np.float32) ** 2))(x64)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, 2 * x64.astype(np.float32), rtol=1e-6)
    # Finite differences see float32 rounding: a wide step (exact for this quadratic).
    ds.check_grads(
        lambda x: dnp.astype(x, np.float32).astype(np.float64) * x,
        (x64,),
        order=2,
        eps=1e-2,
        rtol=1e-4,
        atol=1e-4,
    )


def test_astype_to_int_is_a_constant():
    seen = {}

    def f(x):
        i = x.astype(int)
        b = x.astype(bool)
        seen.update(i=i.dtype, b=b.dtype, iv=ds.concrete(i))
        return x * i + b

    x = np.array([1.7, -2.2, 0.0])
    g = ds.grad(lambda x: dnp.sum(f(x)))(x)
    assert seen["i"] == np.dtype(int) and seen["b"] == np.bool_
    np.testing.assert_array_equal(seen["iv"], x.astype(int))
    np.testing.assert_array_equal(g, x.astype(int).astype(float))
    ds.check_grads(f, (x + 0.1,), order=2)
    out = ds.vmap(lambda x: x.astype(np.int32))(np.array([[1.5, 2.5]]))
    assert_same(out, np.array([[1, 2]], dtype=np.int32))


def test_total_plus_equals_on_0d_values_works():
    def f(x):
        total = 0.0
        for xi in x:
            term = xi * xi
            total += term
        acc = x[0]
        acc *= 2.0
        acc -= x[1]
        acc /= 4.0
        acc **= 2
        return total + acc

    x = np.array([1.0, 2.0, 3.0])
    ds.check_grads(f, (x,), order=2)
    acc = (2 * x[0] - x[1]) / 4.0
    expected = 2 * x + np.array([2 * acc * 0.5, -2 * acc * 0.25, 0.0])
    np.testing.assert_allclose(ds.grad(f)(x), expected)


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/=", "@=", "**="])
def test_inplace_on_traced_arrays_raises_with_hints(op):
    def f(x):
        y = x
        exec(f"y {op} x", {}, {"y": y, "x": x})
        return y

    with pytest.raises(TypeError) as info:
        ds.grad(lambda x: dnp.sum(f(x)))(np.ones((2, 2)))
    msg = str(info.value)
    assert "x.at[idx].set(v)" in msg and ".add" in msg and "dnp.where" in msg, msg
    assert "(2, 2)" in msg


def test_setitem_raises_with_hints():
    def f(x):
        x[0] = 1.0
        return x

    with pytest.raises(TypeError) as info:
        ds.grad(lambda x: dnp.sum(f(x)))(np.ones(3))
    msg = str(info.value)
    assert "x.at[idx].set(v)" in msg and ".add" in msg and "dnp.where" in msg
    with pytest.raises(TypeError, match="x.at"):
        ds.vmap(f)(np.ones((2, 3)))
    with pytest.raises(TypeError, match="x.at"):
        ds.jvp(f, (np.ones(3),), (np.ones(3),))


def test_divmod():
    x = np.array([1.26, -2.71, 3.5])

    def f(x):
        q, m = divmod(x, 0.75)
        rq, rm = divmod(5.0, x)
        return dnp.concatenate([q, m * x, rq, rm])

    expected = np.concatenate([x // 0.75, (x % 0.75) * x, 5.0 // x, 5.0 % x])
    assert_same(ds.vjp(f, x)[0], expected)
    ds.check_grads(f, (x,), order=2)


def test_round_builtin():
    seen = {}

    def f(x):
        seen["r0"] = round(x[1])  # like a NumPy scalar: a Python int
        seen["r1"] = ds.concrete(round(x[0], 1))
        seen["arr"] = ds.concrete(round(x, 1))
        return round(x, 1) * x

    x = np.array([1.26, -2.71, 3.5])
    with pytest.warns(ds.DroppedDerivativeWarning):  # round(x[1]): a Python int
        g = ds.grad(lambda x: dnp.sum(f(x)))(x)
    assert seen["r0"] == round(np.float64(-2.71)) == -3 and type(seen["r0"]) is int
    assert_same(seen["r1"], np.round(x[0], 1))
    assert_same(seen["arr"], np.round(x, 1))
    np.testing.assert_allclose(g, np.round(x, 1), rtol=1e-15)


def test_len_and_iteration_of_0d_raise():
    with pytest.raises(TypeError):
        ds.grad(lambda x: len(x) * x)(1.0)
    with pytest.raises(TypeError):
        ds.grad(lambda x: sum(v for v in x))(1.0)


def test_numpy_conversion_of_tracer_raises_clearly():
    with pytest.raises(TypeError, match="dnp"):
        ds.grad(lambda x: np.sum(np.asarray(x)))(np.ones(2))


def test_methods_float32_gradients():
    x = rnd(2, 3, dtype=np.float32)
    for name, fn, shape in METHODS:
        if shape != (2, 3):
            continue
        g = ds.grad(lambda x: dnp.sum(fn(x + (3.0 if name.startswith("prod") else 0.0))))(x)
        assert g.dtype == np.float32, name


def test_jacobians_and_hessian_of_method_chain():
    def f(x):
        y = x.reshape(2, 3).T @ x.reshape((2, 3))  # (3, 3)
        z = y.sum(axis=0) + y.max(axis=1) * y.mean() - y.flatten()[::4] * y.std(axis=0)
        return z.ravel() ** 2 + np.arange(3.0) * z.var()

    x = rnd(6) * 0.7
    jf, jr = ds.jacfwd(f)(x), ds.jacrev(f)(x)
    eps = 1e-6
    fd = np.stack([(f(x + e) - f(x - e)) / (2 * eps) for e in np.eye(6) * eps], axis=-1)
    np.testing.assert_allclose(jf, jr, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(jf, fd, rtol=1e-6, atol=1e-7)
    s = lambda x: f(x).sum()
    h = ds.hessian(s)(x)
    hfd = np.stack([(ds.grad(s)(x + e) - ds.grad(s)(x - e)) / (2 * eps) for e in np.eye(6) * eps])
    np.testing.assert_allclose(h, hfd, rtol=1e-5, atol=1e-6)


def test_conj_real_imag_methods():
    x = rnd(2, 3)
    for f in (lambda x: x.conj() * x, lambda x: x.conjugate() + x.real, lambda x: x * x.imag):
        assert_same(ds.vjp(f, x)[0], f(x))
        ds.check_grads(f, (x,), order=2)
    z = rnd(2, 3) + 1j * rnd(2, 3, seed=1)
    assert_same(ds.vjp(lambda z: z.imag, z)[0], z.imag)
    assert_same(ds.vjp(lambda z: z.conj(), z)[0], z.conj())
    # d imag(z) / d z under the engine's (JAX's) convention: the cotangent of imag is -1j * g.
    g = rnd(2, 3, seed=2)
    (ct,) = ds.vjp(lambda z: z.imag, z)[1](g)
    np.testing.assert_allclose(ct, -1j * g)
    _, t = ds.jvp(lambda z: z.imag * z.real, (z,), (1j * np.ones_like(z),))
    np.testing.assert_allclose(t, z.real, rtol=1e-14)


def test_format_of_0d_tracers():
    seen = []

    def f(x):
        seen.append(f"{x[0]:.3f}|{x.sum():9.2e}|{x[1]}")
        return dnp.sum(x)

    ds.grad(f)(np.array([1.23456, 2.0]))
    assert seen[0].startswith("1.235| 3.23e+00|")
    with pytest.raises(TypeError, match="format"):
        ds.grad(lambda x: len(f"{x:.3f}") * dnp.sum(x))(np.ones(2))


def test_itemsize_and_nbytes():
    seen = {}

    def f(x):
        seen.update(itemsize=x.itemsize, nbytes=x.nbytes)
        return dnp.sum(x)

    x = np.ones((2, 3), dtype=np.float32)
    ds.grad(f)(x)
    assert seen == {"itemsize": x.itemsize, "nbytes": x.nbytes}


NUMPY_DISPATCH = [
    ("sum", lambda m, v: m.sum(v)),
    ("sum_axis", lambda m, v: m.sum(v, axis=0)),
    ("mean", lambda m, v: m.mean(v, axis=1)),
    ("std", lambda m, v: m.std(v, ddof=1)),
    ("var", lambda m, v: m.var(v, axis=0)),
    ("max", lambda m, v: m.max(v, axis=1)),
    ("amax", lambda m, v: m.amax(v)),
    ("min", lambda m, v: m.min(v, keepdims=True)),
    ("prod", lambda m, v: m.prod(v, axis=0)),
    ("cumsum", lambda m, v: m.cumsum(v, axis=1)),
    ("clip", lambda m, v: m.clip(v, -0.5, 0.5)),
    ("round", lambda m, v: m.round(v, 1) * v),
    ("transpose", lambda m, v: m.transpose(v)),
    ("reshape", lambda m, v: m.reshape(v, (3, 2))),
    ("squeeze", lambda m, v: m.squeeze(v[:1])),
    ("swapaxes", lambda m, v: m.swapaxes(v, 0, 1)),
    ("argmax", lambda m, v: v.ravel()[m.argmax(v)]),
]


@pytest.mark.parametrize("name, fn", NUMPY_DISPATCH, ids=[n[0] for n in NUMPY_DISPATCH])
def test_numpy_functions_that_call_methods_work_on_tracers(name, fn):
    """``np.sum(x)`` and friends call ``x.sum(..., out=None)``: tracers accept that."""
    x = rnd(2, 3) + (3.0 if name == "prod" else 0.0)
    f_np = lambda v: fn(np, v)
    assert_same(ds.vjp(f_np, x)[0], np.asarray(f_np(x)))
    ds.check_grads(f_np, (x,), order=2)
    assert_same(ds.grad(lambda v: dnp.sum(fn(np, v)))(x), ds.grad(lambda v: dnp.sum(fn(dnp, v)))(x))


def test_out_argument_on_tracers_raises():
    with pytest.raises(TypeError, match="out="):
        ds.grad(lambda v: np.sum(v, out=np.zeros(())))(np.ones(3))
    with pytest.raises(TypeError, match="immutable"):
        ds.grad(lambda v: v.clip(0, 1, out=np.zeros(3)).sum())(np.ones(3))


def test_astype_real_to_complex_gradient_values():
    x = np.array([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        g = ds.grad(lambda v: dnp.sum(dnp.real(v.astype(complex) * (1 + 2j))))(x)
        (ct,) = ds.vjp(lambda v: v.astype(np.complex128), x)[1](np.array([1 + 1j, 2 - 1j]))
    assert_same(g, np.ones(2))
    assert_same(ct, np.array([1.0, 2.0]))  # the real part of the cotangent


def test_astype_real_to_complex_gradient_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.grad(lambda v: dnp.sum(dnp.real(v.astype(complex) * (1 + 2j))))(np.array([1.0, 2.0]))


def test_ordering_methods_on_tracers():
    x = np.array([3.0, 1.0, 2.0])
    g = ds.grad(lambda x: dnp.sum(x.take(x.argsort())[:2] * np.array([1.0, 10.0])))(x)
    np.testing.assert_array_equal(g, [0.0, 1.0, 10.0])
    g = ds.grad(lambda x: x.reshape(1, 3).repeat(3, axis=0).trace())(x)
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0])
    g = ds.grad(lambda x: x.reshape(3, 1).diagonal().sum() + x.ptp())(x)
    np.testing.assert_array_equal(g, [2.0, -1.0, 0.0])


@pytest.mark.parametrize("name", ["sort", "partition", "fill"])
def test_in_place_methods_name_the_functional_alternative(name):
    with pytest.raises(TypeError, match="immutable"):
        ds.grad(lambda x: getattr(x, name)(1))(np.array([3.0, 1.0, 2.0]))
