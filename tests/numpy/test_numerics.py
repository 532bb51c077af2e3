"""Numerical functions: values equal NumPy's (plain and traced), derivatives match finite
differences (order 2, forward and reverse), vmap equals stacking, float32 as NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from surface_check import check as _check

import diffsys as ds
import diffsys.numpy as dnp


def rnd(*shape, seed=0):
    return np.random.default_rng(seed + 7 * len(shape) + sum(shape)).standard_normal(shape)


def check(fn, *args, **kw):
    return _check(fn, *args, atol=1e-13, shift=0.25, **kw)


# Inputs kept away from kinks and jumps (integers for fmod, zero for copysign).
X = rnd(3, 4) * 3 + 0.123
Y = np.where(np.abs(rnd(4, seed=5)) < 0.3, 0.7, rnd(4, seed=5))
COORDS = np.array([0.1, 0.4, 1.2, 1.5])

CASES = [
    ("fix", lambda m, x: m.fix(x) * x, (X,)),
    ("fmod_x", lambda m, x: m.fmod(x, 0.7), (X,)),
    ("fmod_y", lambda m, y: m.fmod(X, y), (Y,)),
    ("fmod_neg", lambda m, x: m.fmod(x, -1.3), (X,)),
    ("sinc", lambda m, x: m.sinc(x), (X,)),
    ("sinc_small", lambda m, x: m.sinc(x * 0.3), (X,)),
    ("deg2rad", lambda m, x: m.deg2rad(x), (X,)),
    ("rad2deg", lambda m, x: m.rad2deg(x), (X,)),
    ("radians", lambda m, x: m.radians(x) ** 2, (X,)),
    ("degrees", lambda m, x: m.degrees(x) ** 2, (X,)),
    ("heaviside", lambda m, x: m.heaviside(np.array([-1.0, 0.0, 2.0, 0.0]), x), (Y,)),
    ("heaviside_x1", lambda m, x: m.heaviside(x, 0.5) * x, (X,)),
    ("copysign_x", lambda m, x: m.copysign(x, np.array([1.0, -1.0, -0.0, 2.0])), (X,)),
    ("copysign_y", lambda m, y: m.copysign(X, y) * y, (Y,)),
    ("logaddexp2", lambda m, x: m.logaddexp2(x, x[::-1] * 2.0), (X,)),
    ("logaddexp2_big", lambda m, x: m.logaddexp2(x * 500.0, 3.0), (X,)),
    ("float_power", lambda m, x: m.float_power(m.abs(x) + 0.1, 2.5), (X,)),
    ("float_power_y", lambda m, y: m.float_power(np.array([0.5, 2.0, 1.5, 3.0]), y), (Y,)),
    ("gradient", lambda m, x: m.stack(m.gradient(x)), (X,)),
    ("gradient_axis_spacing", lambda m, x: m.gradient(x, 0.5, axis=1), (X,)),
    ("gradient_edge2", lambda m, x: m.stack(m.gradient(x, 2.0, 0.5, edge_order=2)), (X,)),
    ("gradient_coords", lambda m, x: m.gradient(x, np.array([0.0, 0.5, 1.75]), axis=0), (X,)),
    (
        "gradient_coords_edge2",
        lambda m, x: m.gradient(x, np.array([0.0, 0.3, 1.1, 1.5]), axis=-1, edge_order=2),
        (X,),
    ),
    ("gradient_in_coords", lambda m, h: m.gradient(X[0] ** 2, h, edge_order=2), (COORDS,)),
    ("gradient_in_coords1", lambda m, h: m.gradient(X[1], h), (COORDS,)),
    ("gradient_in_step", lambda m, h: m.stack(m.gradient(X, h[0], h[1])), (Y[:2] + 2.0,)),
]


@pytest.mark.parametrize("name,fn,args", CASES, ids=[c[0] for c in CASES])
def test_numerics(name, fn, args):
    check(fn, *args)


def with_nonfinite(fn):
    """``fn`` of an array whose first column is NaN, +inf and -inf and whose other entries
    are the argument (finite differences can't perturb non-finite entries)."""

    def g(m, v):
        col = np.array([[np.nan], [np.inf], [-np.inf]], dtype=v.dtype)
        return fn(m, m.concatenate([col, v], axis=1))

    return g


@pytest.mark.parametrize(
    "kw", [{}, {"nan": 1.5, "posinf": 9.0, "neginf": -7.0}, {"posinf": 1e30}], ids=str
)
def test_nan_to_num(kw):
    check(with_nonfinite(lambda m, x: m.nan_to_num(x, **kw)), rnd(3, 3))
    g = ds.grad(lambda x: dnp.sum(dnp.nan_to_num(x, **kw) * np.array([1.0, 0.5, 3.0])))(
        np.array([np.nan, np.inf, 2.0])
    )
    np.testing.assert_array_equal(g, [0.0, 0.0, 3.0])


def test_nan_to_num_traced_replacements():
    x = np.array([np.nan, 1.0, np.inf, -np.inf, np.nan])
    f = lambda a, b, c: dnp.nan_to_num(x, nan=a, posinf=b, neginf=c)  # noqa: E731
    args = (np.array(0.5), np.array(2.0), np.array(-3.0))
    np.testing.assert_array_equal(
        ds.vjp(f, *args)[0], np.nan_to_num(x, nan=0.5, posinf=2.0, neginf=-3.0)
    )
    ds.check_grads(f, args, order=2)
    np.testing.assert_array_equal(ds.grad(lambda a: dnp.sum(f(a, 2.0, 3.0)))(0.5), 2.0)


def test_sinc_at_zero_every_order():
    # sinc(x) = 1 - (pi x)^2 / 6 + (pi x)^4 / 120 - ...
    x = 0.0
    d1 = ds.grad(dnp.sinc)(x)
    d2 = ds.grad(ds.grad(dnp.sinc))(x)
    d4 = ds.grad(ds.grad(ds.grad(ds.grad(dnp.sinc))))(x)
    assert d1 == 0.0
    np.testing.assert_allclose(d2, -(math.pi**2) / 3, rtol=1e-14)
    np.testing.assert_allclose(d4, math.pi**4 / 5, rtol=1e-12)
    xs = np.array([-2.5, -1.0, -0.5, 0.0, 1e-9, 0.999, 1.0, 4.2])
    ds.check_grads(dnp.sinc, (xs,), order=3)
    _, t = ds.jvp(dnp.sinc, (xs,), (np.ones_like(xs),))
    assert np.all(np.isfinite(t))


def test_heaviside_gradient_to_x2_only_at_zero():
    x1 = np.array([-1.0, 0.0, 3.0])
    g = ds.grad(lambda x2: dnp.sum(dnp.heaviside(x1, x2)))(np.array([0.3, 0.4, 0.5]))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])


