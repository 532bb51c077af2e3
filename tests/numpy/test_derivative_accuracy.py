"""Derivatives stay accurate where functions saturate, in float32 and float64, in every mode.

A rule written as ``1 - (a value near 1)``, ``x * x - 1`` or ``exp(x - ans)`` differentiated
through ``ans`` gives derivatives that have lost their digits far out (``logaddexp``'s second
derivative was 7% off in float32 at a gap of 12 and 0 at a gap of 20). Here every such rule,
at large and extreme arguments, is compared with float64 references written in closed forms
that have no cancellation: first derivatives in both modes, second derivatives as
grad-of-grad, jvp-of-grad, grad-of-jvp and hvp (and full Hessians by jacfwd / jacrev).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sc

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, relax
from diffsys.scipy import special

RTOL = {np.float32: 2e-6, np.float64: 1e-13}


def s(x):
    """The logistic function in float64 (SciPy's, accurate to the last bits at both ends)."""
    return sc.expit(np.float64(x))


# --- unary functions: name -> (f, {dtype: points}, f', f'') ------------------------------------

F32_SOFTPLUS = [15.0, 30.0, 80.0, -30.0, -80.0]
F64_SOFTPLUS = [40.0, 300.0, 700.0, -40.0, -700.0]


def _softplus_refs(sign=1.0):
    return (lambda x: s(sign * x) * sign * sign, lambda x: sign * s(x) * s(-x))


UNARY = {
    "expm1": (
        dnp.expm1,
        {np.float32: [-20.0, -50.0, -80.0], np.float64: [-40.0, -300.0, -700.0]},
        np.exp,
        np.exp,
    ),
    "arcsin": (
        dnp.arcsin,
        {np.float32: [0.999, -0.9999], np.float64: [1 - 1e-9, -(1 - 1e-12)]},
        lambda x: 1 / np.sqrt((1 - x) * (1 + x)),
        lambda x: x / ((1 - x) * (1 + x)) ** 1.5,
    ),
    "arccos": (
        dnp.arccos,
        {np.float32: [0.999, -0.9999], np.float64: [1 - 1e-9, -(1 - 1e-12)]},
        lambda x: -1 / np.sqrt((1 - x) * (1 + x)),
        lambda x: -x / ((1 - x) * (1 + x)) ** 1.5,
    ),
    "arctanh": (
        dnp.arctanh,
        {np.float32: [0.999, -0.9999], np.float64: [1 - 1e-9, -(1 - 1e-12)]},
        lambda x: 1 / ((1 - x) * (1 + x)),
        lambda x: 2 * x / ((1 - x) * (1 + x)) ** 2,
    ),
    "arccosh": (
        dnp.arccosh,
        {np.float32: [1.001, 1e25], np.float64: [1 + 1e-9, 1e160]},
        lambda x: 1 / (np.sqrt(x - 1) * np.sqrt(x + 1)),
        lambda x: -x / (np.sqrt(x - 1) * np.sqrt(x + 1)) ** 3 if x < 1e100 else -1 / x / x,
    ),
    "arcsinh": (
        dnp.arcsinh,
        {np.float32: [1e25, -3e30], np.float64: [1e160, -3e200]},
        lambda x: 1 / np.hypot(x, 1.0),
        lambda x: -x / np.hypot(x, 1.0) ** 3 if abs(x) < 1e100 else -np.sign(x) / x / x,
    ),
    "nn.softplus": (nn.softplus, {np.float32: F32_SOFTPLUS, np.float64: F64_SOFTPLUS})
    + _softplus_refs(),
    "relax.softplus": (relax.softplus, {np.float32: F32_SOFTPLUS, np.float64: F64_SOFTPLUS})
    + _softplus_refs(),
    "special.softplus": (special.softplus, {np.float32: F32_SOFTPLUS, np.float64: F64_SOFTPLUS})
    + _softplus_refs(),
    "nn.log_sigmoid": (nn.log_sigmoid, {np.float32: F32_SOFTPLUS, np.float64: F64_SOFTPLUS})
    + _softplus_refs(-1.0),
    "relax.log_sigmoid": (
        relax.log_sigmoid,
        {np.float32: F32_SOFTPLUS, np.float64: F64_SOFTPLUS},
    )
    + _softplus_refs(-1.0),
    "special.log_expit": (
        special.log_expit,
        {np.float32: F32_SOFTPLUS, np.float64: F64_SOFTPLUS},
    )
    + _softplus_refs(-1.0),
    "special.expit": (
        special.expit,
        {np.float32: [15.0, 40.0, -40.0], np.float64: [40.0, 300.0, -300.0]},
        lambda x: s(x) * s(-x),
        lambda x: -s(x) * s(-x) * np.tanh(x / 2),
    ),
    "special.log_ndtr": (
        special.log_ndtr,
        {np.float32: [-30.0, -100.0, -1000.0, 4.0]},
        lambda x: math.sqrt(2 / math.pi) / sc.erfcx(-x / math.sqrt(2)),
        # d/dx of pdf/cdf = -m (m + x), m = pdf/cdf; plain float64 is accurate enough here
        lambda x: -(m := math.sqrt(2 / math.pi) / sc.erfcx(-x / math.sqrt(2))) * (m + x),
    ),
    "special.erfcx": (
        special.erfcx,
        {np.float32: [30.0, 300.0, 3000.0, -5.0]},
        lambda x: _erfcx_derivative(x, 1),
        lambda x: _erfcx_derivative(x, 2),
    ),
}


def _erfcx_derivative(x, order):
    """erfcx' or erfcx'' in float64: the closed forms left of 10; past it (where they cancel)
    the derivatives of the asymptotic expansion sum_k (-1)^k (2k-1)!! / (2^k x^(2k+1)) / sqrt(pi)
    (for x >= 30 its terms fall below 1e-17 relative after 8)."""
    if x < 10:
        d1 = 2 * x * sc.erfcx(x) - 2 / math.sqrt(math.pi)
        return d1 if order == 1 else 2 * sc.erfcx(x) + 2 * x * d1
    total = 0.0
    for k in range(12):
        c = (-1) ** k * math.prod(range(1, 2 * k, 2)) / 2**k
        p = 2 * k + 1  # the term is c x^-p; its derivatives are -p c x^-(p+1), p (p+1) c x^-(p+2)
        total += -p * c * x ** -(p + 1) if order == 1 else p * (p + 1) * c * x ** -(p + 2)
    return total / math.sqrt(math.pi)


def _first_derivatives(f, x, dtype):
    one = dtype(1.0)
    yield "grad", ds.grad(f)(x)
    yield "jvp", ds.jvp(f, (x,), (one,))[1]


def _second_derivatives(f, x, dtype):
    one = dtype(1.0)
    yield "grad(grad)", ds.grad(ds.grad(f))(x)
    yield "jvp(grad)", ds.jvp(ds.grad(f), (x,), (one,))[1]
    yield "grad(jvp)", ds.grad(lambda z: ds.jvp(f, (z,), (one,))[1])(x)
    yield "hvp", ds.hvp(f, (x,), (one,))


def _unary_cases():
    for name, (f, points, d1, d2) in UNARY.items():
        for dtype, xs in points.items():
            for x in xs:
                yield pytest.param(f, dtype, dtype(x), d1, d2, id=f"{name}-{dtype.__name__}-{x:g}")


@pytest.mark.parametrize("f,dtype,x,d1,d2", list(_unary_cases()))
def test_unary_derivatives_far_out(f, dtype, x, d1, d2):
    want1, want2 = d1(np.float64(x)), d2(np.float64(x))
    for mode, got in _first_derivatives(f, x, dtype):
        assert np.asarray(got).dtype == dtype, mode
        np.testing.assert_allclose(got, want1, rtol=RTOL[dtype], err_msg=mode)
    if abs(want2) < np.finfo(dtype).tiny:  # where x * x overflows, f'' ~ 1 / x**2 underflows
        return
    for mode, got in _second_derivatives(f, x, dtype):
        assert np.asarray(got).dtype == dtype, mode
        np.testing.assert_allclose(got, want2, rtol=RTOL[dtype], err_msg=mode)


# --- binary functions and reductions: f(v) of a vector, exact gradient and Hessian -------------


def _two_way(gap, scale=1.0):
    """Gradient and Hessian of log(e^(a x) + e^(a y)) / a at (gap, 0), a = ``scale``."""
    p, q = s(scale * gap), s(-scale * gap)
    return np.array([p, q]), scale * p * q * np.array([[1.0, -1.0], [-1.0, 1.0]])


def _softmax_refs(v):
    """softmax p of v (float64, accurate), with 1 - p_m as the sum of the others."""
    v = np.asarray(v, np.float64)
    m = int(np.argmax(v))
    others = np.exp(np.delete(v, m) - v[m])
    lse = v[m] + np.log1p(others.sum())
    p = np.exp(v - lse)
    one_minus = 1.0 - p
    one_minus[m] = np.exp(np.delete(v, m) - lse).sum()
    return p, one_minus


def _lse_refs(v):
    p, one_minus = _softmax_refs(v)
    h = -np.outer(p, p)
    h[np.diag_indices_from(h)] = p * one_minus
    return p, h


def _log_softmax0_refs(v):
    p, one_minus = _softmax_refs(v)
    grad = -p
    grad[0] = one_minus[0]
    _, h = _lse_refs(v)
    return grad, -h


def _softmax0_refs(v):
    p, one_minus = _softmax_refs(v)
    e = -p.copy()  # d log p_0 / dv = e_0 - p, with its first entry accurate
    e[0] = one_minus[0]
    _, h_lse = _lse_refs(v)
    return p[0] * e, p[0] * (np.outer(e, e) - h_lse)


GAPS = {np.float32: [12.0, 20.0, 40.0], np.float64: [40.0, 300.0, 700.0]}


def _vector_cases():
    for dtype, gaps in GAPS.items():
        for gap in gaps:
            pair = np.array([gap, 0.0], dtype)
            triple = np.array([gap, 0.0, -1.5], dtype)
            yield "logaddexp", lambda v: dnp.logaddexp(v[0], v[1]), pair, _two_way(gap)
            yield "logaddexp-swapped", lambda v: dnp.logaddexp(v[1], v[0]), pair, _two_way(gap)
            yield (
                "logaddexp2",
                lambda v: dnp.logaddexp2(v[0], v[1]),
                pair,
                _two_way(gap, math.log(2.0)),
            )
            for lse_name, lse in [
                ("special.logsumexp", special.logsumexp),
                ("nn.logsumexp", nn.logsumexp),
                ("relax.logsumexp", relax.logsumexp),
            ]:
                yield lse_name, lse, triple, _lse_refs(triple)
            for ls_name, ls in [
                ("special.log_softmax", lambda v: special.log_softmax(v)[0]),
                ("nn.log_softmax", lambda v: nn.log_softmax(v)[0]),
                ("relax.log_softmax", lambda v: relax.log_softmax(v)[0]),
                ("nn.cross_entropy", lambda v: -nn.cross_entropy(v[None], np.array([0]))),
            ]:
                yield ls_name, ls, triple, _log_softmax0_refs(triple)
            for sm_name, sm in [
                ("special.softmax", lambda v: special.softmax(v)[0]),
                ("nn.softmax", lambda v: nn.softmax(v)[0]),
                ("relax.softmax", lambda v: relax.softmax(v)[0]),
            ]:
                yield sm_name, sm, triple, _softmax0_refs(triple)


def _kl_div_cases():
    """kl_div(x, y) = x log(x / y) - x + y near x = y, where its gradient is small."""
    for dtype, (x, y) in {np.float32: (3.0003, 3.0), np.float64: (3 + 3e-9, 3.0)}.items():
        v = np.array([x, y], dtype)
        X, Y = v.astype(np.float64)
        grad = np.array([np.log1p((X - Y) / Y), (Y - X) / Y])
        hess = np.array([[1 / X, -1 / Y], [-1 / Y, X / Y**2]])
        yield "special.kl_div", lambda v: special.kl_div(v[0], v[1]), v, (grad, hess)


def _vector_params():
    return [
        pytest.param(f, v, refs, id=f"{name}-{v.dtype}-{v[0]:g}")
        for cases in (_vector_cases(), _kl_div_cases())
        for name, f, v, refs in cases
    ]


@pytest.mark.parametrize("f,v,refs", _vector_params())
def test_vector_derivatives_far_out(f, v, refs):
    dtype = v.dtype.type
    want_grad, want_hess = refs
    rtol = RTOL[dtype]
    eye = np.eye(v.size, dtype=dtype)
    firsts = {
        "grad": ds.grad(f)(v),
        "jacfwd": ds.jacfwd(f)(v),
        "jvp": np.array([ds.jvp(f, (v,), (e,))[1] for e in eye]),
    }
    seconds = {
        "jacfwd(grad)": ds.jacfwd(ds.grad(f))(v),
        "jacrev(grad)": ds.jacrev(ds.grad(f))(v),
        "hvp": np.array([ds.hvp(f, (v,), (e,)) for e in eye]),
        "jvp(grad)": np.array([ds.jvp(ds.grad(f), (v,), (e,))[1] for e in eye]),
        "grad(jvp)": np.array([ds.grad(lambda z, e=e: ds.jvp(f, (z,), (e,))[1])(v) for e in eye]),
    }
    # Entries below float32's normal range (e^-40 * e^-40) are compared absolutely.
    tiny = np.finfo(dtype).tiny
    for mode, got in firsts.items():
        assert np.asarray(got).dtype == dtype, mode
        np.testing.assert_allclose(got, want_grad, rtol=rtol, atol=tiny, err_msg=mode)
    for mode, got in seconds.items():
        assert np.asarray(got).dtype == dtype, mode
        np.testing.assert_allclose(got, want_hess, rtol=rtol, atol=tiny, err_msg=mode)
