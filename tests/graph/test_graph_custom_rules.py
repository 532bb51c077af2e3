"""custom_vjp / custom_jvp inside ds.trace: one node that keeps its custom rule."""

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from custom_rules import log1pexp
from diffsys.graph import GraphSaveError

# log1p(exp(1000.0)) overflows to inf in the value (the gradient is what the rule fixes)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


@ds.custom_vjp
def clip_gradient(x):
    return x


def _clip_fwd(x):
    return x, None


def _clip_bwd(res, g):
    return (dnp.clip(g, -1.0, 1.0),)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def _softplus_sum(x):
    return dnp.sum(log1pexp(x))


def _clipped(x):
    return dnp.sum(5.0 * clip_gradient(x) * x)


def test_custom_jvp_rule_survives_trace():
    x0 = np.array([1000.0, -3.0, 0.5])
    g = ds.trace(_softplus_sum)(x0)
    assert sum(n.prim.name.startswith("custom_jvp:") for n in g.nodes) == 1
    got = ds.grad(g)(x0)
    want = ds.grad(_softplus_sum)(x0)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got[0], 1.0)
    t = np.array([1.0, 2.0, -1.0])
    _, jv = ds.jvp(g, (x0,), (t,))
    np.testing.assert_allclose(jv, want @ t, rtol=1e-12)


def test_custom_vjp_rule_survives_trace():
    x0 = np.array([2.0, -0.1, 0.3])
    g = ds.trace(_clipped)(x0)
    assert sum(n.prim.name.startswith("custom_vjp:") for n in g.nodes) == 1
    # d/dx 5*c(x)*x: the clipped path gives clip(5x, -1, 1), the plain path 5x
    want = np.clip(5.0 * x0, -1.0, 1.0) + 5.0 * x0
    np.testing.assert_allclose(ds.grad(g)(x0), want, rtol=1e-12)
    np.testing.assert_allclose(ds.grad(g)(x0), ds.grad(_clipped)(x0), rtol=1e-12)
    # forward mode differentiates the function itself (custom_vjp's documented meaning)
    t = np.array([1.0, -2.0, 0.5])
    _, jv = ds.jvp(g, (x0,), (t,))
    _, jv_eager = ds.jvp(_clipped, (x0,), (t,))
    np.testing.assert_allclose(jv, jv_eager, rtol=1e-12)
    np.testing.assert_allclose(ds.hessian(g)(x0), ds.hessian(_clipped)(x0), rtol=1e-12)


def test_replay_equals_eager():
    x0 = np.array([1000.0, -3.0, 0.5])
    x1 = np.array([0.25, 40.0, -7.0])
    g = ds.trace(lambda x: _softplus_sum(x) + _clipped(x))(x0)
    eager = _softplus_sum(x1) + _clipped(x1)
    np.testing.assert_allclose(g(x1), eager, rtol=1e-14)
    eager_grad = ds.grad(lambda x: _softplus_sum(x) + _clipped(x))(x1)
    np.testing.assert_allclose(ds.grad(g)(x1), eager_grad, rtol=1e-12)


def test_pytree_arguments_and_results():
    @ds.custom_jvp
    def pair(d):
        return {"s": dnp.sin(d["a"]) * d["b"], "c": dnp.cos(d["a"])}

    @pair.defjvp
    def _pair_jvp(primals, tangents):
        (d,), (t,) = primals, tangents
        out = pair(d)
        ts = dnp.cos(d["a"]) * t["a"] * d["b"] + dnp.sin(d["a"]) * t["b"]
        return out, {"s": 2.0 * ts, "c": -dnp.sin(d["a"]) * t["a"]}  # 2x: visibly custom

    def f(a, b):
        out = pair({"a": a, "b": b})
        return dnp.sum(out["s"] + out["c"])

    a, b = np.array([0.3, 1.2]), np.array([2.0, -1.0])
    g = ds.trace(f)(a, b)
    np.testing.assert_allclose(g(a, b), f(a, b), rtol=1e-14)
    for argnums in (0, 1):
        np.testing.assert_allclose(
            ds.grad(g, argnums=argnums)(a, b), ds.grad(f, argnums=argnums)(a, b), rtol=1e-12
        )


def test_check_grads_order_2_through_graph():
    x0 = np.array([0.7, -1.3, 2.1])
    g = ds.trace(lambda x: dnp.sum(log1pexp(x) * dnp.sin(x)))(x0)
    ds.check_grads(g, (x0,), order=2, modes=("fwd", "rev"))


def test_graph_of_graph_keeps_the_node():
    x0 = np.array([1000.0, 1.0])
    g = ds.trace(_softplus_sum)(x0)
    g2 = ds.trace(g)(x0)
    assert sum(n.prim.name.startswith("custom_jvp:") for n in g2.nodes) == 1
    np.testing.assert_allclose(ds.grad(g2)(x0), ds.grad(_softplus_sum)(x0), rtol=1e-12)


@pytest.mark.parametrize("fun", [_softplus_sum, _clipped])
def test_save_refused_with_clear_message(tmp_path, fun):
    g = ds.trace(fun)(np.array([1.0, 2.0]))
    with pytest.raises(GraphSaveError, match=r"primitive 'custom_[vj]{2}p:.*closure"):
        g.save(tmp_path / "g")


def test_trace_under_an_outer_transform_applies_the_rule():
    # the graph's tracers hold reverse tracers: the custom rule applies at that level too
    def outer(x):
        g = ds.trace(_softplus_sum)(x)
        return g(x)

    x0 = np.array([1000.0, 0.5])
    got = ds.grad(outer)(x0)
    np.testing.assert_allclose(got, ds.grad(_softplus_sum)(x0), rtol=1e-12)


def test_traced_derivative_graphs(tmp_path):
    x0 = np.array([1000.0, 0.5])
    # custom_vjp under value_and_grad records fwd/bwd operations only: the graph saves
    g = ds.trace(ds.value_and_grad(_clipped))(x0)
    g.save(tmp_path / "vjp")
    np.testing.assert_allclose(g(x0)[1], ds.grad(_clipped)(x0), rtol=1e-12)
    # custom_jvp's primal output is the custom node: replays and differentiates, not saved
    g = ds.trace(ds.value_and_grad(_softplus_sum))(x0)
    np.testing.assert_allclose(g(x0)[1], ds.grad(_softplus_sum)(x0), rtol=1e-12)
    with pytest.raises(GraphSaveError, match=r"custom_jvp:.*log1pexp"):
        g.save(tmp_path / "jvp")
