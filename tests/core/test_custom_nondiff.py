"""custom_vjp / custom_jvp with nondiff_argnums, as in JAX."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp


def _apply_vjp():
    @functools.partial(ds.custom_vjp, nondiff_argnums=(0,))
    def apply(f, x):
        return f(x)

    def fwd(f, x):  # every argument, as the function
        return f(x), x

    def bwd(f, x, g):  # the non-differentiable ones first, then residuals and cotangent
        _, f_vjp = ds.vjp(f, x)
        return (2.0 * f_vjp(g)[0],)  # one cotangent per differentiable argument

    apply.defvjp(fwd, bwd)
    return apply


def test_custom_vjp_function_argument():
    apply = _apply_vjp()
    x = np.array([0.3, 1.2])
    np.testing.assert_allclose(apply(dnp.sin, x), np.sin(x))
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(apply(dnp.sin, x)))(x), 2 * np.cos(x))
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(apply(dnp.exp, x)))(x), 2 * np.exp(x))


def test_custom_vjp_nondiff_in_the_middle_and_numbers():
    @functools.partial(ds.custom_vjp, nondiff_argnums=(1, 2))
    def clip_gradient(x, lo, hi):
        return x

    clip_gradient.defvjp(
        lambda x, lo, hi: (x, None), lambda lo, hi, _, g: (dnp.clip(g, lo, hi),)
    )
    assert float(ds.grad(lambda x: 5.0 * clip_gradient(x, -1.0, 1.0))(2.0)) == 1.0
    assert float(ds.grad(lambda x: 5.0 * clip_gradient(x, -1.0, 3.0))(2.0)) == 3.0
    g = ds.grad(lambda x, y: dnp.sum(clip_gradient(x * y, -0.5, 0.5)), argnums=(0, 1))
    gx, gy = g(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    np.testing.assert_allclose(gx, [1.5, 2.0])
    np.testing.assert_allclose(gy, [0.5, 1.0])


def test_custom_vjp_with_nondiff_under_other_transforms():
    apply = _apply_vjp()
    xs = np.array([[0.1, 0.2], [0.3, 0.4]])
    np.testing.assert_allclose(ds.vmap(lambda x: apply(dnp.sin, x))(xs), np.sin(xs))
    per_row = ds.vmap(ds.grad(lambda x: dnp.sum(apply(dnp.sin, x))))(xs)
    np.testing.assert_allclose(per_row, 2 * np.cos(xs))
    jitted = ds.jit(ds.grad(lambda x: dnp.sum(apply(dnp.sin, x))))
    np.testing.assert_allclose(jitted(xs[0]), 2 * np.cos(xs[0]))
    np.testing.assert_allclose(jitted(xs[1]), 2 * np.cos(xs[1]))


def test_custom_jvp_function_argument():
    @functools.partial(ds.custom_jvp, nondiff_argnums=(0,))
    def apply(f, x):
        return f(x)

    @apply.defjvp
    def apply_jvp(f, primals, tangents):  # primals and tangents of x only
        (x,), (t,) = primals, tangents
        return f(x), 3.0 * t

    x = np.array([0.5, 1.5])
    _, t = ds.jvp(lambda x: apply(dnp.sin, x), (x,), (np.ones(2),))
    np.testing.assert_allclose(t, [3.0, 3.0])
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(apply(dnp.sin, x)))(x), [3.0, 3.0])
    np.testing.assert_allclose(ds.jacfwd(lambda x: apply(dnp.sin, x))(x), 3.0 * np.eye(2))


def test_custom_jvp_with_a_static_number():
    @functools.partial(ds.custom_jvp, nondiff_argnums=(1,))
    def scaled_exp(x, k):
        return dnp.exp(k * x)

    @scaled_exp.defjvp
    def rule(k, primals, tangents):
        (x,), (t,) = primals, tangents
        y = scaled_exp(x, k)
        return y, k * y * t

    x = 0.7
    assert np.isclose(ds.grad(lambda x: scaled_exp(x, 2.0))(x), 2.0 * np.exp(1.4))
    assert np.isclose(ds.hessian(lambda x: scaled_exp(x, 2.0))(x), 4.0 * np.exp(1.4))


def test_traced_value_in_a_nondiff_argument_is_an_error_naming_it():
    apply = _apply_vjp()
    with pytest.raises(TypeError, match="argument 0 is in nondiff_argnums but holds a traced"):
        ds.grad(lambda x: apply(x, x))(1.0)

    @functools.partial(ds.custom_jvp, nondiff_argnums=(1,))
    def scale(x, k):
        return x * k

    scale.defjvp(lambda k, p, t: (p[0] * k, t[0] * k))
    with pytest.raises(TypeError, match="custom_jvp 'scale': argument 1 is in nondiff_argnums"):
        ds.grad(lambda x: scale(x, x))(1.0)


def test_bad_nondiff_argnums():
    with pytest.raises(TypeError, match="nondiff_argnums must be non-negative ints"):
        ds.custom_vjp(lambda x: x, nondiff_argnums=(-1,))
    f = ds.custom_vjp(lambda x: x, nondiff_argnums=(2,))
    f.defvjp(lambda x: (x, None), lambda *a: (None,))
    with pytest.raises(TypeError, match="names argument 2, but the function was called with 1"):
        f(1.0)
