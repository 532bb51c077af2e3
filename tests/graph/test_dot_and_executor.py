"""DOT export, rendering without Graphviz, and the executor's two paths."""

import re
import shutil

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.graph import GraphvizNotFoundError, _exec

rng = np.random.default_rng(4)
X = rng.standard_normal(6)


def f(x, w):
    q, r = dnp.linalg.qr(dnp.reshape(x, (3, 2)))  # a primitive with two results
    return dnp.sum(dnp.sin(q) * w) + dnp.sum(r)


def test_dot_text_structure():
    g = ds.trace(f)(X, 2.0)
    dot = g.to_dot()
    assert dot.startswith('digraph "f" {') and dot.rstrip().endswith("}")
    op_nodes = re.findall(r"^  n(\d+) \[label=", dot, flags=re.M)
    assert len(op_nodes) == len(g.nodes)
    placeholder_nodes = re.findall(r'^  v\d+ \[label="(x|w)\\n', dot, flags=re.M)
    assert sorted(placeholder_nodes) == ["w", "x"]
    # one edge per operation input, and one per graph output
    edges = re.findall(r"^  (\w+) -> (\w+)", dot, flags=re.M)
    assert len(edges) == sum(len(n.inputs) for n in g.nodes) + len(g.outputs)
    assert 'label="linalg.qr' in dot and "taillabel=1" in dot  # the second result of qr
    assert (f"n{len(g.nodes) - 1}", "output") in edges


def test_dot_escapes_names():
    g = ds.trace(lambda x: dnp.sum(x), name='a "quoted" name')(X)
    assert 'digraph "a \\"quoted\\" name"' in g.to_dot()


def test_render_without_graphviz_names_the_binary(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    g = ds.trace(f)(X, 2.0)
    with pytest.raises(GraphvizNotFoundError, match=r"`dot`.*apt-get install graphviz"):
        g.render(tmp_path / "g.svg")
    with pytest.raises(ValueError, match="svg, png or pdf"):
        g.render(tmp_path / "g.gif")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_svg(tmp_path):
    path = ds.trace(f)(X, 2.0).render(tmp_path / "g.svg")
    assert path.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_loop_and_straight_line_agree(monkeypatch):
    vg = ds.value_and_grad(f, argnums=(0, 1))
    g = ds.trace(vg)(X, 2.0)
    fast = g(X, 2.0)
    monkeypatch.setattr(_exec, "STRAIGHT_LINE_LIMIT", 0)
    g2 = ds.trace(vg)(X, 2.0)
    loop = g2(X, 2.0)
    assert not hasattr(g2, "_replay_source")
    for a, b in zip(ds.tree_leaves(fast), ds.tree_leaves(loop), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ds.tree_leaves(fast), ds.tree_leaves(vg(X, 2.0)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_program_reuses_slots_and_frees_dead_values():
    def long_chain(x):
        for _ in range(30):
            x = dnp.sin(x) * 2.0
        return dnp.sum(x)

    g = ds.trace(long_chain)(X)
    prog = g.program()
    # 61 values flow through the chain, but a handful of slots hold them all
    assert len(prog.template) + prog.n_inputs < 8
    assert len(prog.code) == len(g.nodes) == 61


def test_unused_results_are_dropped_at_once():
    g = ds.trace(lambda x: (dnp.exp(x), dnp.sum(x))[1])(X)
    (exp_instr,) = [c for c in g.program().code if c[1] is np.exp]
    assert exp_instr[5] == (exp_instr[4],)  # its own output slot is freed right away


def test_replay_returns_same_structure_as_function():
    def h(x):
        return {"a": (x * 2.0, [dnp.sum(x)]), "b": None, "c": 3}

    g = ds.trace(h)(X)
    out = g(X)
    assert set(out) == {"a", "b", "c"} and out["b"] is None and out["c"] == 3
    np.testing.assert_allclose(out["a"][0], X * 2.0)
    assert isinstance(out["a"][1], list)


def test_outputs_that_are_inputs_or_constants():
    c = np.arange(3.0)
    g = ds.trace(lambda x: (x, c, x + 1.0))(X)
    a, b, d = g(X)
    assert a is X and np.array_equal(b, c)
    np.testing.assert_allclose(ds.jacfwd(lambda x: g(x)[2])(X), np.eye(6))
