"""ds.jit: one trace per signature, replays after, every transform inside and outside."""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim
from diffsys.graph import Graph, GraphSpecializationWarning

RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 4))
LABELS = np.array([0, 2, 1, 1, 0, 2])


def _counting(fun):
    """``fun`` and a list that grows by one each time its Python body runs (a trace)."""
    runs = []

    @functools.wraps(fun)
    def counted(*args, **kwargs):
        runs.append(1)
        return fun(*args, **kwargs)

    return counted, runs


def test_jit_is_public():
    assert "jit" in ds.__all__
    assert ds.jit is ds.graph.jit


def test_traces_once_per_signature_and_replays():
    body, runs = _counting(lambda x, y: dnp.sum(dnp.sin(x) * y))
    f = ds.jit(body)
    x, y = RNG.standard_normal(5), RNG.standard_normal(5)
    for scale in (1.0, 2.0, 3.0):
        np.testing.assert_allclose(f(x * scale, y), np.sum(np.sin(x * scale) * y), rtol=1e-14)
    assert len(runs) == 1
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 1, 1)
    f(np.ones(3), np.ones(3))  # another shape: a second trace
    f(np.ones(3, np.float32), np.ones(3, np.float32))  # another dtype: a third
    f((x * 4.0), y)
    assert len(runs) == 3
    assert f.cache_info().misses == 3 and f.cache_info().currsize == 3


def test_pytree_structure_is_part_of_the_signature():
    body, runs = _counting(lambda p: sum(dnp.sum(leaf) for leaf in ds.tree_leaves(p)))
    f = ds.jit(body)
    f({"a": np.ones(2), "b": np.ones(2)})
    f({"a": np.zeros(2), "b": np.ones(2)})
    assert len(runs) == 1
    f({"a": np.ones(2), "b": (np.ones(2), np.ones(1))})  # another structure: traced for it
    assert len(runs) == 2
    assert float(f({"a": np.ones(2), "b": (np.ones(2), np.ones(1))})) == 5.0


def test_python_floats_are_dynamic_ints_are_static():
    body, runs = _counting(lambda x, s, n: x * s + n)
    f = ds.jit(body)
    assert float(f(np.ones(()), 2.0, 1)) == 3.0
    assert float(f(np.ones(()), 5.0, 1)) == 6.0  # a new float: replayed
    assert len(runs) == 1
    assert float(f(np.ones(()), 5.0, 2)) == 7.0  # a new int: traced for it
    assert len(runs) == 2


def test_static_argnums_and_argnames_select_the_path():
    def power_chain(x, n, *, mode="sin"):
        op = dnp.sin if mode == "sin" else dnp.cos
        for _ in range(n):
            x = op(x)
        return x

    body, runs = _counting(power_chain)
    f = ds.jit(body, static_argnums=1, static_argnames="mode")
    x = np.linspace(0.0, 1.0, 4)
    np.testing.assert_allclose(f(x, 3), np.sin(np.sin(np.sin(x))))
    np.testing.assert_allclose(f(x + 1.0, 3), np.sin(np.sin(np.sin(x + 1.0))))
    np.testing.assert_allclose(f(x, 2), np.sin(np.sin(x)))
    np.testing.assert_allclose(f(x, 2, mode="cos"), np.cos(np.cos(x)))
    np.testing.assert_allclose(f(x, n=1), np.sin(x))  # static by name, passed by keyword
    assert len(runs) == 4
    assert f.cache_info().hits == 1


def test_unhashable_static_argument_is_named():
    f = ds.jit(lambda x, cfg: x * len(cfg), static_argnums=1)
    with pytest.raises(TypeError, match=r"ds.jit\(<lambda>\).*hashable"):
        f(np.ones(2), [1, 2])


def test_dynamic_keyword_arguments():
    body, runs = _counting(lambda x, *, scale: x * scale)
    f = ds.jit(body)
    np.testing.assert_allclose(f(np.ones(2), scale=np.full(2, 3.0)), [3.0, 3.0])
    np.testing.assert_allclose(f(np.ones(2), scale=np.full(2, 4.0)), [4.0, 4.0])
    assert len(runs) == 1


