"""diffsys.scipy.signal: values equal SciPy's in every mode, derivatives against finite
differences (both modes, order 2), the adjoint identity, vmap, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.scipy import signal as sg

PAIRS = [
    ((5,), (3,)),
    ((4,), (4,)),
    ((3,), (6,)),
    ((4,), (2,)),
    ((5, 4), (2, 3)),
    ((3, 4), (4, 5)),
    ((4, 3, 3), (2, 2, 1)),
    ((), ()),
]
FUNCS = {
    "convolve": (sg.convolve, ss.convolve),
    "correlate": (sg.correlate, ss.correlate),
    "fftconvolve": (sg.fftconvolve, ss.fftconvolve),
}
MODES = ["full", "same", "valid"]


def _valid_ok(s1, s2):
    return all(a >= b for a, b in zip(s1, s2)) or all(a <= b for a, b in zip(s1, s2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("s1,s2", PAIRS, ids=str)
def test_values_equal_scipy(rng, name, mode, s1, s2):
    f, ref = FUNCS[name]
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    if mode == "valid" and not _valid_ok(s1, s2):
        with pytest.raises(ValueError):
            f(a, b, mode=mode)
        return
    out = f(a, b, mode=mode)
    expected = ref(a, b, mode=mode)
    assert np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("s1,s2", PAIRS[:7], ids=str)
def test_grads(rng, name, mode, s1, s2):
    if mode == "valid" and not _valid_ok(s1, s2):
        pytest.skip("no valid region")
    f = FUNCS[name][0]
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    ds.check_grads(lambda x, y: f(x, y, mode=mode), (a, b), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("s1,s2", [((6,), (3,)), ((5, 4), (2, 3))], ids=str)
def test_vjp_is_the_adjoint_correlation(rng, s1, s2):
    """<g, conv(x, k)> = <corr(g, k, valid), x>: the VJP in x is exactly that correlation."""
    x, k = rng.standard_normal(s1), rng.standard_normal(s2)
    out, vjp_fn = ds.vjp(lambda a, b: sg.convolve(a, b), x, k)
    g = rng.standard_normal(out.shape)
    gx, gk = vjp_fn(g)
    np.testing.assert_allclose(gx, ss.correlate(g, k, mode="valid"), rtol=1e-12)
    np.testing.assert_allclose(gk, ss.correlate(g, x, mode="valid"), rtol=1e-12)
    np.testing.assert_allclose(np.sum(g * out), np.sum(gx * x), rtol=1e-12)
    # and the full Jacobian equals the convolution matrix
    jac = ds.jacfwd(lambda a: sg.convolve(a, k, mode="same"))(x)
    eye = np.eye(x.size).reshape((x.size, *s1))
    expected = np.stack([ss.convolve(e, k, mode="same") for e in eye], axis=-1)
    np.testing.assert_allclose(jac.reshape(expected.shape), expected, atol=1e-13)


def test_vmap_equals_stacking(rng):
    xs = rng.standard_normal((3, 6))
    k = rng.standard_normal(3)
    ks = rng.standard_normal((3, 3))
    for mode in MODES:
        for fn in (sg.convolve, sg.correlate):
            out = ds.vmap(lambda a, fn=fn, mode=mode: fn(a, k, mode=mode))(xs)
            np.testing.assert_allclose(out, np.stack([fn(x, k, mode=mode) for x in xs]))
            out = ds.vmap(lambda b, fn=fn, mode=mode: fn(xs[0], b, mode=mode))(ks)
            np.testing.assert_allclose(out, np.stack([fn(xs[0], b, mode=mode) for b in ks]))
            out = ds.vmap(lambda a, b, fn=fn, mode=mode: fn(a, b, mode=mode))(xs, ks)
            np.testing.assert_allclose(
                out, np.stack([fn(a, b, mode=mode) for a, b in zip(xs, ks)]), rtol=1e-13
            )
    hess = ds.hessian(lambda a: dnp.sum(sg.convolve(a, k) ** 2))(xs[0])
    conv = np.stack([ss.convolve(e, k) for e in np.eye(6)], axis=1)
    np.testing.assert_allclose(hess, 2 * conv.T @ conv, atol=1e-12)


def test_float32_and_errors(rng):
    x = rng.standard_normal(8).astype(np.float32)
    k = rng.standard_normal(3).astype(np.float32)
    assert sg.convolve(x, k).dtype == np.float32
    g = ds.grad(lambda a: dnp.sum(sg.convolve(a, k, mode="same") ** 2))(x)
    assert g.dtype == np.float32
    with pytest.raises(ValueError, match="dimensionality"):
        sg.convolve(np.ones((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match="mode"):
        sg.convolve(np.ones(3), np.ones(3), mode="circular")
    with pytest.raises(TypeError, match="complex"):
        sg.convolve(np.ones(3) * 1j, np.ones(3))


PAIRS_2D = [
    ((5, 6), (2, 3)),
    ((4, 4), (3, 3)),
    ((3, 4), (4, 5)),
    ((2, 3), (4, 4)),
    ((3, 3), (7, 2)),
]
BOUNDARIES = [("fill", 0.0), ("fill", 1.5), ("wrap", 0.0), ("symm", 0.0)]


@pytest.mark.parametrize("boundary,fillvalue", BOUNDARIES, ids=str)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("s1,s2", PAIRS_2D, ids=str)
def test_2d_with_boundaries(rng, s1, s2, mode, boundary, fillvalue):
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    kw = {"mode": mode, "boundary": boundary, "fillvalue": fillvalue}
    for f, ref in ((sg.convolve2d, ss.convolve2d), (sg.correlate2d, ss.correlate2d)):
        if mode == "valid" and not _valid_ok(s1, s2):
            with pytest.raises(ValueError):
                f(a, b, **kw)
            continue
        out = f(a, b, **kw)
        expected = ref(a, b, **kw)
        assert np.shape(out) == np.shape(expected)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-13)
        ds.check_grads(lambda x, y, f=f: f(x, y, **kw), (a, b), order=2)
    if boundary == "fill" and mode != "valid":
        fun = lambda c: sg.convolve2d(a, b, mode=mode, fillvalue=c)  # noqa: E731
        ds.check_grads(fun, (np.array(fillvalue),), order=1)


def test_2d_errors():
    with pytest.raises(ValueError, match="2-D"):
        sg.convolve2d(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="boundary"):
        sg.correlate2d(np.ones((3, 3)), np.ones((2, 2)), boundary="reflect")


AXES_CASES = [
    ((3, 8), (3, 4), 1),
    ((3, 8), (1, 4), (1,)),
    ((1, 8), (3, 4), -1),
    ((4, 5, 6), (4, 2, 3), (1, 2)),
    ((4, 5, 6), (1, 7, 3), (1, 2)),
    ((3, 4), (2, 4), 1),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("s1,s2,axes", AXES_CASES, ids=str)
def test_fftconvolve_axes(rng, s1, s2, axes, mode):
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    try:
        expected = ss.fftconvolve(a, b, mode=mode, axes=axes)
    except ValueError:
        with pytest.raises(ValueError):
            sg.fftconvolve(a, b, mode=mode, axes=axes)
        return
    out = sg.fftconvolve(a, b, mode=mode, axes=axes)
    assert np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    ds.check_grads(lambda x, y: sg.fftconvolve(x, y, mode=mode, axes=axes), (a, b), order=2)


def test_fftconvolve_axes_vmap(rng):
    xs = rng.standard_normal((4, 3, 8))
    k = rng.standard_normal((3, 4))
    out = ds.vmap(lambda x: sg.fftconvolve(x, k, mode="same", axes=1))(xs)
    np.testing.assert_allclose(
        out, np.stack([ss.fftconvolve(x, k, mode="same", axes=1) for x in xs]), atol=1e-12
    )
    ks = rng.standard_normal((4, 1, 3))
    out = ds.vmap(lambda kk: sg.fftconvolve(xs[0], kk, mode="valid", axes=1))(ks)
    np.testing.assert_allclose(
        out, np.stack([ss.fftconvolve(xs[0], kk, mode="valid", axes=1) for kk in ks]), atol=1e-12
    )
    with pytest.raises(ValueError, match="not convolved"):
        sg.fftconvolve(np.ones((2, 5)), np.ones((3, 5)), axes=1)
