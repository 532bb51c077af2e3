"""Property-based tests (hypothesis) of the elementwise and reduction primitives: random shapes,
broadcasting pairs and axes. Values match NumPy, gradients have the input's shape, reverse
mode agrees with forward mode (the vdot identity) and with finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsys as ds
import diffsys.numpy as dnp

SETTINGS = settings(max_examples=25, deadline=None)
EPS = 1e-6

# name -> (diffsys function, numpy function, element strategy inside the domain)
# Domains stay away from singularities and kinks by more than the finite-difference step.
_pos = st.floats(0.3, 3.0)
_unit = st.floats(-0.8, 0.8)
_any = st.floats(-2.0, 2.0)
_nonzero = st.one_of(st.floats(-2.0, -0.3), st.floats(0.3, 2.0))

UNARY = {
    "exp": (dnp.exp, np.exp, _any),
    "log": (dnp.log, np.log, _pos),
    "log1p": (dnp.log1p, np.log1p, st.floats(-0.6, 2.0)),
    "expm1": (dnp.expm1, np.expm1, _any),
    "sqrt": (dnp.sqrt, np.sqrt, _pos),
    "cbrt": (dnp.cbrt, np.cbrt, _nonzero),
    "square": (dnp.square, np.square, _any),
    "reciprocal": (dnp.reciprocal, np.reciprocal, _nonzero),
    "sin": (dnp.sin, np.sin, _any),
    "cos": (dnp.cos, np.cos, _any),
    "tan": (dnp.tan, np.tan, st.floats(-1.2, 1.2)),
    "arcsin": (dnp.arcsin, np.arcsin, _unit),
    "arccos": (dnp.arccos, np.arccos, _unit),
    "arctan": (dnp.arctan, np.arctan, _any),
    "tanh": (dnp.tanh, np.tanh, _any),
    "sinh": (dnp.sinh, np.sinh, _any),
    "arcsinh": (dnp.arcsinh, np.arcsinh, _any),
    "arccosh": (dnp.arccosh, np.arccosh, st.floats(1.3, 3.0)),
    "arctanh": (dnp.arctanh, np.arctanh, _unit),
    "abs": (dnp.abs, np.abs, _nonzero),
    "log2": (dnp.log2, np.log2, _pos),
    "exp2": (dnp.exp2, np.exp2, _any),
}

# name -> (diffsys function, numpy function, element strategy of x, of y)
BINARY = {
    "add": (dnp.add, np.add, _any, _any),
    "subtract": (dnp.subtract, np.subtract, _any, _any),
    "multiply": (dnp.multiply, np.multiply, _any, _any),
    "divide": (dnp.divide, np.divide, _any, _nonzero),
    "power": (dnp.power, np.power, _pos, _any),
    "arctan2": (dnp.arctan2, np.arctan2, _nonzero, _any),
    "logaddexp": (dnp.logaddexp, np.logaddexp, _any, _any),
    "hypot": (dnp.hypot, np.hypot, _nonzero, _nonzero),
    # maximum / minimum on a grid of 0.1 shifted by 0.05 between x and y: never tied
    "maximum": (
        dnp.maximum,
        np.maximum,
        st.integers(-20, 20).map(lambda i: i / 10),
        st.integers(-20, 20).map(lambda i: i / 10 + 0.05),
    ),
    "minimum": (
        dnp.minimum,
        np.minimum,
        st.integers(-20, 20).map(lambda i: i / 10),
        st.integers(-20, 20).map(lambda i: i / 10 + 0.05),
    ),
}

SMALL_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def _array(shape, elements):
    return hnp.arrays(np.float64, shape, elements=elements)


def _direction(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def _check_gradient_properties(total, args, seed):
    """For a scalar function ``total``: gradient shapes, the vdot identity between reverse
    and forward mode along a random direction, and agreement with central differences."""
    argnums = tuple(range(len(args)))
    grads = ds.grad(total, argnums=argnums)(*args)
    for g, a in zip(grads, args, strict=True):
        assert np.shape(g) == np.shape(a)
        assert np.asarray(g).dtype == np.float64
    directions = tuple(_direction(seed + k, np.shape(a)) for k, a in enumerate(args))
    _, tangent = ds.jvp(total, args, directions)
    reverse = sum(float(np.vdot(g, v)) for g, v in zip(grads, directions, strict=True))
    np.testing.assert_allclose(reverse, tangent, rtol=1e-10, atol=1e-12)
    plus = total(*[a + EPS * v for a, v in zip(args, directions, strict=True)])
    minus = total(*[a - EPS * v for a, v in zip(args, directions, strict=True)])
    numeric = (plus - minus) / (2 * EPS)
    scale = sum(
        float(np.sum(np.abs(g) * np.abs(v))) for g, v in zip(grads, directions, strict=True)
    )
    np.testing.assert_allclose(reverse, numeric, rtol=1e-5, atol=1e-6 * (1.0 + scale))


# --- elementwise ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_unary_properties(name, data, seed):
    f, np_f, elements = UNARY[name]
    shape = data.draw(SMALL_SHAPES, label="shape")
    x = data.draw(_array(shape, elements), label="x")
    out = f(x)
    assert not isinstance(out, ds.Tracer)
    np.testing.assert_array_equal(out, np_f(x))
    assert np.shape(out) == shape
    _check_gradient_properties(lambda a: dnp.sum(f(a)), (x,), seed)


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_binary_broadcasting_properties(name, shapes, data, seed):
    f, np_f, ex, ey = BINARY[name]
    sx, sy = shapes.input_shapes
    x = data.draw(_array(sx, ex), label="x")
    y = data.draw(_array(sy, ey), label="y")
    out = f(x, y)
    expected = np_f(x, y)
    assert np.shape(out) == shapes.result_shape == np.shape(expected)
    np.testing.assert_array_equal(out, expected)
    weights = _direction(seed + 7, shapes.result_shape)  # a random cotangent
    _check_gradient_properties(lambda a, b: dnp.sum(f(a, b) * weights), (x, y), seed)


@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_where_and_clip_broadcasting_properties(shapes, data, seed):
    sc, sx, sy = shapes.input_shapes
    cond = data.draw(hnp.arrays(np.bool_, sc), label="cond")
    x = data.draw(_array(sx, _any), label="x")
    y = data.draw(_array(sy, _any), label="y")
    np.testing.assert_array_equal(dnp.where(cond, x, y), np.where(cond, x, y))
    _check_gradient_properties(lambda a, b: dnp.sum(dnp.where(cond, a, b) ** 2), (x, y), seed)
    # clip with bounds -1 + y/10 < 1 + y/10 and x on a grid that never touches a bound
    xg = data.draw(
        hnp.arrays(np.float64, sx, elements=st.integers(-25, 25).map(lambda i: i / 10 + 0.033))
    )
    lo, hi = -1.0 + y / 100, 1.0 + y / 100
    np.testing.assert_array_equal(dnp.clip(xg, lo, hi), np.clip(xg, lo, hi))
    _check_gradient_properties(lambda a, b, c: dnp.sum(dnp.clip(a, b, c) ** 3), (xg, lo, hi), seed)


# --- reductions -----------------------------------------------------------------------------


@st.composite
def array_and_axis(draw, min_dims=0):
    """A shape, and an axis argument for it: None, an int (maybe negative) or a tuple."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=4))
    ndim = len(shape)
    if ndim == 0:
        axis = draw(st.sampled_from([None, ()]))
    else:
        axis = draw(
            st.one_of(
                st.none(),
                st.integers(-ndim, ndim - 1),
                st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(
                    lambda axes: tuple(a - ndim if a % 2 else a for a in axes)  # some negative
                ),
            )
        )
    return shape, axis


