"""Saved graphs as untrusted input: every field of graph.json is checked before the graph is
built (the error names it), operation parameters are checked against the primitive's
signature at load, and hostile declared shapes allocate nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("safetensors")

import diffsys as ds  # noqa: E402
import diffsys.numpy as dnp  # noqa: E402
from diffsys import nn  # noqa: E402
from diffsys.graph import GraphLoadError  # noqa: E402
from file_corruption import check_all, corruptions, read_json, write_json  # noqa: E402

X = np.random.default_rng(0).standard_normal((5, 3))


def _model():
    return nn.Sequential([nn.Linear(3, 4, key=0), nn.tanh, nn.Linear(4, 2, key=1)])


def _loss(model, x):
    out = model(x)
    return dnp.sum(out[1:, ::2] ** 2), {"mean": dnp.mean(out, axis=0)}


def _save(d):
    ds.trace(_loss)(_model(), X).save(d)
    return read_json(d / "graph.json")


def _free_form(path):
    # values in the closed vocabulary whose meaning only the operation knows: an operation's
    # parameter values, constants and static arguments (checked by the verification run)
    return (
        (path[0] == "nodes" and len(path) > 3 and path[2] == "params")
        or (path[0] == "consts" and len(path) > 2 and path[2] == "value")
        or (path[0] == "args" and len(path) > 4 and path[4] == "static")
    )


def test_every_field_of_a_saved_graph_is_checked_and_named(tmp_path):
    """The class test for saved graphs: each field of graph.json in turn gets a value of
    another type or is deleted, and load_graph must raise GraphLoadError naming it."""
    doc = _save(tmp_path)
    cases = corruptions(doc, skip=_free_form, optional=lambda p: p[0] == "params" and len(p) == 2)
    assert len(cases) > 300
    index = tmp_path / "graph.json"
    wrong = check_all(
        cases, index, load=lambda: ds.load_graph(tmp_path), error=GraphLoadError, write=write_json
    )
    write_json(index, doc)
    g = ds.load_graph(tmp_path)  # the original still loads
    np.testing.assert_allclose(g(_model(), X)[0], _loss(_model(), X)[0], rtol=1e-14)
    assert not wrong, f"{len(wrong)} of {len(cases)}:\n" + "\n".join(wrong[:25])


@pytest.mark.parametrize("shape", [[10**12], [10**6, 10**6], [2**40, 2**40]])
def test_hostile_declared_shapes_are_refused_before_allocating(tmp_path, shape):
    doc = _save(tmp_path)
    v = next(i for i, e in enumerate(doc["vars"]) if e["kind"] == "input")
    doc["vars"][v]["shape"] = shape
    write_json(tmp_path / "graph.json", doc)
    with pytest.raises(GraphLoadError, match=r"'vars\[\d+\]\.shape'"):
        ds.load_graph(tmp_path)


def test_verification_memory_is_bounded_and_can_be_raised(tmp_path):
    doc = _save(tmp_path)
    with pytest.raises(GraphLoadError, match=r"max_verify_bytes=100.*verify=False"):
        ds.load_graph(tmp_path, max_verify_bytes=100)
    ds.load_graph(tmp_path, verify=False, max_verify_bytes=100)
    v = next(i for i, e in enumerate(doc["vars"]) if e["kind"] == "input")
    doc["vars"][v]["shape"] = [10**9]  # 8 GB of float64: under the element limit
    write_json(tmp_path / "graph.json", doc)
    with pytest.raises(GraphLoadError, match=rf"'vars\[{v}\]\.shape'.*max_verify_bytes"):
        ds.load_graph(tmp_path)


def test_unknown_operation_parameters_fail_at_load_not_at_first_call(tmp_path):
    doc = _save(tmp_path)
    k, node = next((k, n) for k, n in enumerate(doc["nodes"]) if n["params"])
    node["params"]["bogus"] = 1
    write_json(tmp_path / "graph.json", doc)
    with pytest.raises(GraphLoadError, match=rf"'nodes\[{k}\]\.params'.*bogus"):
        ds.load_graph(tmp_path, verify=False)
    del node["params"]["bogus"]
    node["in"] = node["in"] + node["in"][:1]  # one operand too many
    write_json(tmp_path / "graph.json", doc)
    with pytest.raises(GraphLoadError, match=rf"'nodes\[{k}\]\.params'.*operands"):
        ds.load_graph(tmp_path, verify=False)


@pytest.mark.parametrize("name", ["../other.safetensors", "/etc/passwd", "sub/x.safetensors"])
def test_the_tensor_file_is_a_plain_name_in_the_folder(tmp_path, name):
    doc = _save(tmp_path)
    doc["tensor_file"] = name
    write_json(tmp_path / "graph.json", doc)
    with pytest.raises(GraphLoadError, match=r"'tensor_file'.*plain file name"):
        ds.load_graph(tmp_path)


def test_deeply_nested_structures_are_format_errors(tmp_path):
    doc = _save(tmp_path)
    spec = {"t": "leaf"}
    for _ in range(150):
        spec = {"t": "tuple", "c": [spec]}
    doc["out_spec"] = spec
    (tmp_path / "graph.json").write_text(json.dumps(doc))
    with pytest.raises(GraphLoadError, match=r"'out_spec(\.c\[0\])+'.*nested too deeply"):
        ds.load_graph(tmp_path)
