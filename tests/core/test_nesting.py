"""Higher-order derivatives and nested transforms, perturbation confusion included."""

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp


def test_perturbation_confusion():
    """d/dx [x * (d/dy (x + y))(y=1)] must be 1 at any x, not 2."""

    def outer(x):
        inner = ds.grad(lambda y: x + y)(1.0)
        return x * inner

    for x in (0.0, 1.5, -3.0):
        assert float(ds.grad(outer)(x)) == 1.0
        # the same in forward mode, and mixing modes
        _, t = ds.jvp(outer, (x,), (1.0,))
        assert float(t) == 1.0

    def outer_fwd(x):
        _, inner = ds.jvp(lambda y: x + y, (1.0,), (1.0,))
        return x * inner

    assert float(ds.grad(outer_fwd)(2.0)) == 1.0
    _, t = ds.jvp(outer_fwd, (2.0,), (1.0,))
    assert float(t) == 1.0


def test_perturbation_confusion_with_closure_over_both_levels():
    # f(x) = x * d/dy [x * y]  = x * x -> derivative 2x
    f = lambda x: x * ds.grad(lambda y: x * y)(2.0)
    assert float(ds.grad(f)(3.0)) == 6.0


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_grad_of_grad_to_high_order(order):
    f = dnp.sin
    for _ in range(order):
        f = ds.grad(f)
    x = 0.7
    expected = [np.cos, lambda v: -np.sin(v), lambda v: -np.cos(v), np.sin, np.cos][order - 1](x)
    assert np.isclose(float(f(x)), expected)


def test_third_derivative_of_a_vector_function():
    f = lambda x: dnp.sum(dnp.exp(2.0 * x) * x)
    g3 = ds.elementwise_grad(ds.elementwise_grad(ds.elementwise_grad(f)))
    x = np.array([0.1, -0.4])
    # d3/dx3 [x e^{2x}] = (8x + 12) e^{2x}
    np.testing.assert_allclose(g3(x), (8 * x + 12) * np.exp(2 * x))


def test_jvp_of_grad_and_vjp_of_jvp():
    f = lambda x: dnp.sum(dnp.tanh(x) ** 2)
    x = np.array([0.3, -0.2, 0.5])
    v = np.array([1.0, 0.5, -1.0])
    h = ds.hessian(f)(x)
    _, hv = ds.jvp(ds.grad(f), (x,), (v,))
    np.testing.assert_allclose(hv, h @ v, rtol=1e-10)

    def jvp_fun(x):
        return ds.jvp(f, (x,), (v,))[1]

    _, f_vjp = ds.vjp(jvp_fun, x)
    (g,) = f_vjp(np.float64(1.0))
    np.testing.assert_allclose(g, h @ v, rtol=1e-10)


def test_forward_over_forward():
    f = lambda x: x**4
    d2 = lambda x: ds.jvp(lambda y: ds.jvp(f, (y,), (1.0,))[1], (x,), (1.0,))[1]
    assert np.isclose(float(d2(2.0)), 12 * 4.0)


def test_jacfwd_of_jacrev_is_hessian_for_matrix_input():
    f = lambda w: dnp.sum(dnp.tanh(w @ np.array([1.0, -2.0])) ** 2)
    w = np.array([[0.1, 0.2], [0.3, -0.4]])
    h1 = ds.jacfwd(ds.jacrev(f))(w)
    h2 = ds.jacrev(ds.jacrev(f))(w)
    h3 = ds.hessian(f)(w)
    assert h1.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(h1, h2, atol=1e-12)
    np.testing.assert_allclose(h1, h3, atol=1e-12)


def test_grad_of_hessian_trace():
    # d/dx tr(H(x)) for f = sum(x^4): tr H = sum(12 x^2) -> gradient 24 x
    f = lambda x: dnp.sum(x**4)
    g = ds.grad(lambda x: dnp.sum(dnp.einsum("ii->i", ds.hessian(f)(x))))
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(g(x), 24 * x)


def test_vmap_of_vmap_and_vmap_of_jacobian():
    xs = np.arange(24.0).reshape(2, 3, 4)
    out = ds.vmap(ds.vmap(lambda v: dnp.sum(v**2)))(xs)
    np.testing.assert_allclose(out, (xs**2).sum(-1))
    jac = ds.vmap(ds.jacrev(lambda v: v**2))(xs[0])
    np.testing.assert_allclose(jac, np.stack([np.diag(2 * v) for v in xs[0]]))


def test_check_grads_order_three_on_a_composite():
    f = lambda x, y: dnp.sum(dnp.tanh(x * y) * dnp.exp(-(x**2)))
    ds.check_grads(f, (np.array([0.2, -0.3]), np.array([0.5, 1.1])), order=3)
