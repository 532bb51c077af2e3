"""Graph.save / ds.load_graph: round trips, derivatives after loading, and every refusal,
including crafted files that must not run code."""

import io
import json
import os
import re
import sys
import tokenize

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn
from diffsys.graph import GraphLoadError, GraphSaveError

pytest.importorskip("safetensors")

rng = np.random.default_rng(2)
X = rng.standard_normal((5, 3))
Y = rng.standard_normal((5, 2))


def f(x, w):
    return dnp.sum(dnp.tanh(x @ w) ** 2) + dnp.sum(x[1:, ::2] * 0.5)


W = rng.standard_normal((3, 2))


def _model():
    return nn.Sequential([nn.Linear(3, 8, key=0), nn.Tanh(), nn.Linear(8, 2, key=1)])


def mse(model, x, y):
    return dnp.mean((model(x) - y) ** 2)


def test_round_trip_values_and_gradients(tmp_path):
    g = ds.trace(f)(X, W)
    g.save(tmp_path / "g")
    h = ds.load_graph(tmp_path / "g")
    x2, w2 = rng.standard_normal((5, 3)), rng.standard_normal((3, 2))
    np.testing.assert_allclose(h(x2, w2), f(x2, w2), rtol=1e-14)
    for a, b in zip(ds.grad(h, (0, 1))(x2, w2), ds.grad(f, (0, 1))(x2, w2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    ds.check_grads(h, (x2, w2), order=2)
    assert str(h).splitlines()[1:] == str(g).splitlines()[1:]


def test_value_and_grad_graph_round_trip(tmp_path):
    g = ds.trace(ds.value_and_grad(f, argnums=(0, 1)))(X, W)
    g.save(tmp_path / "vg")
    h = ds.load_graph(tmp_path / "vg")
    v, (gx, gw) = h(X, W)
    v_ref, (gx_ref, gw_ref) = ds.value_and_grad(f, argnums=(0, 1))(X, W)
    np.testing.assert_allclose([v], [v_ref], rtol=1e-14)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-14)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-14)


def test_nn_model_round_trip(tmp_path):
    model = _model()
    g = ds.trace(ds.value_and_grad(mse))(model, X, Y)
    assert set(g.params) == {
        "model.layers.0.weight",
        "model.layers.0.bias",
        "model.layers.2.weight",
        "model.layers.2.bias",
    }
    g.save(tmp_path / "mlp")
    h = ds.load_graph(tmp_path / "mlp")
    for name, value in g.params.items():
        np.testing.assert_array_equal(h.params[name], value)
    other = nn.Sequential([nn.Linear(3, 8, key=5), nn.Tanh(), nn.Linear(8, 2, key=6)])
    loss, grads = h(other, X, Y)  # the model object itself is accepted...
    loss_ref, grads_ref = ds.value_and_grad(mse)(other, X, Y)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-14)
    # ... and the gradients come back as the argument's class (see test_loaded_graph_...)
    np.testing.assert_allclose(grads.layers[0].weight, grads_ref.layers[0].weight)
    as_dicts = {"layers": [{"weight": p.weight, "bias": p.bias} for p in other.layers[::2]]}
    as_dicts["layers"].insert(1, {})
    loss2, grads2 = h(as_dicts, X, Y)  # dicts of fields in: dicts of fields out
    np.testing.assert_allclose(loss2, loss_ref, rtol=1e-14)
    np.testing.assert_allclose(grads2["layers"][0]["weight"], grads_ref.layers[0].weight)


def test_loaded_graph_returns_modules_where_modules_went_in(tmp_path):
    """A loaded training step's gradients are the model's class, in the model's leaf order
    (weight before bias), with its static fields: optim.apply_updates(model, grads) works."""
    from diffsys import optim

    model = _model()
    g = ds.trace(ds.value_and_grad(mse))(model, X, Y)
    g.save(tmp_path / "step")
    h = ds.load_graph(tmp_path / "step")
    _, grads = h(model, X, Y)
    _, grads_ref = ds.value_and_grad(mse)(model, X, Y)
    assert type(grads) is nn.Sequential
    assert type(grads.layers[0]) is nn.Linear and grads.layers[0].out_features == 8
    for a, b in zip(ds.tree_leaves(grads), ds.tree_leaves(grads_ref), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-13)
    updated = optim.apply_updates(model, ds.tree_map(lambda x: -0.1 * x, grads))
    assert type(updated) is nn.Sequential
    np.testing.assert_allclose(
        updated.layers[2].bias, model.layers[2].bias - 0.1 * grads_ref.layers[2].bias
    )
    # under a transform (a traced call), too
    seen = []

    def first_grad_sum(m):
        out = h(m, X, Y)[1]
        seen.append(type(out))
        return dnp.sum(ds.tree_leaves(out)[0])

    ds.grad(first_grad_sum)(model)
    assert seen == [nn.Sequential]


