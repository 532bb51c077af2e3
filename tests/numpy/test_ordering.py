"""Shape, ordering, gather and sort functions: values equal NumPy's (plain and traced),
derivatives match finite differences (order 2, forward and reverse), vmap equals stacking,
float32 stays float32."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from surface_check import check

import diffsys as ds
import diffsys.numpy as dnp

# NumPy 2 deprecates 2-element vectors in cross; they are still supported (and tested).
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")


def rnd(*shape, seed=0, dtype=np.float64):
    return (
        np.random.default_rng(seed + 7 * len(shape) + sum(shape))
        .standard_normal(shape)
        .astype(dtype)
    )


def put_along(m, arr, indices, values, axis):
    """``put_along_axis`` as a function: NumPy's works in place, diffsys returns a copy."""
    if m is np:
        arr = arr.copy()
        np.put_along_axis(arr, indices, values, axis)
        return arr
    return m.put_along_axis(arr, indices, values, axis)


CASES = [
    ("flip_none", lambda m, x: m.flip(x), (2, 3, 4)),
    ("flip_axis", lambda m, x: m.flip(x, 1), (2, 3, 4)),
    ("flip_axes", lambda m, x: m.flip(x, (0, -1)), (2, 3, 4)),
    ("fliplr", lambda m, x: m.fliplr(x), (3, 4)),
    ("flipud", lambda m, x: m.flipud(x), (3, 4, 2)),
    ("roll_flat", lambda m, x: m.roll(x, 5), (3, 4)),
    ("roll_axis", lambda m, x: m.roll(x, -2, axis=1), (3, 4)),
    ("roll_multi", lambda m, x: m.roll(x, (1, 3), axis=(0, 1)), (3, 4)),
    ("rot90_1", lambda m, x: m.rot90(x), (3, 4)),
    ("rot90_2", lambda m, x: m.rot90(x, 2), (3, 4)),
    ("rot90_3_axes", lambda m, x: m.rot90(x, 3, axes=(1, 2)), (2, 3, 4)),
    ("rot90_neg", lambda m, x: m.rot90(x, -1, axes=(2, 0)), (2, 3, 4)),
    ("tile_int", lambda m, x: m.tile(x, 3), (2, 3)),
    ("tile_tuple", lambda m, x: m.tile(x, (2, 1, 2)), (2, 3)),
    ("tile_short", lambda m, x: m.tile(x, (2,)), (2, 3)),
    ("repeat_flat", lambda m, x: m.repeat(x, 2), (2, 3)),
    ("repeat_axis", lambda m, x: m.repeat(x, [1, 0, 3], axis=1), (2, 3)),
    ("pad_constant", lambda m, x: m.pad(x, ((1, 2), (0, 3))), (2, 3)),
    (
        "pad_constant_val",
        lambda m, x: m.pad(x, 2, constant_values=((1.5, -2.0), (3.0, 4.0))),
        (2, 3),
    ),
    ("pad_edge", lambda m, x: m.pad(x, ((2, 1), (1, 3)), mode="edge"), (2, 3)),
    ("pad_reflect", lambda m, x: m.pad(x, ((2, 1), (4, 5)), mode="reflect"), (3, 3)),
    ("pad_symmetric", lambda m, x: m.pad(x, 2, mode="symmetric"), (3, 2)),
    ("pad_wrap", lambda m, x: m.pad(x, ((1, 4), (2, 0)), mode="wrap"), (3, 2)),
    ("pad_mean", lambda m, x: m.pad(x, ((1, 2), (2, 1)), mode="mean"), (3, 4)),
    ("pad_maximum", lambda m, x: m.pad(x, ((2, 0), (1, 3)), mode="maximum", stat_length=2), (3, 4)),
    ("pad_minimum", lambda m, x: m.pad(x, 2, mode="minimum", stat_length=((1, 3), (2, 9))), (3, 4)),
    ("pad_median", lambda m, x: m.pad(x, ((1, 1), (2, 0)), mode="median"), (3, 4)),
    ("pad_ramp", lambda m, x: m.pad(x, ((2, 3), (1, 2)), mode="linear_ramp"), (3, 4)),
    ("pad_ramp_ends", lambda m, x: m.pad(x, 3, mode="linear_ramp", end_values=(1.5, -2.0)), (2, 3)),
    ("pad_reflect_even", lambda m, x: m.pad(x, 2, mode="reflect", reflect_type="even"), (4,)),
    ("pad_1d", lambda m, x: m.pad(x, (3, 1), mode="reflect"), (4,)),
    ("diff", lambda m, x: m.diff(x), (3, 5)),
    ("diff_n2_axis0", lambda m, x: m.diff(x, n=2, axis=0), (4, 3)),
    ("diff_prepend", lambda m, x: m.diff(x, prepend=0.5, append=[[1.0]] * 3), (3, 4)),
    ("triu", lambda m, x: m.triu(x), (4, 4)),
    ("triu_k", lambda m, x: m.triu(x, 1), (3, 5)),
    ("tril_k_batch", lambda m, x: m.tril(x, -1), (2, 4, 3)),
    ("tril_1d", lambda m, x: m.tril(x), (3,)),
    ("diag_2d", lambda m, x: m.diag(x), (3, 4)),
    ("diag_2d_k", lambda m, x: m.diag(x, -1), (4, 3)),
    ("diag_1d", lambda m, x: m.diag(x), (3,)),
    ("diag_1d_k", lambda m, x: m.diag(x, 2), (3,)),
    ("diagonal", lambda m, x: m.diagonal(x, 1), (3, 4)),
    ("diagonal_axes", lambda m, x: m.diagonal(x, -1, 2, 0), (3, 2, 4)),
    ("trace", lambda m, x: m.trace(x), (4, 4)),
    ("trace_axes", lambda m, x: m.trace(x, 1, 1, 2), (2, 3, 4)),
    ("diagflat", lambda m, x: m.diagflat(x, -1), (2, 2)),
    ("kron_x", lambda m, x: m.kron(x, np.array([[1.0, -2.0], [0.5, 3.0]])), (2, 3)),
    ("kron_y", lambda m, x: m.kron(np.array([1.0, 2.0, -1.0]), x), (2, 2)),
    ("kron_self", lambda m, x: m.kron(x, x), (2, 3)),
    ("cross3", lambda m, x: m.cross(x, x[::-1] ** 2), (4, 3)),
    ("cross2", lambda m, x: m.cross(x, x[::-1] ** 2), (4, 2)),
    ("cross23", lambda m, x: m.cross(x[:, :2], x**2), (4, 3)),
    ("cross32_axis", lambda m, x: m.cross(x, x[:2] ** 2, axisa=0, axisb=0, axisc=0), (3, 2)),
    ("meshgrid_xy", lambda m, x: m.stack(m.meshgrid(x, x[:2] * 2, x[:3] ** 2)), (4,)),
    (
        "meshgrid_ij_sparse",
        lambda m, x: m.meshgrid(x, x[:2], indexing="ij", sparse=True)[1] + 0 * x[0],
        (4,),
    ),
    ("r_", lambda m, x: m.r_[x, 2.0, x[1:] ** 2, 0:3], (4,)),
    ("r_2d", lambda m, x: m.r_[x, x[:1] * 3], (2, 3)),
    ("c_", lambda m, x: m.c_[x, x**2, np.ones(4)], (4,)),
    ("c_2d", lambda m, x: m.c_[x, x[:, :1] * 3], (3, 2)),
    ("take_flat", lambda m, x: m.take(x, [[0, 5], [2, 2]]), (2, 3)),
    ("take_axis", lambda m, x: m.take(x, [2, 0, 2], axis=1), (2, 3)),
    ("take_scalar", lambda m, x: m.take(x, 1, axis=0), (2, 3)),
    ("take_wrap", lambda m, x: m.take(x, [-4, 7], axis=1, mode="wrap"), (2, 3)),
    ("take_clip", lambda m, x: m.take(x, [-4, 7], axis=1, mode="clip"), (2, 3)),
    ("take_along", lambda m, x: m.take_along_axis(x, np.array([[0, 2, 2, 1]]), 1), (3, 3)),
    ("take_along_none", lambda m, x: m.take_along_axis(x, np.array([5, 0, 0]), None), (2, 3)),
    (
        "put_along",
        lambda m, x: put_along(m, x, np.array([[0], [2]]), x[:, 1:2] ** 2, axis=1),
        (2, 3),
    ),
    ("put_along_scalar", lambda m, x: put_along(m, x, np.array([[1, 0, 1]]), 2.5, axis=0), (2, 3)),
    (
        "put_along_repeats",
        lambda m, x: put_along(m, x, np.array([[1, 1, 0], [2, 0, 2]]), x[:, ::-1] ** 2, axis=1),
        (2, 3),
    ),
    (
        "put_along_none",
        lambda m, x: put_along(
            m, x, np.array([4, 1, 4]), np.array([1.0, 2.0, 3.0]) * x[0, 0], None
        ),
        (2, 3),
    ),
    ("choose", lambda m, x: m.choose(np.array([[0, 1, 2], [2, 1, 0]]), [x, x**2, -x]), (2, 3)),
    ("choose_bcast", lambda m, x: m.choose(np.array([1, 0, 1]), [x, 2.0]), (2, 3)),
    ("select", lambda m, x: m.select([x > 0.5, x < -0.5], [x**2, 3 * x], default=x[0]), (4, 3)),
    ("compress", lambda m, x: m.compress([True, False, True], x, axis=1), (2, 3)),
    ("compress_flat", lambda m, x: m.compress([False, True, True, False, True], x), (2, 3)),
    ("sort", lambda m, x: m.sort(x), (3, 5)),
    ("sort_axis0", lambda m, x: m.sort(x, axis=0), (4, 2, 3)),
    ("sort_none", lambda m, x: m.sort(x, axis=None), (3, 4)),
    ("sort_values_of_square", lambda m, x: m.sort(x**2 - x, axis=-1), (2, 6)),
    ("partition", lambda m, x: m.partition(x, 2), (3, 6)),
    ("partition_multi", lambda m, x: m.partition(x, (0, 3), axis=0), (5, 2)),
    ("take_argsort", lambda m, x: m.take_along_axis(x, m.argsort(x[::-1], axis=0), 0), (4, 3)),
    ("unique", lambda m, x: m.unique(m.round(x, 0)), (3, 4)),
    ("unique_axis", lambda m, x: m.unique(m.concatenate([x, x[:1]]), axis=0), (3, 2)),
]


