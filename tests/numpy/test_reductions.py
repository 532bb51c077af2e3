"""Reductions of diffsys.numpy: values, derivatives against finite differences (forward and
reverse, second order) over axes and keepdims, exact gradients of prod at zeros, ties of
max/min, cumulative sums and products, dtypes and batching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp

AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]
KEEPDIMS = [False, True]


def distinct(rng, shape, spacing=0.1):
    """Values that are pairwise at least ``spacing`` apart (no ties for max/min)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n / 2.0).reshape(shape) * spacing + rng.uniform(0, 0.01)


def signed(rng, shape):
    """Magnitudes in [0.5, 1.5] with random signs (products stay well scaled)."""
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], size=shape)


# name -> (diffsys function, numpy function, sampler, extra keyword arguments)
REDUCTIONS = {
    "sum": (dnp.sum, np.sum, lambda rng, s: rng.standard_normal(s), {}),
    "mean": (dnp.mean, np.mean, lambda rng, s: rng.standard_normal(s), {}),
    "prod": (dnp.prod, np.prod, signed, {}),
    "max": (dnp.max, np.max, distinct, {}),
    "min": (dnp.min, np.min, distinct, {}),
    "amax": (dnp.amax, np.amax, distinct, {}),
    "amin": (dnp.amin, np.amin, distinct, {}),
    "var": (dnp.var, np.var, lambda rng, s: rng.standard_normal(s), {}),
    "var_ddof1": (dnp.var, np.var, lambda rng, s: rng.standard_normal(s), {"ddof": 1}),
    "std": (dnp.std, np.std, lambda rng, s: rng.standard_normal(s), {}),
    "std_ddof1": (dnp.std, np.std, lambda rng, s: rng.standard_normal(s), {"ddof": 1}),
}


