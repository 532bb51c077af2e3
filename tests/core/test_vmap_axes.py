"""vmap with pytree in_axes/out_axes (JAX's prefixes), axis_size, and errors that name the
argument."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn

RNG = np.random.default_rng(0)


def test_dict_in_axes_with_none_leaves():
    def f(p, x):
        return p["w"] * x + p["b"]

    w, x = RNG.standard_normal(4), RNG.standard_normal(4)
    out = ds.vmap(f, in_axes=({"w": 0, "b": None}, 0))({"w": w, "b": 10.0}, x)
    np.testing.assert_allclose(out, w * x + 10.0)


def test_nested_prefixes_and_negative_axes():
    def f(p, x):
        (a, b), c = p
        return dnp.sum(a * x) + b + c["k"]

    a = RNG.standard_normal((3, 5))  # mapped over axis 1 (written -1)
    b = RNG.standard_normal(5)
    c = {"k": 2.0}
    x = RNG.standard_normal(3)
    out = ds.vmap(f, in_axes=(((-1, 0), None), None))(((a, b), c), x)
    expected = np.array([np.sum(a[:, i] * x) + b[i] + 2.0 for i in range(5)])
    np.testing.assert_allclose(out, expected)


def test_tuple_and_dict_out_axes():
    def f(x):
        return x * 2.0, {"s": dnp.sum(x), "const": dnp.ones(2)}

    xs = RNG.standard_normal((4, 3))
    doubled, d = ds.vmap(f, out_axes=(1, {"s": 0, "const": None}))(xs)
    np.testing.assert_allclose(doubled, (xs * 2.0).T)
    np.testing.assert_allclose(d["s"], xs.sum(1))
    np.testing.assert_allclose(d["const"], np.ones(2))  # not batched: returned as is
    y, s = ds.vmap(lambda x: (x, dnp.sum(x)), out_axes=(-1, 0))(xs)
    np.testing.assert_allclose(y, xs.T)


def test_out_axes_none_on_a_batched_output_is_an_error():
    with pytest.raises(ValueError, match="out_axes is None .* depends on the mapped"):
        ds.vmap(lambda x: x * 2.0, out_axes=None)(np.ones(3))


def test_axis_size_without_mapped_arguments():
    out = ds.vmap(lambda c: c * 2.0, in_axes=None, axis_size=4)(np.ones(2))
    np.testing.assert_allclose(out, np.full((4, 2), 2.0))
    with pytest.raises(ValueError, match="axis_size"):
        ds.vmap(lambda c: c, in_axes=None)(np.ones(2))
    with pytest.raises(ValueError, match="axis_size is 5.*argument 0 \\('x'\\) has size 3"):
        ds.vmap(lambda x: x, axis_size=5)(np.ones(3))


def test_keyword_arguments_are_mapped_over_axis_0():
    out = ds.vmap(lambda x, *, scale: x * scale)(np.ones((3, 2)), scale=np.arange(3.0)[:, None])
    np.testing.assert_allclose(out, np.arange(3.0)[:, None] * np.ones((3, 2)))


class Pair(NamedTuple):
    a: object
    b: object


def test_namedtuple_and_module_prefixes():
    out = ds.vmap(lambda p: p.a + p.b, in_axes=(Pair(0, None),))(Pair(np.arange(3.0), 1.0))
    np.testing.assert_allclose(out, np.arange(3.0) + 1.0)
    model = nn.Linear(2, 3, key=0)
    xs = RNG.standard_normal((5, 2))
    per_example = ds.vmap(lambda m, x: m(x), in_axes=(None, 0))(model, xs)
    np.testing.assert_allclose(per_example, model(xs), rtol=1e-14)


def test_pytree_axes_compose_with_grad():
    def loss(p, x):
        return dnp.sum((p["w"] * x + p["b"]) ** 2)

    p = {"w": RNG.standard_normal(3), "b": np.asarray(0.5)}
    xs = RNG.standard_normal((4, 3))
    grads = ds.vmap(ds.grad(loss), in_axes=({"w": None, "b": None}, 0))(p, xs)
    for i in range(4):
        g = ds.grad(loss)(p, xs[i])
        np.testing.assert_allclose(grads["w"][i], g["w"])
        np.testing.assert_allclose(grads["b"][i], g["b"])


# --- errors ---------------------------------------------------------------------------------


def test_mismatched_sizes_name_the_arguments():
    def f(x, y):
        return x + y

    with pytest.raises(
        ValueError, match=r"argument 0 \('x'\) has size 3 .*argument 1 \('y'\) has size 4"
    ):
        ds.vmap(f)(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"argument 1 \('y'\) at \['k'\]\[0\] has size 4"):
        ds.vmap(lambda x, y: x + y["k"][0][0], in_axes=(0, {"k": (1,)}))(
            np.ones(3), {"k": (np.ones((2, 4)),)}
        )


def test_bad_axes_name_the_argument():
    with pytest.raises(ValueError, match=r"in_axes 2 is out of range for argument 0 \('x'\)"):
        ds.vmap(lambda x: x, in_axes=2)(np.ones(3))
    with pytest.raises(ValueError, match=r"in_axes for argument 0 \('p'\).*keys \['a', 'b'\]"):
        ds.vmap(lambda p: p["a"], in_axes=({"a": 0, "c": 1},))(
            {"a": np.ones(3), "b": np.ones(3)}
        )
    with pytest.raises(TypeError, match=r"in_axes=\(\{\.\.\.\},\)"):
        ds.vmap(lambda p: p["a"], in_axes={"a": 0})({"a": np.ones(3)})
    with pytest.raises(TypeError, match="an axis must be an int or None"):
        ds.vmap(lambda x: x, in_axes=("0",))(np.ones(3))
    with pytest.raises(ValueError, match="a scalar has no axis"):
        ds.vmap(lambda x, y: x * y)(np.ones(3), 2.0)
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function got 2"):
        ds.vmap(lambda x, y: x, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="out_axes 3 is out of range for the output"):
        ds.vmap(lambda x: x, out_axes=3)(np.ones(3))
    with pytest.raises(ValueError, match="out_axes .*does not match"):
        ds.vmap(lambda x: (x, x), out_axes=(0, 0, 0))(np.ones(3))