@pytest.mark.parametrize("name,fn,shape", CASES, ids=[c[0] for c in CASES])
def test_shape_and_gather(name, fn, shape):
    x = rnd(*shape)
    # unique's output shape depends on the values: no vmap over other values
    check(fn, x, vmap=not name.startswith("unique"))


def test_unique_values_and_gradient():
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0])
    vals, idx, inv, counts = dnp.unique(
        x, return_index=True, return_inverse=True, return_counts=True
    )
    for a, b in zip((vals, idx, inv, counts), np.unique(x, True, True, True), strict=True):
        np.testing.assert_array_equal(a, b)
    g = ds.grad(lambda x: dnp.sum(dnp.unique(x) * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(g, [3.0, 1.0, 0.0, 2.0, 0.0])


def test_sort_gradient_is_the_inverse_permutation():
    x = np.array([0.3, -1.0, 2.0, 0.1])
    w = np.array([1.0, 2.0, 3.0, 4.0])
    g = ds.grad(lambda x: dnp.sum(dnp.sort(x) * w))(x)
    np.testing.assert_array_equal(g, w[np.argsort(np.argsort(x))])
    np.testing.assert_array_equal(ds.jacfwd(dnp.sort)(x), np.eye(4)[np.argsort(x)])


def test_argsort_searchsorted_values_only():
    x = rnd(3, 4)
    out, t = ds.jvp(lambda x: dnp.argsort(x, axis=0), (x,), (np.ones_like(x),))
    np.testing.assert_array_equal(out, np.argsort(x, axis=0))
    a = np.sort(rnd(6))
    out = ds.vmap(lambda v: dnp.searchsorted(a, v, side="right"))(x)
    np.testing.assert_array_equal(out, np.searchsorted(a, x, side="right"))
    # The sorted array traced, and a sorter
    perm = np.array([3, 0, 5, 1, 4, 2])
    unsorted = np.empty(6)
    unsorted[perm] = a
    out, _ = ds.vjp(lambda a: dnp.searchsorted(a, x[0], sorter=dnp.argsort(a)), unsorted)
    np.testing.assert_array_equal(out, np.searchsorted(unsorted, x[0], sorter=np.argsort(unsorted)))


def test_pad_constant_values_are_differentiable():
    x = rnd(2, 3)

    def f(x, c):
        return dnp.pad(x, ((1, 0), (2, 1)), constant_values=c)

    c = np.array([[0.5, -1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(
        ds.vjp(f, x, c)[0], np.pad(x, ((1, 0), (2, 1)), constant_values=c)
    )
    ds.check_grads(f, (x, c), order=2)
    ds.check_grads(lambda x, c: f(x, c), (x, np.array(0.7)), order=2)


def test_vmap_sort_and_take_along_axis_batched_indices():
    x = rnd(5, 4)
    np.testing.assert_array_equal(ds.vmap(dnp.sort)(x), np.sort(x, axis=1))
    np.testing.assert_array_equal(
        ds.vmap(lambda r: dnp.partition(r, 1))(x)[:, 1], np.sort(x, axis=1)[:, 1]
    )
    idx = np.argsort(x, axis=1)
    got = ds.vmap(lambda r, i: dnp.take_along_axis(r, i, 0))(x, idx)
    np.testing.assert_array_equal(got, np.take_along_axis(x, idx, 1))
    # Hessian of a function of sorted values (jacfwd of jacrev uses vmap internally)
    h = ds.hessian(lambda v: dnp.sum(dnp.sort(v) ** 3 * np.arange(4.0)))(x[0])
    p = np.argsort(x[0])
    want = np.zeros((4, 4))
    want[p, p] = 6 * np.sort(x[0]) * np.arange(4.0)
    np.testing.assert_allclose(h, want, rtol=1e-12)


def test_errors():
    with pytest.raises(ValueError):
        ds.grad(lambda x: dnp.sum(dnp.cross(x, x)))(rnd(3, 4))
    with pytest.raises(ValueError):
        ds.grad(lambda x: dnp.sum(dnp.select([x > 0], [x, x])))(rnd(3))
    with pytest.raises(ValueError):
        ds.grad(lambda x: dnp.sum(dnp.take_along_axis(x, np.array([0]), 1)))(rnd(3, 4))


# --- properties over random shapes and axes ---------------------------------------------------

PROPERTY_FNS = {
    "sort": lambda m, x, ax, k: m.sort(x, axis=ax),
    "partition": lambda m, x, ax, k: m.partition(x, k % x.shape[ax], axis=ax),
    "flip": lambda m, x, ax, k: m.flip(x, axis=ax),
    "roll": lambda m, x, ax, k: m.roll(x, k - 2, axis=ax),
    "repeat": lambda m, x, ax, k: m.repeat(x, k % 3, axis=ax),
    "diff": lambda m, x, ax, k: m.diff(x, n=k % 2 + 1, axis=ax),
    "pad_reflect": lambda m, x, ax, k: m.pad(x, k % 3, mode="reflect") if min(x.shape) > 1 else x,
    "pad_wrap": lambda m, x, ax, k: m.pad(x, (k % 2, k % 3), mode="wrap"),
    "tile": lambda m, x, ax, k: m.tile(x, (k % 2 + 1, 2)),
    "quantile": lambda m, x, ax, k: m.quantile(x, (k % 5) / 4, axis=ax),
    "median": lambda m, x, ax, k: m.median(x, axis=ax),
    "take_along_argsort": lambda m, x, ax, k: m.take_along_axis(x, m.argsort(-x, axis=ax), ax),
}


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(PROPERTY_FNS)),
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
        elements=st.floats(-2.0, 2.0),
        unique=True,
    ),
    axis_seed=st.integers(0, 10),
    k=st.integers(0, 10),
)
def test_properties_random_shapes(name, x, axis_seed, k):
    """Values equal NumPy's under a transform; jacrev == jacfwd; vmap == stacking."""
    ax = axis_seed % x.ndim - x.ndim * (axis_seed % 2)  # negative axes too
    fn = PROPERTY_FNS[name]
    f = lambda v: fn(dnp, v, ax, k)  # noqa: E731
    want = np.asarray(fn(np, x, ax, k))
    out, _ = ds.vjp(f, x)
    np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ds.jacrev(f)(x), ds.jacfwd(f)(x), rtol=1e-12, atol=1e-14)
    batch = np.stack([x, -x])
    np.testing.assert_allclose(
        ds.vmap(f)(batch), np.stack([want, np.asarray(fn(np, -x, ax, k))]), rtol=1e-13, atol=1e-15
    )