def numeric_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian of ``f`` at ``x``, shaped ``f(x).shape + x.shape``."""
    x = np.asarray(x, dtype=np.float64)
    out_shape = np.shape(f(x))
    jac = np.zeros(out_shape + x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        jac[(Ellipsis,) + idx] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)
    return jac


def _is_plain(value) -> bool:
    return isinstance(value, np.ndarray | np.generic) and not isinstance(value, ds.Tracer)


def _reducer(name, axis, keepdims):
    f, _, _, kw = REDUCTIONS[name]
    return lambda a: f(a, axis=axis, keepdims=keepdims, **kw)


def _np_reducer(name, axis, keepdims):
    _, np_f, _, kw = REDUCTIONS[name]
    return lambda a: np_f(a, axis=axis, keepdims=keepdims, **kw)


def _reduced_size(shape, axis):
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    return int(np.prod([shape[a] for a in axes]))


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", KEEPDIMS)
def test_values_match_numpy(rng, name, axis, keepdims):
    x = REDUCTIONS[name][2](rng, (2, 3, 4))
    out = _reducer(name, axis, keepdims)(x)
    expected = _np_reducer(name, axis, keepdims)(x)
    assert _is_plain(out) and type(out) is type(expected)
    assert out.dtype == expected.dtype and np.shape(out) == np.shape(expected)
    np.testing.assert_array_equal(out, expected)
    # inside a transform the primal value is numpy's too
    primal, tangent = ds.jvp(_reducer(name, axis, keepdims), (x,), (np.ones_like(x),))
    np.testing.assert_allclose(primal, expected, rtol=1e-13, atol=1e-15)
    assert np.shape(tangent) == np.shape(expected)


@pytest.mark.parametrize("name", ["sum", "prod", "cumsum", "cumprod"])
def test_dtype_argument(name):
    x = np.arange(1.0, 7.0).reshape(2, 3)
    f, np_f = getattr(dnp, name), getattr(np, name)
    np.testing.assert_array_equal(f(x, axis=1, dtype=np.float32), np_f(x, axis=1, dtype=np.float32))
    seen = []

    def fun(a):
        out = f(a, axis=1, dtype=np.float32)
        seen.append(np.asarray(ds.concrete(out)))
        return dnp.sum(out)

    g = ds.grad(fun)(x)
    assert seen[0].dtype == np.float32
    np.testing.assert_array_equal(seen[0], np_f(x, axis=1, dtype=np.float32))
    assert g.dtype == np.float64 and g.shape == x.shape


# --- derivatives against finite differences ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", KEEPDIMS)
def test_reduction_grads(rng, name, axis, keepdims):
    x = REDUCTIONS[name][2](rng, (2, 3, 4))
    ds.check_grads(_reducer(name, axis, keepdims), (x,), order=2, modes=("fwd", "rev"))


SMALL_CASES = [((), None), ((5,), None), ((5,), 0), ((5,), -1), ((1, 4), 0)]


@pytest.mark.parametrize(
    "name,shape,axis",
    [
        (name, shape, axis)
        for name in sorted(REDUCTIONS)
        for shape, axis in SMALL_CASES
        # ddof=1 needs two elements (std of one element, ddof=0, is 0 with zero derivatives)
        if _reduced_size(shape, axis) >= 2 or not name.endswith("ddof1")
    ],
    ids=str,
)
def test_reduction_grads_small_shapes(rng, name, shape, axis):
    x = np.asarray(REDUCTIONS[name][2](rng, shape), dtype=np.float64).reshape(shape)
    for keepdims in KEEPDIMS:
        ds.check_grads(_reducer(name, axis, keepdims), (x,), order=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_std_and_var_of_one_element_are_zero_to_second_order(dtype):
    """One element per slice (ddof=0): std and var are 0 everywhere, and so are their
    derivatives; sqrt's infinite slope at 0 must not turn them into NaN."""
    one = dtype(3.5)
    for f in (dnp.std, dnp.var):
        assert ds.grad(f)(one) == 0 and ds.grad(f)(one).dtype == dtype
        assert ds.grad(ds.grad(f))(one) == 0
        assert ds.hvp(f, (one,), (dtype(1.0),)) == 0
        assert ds.jvp(ds.grad(f), (one,), (dtype(1.0),))[1] == 0
    col = np.arange(6, dtype=dtype).reshape(3, 1, 2)
    for axis, keepdims in itertools.product([1, -2, (1,)], KEEPDIMS):
        def f(a, axis=axis, keepdims=keepdims):
            return dnp.sum(dnp.std(a, axis=axis, keepdims=keepdims) ** 2 + dnp.std(a, axis=axis))

        np.testing.assert_array_equal(ds.grad(f)(col), np.zeros_like(col))
        np.testing.assert_array_equal(ds.hessian(f)(col), np.zeros(col.shape * 2, dtype))
        np.testing.assert_array_equal(
            ds.jacfwd(lambda a, axis=axis: dnp.std(a, axis=axis))(col),
            np.zeros((3, 2) + col.shape, dtype),
        )


def test_reduction_over_no_axes_is_identity(rng):
    x = rng.uniform(0.5, 1.5, (2, 3))
    for name in ["sum", "prod", "max", "min", "mean", "var"]:
        f = getattr(dnp, name)
        np.testing.assert_array_equal(f(x, axis=()), getattr(np, name)(x, axis=()))
        ds.check_grads(lambda a, f=f: f(a, axis=()), (x,), order=2)
        jac = ds.jacrev(lambda a, f=f: f(a, axis=()))(x)
        expected = np.zeros((2, 3, 2, 3)) if name == "var" else np.eye(6).reshape(2, 3, 2, 3)
        np.testing.assert_array_equal(jac, expected)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_analytic_gradients(rng, name):
    """Gradients against closed forms, independently of finite differences."""
    x = REDUCTIONS[name][2](rng, (3, 4))
    f = _reducer(name, 1, False)
    g = ds.grad(lambda a: dnp.sum(f(a) * np.arange(1.0, 4.0)))(x)
    w = np.arange(1.0, 4.0)[:, None]
    n = x.shape[1]
    centered = x - x.mean(axis=1, keepdims=True)
    expected = {
        "sum": np.ones_like(x) * w,
        "mean": np.ones_like(x) * w / n,
        "prod": w * np.prod(x, axis=1, keepdims=True) / x,
        "max": w * (x == x.max(axis=1, keepdims=True)),
        "amax": w * (x == x.max(axis=1, keepdims=True)),
        "min": w * (x == x.min(axis=1, keepdims=True)),
        "amin": w * (x == x.min(axis=1, keepdims=True)),
        "var": w * 2 * centered / n,
        "var_ddof1": w * 2 * centered / (n - 1),
        "std": w * centered / (n * x.std(axis=1, keepdims=True)),
        "std_ddof1": w * centered / ((n - 1) * x.std(axis=1, ddof=1, keepdims=True)),
    }[name]
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "shape,axis", [((0,), None), ((0, 3), 0), ((2, 0), 1), ((0, 3), 1)], ids=str
)
def test_empty_reductions(shape, axis):
    x = np.zeros(shape)
    for name in ["sum", "prod", "mean"]:
        if name == "mean" and _reduced_size(shape, axis) == 0:
            continue  # numpy warns and returns nan
        f, np_f = getattr(dnp, name), getattr(np, name)
        np.testing.assert_array_equal(f(x, axis=axis), np_f(x, axis=axis))
        g = ds.grad(lambda a, f=f: dnp.sum(f(a, axis=axis)))(x)
        assert g.shape == shape
        _, t = ds.jvp(lambda a, f=f: f(a, axis=axis), (x,), (np.ones(shape),))
        assert np.shape(t) == np.shape(np_f(x, axis=axis))
        np.testing.assert_array_equal(t, np.zeros_like(np_f(x, axis=axis)))


