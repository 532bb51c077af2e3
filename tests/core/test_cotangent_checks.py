"""vjp_fn checks its cotangents: what converts without loss is accepted (and cast), the
rest is refused with an error naming both dtypes (or both shapes); grad refuses outputs
that are not a scalar (None, tuples) naming ``has_aux``."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp


def test_python_float_cotangent_for_a_python_float_primal():
    (g,) = ds.vjp(lambda x: x * 2.0, 0.7)[1](1.0)
    assert g == 2.0 and g.dtype == np.float64


def test_lossless_cotangents_are_accepted_and_cast():
    f = ds.vjp(lambda x: dnp.sin(x) * 3.0, np.float64(0.5))[1]
    for ct in (1, 1.0, np.float32(1.0), np.float16(1.0), np.int32(1), np.array(1.0, np.float32)):
        (g,) = f(ct)
        np.testing.assert_allclose(g, 3.0 * np.cos(0.5), rtol=1e-15)
        assert g.dtype == np.float64
    f32 = ds.vjp(dnp.exp, np.zeros(3, np.float32))[1]
    for ct in (np.ones(3, np.float16), np.ones(3, np.float32)):
        (g,) = f32(ct)
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, 1.0)
    (g,) = ds.vjp(dnp.exp, np.float32(0.0))[1](2.0)  # a Python float is weakly typed
    assert g.dtype == np.float32 and g == 2.0
    (g,) = ds.vjp(lambda z: z * 2.0, np.array([1.0 + 1.0j]))[1](np.ones(1))  # real into complex
    np.testing.assert_allclose(g, [2.0])


@pytest.mark.parametrize(
    "ct,dtype",
    [
        (np.array([1j, 0.0]), "complex128"),
        (np.array([1.0, 0.0], np.complex64), "complex64"),
        (1j, "complex128"),
        (np.array(["a", "b"]), "<U1"),
    ],
)
def test_lossy_cotangents_are_refused_naming_both_dtypes(ct, dtype):
    f = ds.vjp(dnp.sin, np.array([1.0, 2.0]))[1]
    if np.ndim(ct) == 0:
        f = ds.vjp(dnp.sin, 1.0)[1]
    with pytest.raises(TypeError, match=rf"dtype {dtype}.*dtype float64"):
        f(ct)


def test_float64_cotangent_into_float32_output_is_refused():
    f = ds.vjp(dnp.sin, np.ones(2, np.float32))[1]
    with pytest.raises(TypeError, match=r"float64.*float32.*astype\(np.float32\)"):
        f(np.ones(2))


@pytest.mark.parametrize("ct", ["a", True, object()])
def test_non_numeric_cotangents_are_refused(ct):
    f = ds.vjp(dnp.sin, np.array(1.0))[1]
    with pytest.raises((TypeError, ValueError), match="cotangent"):
        f(ct)


def test_cotangent_checks_under_vmap_and_of_pytrees():
    # jacrev pulls back batched cotangents (tracers) through the same checks
    jac = ds.jacrev(lambda x: dnp.sin(x) * x)(np.array([0.5, 1.0], np.float32))
    assert jac.dtype == np.float32
    out, f = ds.vjp(lambda x: {"a": x * 2.0, "b": dnp.sum(x)}, np.ones(2))
    (g,) = f({"a": np.ones(2, np.float32), "b": 1})
    np.testing.assert_array_equal(g, [3.0, 3.0])
    with pytest.raises(TypeError, match="cotangent 0 has dtype complex128"):
        f({"a": np.ones(2) * 1j, "b": 1.0})


# --- grad of outputs that are not a scalar ------------------------------------------------------


def test_grad_of_a_function_returning_none():
    with pytest.raises(TypeError, match=r"returned None.*has_aux"):
        ds.grad(lambda x: None)(1.0)
    with pytest.raises(TypeError, match=r"returned None.*has_aux"):
        ds.value_and_grad(lambda x: None)(1.0)
    with pytest.raises(TypeError, match=r"returned None"):
        ds.elementwise_grad(lambda x: None)(np.ones(2))


@pytest.mark.parametrize(
    "out", [lambda x: (x, x), lambda x: [x * 2.0], lambda x: (dnp.sum(x), {"n": 3})]
)
def test_grad_of_a_tuple_without_has_aux(out):
    with pytest.raises(TypeError, match=r"returned a (tuple|list) of \d item.*has_aux=True"):
        ds.grad(out)(1.0)
    g, aux = ds.grad(lambda x: (x * x, {"n": 3}), has_aux=True)(3.0)  # the advice works
    assert g == 6.0 and aux == {"n": 3}


# --- jvp tangents follow the same rule ---------------------------------------------------------


def test_lossless_tangents_take_the_primal_dtype():
    x32 = np.linspace(0.1, 0.9, 3, dtype=np.float32)
    for t in (np.ones(3, np.float16), np.ones(3, np.int8), np.ones(3, np.float32)):
        y, ty = ds.jvp(dnp.sin, (x32,), (t,))
        assert ty.dtype == np.float32 and y.dtype == np.float32
        np.testing.assert_allclose(ty, np.cos(x32), rtol=1e-6)
    # inside an outer transform the tangent may itself be traced (forward over reverse)
    h = ds.hvp(lambda x: dnp.sum(x**3), (x32,), (np.ones(3, np.float16),))
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, 6 * x32, rtol=1e-6)


@pytest.mark.parametrize(
    "t, primal_dtype, fix",
    [
        (np.ones(3), np.float32, "astype"),  # float64 into float32 loses precision
        (np.ones(3, np.int64), np.float32, "astype"),
        (np.ones(3, complex), np.float64, "real part"),
        (np.array(["a", "b", "c"]), np.float64, "array of numbers"),
    ],
)
def test_lossy_tangents_are_refused_naming_both_dtypes(t, primal_dtype, fix):
    x = np.ones(3, primal_dtype)
    with pytest.raises(TypeError, match=f"tangent for argument 0 has dtype {t.dtype}.*{fix}"):
        ds.jvp(dnp.sin, (x,), (t,))