def test_forward_model_graph_is_differentiable_after_load(tmp_path):
    model = _model()
    g = ds.trace(mse)(model, X, Y)
    g.save(tmp_path / "fwd")
    h = ds.load_graph(tmp_path / "fwd")
    grads = ds.grad(h)(model, X, Y)
    grads_ref = ds.grad(mse)(model, X, Y)
    # the gradient has the structure of the argument given (here the model itself)
    np.testing.assert_allclose(grads.layers[2].bias, grads_ref.layers[2].bias, rtol=1e-13)


def test_save_overwrites_atomically(tmp_path):
    d = tmp_path / "g"
    ds.trace(f)(X, W).save(d)
    ds.trace(lambda x, w: dnp.sum(x @ w))(X, W).save(d)
    names = sorted(os.listdir(d))
    assert names[0] == "graph.json" and len(names) == 2 and names[1].endswith(".safetensors")
    np.testing.assert_allclose(ds.load_graph(d)(X, W), np.sum(X @ W))


# --- what cannot be saved ---


def test_callable_parameter_cannot_be_saved(tmp_path):
    apply = ds.Primitive("tests.graph.apply", lambda x, fn: fn(x))
    g = ds.trace(lambda x: dnp.sum(apply(x, fn=np.sin)))(X)
    with pytest.raises(GraphSaveError, match=r"tests.graph.apply.*parameter 'fn'.*ufunc"):
        g.save(tmp_path / "g")


def test_closure_primitive_cannot_be_saved(tmp_path):
    @ds.custom_vjp
    def ident(x):
        return x

    g = ds.trace(lambda x: dnp.sum(ident.primitive(x)))(X)
    with pytest.raises(GraphSaveError, match="custom_vjp:.*closure"):
        g.save(tmp_path / "g")


def test_unregistered_primitive_cannot_be_saved(tmp_path):
    p = ds.Primitive("tests.graph.unregistered", np.negative, register=False)
    g = ds.trace(lambda x: dnp.sum(p(x)))(X)
    with pytest.raises(GraphSaveError, match="not the one registered"):
        g.save(tmp_path / "g")


def test_missing_safetensors_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        ds.trace(f)(X, W).save(tmp_path / "g")


# --- what cannot be loaded ---


def _saved(tmp_path, fun=f, args=(X, W)):
    d = tmp_path / "g"
    ds.trace(fun)(*args).save(d)
    return d, json.loads((d / "graph.json").read_text())


def _write(d, doc):
    (d / "graph.json").write_text(json.dumps(doc))


def test_unknown_primitive(tmp_path):
    d, doc = _saved(tmp_path)
    doc["nodes"][0]["op"] = "os.system"
    _write(d, doc)
    with pytest.raises(GraphLoadError, match="unknown primitive 'os.system'"):
        ds.load_graph(d)


def test_version_mismatch(tmp_path):
    d, doc = _saved(tmp_path)
    doc["version"] = 99
    _write(d, doc)
    with pytest.raises(GraphLoadError, match="version 99"):
        ds.load_graph(d)


def test_malformed_files(tmp_path):
    d, doc = _saved(tmp_path)
    (d / "graph.json").write_text("{not json")
    with pytest.raises(GraphLoadError, match="not valid JSON"):
        ds.load_graph(d)
    _write(d, {"format": "something else"})
    with pytest.raises(GraphLoadError, match="not a diffsys graph"):
        ds.load_graph(d)
    bad = dict(doc)
    bad["nodes"] = [dict(doc["nodes"][0], **{"in": [10**6]})]
    _write(d, bad)
    with pytest.raises(GraphLoadError, match="out of range"):
        ds.load_graph(d)
    with pytest.raises(GraphLoadError, match="does not exist"):
        ds.load_graph(tmp_path / "nowhere")


def test_use_before_definition(tmp_path):
    d, doc = _saved(tmp_path)
    doc["nodes"] = doc["nodes"][::-1]
    _write(d, doc)
    with pytest.raises(GraphLoadError, match="used before it is defined"):
        ds.load_graph(d)