def test_var_and_std_of_complex():
    z = np.array([[1 + 2j, 3 - 1j, 0.5j], [2.0 + 0j, -1 - 1j, 1 + 1j]])
    for f, np_f in ((dnp.var, np.var), (dnp.std, np.std)):
        for axis, ddof in ((None, 0), (1, 1), (0, 0)):
            np.testing.assert_allclose(f(z, axis=axis, ddof=ddof), np_f(z, axis=axis, ddof=ddof))
            primal, _ = ds.jvp(lambda a: f(a, axis=axis, ddof=ddof), (z,), (np.ones_like(z),))
            np.testing.assert_allclose(primal, np_f(z, axis=axis, ddof=ddof), rtol=1e-14)
            ds.check_grads(lambda a: f(a, axis=axis, ddof=ddof), (z,), order=2, modes=("fwd",))
    # gradient of the variance: (2 / (n - ddof)) conj(z - mean), in the convention where
    # grad |z|^2 = 2 conj(z)
    g = ds.grad(lambda a: dnp.var(a, ddof=1))(z[0])
    np.testing.assert_allclose(g, 2 / 2 * np.conj(z[0] - z[0].mean()), rtol=1e-14)


@pytest.mark.parametrize(
    "name", ["sum", "mean", "prod", "max", "min", "var", "std", "cumsum", "cumprod"]
)
def test_reductions_of_sequences_holding_tracers(name):
    """np.sum([a, b]) works on lists; dnp.sum([a, b]) must too when a and b are traced."""
    f, np_f = getattr(dnp, name), getattr(np, name)
    a, b = 0.7, np.array(1.9)
    np.testing.assert_array_equal(f([a, b, 1.2]), np_f([a, b, 1.2]))
    np.testing.assert_array_equal(f(((a, b), (b, a)), axis=0), np_f(((a, b), (b, a)), axis=0))

    def fun(u, v):
        return dnp.sum(f([u * v, v, u + 0.5]))

    grads = ds.grad(fun, argnums=(0, 1))(a, b)
    ds.check_grads(fun, (a, b), order=2)
    # the same function written with an explicit array
    ref = ds.grad(lambda u, v: dnp.sum(f(dnp.stack([u * v, v, u + 0.5]))), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(grads, ref, rtol=1e-15)
    flags = []
    ds.grad(lambda u: (flags.append(ds.concrete(dnp.any([u > 1.0, u < 0.0]))), u)[1])(a)
    assert flags == [False]


ZERO_D_NAMES = ["sum", "prod", "max", "min", "amax", "amin", "mean", "var", "std"]


@pytest.mark.parametrize("name", ZERO_D_NAMES + ["cumsum", "cumprod", "any", "all"])
@pytest.mark.parametrize("axis", [0, -1, 1, (0,), (), None], ids=str)
def test_axis_of_zero_d_arrays_follows_numpy(name, axis):
    """NumPy's ufunc reductions accept axis 0 / -1 on 0-d arrays (mean/var/std do not;
    cumsum gives shape (1,)): traced code must accept and reject the same calls."""
    f, np_f = getattr(dnp, name), getattr(np, name)
    x = np.array(0.7)
    logical = name in ("any", "all")
    seen = []

    def record(a):
        seen.append(np.asarray(ds.concrete(f(a > 0.5 if logical else a, axis=axis))))
        return dnp.sum(a)  # the reduction is off the path of the gradient

    try:
        expected = np_f(x > 0.5 if logical else x, axis=axis)
    except (np.exceptions.AxisError, TypeError, ValueError) as e:
        with pytest.raises(type(e)):
            ds.grad(record)(x)
        return
    ds.grad(record)(x)
    assert seen[0].shape == np.shape(expected)
    np.testing.assert_allclose(seen[0], expected, rtol=1e-15)
    # a function of a row behaves the same under vmap (where the rows are traced)
    rows = np.array([0.7, 1.3, 0.2])
    prep = (lambda r: r > 0.5) if logical else (lambda r: r)
    np.testing.assert_allclose(
        ds.vmap(lambda r: f(prep(r), axis=axis))(rows),
        np.stack([np_f(prep(r), axis=axis) for r in rows]),
    )
    if logical:
        return
    assert np.shape(ds.grad(lambda a: dnp.sum(f(a, axis=axis)))(x)) == ()
    ds.check_grads(lambda a: f(a, axis=axis), (x,), order=2)


# --- prod at exact zeros: exact gradients, Hessians and JVPs (brute force) --------------------


def _prod_grad_brute(x):
    return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


def _prod_hessian_brute(x):
    n = x.size
    h = np.zeros((n, n))
    for i, j in itertools.permutations(range(n), 2):
        h[i, j] = np.prod(np.delete(x, [i, j]))
    return h


ZERO_CASES = {
    "one_zero": [0.0, 2.0, -3.0, 0.5],
    "two_zeros": [0.0, 2.0, 0.0, 1.5],
    "three_zeros": [0.0, 0.0, 0.0, 1.5],
    "no_zero": [1.5, 2.0, -3.0, 0.5],
    "single_zero": [0.0],
    "zero_last": [2.0, -1.5, 0.0],
}


@pytest.mark.parametrize("case", sorted(ZERO_CASES))
def test_prod_at_zeros_brute_force(case):
    x = np.array(ZERO_CASES[case])
    np.testing.assert_array_equal(ds.grad(dnp.prod)(x), _prod_grad_brute(x))
    tangent = np.arange(1.0, x.size + 1.0)
    _, t = ds.jvp(dnp.prod, (x,), (tangent,))
    np.testing.assert_allclose(t, _prod_grad_brute(x) @ tangent, rtol=1e-14)
    h = _prod_hessian_brute(x)
    np.testing.assert_array_equal(ds.hessian(dnp.prod)(x), h)
    np.testing.assert_array_equal(ds.jacfwd(ds.grad(dnp.prod))(x), h)
    np.testing.assert_array_equal(ds.jacrev(ds.jacfwd(dnp.prod))(x), h)
    ds.check_grads(dnp.prod, (x,), order=2)


@pytest.mark.parametrize("axis", [0, 1, -1, None, (0, 1)], ids=str)
@pytest.mark.parametrize("keepdims", KEEPDIMS)
def test_prod_at_zeros_along_axes(axis, keepdims):
    x = np.array([[0.0, 2.0, 0.0, 1.5], [0.5, 0.0, 3.0, -2.0], [1.5, -0.5, 2.0, 1.0]])
    f = lambda a: dnp.prod(a, axis=axis, keepdims=keepdims)  # noqa: E731
    ds.check_grads(f, (x,), order=2)
    # brute force, one reduction slice at a time
    jac = ds.jacrev(f)(x)
    moved_axes = tuple(range(x.ndim)) if axis is None else np.atleast_1d(axis) % x.ndim
    expected = numeric_jacobian(f, x)  # exact here: prod is linear in each coordinate
    np.testing.assert_allclose(jac, expected, rtol=1e-9, atol=1e-9)
    g = ds.grad(lambda a: dnp.sum(f(a)))(x)
    for idx in np.ndindex(x.shape):
        slice_idx = tuple(slice(None) if d in moved_axes else i for d, i in enumerate(idx))
        members = x[slice_idx].ravel()
        pos = np.ravel_multi_index(
            tuple(i for d, i in enumerate(idx) if d in moved_axes),
            tuple(x.shape[d] for d in moved_axes),
        )
        assert g[idx] == np.prod(np.delete(members, pos))


# --- max / min: ties split the gradient equally ---------------------------------------------


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
def test_extremum_ties_split_gradient(name):
    f = getattr(dnp, name)
    sgn = 1.0 if name.endswith("max") else -1.0
    x = sgn * np.array([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_array_equal(ds.grad(f)(x), [0.0, 0.5, 0.5, 0.0])
    x3 = sgn * np.array([3.0, 1.0, 3.0, 3.0])
    np.testing.assert_allclose(ds.grad(f)(x3), [1 / 3, 0.0, 1 / 3, 1 / 3], rtol=1e-15)
    np.testing.assert_array_equal(ds.grad(f)(np.full(4, 2.0)), np.full(4, 0.25))
    # forward mode: the mean of the tangents of the tied elements
    t = np.array([1.0, 2.0, 4.0, 8.0])
    _, t_out = ds.jvp(f, (x,), (t,))
    assert t_out == 3.0
    # along an axis, with keepdims
    m = sgn * np.array([[1.0, 5.0, 5.0], [4.0, 4.0, 4.0], [2.0, 0.0, 1.0]])
    for keepdims in KEEPDIMS:
        g = ds.grad(
            lambda a, k=keepdims: dnp.sum(
                f(a, axis=1, keepdims=k) * np.array([1.0, 2.0, 3.0]).reshape((3, 1) if k else (3,))
            )
        )(m)
        expected = np.array([[0.0, 0.5, 0.5], [2 / 3, 2 / 3, 2 / 3], [3.0, 0.0, 0.0]])
        np.testing.assert_allclose(g, expected, rtol=1e-15)
    # brute force over all axes choices of a tied array
    rng = np.random.default_rng(7)
    z = sgn * rng.integers(0, 3, (3, 4)).astype(float)
    for axis in [0, 1, None]:
        g = ds.grad(lambda a, ax=axis: dnp.sum(f(a, axis=ax)))(z)
        ext = (np.max if sgn > 0 else np.min)(z, axis=axis, keepdims=True)
        hit = z == ext
        np.testing.assert_allclose(g, hit / hit.sum(axis=axis, keepdims=True), rtol=1e-15)


def test_extremum_tie_hessian_is_zero():
    x = np.array([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_array_equal(ds.hessian(dnp.max)(x), np.zeros((4, 4)))
    np.testing.assert_array_equal(ds.jacfwd(ds.jacrev(dnp.min))(x), np.zeros((4, 4)))


# --- cumulative sums and products ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2], ids=str)
def test_cumulative_grads(rng, name, axis):
    f, np_f = getattr(dnp, name), getattr(np, name)
    x = rng.uniform(0.5, 1.5, (2, 3, 4))  # positive: cumprod's rule divides by the input
    out = f(x, axis=axis)
    assert _is_plain(out)
    np.testing.assert_array_equal(out, np_f(x, axis=axis))
    ds.check_grads(lambda a: f(a, axis=axis), (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_cumulative_small_shapes(rng, name):
    f, np_f = getattr(dnp, name), getattr(np, name)
    for shape, axis in [((1,), 0), ((5,), None), ((5,), 0), ((5,), -1), ((), None)]:
        x = np.asarray(rng.uniform(0.5, 1.5, shape)).reshape(shape)
        np.testing.assert_array_equal(f(x, axis=axis), np_f(x, axis=axis))
        ds.check_grads(lambda a, axis=axis: f(a, axis=axis), (x,), order=2)
        primal, _ = ds.jvp(lambda a, axis=axis: f(a, axis=axis), (x,), (np.ones_like(x),))
        np.testing.assert_allclose(primal, np_f(x, axis=axis), rtol=1e-15)


def test_cumulative_jacobians_brute_force(rng):
    x = rng.uniform(0.5, 1.5, 5)
    np.testing.assert_array_equal(ds.jacrev(dnp.cumsum)(x), np.tril(np.ones((5, 5))))
    np.testing.assert_array_equal(ds.jacfwd(dnp.cumsum)(x), np.tril(np.ones((5, 5))))
    expected = np.zeros((5, 5))
    for j, i in itertools.product(range(5), range(5)):
        if i <= j:
            expected[j, i] = np.prod(np.delete(x[: j + 1], i))
    np.testing.assert_allclose(ds.jacrev(dnp.cumprod)(x), expected, rtol=1e-13)
    np.testing.assert_allclose(ds.jacfwd(dnp.cumprod)(x), expected, rtol=1e-13)


# --- any / all ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["any", "all"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", KEEPDIMS)
def test_logical_reductions(rng, name, axis, keepdims):
    f, np_f = getattr(dnp, name), getattr(np, name)
    masks = [
        rng.random((2, 3, 4)) < 0.5,
        rng.random((2, 3, 4)) < 0.9,
        np.zeros((2, 3, 4), dtype=bool),
        np.ones((2, 3, 4), dtype=bool),
    ]
    for m in masks:
        out = f(m, axis=axis, keepdims=keepdims)
        assert _is_plain(out)
        np.testing.assert_array_equal(out, np_f(m, axis=axis, keepdims=keepdims))
        np.testing.assert_array_equal(
            ds.vmap(lambda r: f(r, axis=None if axis is None else 0, keepdims=keepdims))(m),
            np.stack([np_f(r, axis=None if axis is None else 0, keepdims=keepdims) for r in m]),
        )
    # on comparisons of traced values: the value is numpy's and carries no derivative
    x = rng.standard_normal((2, 3, 4))
    seen = []

    def fun(a):
        flags = f(a > 0, axis=axis, keepdims=keepdims)
        seen.append(np.asarray(ds.concrete(flags)))
        return dnp.sum(dnp.where(flags, 2.0, 1.0) * dnp.sum(a, axis=axis, keepdims=keepdims))

    g = ds.grad(fun)(x)
    ds.jvp(fun, (x,), (np.ones_like(x),))
    expected_flags = np_f(x > 0, axis=axis, keepdims=keepdims)
    for v in seen:
        np.testing.assert_array_equal(v, expected_flags)
    weights = np.where(expected_flags, 2.0, 1.0)
    np.testing.assert_array_equal(
        g, np.broadcast_to(_expand(weights, axis, keepdims, x.ndim), x.shape)
    )


def _expand(r, axis, keepdims, ndim):
    if keepdims:
        return r
    axes = tuple(range(ndim)) if axis is None else tuple(np.atleast_1d(axis) % ndim)
    return np.expand_dims(r, axes)


# --- float32 stays float32 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fun",
    [
        lambda a: dnp.sum(a, axis=1),
        lambda a: dnp.mean(a, axis=(0, 1)),
        lambda a: dnp.prod(a, axis=0),
        lambda a: dnp.max(a, axis=1),
        lambda a: dnp.min(a),
        lambda a: dnp.amax(a, axis=-1, keepdims=True),
        lambda a: dnp.var(a, axis=1),
        lambda a: dnp.std(a, axis=0, ddof=1),
        lambda a: dnp.cumsum(a, axis=1),
        lambda a: dnp.cumprod(a),
    ],
    ids=["sum", "mean", "prod", "max", "min", "amax", "var", "std", "cumsum", "cumprod"],
)
def test_float32_preserved(rng, fun):
    x = rng.uniform(0.5, 1.5, (3, 4)).astype(np.float32)
    out = fun(x)
    assert np.asarray(out).dtype == np.float32
    g = ds.grad(lambda a: dnp.sum(fun(a)))(x)
    assert g.dtype == np.float32
    primal, tangent = ds.jvp(fun, (x,), (np.ones_like(x),))
    assert np.asarray(primal).dtype == np.float32
    assert np.asarray(tangent).dtype == np.float32, f"jvp tangent is {np.asarray(tangent).dtype}"
    _, vjp_fn = ds.vjp(fun, x)
    (ct,) = vjp_fn(np.ones_like(out))
    assert ct.dtype == np.float32


# --- vmap: batching rules of the reductions ---------------------------------------------------


def _stack_rows(f, xs):
    return np.stack([np.asarray(f(x)) for x in xs])


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("keepdims", KEEPDIMS)
def test_vmap_reductions(rng, name, axis, keepdims):
    xs = REDUCTIONS[name][2](rng, (4, 2, 3))
    f = _reducer(name, axis, keepdims)
    np.testing.assert_allclose(ds.vmap(f)(xs), _stack_rows(f, xs), rtol=1e-14, atol=1e-15)
    g = ds.grad(lambda a: dnp.sum(f(a) * dnp.cos(f(a))))
    np.testing.assert_allclose(ds.vmap(g)(xs), _stack_rows(g, xs), rtol=1e-13, atol=1e-15)
    # the batch on another axis
    moved = np.moveaxis(xs, 0, 2)
    np.testing.assert_allclose(
        ds.vmap(f, in_axes=2)(moved), _stack_rows(f, xs), rtol=1e-14, atol=1e-15
    )


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("axis", [None, 0, -1], ids=str)
def test_vmap_cumulative(rng, name, axis):
    f = lambda a: getattr(dnp, name)(a, axis=axis)  # noqa: E731
    xs = rng.uniform(0.5, 1.5, (4, 2, 3))
    np.testing.assert_allclose(ds.vmap(f)(xs), _stack_rows(f, xs), rtol=1e-15)
    g = ds.grad(lambda a: dnp.sum(dnp.sin(f(a))))
    np.testing.assert_allclose(ds.vmap(g)(xs), _stack_rows(g, xs), rtol=1e-13)


def test_vmap_with_unbatched_operand(rng):
    xs = rng.standard_normal((5, 3, 4))
    w = rng.standard_normal((4,))

    def f(a, b):
        return (
            dnp.sum(a * b, axis=1)
            + dnp.max(a - b, axis=0).sum()
            + dnp.prod(dnp.tanh(a + b), axis=-1)
        )

    out = ds.vmap(f, in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(out, np.stack([f(x, w) for x in xs]), rtol=1e-14)
    g = ds.grad(lambda a, b: dnp.sum(f(a, b)), argnums=(0, 1))
    gx, gw = ds.vmap(g, in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(gx, np.stack([g(x, w)[0] for x in xs]), rtol=1e-13)
    np.testing.assert_allclose(gw, np.stack([g(x, w)[1] for x in xs]), rtol=1e-13)
    ws = rng.standard_normal((5, 4))
    out = ds.vmap(f, in_axes=(None, 0))(xs[0], ws)
    np.testing.assert_allclose(out, np.stack([f(xs[0], v) for v in ws]), rtol=1e-14)


def test_vmap_prod_with_zeros_and_its_hessian():
    xs = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 1.5], [1.0, 2.0, 3.0]])
    g = ds.vmap(ds.grad(dnp.prod))(xs)
    np.testing.assert_array_equal(g, np.stack([_prod_grad_brute(x) for x in xs]))
    h = ds.vmap(ds.hessian(dnp.prod))(xs)
    np.testing.assert_array_equal(h, np.stack([_prod_hessian_brute(x) for x in xs]))


# --- jacfwd / jacrev / hessian agree with each other and with finite differences ---------------


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", [None, 1, (0, -1)], ids=str)
def test_jacobians_agree(rng, name, axis):
    x = REDUCTIONS[name][2](rng, (2, 3, 2))
    f = _reducer(name, axis, False)
    jf, jr = ds.jacfwd(f)(x), ds.jacrev(f)(x)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jf, numeric_jacobian(f, x), rtol=1e-6, atol=1e-7)

    def total(a):
        return dnp.sum(dnp.sin(f(a)))

    h = ds.hessian(total)(x)
    np.testing.assert_allclose(h, ds.jacfwd(ds.jacrev(total))(x), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, ds.jacrev(ds.jacfwd(total))(x), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, numeric_jacobian(ds.grad(total), x), rtol=1e-6, atol=1e-6)


def test_hessians_of_a_composition(rng):
    x = rng.uniform(0.5, 1.5, (3, 4))

    def f(a):
        z = dnp.cumsum(a, axis=1) * dnp.mean(a, axis=0)
        return (
            dnp.sum(dnp.std(z, axis=1, ddof=1))
            + dnp.prod(a, axis=0).sum()
            + dnp.max(dnp.sin(a), axis=1).sum()
            + dnp.var(dnp.cumprod(a, axis=0))
        )

    ds.check_grads(f, (x,), order=2)
    h = ds.hessian(f)(x)
    np.testing.assert_allclose(h, ds.jacrev(ds.jacfwd(f))(x), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, numeric_jacobian(ds.grad(f), x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, np.transpose(h, (2, 3, 0, 1)), rtol=1e-12, atol=1e-13)