def _distinct_values(data, shape):
    """Values on a grid with no two equal (no ties for max/min), in random order."""
    n = int(np.prod(shape))
    perm = data.draw(st.permutations(range(n)), label="order")
    return (np.array(perm, dtype=np.float64).reshape(shape) - n / 2) / 4


REDUCTIONS = {
    "sum": (dnp.sum, np.sum, {}),
    "mean": (dnp.mean, np.mean, {}),
    "prod": (dnp.prod, np.prod, {}),
    "max": (dnp.max, np.max, {}),
    "min": (dnp.min, np.min, {}),
    "var": (dnp.var, np.var, {}),
    "std": (dnp.std, np.std, {}),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@SETTINGS
@given(
    shape_axis=array_and_axis(),
    keepdims=st.booleans(),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_reduction_properties(name, shape_axis, keepdims, data, seed):
    shape, axis = shape_axis
    f, np_f, kw = REDUCTIONS[name]
    if name in ("max", "min", "std"):
        x = _distinct_values(data, shape)  # no ties; std > 0 unless a single element
    else:
        x = data.draw(_array(shape, st.floats(0.5, 1.5)), label="x")
    count = int(
        np.prod([shape[a] for a in (range(len(shape)) if axis is None else np.atleast_1d(axis))])
    )
    if name == "std" and count < 2:
        return  # the standard deviation of one element is 0, where sqrt has no derivative
    out = f(x, axis=axis, keepdims=keepdims, **kw)
    expected = np_f(x, axis=axis, keepdims=keepdims, **kw)
    assert not isinstance(out, ds.Tracer)
    assert np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)
    weights = _direction(seed + 3, np.shape(expected))
    _check_gradient_properties(
        lambda a: dnp.sum(f(a, axis=axis, keepdims=keepdims, **kw) * weights), (x,), seed
    )


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@SETTINGS
@given(
    shape_axis=array_and_axis(min_dims=1),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_cumulative_properties(name, shape_axis, data, seed):
    shape, axis = shape_axis
    if isinstance(axis, tuple):
        axis = axis[0] if axis else None
    f, np_f = getattr(dnp, name), getattr(np, name)
    x = data.draw(_array(shape, st.floats(0.5, 1.5)), label="x")
    out = f(x, axis=axis)
    np.testing.assert_array_equal(out, np_f(x, axis=axis))
    weights = _direction(seed + 5, np.shape(out))
    _check_gradient_properties(lambda a: dnp.sum(f(a, axis=axis) * weights), (x,), seed)


@SETTINGS
@given(shape_axis=array_and_axis(), keepdims=st.booleans(), data=st.data())
def test_any_all_properties(shape_axis, keepdims, data):
    shape, axis = shape_axis
    m = data.draw(hnp.arrays(np.bool_, shape), label="mask")
    for f, np_f in ((dnp.any, np.any), (dnp.all, np.all)):
        np.testing.assert_array_equal(
            f(m, axis=axis, keepdims=keepdims), np_f(m, axis=axis, keepdims=keepdims)
        )
        seen = []

        def fun(a, f=f, seen=seen):
            seen.append(np.asarray(ds.concrete(f(a > 0.5, axis=axis, keepdims=keepdims))))
            return dnp.sum(a)

        ds.grad(fun)(m.astype(np.float64))
        np.testing.assert_array_equal(seen[0], np_f(m, axis=axis, keepdims=keepdims))
