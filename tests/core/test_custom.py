"""custom_vjp, custom_jvp, user primitives in the registry, checkpoint."""

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from custom_rules import log1pexp
from diffsys.core.primitive import registry


def test_user_primitive_registered_like_library_ones():
    logcosh = ds.Primitive("test_logcosh", lambda x: np.log(np.cosh(x)))
    logcosh.defvjp(lambda g, ans, x: g * dnp.tanh(x))
    logcosh.defjvp(lambda t, ans, x: t * dnp.tanh(x))
    logcosh.defbatch(lambda args, batched: logcosh(args[0]))
    assert registry["test_logcosh"] is logcosh
    assert registry["sin"] is dnp.sin
    ds.check_grads(lambda x: dnp.sum(logcosh(x)), (np.array([0.3, -1.2]),), order=3)
    with pytest.raises(ValueError, match="already registered"):
        ds.Primitive("test_logcosh", np.log)


def test_primitive_decorator():
    @ds.primitive("test_cube")
    def cube(x):
        return x**3

    cube.defvjp(lambda g, ans, x: g * 3.0 * x**2)
    cube.defjvp(lambda t, ans, x: t * 3.0 * x**2)
    assert float(ds.grad(ds.grad(cube))(2.0)) == 12.0


@ds.custom_vjp
def clip_gradient(x, lo, hi):
    return x


def _clip_fwd(x, lo, hi):
    return x, (lo, hi)


def _clip_bwd(res, g):
    lo, hi = res
    return (dnp.clip(g, lo, hi), None, None)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def test_custom_vjp_rule_is_used():
    g = ds.grad(lambda x: dnp.sum(10.0 * clip_gradient(x, -1.0, 1.0)))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(g, [1.0, 1.0])
    # outside transforms the function itself runs
    np.testing.assert_allclose(clip_gradient(np.ones(2), -1.0, 1.0), np.ones(2))


@ds.custom_vjp
def safe_norm(x):
    return dnp.sqrt(dnp.sum(x**2))


def _norm_fwd(x):
    n = dnp.sqrt(dnp.sum(x**2))
    return n, (x, n)


def _norm_bwd(res, g):
    x, n = res
    return (g * x / dnp.where(n == 0, 1.0, n),)


safe_norm.defvjp(_norm_fwd, _norm_bwd)


def test_custom_vjp_second_order_differentiates_the_rule():
    x = np.array([0.3, -0.4])
    ds.check_grads(safe_norm, (x,), order=2, modes=("rev",))
    h = ds.hessian(safe_norm)(x)
    n = np.linalg.norm(x)
    np.testing.assert_allclose(h, (np.eye(2) - np.outer(x, x) / n**2) / n, rtol=1e-10)
    np.testing.assert_array_equal(ds.grad(safe_norm)(np.zeros(2)), np.zeros(2))


def test_custom_vjp_pytree_arguments_and_outputs():
    @ds.custom_vjp
    def f(p):
        return {"y": p["a"] * p["b"]}

    def fwd(p):
        return f(p), p

    def bwd(p, g):
        return ({"a": g["y"] * p["b"], "b": g["y"] * p["a"] * 2.0},)

    f.defvjp(fwd, bwd)
    p = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    g = ds.grad(lambda p: dnp.sum(f(p)["y"]))(p)
    np.testing.assert_allclose(g["a"], p["b"])
    np.testing.assert_allclose(g["b"], 2 * p["a"])


def test_custom_vjp_bad_bwd_is_reported():
    @ds.custom_vjp
    def f(x):
        return x

    f.defvjp(lambda x: (x, None), lambda r, g: g)
    with pytest.raises(TypeError, match="one cotangent per argument"):
        ds.grad(lambda x: f(x) * 1.0)(1.0)


def test_custom_vjp_without_rule():
    @ds.custom_vjp
    def f(x):
        return x

    with pytest.raises(TypeError, match="defvjp"):
        ds.grad(f)(1.0)


def test_custom_vjp_under_forward_mode_differentiates_the_function():
    _, t = ds.jvp(safe_norm, (np.array([3.0, 4.0]),), (np.array([1.0, 0.0]),))
    assert np.isclose(float(t), 0.6)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_custom_jvp_forward_and_reverse():
    x = np.array([-2.0, 0.0, 1000.0])
    g = ds.grad(lambda x: dnp.sum(log1pexp(x)))(x)
    np.testing.assert_allclose(g, [1 / (1 + np.exp(2.0)), 0.5, 1.0])
    assert np.all(np.isfinite(g))
    _, t = ds.jvp(log1pexp, (x,), (np.ones(3),))
    np.testing.assert_allclose(t, g)
    ds.check_grads(log1pexp, (np.array([0.3, -1.0]),), order=2)


def test_checkpoint_matches_and_recomputes():
    calls = []

    def block(x):
        calls.append(1)
        return dnp.sin(dnp.sin(x)) * x

    f = lambda x: dnp.sum(ds.checkpoint(block)(x) ** 2)
    g = lambda x: dnp.sum(block(x) ** 2)
    x = np.array([0.2, 0.7])
    calls.clear()
    gc = ds.grad(f)(x)
    assert len(calls) == 2  # forward, then recomputation in the backward pass
    np.testing.assert_allclose(gc, ds.grad(g)(x), rtol=1e-12)
    ds.check_grads(f, (x,), order=2)


def test_checkpoint_unknown_policy():
    with pytest.raises(ValueError, match="policy"):
        ds.checkpoint(dnp.sin, policy="dots")


def test_primitive_docstring_can_be_set():
    p = ds.Primitive("test_doc_demo", np.abs)
    p.__doc__ = "Absolute value, documented."
    assert p.__doc__ == "Absolute value, documented."


def test_name_of_a_collected_primitive_can_be_reused():
    import gc

    class Owner:
        pass

    owner = Owner()
    owner.p = ds.Primitive("test_reusable_name", np.abs)
    owner.self_ref = owner  # a reference cycle: freed only by the cyclic collector
    del owner
    p = ds.Primitive("test_reusable_name", np.abs)  # no "already registered" error
    assert registry["test_reusable_name"] is p
    gc.collect()


def test_custom_functions_are_registered():
    assert registry[clip_gradient.primitive.name] is clip_gradient.primitive
    assert clip_gradient.primitive.name.startswith("custom_vjp:")
