"""Traced integer indices stay operands of a graph: a graph traced with one index and called
with another indexes with the new one (values and derivatives, also after save/load), while
Python ints, slices and constant index arrays stay parameters of the graph."""

import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.graph import GraphSpecializationWarning

rng = np.random.default_rng(11)
X = rng.standard_normal((5, 3))
COLS_A = np.zeros((5, 1), dtype=np.intp)
COLS_B = np.array([[2], [1], [0], [1], [2]])

# (name, function of (x, idx), index traced with, index called with: repeats included)
CASES = [
    ("getitem", lambda x, i: dnp.sum(dnp.sin(x[i]) * x[i]), np.array([0, 2]), np.array([1, 1])),
    ("getitem 0-d", lambda x, i: dnp.sum(x[i] ** 2), np.array(0), np.array(3)),
    ("getitem with slice", lambda x, i: dnp.sum(x[i, 1:] ** 3), np.array([0, 1]), [4, 4]),
    ("getitem columns", lambda x, i: dnp.sum(x[:, i] ** 3), np.array([0, 1]), [2, 2]),
    (
        "getitem separated",
        lambda x, i: dnp.sum(x[i, :, None][:, 0] ** 2),
        np.array([[0], [1]]),
        np.array([[3], [3]]),
    ),
    ("take", lambda x, i: dnp.sum(dnp.take(x, i, axis=0) ** 3), np.array([0, 2]), [4, 4]),
    ("take flat", lambda x, i: dnp.sum(dnp.take(x, i) ** 3), np.array([0, 2]), [14, 4]),
    (
        "take_along_axis",
        lambda x, i: dnp.sum(dnp.take_along_axis(x, i, axis=1) ** 3),
        COLS_A,
        COLS_B,
    ),
    (
        "at set",
        lambda x, i: dnp.sum(dnp.at(x)[i].set(x[0] * 2.0) ** 3),
        np.array([1, 2]),
        np.array([3, 3]),
    ),
    (
        "at add",
        lambda x, i: dnp.sum(dnp.at(x)[i].add(x[0] * 2.0) ** 3),
        np.array([1, 2]),
        np.array([3, 3]),
    ),
    (
        "put_along_axis",
        lambda x, i: dnp.sum(dnp.put_along_axis(x, i, x[:, :1] * 3.0, axis=1) ** 3),
        COLS_A,
        COLS_B,
    ),
]
IDS = [c[0] for c in CASES]


def _traced(f, idx):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphSpecializationWarning)  # nothing is specialised
        return ds.trace(f)(X, idx)


def _gather_like(g) -> list[str]:
    return [n.prim.name for n in g.nodes if n.prim.name in ("gather", "scatter_add", "scatter_set")]


@pytest.mark.parametrize(("name", "f", "traced_with", "called_with"), CASES, ids=IDS)
def test_graph_indexes_with_the_index_it_is_called_with(name, f, traced_with, called_with):
    g = _traced(f, traced_with)
    assert _gather_like(g), g  # the index is an operand of a gather/scatter node
    called_with = np.asarray(called_with)
    np.testing.assert_allclose(g(X, called_with), f(X, called_with), rtol=1e-13)
    np.testing.assert_allclose(
        ds.grad(g)(X, called_with), ds.grad(f)(X, called_with), rtol=1e-12, atol=1e-14
    )
    # and the traced index still gives the traced result
    np.testing.assert_allclose(g(X, traced_with), f(X, traced_with), rtol=1e-13)


@pytest.mark.parametrize(("name", "f", "traced_with", "called_with"), CASES, ids=IDS)
def test_derivatives_of_the_graph_check_with_a_new_index(name, f, traced_with, called_with):
    g = _traced(f, traced_with)
    called_with = np.asarray(called_with)
    ds.check_grads(lambda x: g(x, called_with), (X,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize(("name", "f", "traced_with", "called_with"), CASES, ids=IDS)
def test_saved_graph_keeps_the_index_an_operand(tmp_path, name, f, traced_with, called_with):
    pytest.importorskip("safetensors")
    _traced(f, traced_with).save(tmp_path / "g")
    h = ds.load_graph(tmp_path / "g")
    called_with = np.asarray(called_with)
    np.testing.assert_allclose(h(X, called_with), f(X, called_with), rtol=1e-13)
    np.testing.assert_allclose(
        ds.grad(h)(X, called_with), ds.grad(f)(X, called_with), rtol=1e-12, atol=1e-14
    )


def test_graph_of_a_gradient_takes_the_index_as_an_operand():
    def f(x, i):
        return dnp.sum(dnp.tanh(x[i]) ** 2)

    g = _traced(ds.grad(f), np.array([0, 2]))
    for i in (np.array([1, 1]), np.array([4, 4])):
        np.testing.assert_allclose(g(X, i), ds.grad(f)(X, i), rtol=1e-13)


def test_vmap_over_the_index_of_a_graph():
    def f(x, i):
        return dnp.sum(dnp.sin(x[i]))

    g = _traced(f, np.array([0, 2]))
    batch = np.array([[0, 1], [3, 3], [4, 2]])
    np.testing.assert_allclose(
        ds.vmap(g, in_axes=(None, 0))(X, batch), [f(X, i) for i in batch], rtol=1e-13
    )


def test_python_ints_slices_and_constant_arrays_stay_static():
    const = np.array([4, 0])

    def f(x):
        return dnp.sum(x[1, ::2]) + dnp.sum(x[const] ** 2) + dnp.sum(x[-1])

    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphSpecializationWarning)
        g = ds.trace(f)(X)
    assert not _gather_like(g)
    getitems = [n for n in g.nodes if n.prim.name == "getitem"]
    assert len(getitems) == 3
    assert getitems[0].params["idx"] == (1, slice(None, None, 2))
    assert g.inputs and len(g.nodes[0].inputs) == 1  # only x is an input of the indexing
    np.testing.assert_allclose(g(X + 1.0), f(X + 1.0), rtol=1e-13)


def test_traced_boolean_mask_still_specialises_the_graph():
    # the shape of x[mask] depends on the mask's values: the graph keeps the mask, and warns
    x = X[:, 0]
    with pytest.warns(GraphSpecializationWarning):
        g = ds.trace(lambda x, m: dnp.sum(x[m]))(x, x > 0)
    np.testing.assert_allclose(g(x, x < 0), np.sum(x[x > 0]), rtol=1e-13)


def test_at_multiply_reads_a_traced_index_and_warns():
    # repeated positions must be found from the index values: specialised, as documented
    with pytest.warns(GraphSpecializationWarning):
        g = ds.trace(lambda x, i: dnp.sum(dnp.at(x)[i].multiply(3.0)))(X, np.array([0, 3]))
    expected = X.copy()
    expected[[0, 3]] *= 3.0  # the traced index, not the one the graph is called with
    np.testing.assert_allclose(g(X, np.array([2, 4])), np.sum(expected), rtol=1e-13)


def test_index_out_of_bounds_at_call_names_the_operation_and_shapes():
    g = _traced(lambda x, i: dnp.sum(x[i]), np.array([0, 2]))
    with pytest.raises(IndexError, match=r"gather.*shapes \(2,\).*shape \(5, 3\).*index 9"):
        g(X, np.array([9, 1]))