INTERP = [
    ("x", lambda m, x: m.interp(x, [-2.0, -0.5, 0.3, 1.0, 2.5], [1.0, -1.0, 2.0, 0.5, 0.0])),
    ("x_lr", lambda m, x: m.interp(x, [-1.0, 0.0, 1.0], [1.0, 3.0, -2.0], left=-5.0, right=7.0)),
    (
        "fp",
        lambda m, fp: m.interp(
            np.array([-3.0, -0.9, 0.2, 0.7, 1.9, 3.0]), [-2.0, -0.5, 0.3, 1.0, 2.5], fp
        ),
    ),
    (
        "xp",
        lambda m, xp: m.interp(
            np.array([-0.2, 0.4, 1.4]), m.cumsum(m.abs(xp) + 0.2), [1.0, -1.0, 2.0, 0.5, 0.0]
        ),
    ),
    ("period", lambda m, x: m.interp(x, [0.1, 1.0, 2.0, 3.5], [1.0, -2.0, 0.5, 4.0], period=4.0)),
]


@pytest.mark.parametrize("name,fn", INTERP, ids=[c[0] for c in INTERP])
def test_interp(name, fn):
    arg = {"x": X, "x_lr": X, "period": X, "fp": rnd(5), "xp": rnd(5) - 0.3}[name]
    check(fn, arg, rtol=1e-12)


