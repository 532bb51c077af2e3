"""Property-based tests (hypothesis) of diffsys.scipy: convolution/correlation over random
N-D shapes and modes, logsumexp over random shapes, axes and weights. Values match SciPy,
and the VJP agrees with the JVP (the vdot identity) and with finite differences."""

from __future__ import annotations

import numpy as np
import scipy.signal as ss
import scipy.special as sc
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsys as ds
from diffsys.scipy import signal as sg
from diffsys.scipy import special as sp

SETTINGS = settings(max_examples=20, deadline=None)


@st.composite
def conv_case(draw):
    nd = draw(st.integers(1, 3))
    s1 = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s2 = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    if mode == "valid" and not (
        all(a >= b for a, b in zip(s1, s2)) or all(a <= b for a, b in zip(s1, s2))
    ):
        mode = "full"
    name = draw(st.sampled_from(["convolve", "correlate", "fftconvolve"]))
    seed = draw(st.integers(0, 2**31))
    return s1, s2, mode, name, seed


FUNCS = {
    "convolve": (sg.convolve, ss.convolve),
    "correlate": (sg.correlate, ss.correlate),
    "fftconvolve": (sg.fftconvolve, ss.fftconvolve),
}


@SETTINGS
@given(conv_case())
def test_convolutions(case):
    s1, s2, mode, name, seed = case
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    f, ref = FUNCS[name]
    out = f(a, b, mode=mode)
    np.testing.assert_allclose(out, ref(a, b, mode=mode), rtol=1e-11, atol=1e-12)
    fun = lambda x, y: f(x, y, mode=mode)  # noqa: E731
    ta, tb = rng.standard_normal(s1), rng.standard_normal(s2)
    _, tout = ds.jvp(fun, (a, b), (ta, tb))
    g = rng.standard_normal(np.shape(out))
    ga, gb = ds.vjp(fun, a, b)[1](g)
    assert ga.shape == s1 and gb.shape == s2
    np.testing.assert_allclose(np.sum(g * tout), np.sum(ga * ta) + np.sum(gb * tb), rtol=1e-10)
    ds.check_grads(fun, (a, b), order=1)


@st.composite
def lse_case(draw):
    nd = draw(st.integers(0, 3))
    shape = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    if nd and draw(st.booleans()):
        k = draw(st.integers(1, nd))
        axis = tuple(sorted(draw(st.permutations(range(nd)))[:k]))
        if len(axis) == 1 and draw(st.booleans()):
            axis = axis[0] - nd * draw(st.integers(0, 1))  # negative axes too
    else:
        axis = None
    keepdims = draw(st.booleans())
    weighted = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    return shape, axis, keepdims, weighted, seed


@SETTINGS
@given(lse_case())
def test_logsumexp(case):
    shape, axis, keepdims, weighted, seed = case
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    b = rng.uniform(0.5, 2.0, shape[-1:]) if weighted else None
    out = sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
    expected = sc.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
    if shape:  # SciPy reshapes a 0-d input to (1,) with keepdims; diffsys keeps it 0-d
        assert np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    if weighted:
        fun = lambda x, w: sp.logsumexp(x, axis=axis, b=w, keepdims=keepdims)  # noqa: E731
        ds.check_grads(fun, (a, b), order=2)
    else:
        ds.check_grads(lambda x: sp.logsumexp(x, axis=axis, keepdims=keepdims), (a,), order=2)
