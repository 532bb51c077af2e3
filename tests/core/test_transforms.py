"""The transforms: grad, value_and_grad, vjp, jvp, jacobians, hessian, hvp, vmap, pytrees."""

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp

rng = np.random.default_rng(0)


def numeric_grad(f, x, eps=1e-6):
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def quartic(x):
    return dnp.sum(dnp.sin(x) * x**3) + dnp.prod(dnp.cos(x))


def test_grad_matches_finite_differences():
    x = rng.standard_normal(5)
    np.testing.assert_allclose(ds.grad(quartic)(x), numeric_grad(quartic, x), rtol=1e-6)


def test_grad_returns_plain_arrays_of_input_shape():
    x = rng.standard_normal((2, 3))
    g = ds.grad(quartic)(x)
    assert type(g) is np.ndarray and g.shape == x.shape


def test_grad_of_python_float_argument():
    g = ds.grad(lambda x: x * x)(3.0)
    assert float(g) == 6.0


def test_value_and_grad_and_has_aux():
    x = rng.standard_normal(4)

    def f(x):
        loss = dnp.sum(x**2)
        return loss, {"mean": dnp.mean(x)}

    (value, aux), g = ds.value_and_grad(f, has_aux=True)(x)
    assert np.isclose(value, np.sum(x**2))
    assert np.isclose(aux["mean"], np.mean(x))
    assert not isinstance(aux["mean"], ds.Tracer)
    np.testing.assert_allclose(g, 2 * x)
    g2, aux2 = ds.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g2, 2 * x)
    assert np.isclose(aux2["mean"], np.mean(x))


def test_argnums_int_and_tuple():
    f = lambda x, y, z: dnp.sum(x * y**2) + z
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    np.testing.assert_allclose(ds.grad(f, argnums=1)(x, y, 1.0), 2 * x * y)
    gx, gz = ds.grad(f, argnums=(0, 2))(x, y, 1.0)
    np.testing.assert_allclose(gx, y**2)
    assert float(gz) == 1.0
    gy = ds.grad(f, argnums=-2)(x, y, 1.0)
    np.testing.assert_allclose(gy, 2 * x * y)


def test_gradient_of_unused_argument_is_zero_with_its_shape_and_dtype():
    x32 = np.ones((2, 2), dtype=np.float32)
    g = ds.grad(lambda a, b: dnp.sum(b), argnums=0)(x32, np.ones(3))
    assert g.shape == (2, 2) and g.dtype == np.float32 and not g.any()


def test_constant_output_gives_zero_gradient():
    g = ds.grad(lambda x: 3.0)(np.ones(3))
    np.testing.assert_array_equal(g, np.zeros(3))


Pair = namedtuple("Pair", ["a", "b"])


@dataclass
class Params:
    w: np.ndarray
    b: np.ndarray


@pytest.mark.parametrize(
    "make",
    [
        lambda a, b: (a, b),
        lambda a, b: [a, b],
        lambda a, b: {"w": a, "nested": {"b": b}},
        lambda a, b: Pair(a, b),
        lambda a, b: Params(a, b),
    ],
    ids=["tuple", "list", "dict", "namedtuple", "dataclass"],
)
def test_pytree_arguments_and_gradients(make):
    a, b = rng.standard_normal(3), rng.standard_normal(2)
    tree = make(a, b)

    def loss(t):
        la, lb = ds.tree_leaves(t)
        return dnp.sum(la**2) + dnp.sum(dnp.sin(lb))

    g = ds.grad(loss)(tree)
    assert type(g) is type(tree)
    ga, gb = ds.tree_leaves(g)
    la, lb = ds.tree_leaves(tree)
    np.testing.assert_allclose(ga, 2 * la)
    np.testing.assert_allclose(gb, np.cos(lb))


def test_vjp_with_pytree_output_and_several_primals():
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    out, f_vjp = ds.vjp(lambda x, y: {"s": x * y, "t": dnp.sum(x)}, x, y)
    np.testing.assert_allclose(out["s"], x * y)
    gx, gy = f_vjp({"s": np.ones(3), "t": np.float64(2.0)})
    np.testing.assert_allclose(gx, y + 2.0)
    np.testing.assert_allclose(gy, x)
    # vjp_fn can be called again with another cotangent
    gx2, _ = f_vjp({"s": np.zeros(3), "t": np.float64(1.0)})
    np.testing.assert_allclose(gx2, np.ones(3))