def test_interp_sample_points_and_single_point():
    xp = np.array([0.0, 1.0, 3.0])
    fp = np.array([2.0, -1.0, 5.0])
    x = np.array([0.0, 1.0, 3.0, 4.0, -1.0])
    np.testing.assert_array_equal(
        ds.vjp(lambda fp: dnp.interp(x, xp, fp), fp)[0], np.interp(x, xp, fp)
    )
    np.testing.assert_array_equal(
        ds.vjp(lambda fp: dnp.interp(x, [1.0], fp), fp[:1])[0], np.interp(x, [1.0], fp[:1])
    )


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("n,m", [(6, 3), (5, 4), (3, 6), (4, 4), (1, 3), (5, 1)])
@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_convolve_correlate(op, n, m, mode):
    a, v = rnd(n), rnd(m, seed=1)
    expected = getattr(np, op)(a, v, mode=mode)
    f = lambda a, v: getattr(dnp, op)(a, v, mode=mode)  # noqa: E731
    out, _ = ds.vjp(f, a, v)
    assert np.shape(out) == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    ds.check_grads(f, (a, v), order=2)
    out32, vjp32 = ds.vjp(f, a.astype(np.float32), v.astype(np.float32))
    assert out32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in vjp32(np.ones_like(out32)))
    got = ds.vmap(lambda a: f(a, v))(np.stack([a, 2 * a]))
    np.testing.assert_allclose(
        got, np.stack([expected, getattr(np, op)(2 * a, v, mode=mode)]), rtol=1e-12, atol=1e-14
    )


def test_convolve_long_signal_second_order():
    # A primitive, not a window matrix: long signals stay cheap, Hessian-vector products work.
    a, v = rnd(20000), rnd(301, seed=2)
    f = lambda a, v: dnp.sum(dnp.convolve(a, v, mode="same") ** 2)  # noqa: E731
    ga, gv = ds.grad(f, argnums=(0, 1))(a, v)
    c = np.convolve(a, v, mode="full")
    np.testing.assert_allclose(
        gv, 2 * np.correlate(np.pad(c[150:20150], (150, 150)), a, "valid"), rtol=1e-9
    )
    hv = ds.hvp(lambda v: f(a, v), (v,), (np.ones_like(v),))
    assert np.shape(hv[0] if isinstance(hv, tuple) else hv) == v.shape


@pytest.mark.parametrize("n,m", [(6, 3), (2, 5), (4, 1)])
def test_convolve_vmap_either_or_both(n, m):
    a, v = rnd(3, n), rnd(3, m, seed=1)
    want = np.stack([np.convolve(a[i], v[i]) for i in range(3)])
    np.testing.assert_allclose(ds.vmap(dnp.convolve)(a, v), want, rtol=1e-12)
    want = np.stack([np.convolve(a[i], v[0]) for i in range(3)])
    np.testing.assert_allclose(ds.vmap(lambda a: dnp.convolve(a, v[0]))(a), want, rtol=1e-12)
    want = np.stack([np.convolve(a[0], v[i], "same") for i in range(3)])
    np.testing.assert_allclose(
        ds.vmap(lambda v: dnp.convolve(a[0], v, "same"))(v), want, rtol=1e-12, atol=1e-14
    )
    f = lambda a, v: dnp.sum(dnp.sin(dnp.convolve(a, v)))  # noqa: E731
    np.testing.assert_allclose(
        ds.hessian(f)(a[0], v[0]),
        ds.jacfwd(ds.grad(f))(a[0], v[0]),
        rtol=1e-10,
    )


