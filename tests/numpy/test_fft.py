"""diffsys.numpy.fft: values equal NumPy's (outside and inside transforms), derivatives match
finite differences to order 2 in both modes for real and complex inputs, every ``norm``,
``n``/``s`` cropping and padding, axes; vmap equals stacking; float32 stays float32."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp

F = dnp.fft


def rnd(rng, *shape):
    return rng.standard_normal(shape)


def crnd(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


# (id, name, kwargs, input builder)
CASES = [
    ("fft_real", "fft", {}, lambda r: rnd(r, 3, 6)),
    ("fft_complex_n_axis0", "fft", {"n": 4, "axis": 0}, lambda r: crnd(r, 3, 6)),
    ("fft_pad", "fft", {"n": 8}, lambda r: crnd(r, 5)),
    ("ifft", "ifft", {"n": 7}, lambda r: crnd(r, 2, 6)),
    ("fft2", "fft2", {"s": (3, 7)}, lambda r: crnd(r, 4, 6)),
    ("ifft2", "ifft2", {}, lambda r: rnd(r, 2, 3, 4)),
    ("fftn_axes", "fftn", {"axes": (0, 2)}, lambda r: crnd(r, 2, 3, 4)),
    ("ifftn_s", "ifftn", {"s": (2, 5), "axes": (0, 1)}, lambda r: crnd(r, 3, 4)),
    ("rfft", "rfft", {}, lambda r: rnd(r, 3, 6)),
    ("rfft_odd", "rfft", {"n": 5, "axis": 0}, lambda r: rnd(r, 4, 3)),
    ("irfft", "irfft", {}, lambda r: crnd(r, 2, 4)),
    ("irfft_odd", "irfft", {"n": 7}, lambda r: crnd(r, 4)),
    ("irfft_pad", "irfft", {"n": 12}, lambda r: crnd(r, 4)),
    ("irfft_real_input", "irfft", {"n": 6}, lambda r: rnd(r, 4)),
    ("rfft2", "rfft2", {}, lambda r: rnd(r, 2, 4, 6)),
    ("irfft2", "irfft2", {}, lambda r: crnd(r, 4, 3)),
    ("irfft2_s_odd", "irfft2", {"s": (3, 5)}, lambda r: crnd(r, 4, 3)),
    ("rfftn", "rfftn", {"s": (2, 4, 5), "axes": (0, 1, 2)}, lambda r: rnd(r, 2, 3, 4)),
    ("irfftn_axes", "irfftn", {"axes": (1, 0)}, lambda r: crnd(r, 4, 3)),
    ("irfftn_3d", "irfftn", {}, lambda r: crnd(r, 2, 3, 4)),
    ("hfft", "hfft", {}, lambda r: crnd(r, 4)),
    ("hfft_n", "hfft", {"n": 7}, lambda r: crnd(r, 2, 4)),
    ("ihfft", "ihfft", {"n": 5}, lambda r: rnd(r, 2, 6)),
]


@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("cid,name,kwargs,make", CASES, ids=[c[0] for c in CASES])
def test_transform(cid, name, kwargs, make, norm, rng):
    x = make(rng)
    fn = getattr(F, name)
    ref = getattr(np.fft, name)

    def f(a):
        return fn(a, norm=norm, **kwargs)

    want = ref(x, norm=norm, **kwargs)
    np.testing.assert_array_equal(f(x), want)
    got = ds.jvp(f, (x,), (x,))
    np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want, rtol=1e-12, atol=1e-12)  # linear: J x = f(x)
    ds.check_grads(f, (x,), order=2, modes=("fwd", "rev"))


def test_rfft_irfft_gradient_weights(rng):
    """The half-spectrum VJPs against dense Jacobians built column by column from NumPy."""
    for n in (6, 7):
        x = rnd(rng, n)
        basis = np.eye(n)
        J = np.stack([np.fft.rfft(e) for e in basis], axis=1)  # (n//2+1, n)
        g = crnd(rng, n // 2 + 1)
        # JAX convention: the VJP of a real-input map is Re(J^T g)
        np.testing.assert_allclose(ds.vjp(F.rfft, x)[1](g)[0], np.real(J.T @ g), atol=1e-12)
        m = n // 2 + 1
        X = crnd(rng, m)
        cols = [np.fft.irfft(e, n) for e in np.eye(m)] + [
            np.fft.irfft(1j * e, n) for e in np.eye(m)
        ]
        Jr = np.stack(cols, axis=1)  # d out / d (Re X, Im X)
        h = rnd(rng, n)
        ct = ds.vjp(lambda z, n=n: F.irfft(z, n), X)[1](h)[0]
        v = Jr.T @ h
        np.testing.assert_allclose(np.real(ct), v[:m], atol=1e-12)
        np.testing.assert_allclose(np.imag(ct), -v[m:], atol=1e-12)  # conj: JAX's convention


def test_roundtrip_filter_gradient(rng):
    """loss = sum(irfft2(rfft2(x) * H)^2) is a quadratic form: its gradient is 2 A^T A x."""
    x = rnd(rng, 4, 6)
    H = rnd(rng, 4, 4) + 0.5

    def loss(a):
        return dnp.sum(F.irfft2(F.rfft2(a) * H, s=a.shape) ** 2)

    def apply(a):
        return np.fft.irfft2(np.fft.rfft2(a) * H, s=a.shape)

    basis = np.eye(x.size).reshape(x.size, *x.shape)
    A = np.stack([apply(e).ravel() for e in basis], axis=1)
    np.testing.assert_allclose(ds.grad(loss)(x).ravel(), 2 * A.T @ A @ x.ravel(), atol=1e-12)
    ds.check_grads(loss, (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", ["fftshift", "ifftshift"])
@pytest.mark.parametrize("axes", [None, 0, (1,), (-1, 0)])
def test_shifts(name, axes, rng):
    x = rnd(rng, 5, 4)
    fn, ref = getattr(F, name), getattr(np.fft, name)
    w = rnd(rng, 5, 4)

    def f(a):
        return fn(a, axes=axes) * w

    np.testing.assert_array_equal(ds.jvp(f, (x,), (x,))[0], ref(x, axes=axes) * w)
    ds.check_grads(f, (x,), order=2, modes=("fwd", "rev"))
    z = crnd(rng, 3, 4)
    np.testing.assert_array_equal(ds.jvp(lambda a: fn(a, axes), (z,), (z,))[0], ref(z, axes))


def test_freqs_are_numpy():
    np.testing.assert_array_equal(F.fftfreq(7, 0.5), np.fft.fftfreq(7, 0.5))
    np.testing.assert_array_equal(F.rfftfreq(8), np.fft.rfftfreq(8))


@pytest.mark.parametrize(
    "f,complex_input",
    [
        (lambda a: F.fft(a), False),
        (lambda a: F.fft(a), True),
        (lambda a: F.ifftn(a, s=(3, 3), axes=(0, 1)), True),
        (lambda a: F.rfft2(a), False),
        (lambda a: F.irfft(a, n=5, axis=0), True),
        (lambda a: F.hfft(a), True),
        (lambda a: F.fftshift(a), False),
    ],
)
def test_vmap_equals_stacking(f, complex_input, rng):
    x = crnd(rng, 3, 4, 6) if complex_input else rnd(rng, 3, 4, 6)
    got = ds.vmap(f)(x)
    want = np.stack([f(xi) for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # and the Jacobian (jacfwd/jacrev batch the tangents) of a real-valued composition
    if not complex_input:
        g = lambda a: dnp.real(f(a)) if np.iscomplexobj(f(x[0])) else f(a)  # noqa: E731
        np.testing.assert_allclose(ds.jacfwd(g)(x[0]), ds.jacrev(g)(x[0]), atol=1e-12)


@pytest.mark.parametrize(
    "f",
    [
        lambda a: dnp.real(F.fft(a)),
        lambda a: F.irfft2(F.rfft2(a)),
        lambda a: F.irfft(F.rfft(a, norm="ortho") * 2.0, norm="ortho"),
        lambda a: dnp.real(F.ifftn(F.fftshift(a))),
    ],
)
def test_float32_preserved(f, rng):
    x = rnd(rng, 4, 6).astype(np.float32)
    out, tan = ds.jvp(f, (x,), (x,))
    assert out.dtype == np.float32 and tan.dtype == np.float32
    assert ds.grad(lambda a: dnp.sum(f(a) ** 2))(x).dtype == np.float32


def test_errors(rng):
    with pytest.raises(TypeError, match="must be real"):
        ds.jvp(F.rfft, (crnd(rng, 4),), (crnd(rng, 4),))
    with pytest.raises(ValueError, match="invalid norm"):
        ds.grad(lambda a: dnp.sum(dnp.real(F.fft(a, norm="bogus"))))(rnd(rng, 4))


def test_real_output_ignores_imaginary_cotangent(rng):
    """irfft's output is real: a complex cotangent (from a complex product downstream)
    contributes only its real part."""
    X = crnd(rng, 2, 4)
    w = rnd(rng, 2, 6)

    def f1(a):
        return dnp.sum(F.irfft(a) * w)

    def f2(a):
        return dnp.real(dnp.sum(F.irfft(a) * w * (1 + 1j)))

    np.testing.assert_allclose(ds.grad(f2)(X), ds.grad(f1)(X), atol=1e-12)