def test_decorator_forms():
    @ds.jit
    def f(x):
        return x * 2.0

    @ds.jit(static_argnums=(1,))
    def g(x, k):
        return x * k

    np.testing.assert_allclose(f(np.ones(2)), [2.0, 2.0])
    np.testing.assert_allclose(g(np.ones(2), 3), [3.0, 3.0])
    assert isinstance(f, ds.graph.Jitted) and f.__name__ == "f"


# --- transforms ----------------------------------------------------------------------------


def _f(x):
    return dnp.sum(dnp.sin(x) ** 2 * dnp.exp(-x))


def test_grad_of_jit_and_jit_of_grad_match_eager():
    x = RNG.standard_normal(5)
    expected = ds.grad(_f)(x)
    np.testing.assert_allclose(ds.grad(ds.jit(_f))(x), expected, rtol=1e-13)
    jg = ds.jit(ds.grad(_f))
    np.testing.assert_allclose(jg(x), expected, rtol=1e-13)
    np.testing.assert_allclose(jg(x + 1.0), ds.grad(_f)(x + 1.0), rtol=1e-13)
    assert jg.cache_info().hits == 1


def test_higher_order_and_forward_mode_through_jit():
    x = RNG.standard_normal(4)
    v = RNG.standard_normal(4)
    jf = ds.jit(_f)
    np.testing.assert_allclose(ds.hessian(jf)(x), ds.hessian(_f)(x), rtol=1e-12)
    second = ds.grad(ds.grad(lambda s: jf(x * s)))(1.5)
    np.testing.assert_allclose(second, ds.grad(ds.grad(lambda s: _f(x * s)))(1.5), rtol=1e-12)
    _, t = ds.jvp(jf, (x,), (v,))
    np.testing.assert_allclose(t, ds.jvp(_f, (x,), (v,))[1], rtol=1e-13)
    jh = ds.jit(lambda x, v: ds.hvp(_f, (x,), (v,)))
    np.testing.assert_allclose(jh(x, v), ds.hvp(_f, (x,), (v,)), rtol=1e-12)
    np.testing.assert_allclose(jh(v, x), ds.hvp(_f, (v,), (x,)), rtol=1e-12)
    assert jh.cache_info().hits == 1
    ds.check_grads(jf, (x,), order=2)


def test_vmap_of_jit_and_jit_of_vmap():
    xs = RNG.standard_normal((3, 4))
    expected = np.array([_f(row) for row in xs])
    jf = ds.jit(_f)
    np.testing.assert_allclose(ds.vmap(jf)(xs), expected, rtol=1e-13)
    np.testing.assert_allclose(ds.jit(ds.vmap(_f))(xs), expected, rtol=1e-13)
    per_example = ds.jit(ds.vmap(ds.grad(_f)))
    np.testing.assert_allclose(per_example(xs)[1], ds.grad(_f)(xs[1]), rtol=1e-13)


def _mlp():
    return nn.Sequential([nn.Linear(4, 8, key=0), nn.tanh, nn.Linear(8, 3, key=1)])


def _loss(model, x, y):
    return nn.cross_entropy(model(x), y)


