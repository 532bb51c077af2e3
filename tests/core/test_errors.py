"""Bad input gets a clear error: what went wrong, where, with shapes and dtypes."""

import threading

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp


def test_item_assignment_on_traced_array_names_functional_alternatives():
    def f(x):
        x[0] = 1.0
        return dnp.sum(x)

    with pytest.raises(TypeError) as err:
        ds.grad(f)(np.ones(3))
    msg = str(err.value)
    assert "x.at[idx].set(v)" in msg and ".add" in msg and "dnp.where" in msg
    assert "(3,)" in msg


def test_inplace_operator_on_traced_array_names_functional_alternatives():
    def f(x):
        x += 1.0
        return dnp.sum(x)

    with pytest.raises(TypeError) as err:
        ds.grad(f)(np.ones(3))
    msg = str(err.value)
    assert "x.at[idx].set(v)" in msg and ".add" in msg and "dnp.where" in msg


def test_inplace_operator_on_scalar_rebinds():
    def f(x):
        total = 0.0
        for i in range(3):
            total += x[i] ** 2
        return total

    np.testing.assert_allclose(ds.grad(f)(np.array([1.0, 2.0, 3.0])), [2.0, 4.0, 6.0])


def test_grad_of_non_scalar_function_suggests_alternatives():
    with pytest.raises(TypeError) as err:
        ds.grad(lambda x: x * 2.0)(np.ones(3))
    msg = str(err.value)
    assert "(3,)" in msg
    for name in ("jacrev", "elementwise_grad", "vjp"):
        assert name in msg


@pytest.mark.parametrize(
    "arg, dtype_text",
    [(np.arange(3), "int64"), (np.array([True, False]), "bool"), (3, "int"), (True, "bool")],
)
def test_gradient_with_respect_to_int_or_bool_is_a_type_error(arg, dtype_text):
    with pytest.raises(TypeError) as err:
        ds.grad(lambda x: dnp.sum(x * 1.0))(arg)
    msg = str(err.value)
    assert "argument 0" in msg and dtype_text in msg


def test_int_leaf_inside_pytree_is_named():
    with pytest.raises(TypeError, match=r"argument 0 \(leaf 1 of its pytree\).*int64"):
        ds.grad(lambda p: dnp.sum(p["a"]) * 1.0)({"a": np.ones(2), "b": np.arange(2)})


def test_jvp_of_int_primal_is_a_type_error():
    with pytest.raises(TypeError, match="int64"):
        ds.jvp(lambda x: x * 2, (np.arange(3),), (np.ones(3),))


def test_primitive_without_vjp_rule_names_op_and_mode():
    p = ds.Primitive("test_no_rules_op", lambda x: x * 2.0)
    p.defbatch(lambda args, batched: p(args[0]))
    with pytest.raises(NotImplementedError) as err:
        ds.grad(lambda x: dnp.sum(p(x)))(np.ones(2))
    assert "test_no_rules_op" in str(err.value) and "reverse-mode" in str(err.value)
    with pytest.raises(NotImplementedError) as err:
        ds.jvp(p, (np.ones(2),), (np.ones(2),))
    assert "test_no_rules_op" in str(err.value) and "forward-mode" in str(err.value)
    # without differentiation it runs
    np.testing.assert_allclose(p(np.ones(2)), 2.0)


def test_vjp_cotangent_of_wrong_shape():
    _, f_vjp = ds.vjp(lambda x: x * 2.0, np.ones(3))
    with pytest.raises(ValueError) as err:
        f_vjp(np.ones(4))
    assert "(4,)" in str(err.value) and "(3,)" in str(err.value)


def test_vjp_cotangent_of_wrong_structure():
    _, f_vjp = ds.vjp(lambda x: (x, x), np.ones(3))
    with pytest.raises(ValueError, match="structure"):
        f_vjp(np.ones(3))


def test_jvp_tangent_shape_mismatch():
    with pytest.raises(ValueError) as err:
        ds.jvp(dnp.sin, (np.ones(3),), (np.ones(2),))
    assert "(2,)" in str(err.value) and "(3,)" in str(err.value)


def test_unsupported_python_object_names_its_type():
    class Thing:
        pass

    with pytest.raises(TypeError, match="Thing"):
        ds.grad(lambda x: x)(Thing())


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums"):
        ds.grad(lambda x: x, argnums=3)(1.0)


def test_converting_a_tracer_to_numpy_explains():
    with pytest.raises(TypeError, match="diffsys.numpy"):
        ds.grad(lambda x: np.sum(np.asarray(x)))(np.ones(2))


def test_control_flow_under_vmap_is_a_clear_error():
    def f(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(TypeError, match="where"):
        ds.vmap(f)(np.array([1.0, -1.0]))


def test_complex_output_of_grad_is_rejected():
    with pytest.raises(TypeError, match="complex"):
        ds.grad(lambda x: x * 1j)(1.0)


def test_concurrent_transforms_in_threads_do_not_interfere():
    results = {}
    errors = []
    barrier = threading.Barrier(4)

    def work(k):
        try:
            barrier.wait()
            c = float(k + 1)
            f = lambda x: dnp.sum(dnp.sin(c * x) * x)
            x = np.linspace(0.0, 1.0, 5)
            outs = []
            for _ in range(30):
                outs.append(ds.grad(f)(x))
                outs.append(ds.hessian(f)(x).diagonal())
            results[k] = outs
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    x = np.linspace(0.0, 1.0, 5)
    for k, outs in results.items():
        c = float(k + 1)
        g = c * x * np.cos(c * x) + np.sin(c * x)
        h = 2 * c * np.cos(c * x) - c * c * x * np.sin(c * x)
        for i, o in enumerate(outs):
            np.testing.assert_allclose(o, g if i % 2 == 0 else h, rtol=1e-12)