def test_vjp_has_aux():
    out, f_vjp, aux = ds.vjp(lambda x: (x * 2.0, "tag"), np.ones(2), has_aux=True)
    assert aux == "tag"
    (g,) = f_vjp(np.ones(2))
    np.testing.assert_allclose(g, 2.0)


def test_jvp_pytrees_and_values():
    x = {"a": rng.standard_normal(3), "b": 2.0}
    t = {"a": np.ones(3), "b": 1.0}
    out, tan = ds.jvp(lambda p: dnp.sin(p["a"]) * p["b"], (x,), (t,))
    np.testing.assert_allclose(out, np.sin(x["a"]) * 2.0)
    np.testing.assert_allclose(tan, np.cos(x["a"]) * 2.0 + np.sin(x["a"]))


def test_jvp_output_independent_of_input_has_zero_tangent():
    out, tan = ds.jvp(lambda x: np.arange(3.0), (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(tan, np.zeros(3))


def jac_fun(x):
    return dnp.stack([dnp.sum(x**2), x[0] * x[1], dnp.sin(x[2])])


def test_jacfwd_jacrev_agree_with_finite_differences():
    x = rng.standard_normal(3)
    jf = ds.jacfwd(jac_fun)(x)
    jr = ds.jacrev(jac_fun)(x)
    num = np.stack([numeric_grad(lambda v, i=i: jac_fun(v)[i], x) for i in range(3)])
    np.testing.assert_allclose(jf, num, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jr, num, rtol=1e-6, atol=1e-8)
    assert ds.jacobian is ds.jacrev


def test_jacobian_shapes_for_matrix_input_and_output():
    x = rng.standard_normal((2, 3))
    f = lambda x: dnp.tanh(x) @ np.ones((3, 4))
    jf, jr = ds.jacfwd(f)(x), ds.jacrev(f)(x)
    assert jf.shape == jr.shape == (2, 4, 2, 3)
    np.testing.assert_allclose(jf, jr)


def test_jacobians_with_pytree_input_and_argnums_tuple():
    f = lambda p, y: p["w"] * y + p["b"]
    p = {"w": rng.standard_normal(2), "b": rng.standard_normal(2)}
    y = rng.standard_normal(2)
    for jac in (ds.jacfwd, ds.jacrev):
        jp, jy = jac(f, argnums=(0, 1))(p, y)
        np.testing.assert_allclose(jp["w"], np.diag(y))
        np.testing.assert_allclose(jp["b"], np.eye(2))
        np.testing.assert_allclose(jy, np.diag(p["w"]))


def rosenbrock(x):
    return dnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_hessian(x):
    n = len(x)
    h = np.zeros((n, n))
    for i in range(n - 1):
        h[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        h[i + 1, i + 1] += 200
        h[i, i + 1] = h[i + 1, i] = -400 * x[i]
    return h


def test_hessian_and_hvp_of_rosenbrock():
    x = rng.standard_normal(6)
    expected = rosenbrock_hessian(x)
    np.testing.assert_allclose(ds.hessian(rosenbrock)(x), expected, rtol=1e-10)
    np.testing.assert_allclose(ds.jacfwd(ds.jacrev(rosenbrock))(x), expected, rtol=1e-10)
    np.testing.assert_allclose(ds.jacrev(ds.jacfwd(rosenbrock))(x), expected, rtol=1e-10)
    np.testing.assert_allclose(ds.jacrev(ds.grad(rosenbrock))(x), expected, rtol=1e-10)
    v = rng.standard_normal(6)
    np.testing.assert_allclose(ds.hvp(rosenbrock, (x,), (v,)), expected @ v, rtol=1e-10)


def test_hvp_with_two_primals():
    f = lambda x, y: dnp.sum(x**2 * y)
    x, y = rng.standard_normal(2), rng.standard_normal(2)
    hx, hy = ds.hvp(f, (x, y), (np.ones(2), np.zeros(2)))
    np.testing.assert_allclose(hx, 2 * y)
    np.testing.assert_allclose(hy, 2 * x)


def test_elementwise_grad():
    x = rng.standard_normal(4)
    np.testing.assert_allclose(ds.elementwise_grad(dnp.tanh)(x), 1 - np.tanh(x) ** 2)
    np.testing.assert_allclose(ds.elementwise_grad(ds.elementwise_grad(dnp.sin))(x), -np.sin(x))


def test_vmap_axes_and_pytrees():
    xs = rng.standard_normal((4, 3))
    w = rng.standard_normal(3)
    out = ds.vmap(lambda x, w: dnp.sum(x * w), in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(out, xs @ w)
    out_t = ds.vmap(lambda x: x * 2.0, in_axes=1, out_axes=1)(xs.T)
    np.testing.assert_allclose(out_t, 2 * xs.T)
    tree = ds.vmap(lambda d: {"s": dnp.sum(d["a"]), "c": 1.0})({"a": xs})
    np.testing.assert_allclose(tree["s"], xs.sum(1))
    np.testing.assert_allclose(tree["c"], np.ones(4))


def test_vmap_of_grad_gives_per_example_gradients():
    xs = rng.standard_normal((5, 3))
    w = rng.standard_normal(3)
    per_ex = ds.vmap(ds.grad(lambda w, x: dnp.tanh(dnp.dot(w, x))), in_axes=(None, 0))(w, xs)
    expected = np.stack([(1 - np.tanh(w @ x) ** 2) * x for x in xs])
    np.testing.assert_allclose(per_ex, expected)


def test_vmap_size_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="different sizes"):
        ds.vmap(lambda a, b: a + b)(np.ones((3, 2)), np.ones((4, 2)))


def test_float32_is_preserved():
    x = rng.standard_normal(3).astype(np.float32)
    g = ds.grad(lambda x: dnp.sum(dnp.exp(x) * 1.5))(x)
    assert g.dtype == np.float32
    _, t = ds.jvp(dnp.tanh, (x,), (np.ones(3, np.float32),))
    assert t.dtype == np.float32
    # mixing with float64 constants still returns the primal's dtype
    g = ds.grad(lambda x: dnp.sum(x * np.ones(3)))(x)
    assert g.dtype == np.float32


def test_integer_nondifferentiated_arguments_pass_through():
    seen = []

    def f(x, n):
        seen.append(type(n))
        return x * n

    assert float(ds.grad(f)(2.0, 3)) == 3.0
    assert seen == [int]


def test_stop_gradient():
    f = lambda x: x * ds.stop_gradient(x**2)
    assert float(ds.grad(f)(3.0)) == 9.0
    _, t = ds.jvp(f, (3.0,), (1.0,))
    assert float(t) == 9.0
    tree = ds.stop_gradient({"a": np.ones(2)})
    assert isinstance(tree, dict)


def test_python_control_flow_on_traced_values():
    def f(x):
        y = x
        n = 0
        while dnp.sum(y**2) < 100.0:
            y = y * 2.0
            n += 1
        if y[0] > 0:
            return dnp.sum(y) * n
        return -dnp.sum(y)

    x = np.array([1.0, 2.0])
    n = 3  # |x|^2 = 5 -> 20 -> 80 -> 320
    np.testing.assert_allclose(ds.grad(f)(x), np.full(2, 8.0 * n))


def test_tracer_isinstance_and_concrete():
    def f(x):
        assert isinstance(x, ds.Tracer)
        assert ds.concrete(x) is not x
        return x * 2.0

    ds.grad(f)(1.0)


def test_complex_cotangent_reaching_a_real_value_keeps_only_its_real_part():
    z = np.array([1 + 2j])
    (g,) = ds.vjp(lambda a: a + dnp.sum(dnp.real(a)), z)[1](np.array([1j]))
    np.testing.assert_allclose(g, [1j])
    (g,) = ds.vjp(lambda a: a + dnp.sum(dnp.abs(a)), z)[1](np.array([1j]))
    np.testing.assert_allclose(g, [1j])
    g = ds.grad(lambda z: dnp.real(dnp.sum(dnp.abs(z) * (1 + 1j))))(np.array([3 + 4j]))
    np.testing.assert_allclose(g, [0.6 - 0.8j])
    zc = np.array([1 + 2j, -0.5 + 0.3j])
    ds.check_grads(lambda z: dnp.sum(dnp.abs(z) ** 3), (zc,), order=2)


def test_gradient_of_a_scalar_argument_is_a_0d_array():
    g = ds.grad(lambda x: x * x)(3.0)
    assert type(g) is np.ndarray and g.shape == () and float(g) == 6.0
