"""NaN-aware reductions, averages, order statistics and closeness tests: values equal NumPy's
(plain and traced), derivatives match finite differences (order 2, forward and reverse), NaN
entries get zero gradient, vmap equals stacking, float32 stays float32."""

from __future__ import annotations

import numpy as np
import pytest
from surface_check import check

import diffsys as ds
import diffsys.numpy as dnp


def distinct(*shape, seed=0):
    """Values pairwise at least 0.1 apart (no ties in sorts and extrema)."""
    rng = np.random.default_rng(seed + sum(shape))
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2.0) * 0.1 + rng.uniform(0, 0.01)).reshape(shape)


def with_nans(*shape, seed=0):
    x = distinct(*shape, seed=seed)
    flat = x.reshape(-1)
    flat[::7] = np.nan  # no slice along any axis is all NaN for the shapes used here
    return x


def on_values(fn, template):
    """``fn`` as a function of the non-NaN entries of ``template`` (NaNs stay in place):
    finite differences can't perturb a NaN."""
    mask = ~np.isnan(template)

    def g(m, v):
        if m is np:
            x = template.astype(v.dtype)
            x[mask] = v
            return fn(m, x)
        return fn(m, dnp.at(template.astype(v.dtype))[mask].set(v))

    return g, template[mask]


AXES = [None, 0, -1, (0, 2)]

NAN_FUNCS = {
    "nansum": lambda m, x, ax, kd: m.nansum(x, axis=ax, keepdims=kd),
    "nanmean": lambda m, x, ax, kd: m.nanmean(x, axis=ax, keepdims=kd),
    "nanvar": lambda m, x, ax, kd: m.nanvar(x, axis=ax, keepdims=kd),
    "nanvar_ddof": lambda m, x, ax, kd: m.nanvar(x, axis=ax, ddof=1, keepdims=kd),
    "nanstd": lambda m, x, ax, kd: m.nanstd(x, axis=ax, keepdims=kd),
    "nanmax": lambda m, x, ax, kd: m.nanmax(x, axis=ax, keepdims=kd),
    "nanmin": lambda m, x, ax, kd: m.nanmin(x, axis=ax, keepdims=kd),
    "ptp": lambda m, x, ax, kd: m.ptp(m.where(m.isnan(x), 0.05, x), axis=ax, keepdims=kd),
    "median": lambda m, x, ax, kd: m.median(m.where(m.isnan(x), 0.05, x), axis=ax, keepdims=kd),
}


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(NAN_FUNCS))
def test_nan_reductions(name, axis):
    fn = NAN_FUNCS[name]
    g, v = on_values(lambda m, x: fn(m, x, axis, axis == 0), with_nans(3, 4, 5))
    check(g, v)


def test_nan_entries_get_zero_gradient():
    x = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, 3.0]])
    for f in (dnp.nansum, dnp.nanmean, dnp.nanvar, dnp.nanmax, dnp.nanmin):
        g = ds.grad(lambda x, f=f: dnp.sum(f(x, axis=1)))(x)
        assert np.all(g[np.isnan(x)] == 0), f
        assert np.all(np.isfinite(g)), f
    # All-NaN slices give NaN values, as NumPy (which also warns).
    with pytest.warns(RuntimeWarning):
        want = np.nanmax(x, axis=0)
    np.testing.assert_array_equal(ds.vjp(lambda x: dnp.nanmax(x, axis=0), x)[0], want)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_nancumulative(axis):
    x = with_nans(3, 4)
    check(*on_values(lambda m, x: m.nancumsum(x, axis=axis), x))
    check(*on_values(lambda m, x: m.nancumprod(x * 0.3 + 1.5, axis=axis), x))


QUANTILES = [
    ("median_even", lambda m, x: m.median(x), (2, 4)),
    ("median_odd_axis", lambda m, x: m.median(x, axis=1), (2, 5)),
    ("median_axes_keep", lambda m, x: m.median(x, axis=(0, 2), keepdims=True), (3, 2, 3)),
    ("quantile_scalar", lambda m, x: m.quantile(x, 0.3, axis=0), (5, 3)),
    (
        "quantile_array",
        lambda m, x: m.quantile(x, np.array([0.0, 0.25, 0.9, 1.0]), axis=-1),
        (3, 6),
    ),
    (
        "quantile_2d_q_keep",
        lambda m, x: m.quantile(x, np.array([[0.1], [0.7]]), keepdims=True),
        (3, 4),
    ),
    ("percentile", lambda m, x: m.percentile(x, [10, 50, 75], axis=1), (2, 7)),
    ("percentile_none", lambda m, x: m.percentile(x, 33.0), (3, 3)),
]


@pytest.mark.parametrize("name,fn,shape", QUANTILES, ids=[c[0] for c in QUANTILES])
def test_quantiles(name, fn, shape):
    check(fn, distinct(*shape))


def test_quantile_is_differentiable_in_q():
    x = distinct(7)
    ds.check_grads(lambda q: dnp.quantile(x, q), (np.array([0.13, 0.52, 0.88]),), order=2)
    s = np.sort(x)
    g = ds.grad(lambda q: dnp.quantile(x, q))(0.4)  # between order statistics 2 and 3 (of 7)
    np.testing.assert_allclose(g, (s[3] - s[2]) * 6)
    np.testing.assert_allclose(
        ds.vjp(lambda q: dnp.percentile(x, q), 40.0)[0], np.percentile(x, 40.0)
    )