def test_correlate_complex():
    a = rnd(5) + 1j * rnd(5, seed=3)
    v = rnd(3) + 1j * rnd(3, seed=4)
    for mode in ("full", "same", "valid"):
        out, _ = ds.vjp(lambda a: dnp.correlate(a, v, mode=mode), a)
        np.testing.assert_allclose(out, np.correlate(a, v, mode=mode), rtol=1e-12)


def test_polyval():
    p = np.array([0.5, -1.0, 2.0, 0.3])
    x = rnd(3, 2)
    check(lambda m, x: m.polyval(p, x), x)
    check(lambda m, p: m.polyval(p, x), p)
    check(lambda m, p: m.polyval(p, 1.5), p)


def test_convolve_errors():
    with pytest.raises(ValueError):
        ds.grad(lambda a: dnp.sum(dnp.convolve(a, np.ones(2), mode="middle")))(rnd(4))
    with pytest.raises(ValueError):
        ds.grad(lambda a: dnp.sum(dnp.convolve(a, np.ones(2))))(rnd(2, 2))


def test_gradient_forms_and_errors():
    f = np.array([1.0, 4.0, 9.0, 16.0, 25.0])
    for kw in ({}, {"edge_order": 2}):
        got = ds.vjp(lambda x: dnp.gradient(x, **kw), f)[0]
        np.testing.assert_allclose(got, np.gradient(f, **kw))
    got = ds.vjp(lambda x: dnp.gradient(x), X)[0]  # one array per axis
    assert isinstance(got, tuple) and len(got) == 2
    for a, b in zip(got, np.gradient(X), strict=True):
        np.testing.assert_allclose(a, b)
    ints = np.array([1, 4, 9, 16])
    assert dnp.gradient(ints).dtype == np.gradient(ints).dtype
    with pytest.raises(ValueError, match="at least 3 samples"):
        ds.grad(lambda x: dnp.sum(dnp.gradient(x, edge_order=2)))(np.ones(2))
    with pytest.raises(TypeError, match="one spacing per axis"):
        ds.grad(lambda x: dnp.sum(dnp.gradient(x, 1.0, 2.0, 3.0)[0]))(X)
    with pytest.raises(ValueError, match="coordinates"):
        ds.grad(lambda x: dnp.sum(dnp.gradient(x, np.arange(3.0))))(f)


def test_iscomplex_and_real_if_close():
    z = np.array([1.0 + 0j, 2.0 + 1e-20j, 3.0 + 0.5j])
    got = ds.vjp(lambda z: dnp.where(dnp.iscomplex(z), z, 0.0), z)[0]
    np.testing.assert_array_equal(got, np.where(np.iscomplex(z), z, 0.0))
    x = np.array([1.0, 2.0])
    assert not np.any(ds.vjp(lambda x: dnp.where(dnp.iscomplex(x), -7.0, x), x)[0] == -7.0)
    np.testing.assert_array_equal(dnp.iscomplex(z), np.iscomplex(z))
    # real_if_close: real when every imaginary part is tiny, else unchanged; differentiable.
    near = np.array([1.5 + 1e-17j, -2.0 + 0j])
    out = ds.vjp(dnp.real_if_close, near)[0]
    assert out.dtype == np.float64 and out.dtype == np.real_if_close(near).dtype
    np.testing.assert_array_equal(out, np.real_if_close(near))
    out = ds.vjp(dnp.real_if_close, z)[0]
    assert out.dtype == np.complex128
    g = ds.grad(lambda a: dnp.sum(dnp.real_if_close(a * (1.0 + 1e-18j)) ** 2))(x)
    np.testing.assert_allclose(g, 2 * x)
    ds.check_grads(lambda a: dnp.real_if_close(a * (1.0 + 1e-18j)) ** 3, (x,), order=2)
    np.testing.assert_array_equal(dnp.real_if_close(near), np.real_if_close(near))
    assert dnp.real_if_close(x) is x or np.array_equal(dnp.real_if_close(x), x)