def test_value_and_grad_of_module_loss_with_integer_labels():
    model = _mlp()
    step = ds.jit(ds.value_and_grad(_loss))
    opt = optim.sgd(0.1)
    state = opt.init(model)
    eager_model = model
    for _ in range(3):
        loss, grads = step(model, X, LABELS)
        ref_loss, ref_grads = ds.value_and_grad(_loss)(eager_model, X, LABELS)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-13)
        assert type(grads) is nn.Sequential
        for a, b in zip(ds.tree_leaves(grads), ds.tree_leaves(ref_grads), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        updates, state = opt.update(grads, state, model)
        model = optim.apply_updates(model, updates)
        eager_model = optim.apply_updates(eager_model, ds.tree_map(lambda g: -0.1 * g, ref_grads))
    assert step.cache_info().misses == 1 and step.cache_info().hits == 2
    # other labels, same shapes: replayed, and the gather reads the new labels
    other = (LABELS + 1) % 3
    np.testing.assert_allclose(step(model, X, other)[0], _loss(model, X, other), rtol=1e-13)
    assert step.cache_info().misses == 1


def test_whole_training_step_with_optimizer_state():
    opt = optim.adam(1e-2)

    @ds.jit
    def train_step(model, state, x, y):
        loss, grads = ds.value_and_grad(_loss)(model, x, y)
        updates, state = opt.update(grads, state, model)
        return optim.apply_updates(model, updates), state, loss

    def eager_step(model, state, x, y):
        loss, grads = ds.value_and_grad(_loss)(model, x, y)
        updates, state = opt.update(grads, state, model)
        return optim.apply_updates(model, updates), state, loss

    model = _mlp()
    state = opt.init(model)
    m2, s2 = model, state
    for _ in range(3):
        model, state, loss = train_step(model, state, X, LABELS)
        m2, s2, loss2 = eager_step(m2, s2, X, LABELS)
        np.testing.assert_allclose(loss, loss2, rtol=1e-12)
    assert type(model) is nn.Sequential
    for a, b in zip(ds.tree_leaves(model), ds.tree_leaves(m2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    assert train_step.cache_info().misses == 1


class Out(NamedTuple):
    total: object
    parts: dict


def test_outputs_keep_their_pytree_types():
    f = ds.jit(lambda m, x: Out(dnp.sum(m(x)), {"h": m(x), "n": 3}))
    model = _mlp()
    out = f(model, X)
    out = f(model, X)
    assert type(out) is Out and set(out.parts) == {"h", "n"} and out.parts["n"] == 3
    np.testing.assert_allclose(out.parts["h"], model(X), rtol=1e-14)
    g = ds.jit(lambda m: m)(model)  # modules stay modules
    assert type(g) is nn.Sequential and g.layers[0].out_features == 8


# --- Python control flow -------------------------------------------------------------------


def _branchy(x):
    if dnp.sum(x) > 0:  # a Python branch on a traced value
        return x * 2.0
    return -x


def test_guards_retrace_when_python_control_flow_takes_another_path():
    body, runs = _counting(_branchy)
    f = ds.jit(body)
    pos, neg = np.ones(3), -np.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # guarded: no specialization warning
        np.testing.assert_allclose(f(pos), pos * 2.0)
        np.testing.assert_allclose(f(neg), -neg)
        np.testing.assert_allclose(f(pos * 3.0), pos * 6.0)
        np.testing.assert_allclose(f(neg * 3.0), -neg * 3.0)
    assert len(runs) == 2
    info = f.cache_info()
    assert (info.misses, info.retraces, info.hits, info.currsize) == (2, 1, 2, 1)


def test_without_guards_the_traced_path_is_replayed_with_a_warning():
    f = ds.jit(_branchy, guards=False)
    with pytest.warns(GraphSpecializationWarning):
        f(np.ones(3))
    # as torch.jit.trace: the recorded path, whatever the new value says
    np.testing.assert_allclose(f(-np.ones(3)), -np.ones(3) * 2.0)


def test_too_many_paths_fall_back_to_eager_with_a_warning():
    body, runs = _counting(lambda x: x * float(x))  # every value is its own path
    f = ds.jit(body, max_variants=3)
    with pytest.warns(RuntimeWarning, match="running eagerly"):
        values = [f(np.asarray(float(v))) for v in range(1, 7)]
    np.testing.assert_allclose(values, [1.0, 4.0, 9.0, 16.0, 25.0, 36.0])
    assert len(runs) == 3 + 3  # three traced paths, then three eager calls
    assert f.cache_info().eager_calls >= 1


# --- cache, lower --------------------------------------------------------------------------


def test_cache_is_a_bounded_lru():
    body, runs = _counting(lambda x: x + 1.0)
    f = ds.jit(body, cache_size=2)
    a, b, c = np.ones(1), np.ones(2), np.ones(3)
    f(a), f(b), f(a), f(c)  # c evicts b, the least recently used
    assert f.cache_info().evictions == 1 and f.cache_info().currsize == 2
    f(a)
    assert len(runs) == 3
    f(b)
    assert len(runs) == 4
    f.cache_clear()
    assert f.cache_info() == ds.graph.JitCacheInfo(0, 0, 2, 0, 0, 0, 0, 0.0)
    with pytest.raises(ValueError, match="cache_size"):
        ds.jit(body, cache_size=0)


def test_lower_returns_the_replayed_graph():
    f = ds.jit(ds.value_and_grad(_loss))
    model = _mlp()
    graph = f.lower(model, X, LABELS)
    assert isinstance(graph, Graph)
    assert graph.count("nn.linear") == 2
    assert list(graph.inputs)[:2] == ["model.layers.0.weight", "model.layers.0.bias"]
    assert "int64[6]" in str(graph)
    loss, grads = graph(model, X, LABELS)
    np.testing.assert_allclose(loss, _loss(model, X, LABELS), rtol=1e-13)
    assert type(grads) is nn.Sequential
    assert f.lower(model, X, LABELS) is graph  # the cached one
    assert f.cache_info().misses == 1


def test_closure_over_an_outer_tracer_differentiates():
    w = RNG.standard_normal(3)

    def outer(w):
        inner = ds.jit(lambda x: dnp.sum(dnp.sin(x * w)))  # reads w, traced by grad
        return inner(np.ones(3))

    with pytest.warns(RuntimeWarning, match="closure"):
        g = ds.grad(outer)(w)
    np.testing.assert_allclose(g, np.cos(w), rtol=1e-14)


def test_custom_rules_inside_jit_keep_their_rule():
    @ds.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (dnp.clip(g, -1.0, 1.0),))
    f = ds.jit(ds.grad(lambda x: dnp.sum(5.0 * clip_gradient(x))))
    np.testing.assert_allclose(f(np.ones(2)), [1.0, 1.0])
    outside = ds.grad(ds.jit(lambda x: dnp.sum(5.0 * clip_gradient(x))))
    np.testing.assert_allclose(outside(np.ones(2)), [1.0, 1.0])


@pytest.mark.parametrize("ignore_index", [None, 2])
def test_integer_label_losses_take_traced_labels(ignore_index):
    """Labels that are graph inputs stay traced: the gather reads them at every replay."""
    logits = RNG.standard_normal((2, 3, 4))  # classes on axis 1, labels of shape (2, 4)
    labels = np.array([[0, 1, 2, 2], [1, 1, 0, 2]])

    def losses(z, y):
        ce = nn.cross_entropy(z, y, axis=1, ignore_index=ignore_index)
        nll = nn.nll(nn.log_softmax(z, axis=1), y, axis=1, ignore_index=ignore_index)
        return ce, nll

    f = ds.jit(ds.value_and_grad(lambda z, y: losses(z, y)[0] + 2.0 * losses(z, y)[1]))
    for y in (labels, (labels + 1) % 3, np.zeros_like(labels)):
        value, g = f(logits, y)
        ref_value, ref_g = ds.value_and_grad(lambda z: losses(z, y)[0] + 2.0 * losses(z, y)[1])(
            logits
        )
        np.testing.assert_allclose(value, ref_value, rtol=1e-13)
        np.testing.assert_allclose(g, ref_g, rtol=1e-12, atol=1e-15)
    assert f.cache_info().misses == 1


def test_functions_without_array_arguments_and_array_subclasses():
    f = ds.jit(lambda: dnp.ones(2) * 3.0)
    np.testing.assert_allclose(f(), [3.0, 3.0])
    np.testing.assert_allclose(f(), [3.0, 3.0])
    assert f.cache_info().hits == 1
    g = ds.jit(lambda x: x * 2.0)
    masked = np.ma.MaskedArray(np.ones(2))
    np.testing.assert_allclose(g(masked), [2.0, 2.0])


def test_equal_static_values_of_other_types_are_other_signatures():
    body, runs = _counting(lambda x, k: x * (2.0 if k is True else 3.0))
    f = ds.jit(body, static_argnums=1)
    np.testing.assert_allclose(f(np.ones(1), 1), [3.0])
    np.testing.assert_allclose(f(np.ones(1), True), [2.0])  # True == 1, but not the same
    assert len(runs) == 2