def test_median_gradient_splits_the_middle_pair():
    x = np.array([4.0, 1.0, 3.0, 2.0])
    np.testing.assert_array_equal(ds.grad(dnp.median)(x), [0.0, 0.0, 0.5, 0.5])


AVERAGES = [
    ("no_weights", lambda m, x, w: m.average(x, axis=1) + 0 * w[0, 0], (3, 4), (3, 4)),
    ("full", lambda m, x, w: m.average(x, weights=w), (3, 4), (3, 4)),
    ("full_axis", lambda m, x, w: m.average(x, axis=0, weights=w), (3, 4), (3, 4)),
    ("1d_axis", lambda m, x, w: m.average(x, axis=1, weights=w), (3, 4), (4,)),
    ("1d_axis0_keep", lambda m, x, w: m.average(x, axis=0, weights=w, keepdims=True), (3, 4), (3,)),
    (
        "returned",
        lambda m, x, w: m.stack(m.average(x, axis=-1, weights=w, returned=True)),
        (2, 3),
        (3,),
    ),
]


@pytest.mark.parametrize("name,fn,xs,ws", AVERAGES, ids=[c[0] for c in AVERAGES])
def test_average(name, fn, xs, ws):
    x = distinct(*xs)
    w = np.random.default_rng(len(name)).uniform(0.5, 2.0, ws)
    np.testing.assert_allclose(fn(dnp, x, w), fn(np, x, w))
    np.testing.assert_allclose(
        ds.vjp(lambda x, w: fn(dnp, x, w), x, w)[0], fn(np, x, w), rtol=1e-13
    )
    ds.check_grads(lambda x, w: fn(dnp, x, w), (x, w), order=2)
    got = ds.vmap(lambda x: fn(dnp, x, w))(np.stack([x, 2 * x]))
    np.testing.assert_allclose(got, np.stack([fn(np, x, w), fn(np, 2 * x, w)]), rtol=1e-13)


def test_average_weights_errors():
    x = distinct(3, 4)
    with pytest.raises(TypeError):
        ds.grad(lambda x: dnp.average(x, weights=np.ones(4)))(x)
    with pytest.raises(ValueError):
        ds.grad(lambda x: dnp.average(x, axis=0, weights=np.ones(4)))(x)


def test_values_only_functions():
    x = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])
    y = x + np.array([[1e-9, 1e-3, 0.0], [0.0, 1.0, 1e-10]])
    for fn in (
        lambda m, x: m.count_nonzero(x),
        lambda m, x: m.count_nonzero(x, axis=1),
        lambda m, x: m.count_nonzero(x, axis=0, keepdims=True),
        lambda m, x: m.isclose(x, y),
        lambda m, x: m.isclose(x, y, rtol=0.0, atol=1e-3),
    ):
        want = fn(np, x)
        np.testing.assert_array_equal(fn(dnp, x), want)
        out, t = ds.jvp(lambda x, fn=fn: fn(dnp, x), (x,), (np.ones_like(x),))
        np.testing.assert_array_equal(out, want)
        assert np.asarray(out).dtype == np.asarray(want).dtype
        got = ds.vmap(lambda x, fn=fn: fn(dnp, x))(np.stack([x, y]))
        np.testing.assert_array_equal(got, np.stack([want, fn(np, y)]))
    assert dnp.allclose(x, y, atol=1e-2) is False
    seen = []
    ds.grad(lambda x: seen.append(dnp.allclose(x, y, atol=2.0)) or dnp.sum(x))(x)
    assert seen == [True]
    assert dnp.isclose(np.nan, np.nan, equal_nan=True)


def test_quantile_of_empty_raises_as_numpy():
    with pytest.raises(IndexError):
        np.quantile(np.zeros(0), 0.5)
    with pytest.raises(IndexError):
        ds.vjp(lambda v: dnp.quantile(v, 0.5), np.zeros(0))
    with pytest.raises(ValueError):
        ds.vjp(lambda v: dnp.quantile(v, 1.5), np.zeros(3))


def test_quantiles_of_slices_with_nan_are_nan():
    x = np.array([[1.0, np.nan, 3.0, 0.5], [2.0, 1.0, 0.0, 4.0]])
    for fn in (
        lambda m, v: m.median(v, axis=1),
        lambda m, v: m.median(v, axis=0),
        lambda m, v: m.quantile(v, [0.2, 0.9], axis=1),
        lambda m, v: m.percentile(v, 30),
    ):
        want = fn(np, x)
        np.testing.assert_array_equal(ds.vjp(lambda v, fn=fn: fn(dnp, v), x)[0], want)
        np.testing.assert_array_equal(
            ds.vmap(lambda v, fn=fn: fn(dnp, v))(np.stack([x, x])), [want, want]
        )
    g = ds.grad(lambda v: dnp.sum(dnp.median(v, axis=1)))(x)
    np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