def test_shape_mismatch_declared_against_computed(tmp_path):
    d, doc = _saved(tmp_path)
    out = doc["nodes"][0]["out"][0]
    doc["vars"][out]["shape"] = [7, 7]
    _write(d, doc)
    with pytest.raises(GraphLoadError, match="shape mismatch"):
        ds.load_graph(d)


def test_shape_mismatch_of_a_saved_tensor(tmp_path):
    model = _model()
    d = tmp_path / "m"
    ds.trace(mse)(model, X, Y).save(d)
    doc = json.loads((d / "graph.json").read_text())
    doc["vars"][0]["shape"] = [4, 4]
    _write(d, doc)
    with pytest.raises(GraphLoadError, match="shape"):
        ds.load_graph(d)


def test_tampered_tensor_file(tmp_path):
    model = _model()
    d = tmp_path / "m"
    ds.trace(mse)(model, X, Y).save(d)
    (tensor_file,) = [p for p in d.iterdir() if p.suffix == ".safetensors"]
    data = bytearray(tensor_file.read_bytes())
    data[-1] ^= 0xFF
    tensor_file.write_bytes(bytes(data))
    with pytest.raises(GraphLoadError, match="checksum"):
        ds.load_graph(d)


@pytest.mark.parametrize(
    "payload",
    [
        {"$callable": "os.system"},
        {"__reduce__": ["os.system", ["echo pwned"]]},
        {"$tuple": [], "__class__": "os.system"},
        {"$dtype": "O"},
        {"$dtype": "float64; import os"},
        {"$slice": ["os.system", None, None]},
    ],
)
def test_crafted_parameters_run_no_code(tmp_path, monkeypatch, payload):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a))
    d, doc = _saved(tmp_path)
    node = next(n for n in doc["nodes"] if n["params"])
    name = next(iter(node["params"]))
    node["params"][name] = payload
    _write(d, doc)
    with pytest.raises(GraphLoadError):
        ds.load_graph(d)
    assert calls == []


def test_crafted_primitive_and_parameter_names(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a))
    d, doc = _saved(tmp_path)
    for name in ("os.system", "__import__", "builtins.eval", "checkpoint", "custom_vjp:x.y"):
        doc["nodes"][0]["op"] = name
        _write(d, doc)
        with pytest.raises(GraphLoadError, match="primitive"):
            ds.load_graph(d)
    doc = json.loads(json.dumps(_saved(tmp_path)[1]))
    node = next(n for n in doc["nodes"] if n["params"])
    node["params"] = {"x=os.system('echo')": 1}
    _write(d, doc)
    with pytest.raises(GraphLoadError, match=r"nodes\[\d+\]\.params.*malformed key"):
        ds.load_graph(d)
    assert calls == []


def test_hostile_names_never_reach_generated_code(tmp_path):
    d, doc = _saved(tmp_path)
    for v in doc["vars"]:
        v["name"] = "__import__('os').system('echo pwned')"
    doc["name"] = "');import os;os.system('x"
    _write(d, doc)
    h = ds.load_graph(d)
    np.testing.assert_allclose(h(X, W), f(X, W), rtol=1e-14)
    tokens = tokenize.generate_tokens(io.StringIO(h._replay_source).readline)
    names = {t.string for t in tokens if t.type == tokenize.NAME}
    generated = re.compile(r"[rfp]\d+")
    assert {n for n in names if not generated.fullmatch(n)} <= {
        "def",
        "replay",
        "s",
        "del",
        "None",
        "return",
    }
    kinds = {t.type for t in tokenize.generate_tokens(io.StringIO(h._replay_source).readline)}
    assert tokenize.STRING not in kinds


def test_graph_failing_on_verification_values_still_loads(tmp_path):
    # inv of a matrix of ones (the verification input) is singular: not the file's fault
    idx = np.array([2, 0])

    def h(a):
        return dnp.sum(dnp.linalg.inv(a)[idx])

    a = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    g = ds.trace(h)(a)
    g.save(tmp_path / "inv")
    loaded = ds.load_graph(tmp_path / "inv")
    np.testing.assert_allclose(loaded(a), h(a), rtol=1e-13)
    np.testing.assert_allclose(ds.grad(loaded)(a), ds.grad(h)(a), rtol=1e-12)
