"""diffsys.numpy.linalg: values equal NumPy's, derivatives match finite differences to order 2
in both modes (single and stacked matrices), vmap equals stacking per-row results (batched
operands mixed with unbatched ones), float32 stays float32, values-only functions give
NumPy's values and zero derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsys as ds
import diffsys.numpy as dnp
from linalg_cases import check_vmap_equals_stacking, rnd, spd, sym, well

L = dnp.linalg


def check(f, *args, modes=("fwd", "rev")):
    ds.check_grads(f, args, order=2, modes=modes)


# (id, function, input builder(rng) -> args, NumPy function for the values or None)
CASES = [
    ("inv", L.inv, lambda r: (well(r, 3, 3),), np.linalg.inv),
    ("inv_stack", L.inv, lambda r: (well(r, 2, 3, 3),), np.linalg.inv),
    ("solve_mat", L.solve, lambda r: (well(r, 3, 3), rnd(r, 3, 2)), np.linalg.solve),
    ("solve_vec", L.solve, lambda r: (well(r, 3, 3), rnd(r, 3)), np.linalg.solve),
    ("solve_stack", L.solve, lambda r: (well(r, 2, 3, 3), rnd(r, 2, 3, 2)), np.linalg.solve),
    (
        "solve_broadcast",
        L.solve,
        lambda r: (well(r, 3, 3), rnd(r, 2, 3, 2)),
        np.linalg.solve,
    ),
    ("det", L.det, lambda r: (well(r, 3, 3),), np.linalg.det),
    ("det_stack", L.det, lambda r: (rnd(r, 2, 3, 3),), np.linalg.det),
    ("logabsdet", lambda a: L.slogdet(a)[1], lambda r: (rnd(r, 2, 3, 3),), None),
    ("cholesky", lambda a: L.cholesky(sym(a)), lambda r: (spd(r, 3, 3),), None),
    ("cholesky_stack", lambda a: L.cholesky(sym(a)), lambda r: (spd(r, 2, 3, 3),), None),
    ("cholesky_upper", lambda a: L.cholesky(sym(a), upper=True), lambda r: (spd(r, 3, 3),), None),
    ("eigh_w", lambda a: L.eigh(sym(a))[0], lambda r: (rnd(r, 2, 3, 3),), None),
    # eigenvectors up to sign: differentiate a sign-invariant function of them
    ("eigh_v", lambda a: L.eigh(sym(a))[1] ** 2, lambda r: (rnd(r, 2, 3, 3),), None),
    ("eigvalsh", lambda a: L.eigvalsh(sym(a)), lambda r: (rnd(r, 4, 4),), None),
    ("svd_s", lambda a: L.svd(a, compute_uv=False), lambda r: (rnd(r, 2, 4, 3),), None),
    ("svd_tall", lambda a: _svd_invariant(a, False), lambda r: (rnd(r, 4, 3),), None),
    ("svd_wide", lambda a: _svd_invariant(a, False), lambda r: (rnd(r, 2, 3, 4),), None),
    ("svd_square", lambda a: _svd_invariant(a, True), lambda r: (rnd(r, 3, 3),), None),
    ("svd_full_tall", lambda a: _svd_invariant(a, True, 3), lambda r: (rnd(r, 4, 3),), None),
    ("qr_tall", lambda a: _qr_sum(L.qr(a)), lambda r: (rnd(r, 4, 3),), None),
    ("qr_square_stack", lambda a: _qr_sum(L.qr(a)), lambda r: (rnd(r, 2, 3, 3),), None),
    ("qr_wide", lambda a: _qr_sum(L.qr(a)), lambda r: (rnd(r, 3, 5),), None),
    ("qr_r", lambda a: L.qr(a, mode="r"), lambda r: (rnd(r, 4, 3),), None),
    ("pinv_tall", L.pinv, lambda r: (rnd(r, 4, 3),), np.linalg.pinv),
    ("pinv_wide_stack", L.pinv, lambda r: (rnd(r, 2, 3, 4),), np.linalg.pinv),
    ("matrix_power_3", lambda a: L.matrix_power(a, 3), lambda r: (rnd(r, 2, 3, 3),), None),
    ("matrix_power_neg", lambda a: L.matrix_power(a, -2), lambda r: (well(r, 3, 3),), None),
    (
        "multi_dot",
        lambda a, b, c: L.multi_dot([a, b, c]),
        lambda r: (rnd(r, 3), rnd(r, 3, 4), rnd(r, 4, 2)),
        lambda a, b, c: np.linalg.multi_dot([a, b, c]),
    ),
    (
        "tensorsolve",
        L.tensorsolve,
        lambda r: (well(r, 6, 6).reshape(2, 3, 6), rnd(r, 2, 3)),
        np.linalg.tensorsolve,
    ),
    (
        "lstsq_x",
        lambda a, b: L.lstsq(a, b)[0],
        lambda r: (rnd(r, 5, 3), rnd(r, 5, 2)),
        lambda a, b: np.linalg.lstsq(a, b)[0],
    ),
    (
        "lstsq_residuals",
        lambda a, b: L.lstsq(a, b)[1],
        lambda r: (rnd(r, 5, 3), rnd(r, 5)),
        lambda a, b: np.linalg.lstsq(a, b)[1],
    ),
]


def _svd_invariant(a, full, k=None):
    """Sign-invariant functions of all three factors (u_i v_i^T products and s)."""
    u, s, vh = L.svd(a, full_matrices=full)
    k = min(a.shape[-2:]) if k is None else k
    u = u[..., :, :k]
    vh = vh[..., :k, :]
    w = np.arange(1.0, k + 1)
    return dnp.matmul(u * w, vh) + dnp.sum(s)


def _qr_sum(qr):
    q, r = qr
    return dnp.sum(q * 1.5) + dnp.sum(r * r)


@pytest.mark.parametrize("name,f,make,f_np", CASES, ids=[c[0] for c in CASES])
def test_grads(name, f, make, f_np, rng):
    args = make(rng)
    if f_np is not None:
        np.testing.assert_allclose(
            np.asarray(ds.jvp(f, args, args)[0]), f_np(*args), rtol=1e-10, atol=1e-12
        )
    check(f, *args)


def test_values_outside_transforms_are_numpy(rng):
    a = well(rng, 2, 3, 3)
    s = spd(rng, 3, 3)
    assert L.inv(a) is not None and np.array_equal(L.inv(a), np.linalg.inv(a))
    for got, want in [
        (L.slogdet(a), np.linalg.slogdet(a)),
        (L.eigh(s), np.linalg.eigh(s)),
        (L.svd(a), np.linalg.svd(a)),
        (L.qr(a), np.linalg.qr(a)),
    ]:
        for x, y in zip(got, want, strict=True):
            np.testing.assert_array_equal(x, y)


def test_traced_values_equal_numpy(rng):
    a = rnd(rng, 2, 4, 3)
    s = spd(rng, 2, 3, 3)

    def traced(f, x):
        return ds.jvp(f, (x,), (np.zeros_like(x),))[0]

    np.testing.assert_allclose(traced(lambda x: L.slogdet(x)[0], s), np.linalg.slogdet(s)[0])
    np.testing.assert_allclose(traced(lambda x: L.slogdet(x)[1], s), np.linalg.slogdet(s)[1])
    np.testing.assert_allclose(traced(L.cholesky, s), np.linalg.cholesky(s))
    np.testing.assert_allclose(traced(lambda x: L.eigh(x)[0], s), np.linalg.eigvalsh(s))
    np.testing.assert_allclose(
        traced(lambda x: L.svd(x, compute_uv=False), a), np.linalg.svd(a, compute_uv=False)
    )
    for mode in ("reduced", "complete", "r"):
        want = np.linalg.qr(a, mode=mode)
        got = ds.jvp(lambda x, mode=mode: L.qr(x, mode=mode), (a,), (np.zeros_like(a),))[0]
        for x, y in zip(
            got if mode != "r" else [got], want if mode != "r" else [want], strict=True
        ):
            np.testing.assert_allclose(x, y, atol=1e-12)
    np.testing.assert_allclose(
        traced(lambda x: L.svd(x, full_matrices=True)[0], a), np.linalg.svd(a)[0]
    )


def test_gradient_formulas(rng):
    """Closed forms: d log|det A| = A^-T, d det A = det(A) A^-T, d tr(A^-1 B) = -(A^-1 B A^-1)^T."""
    a = well(rng, 4, 4)
    b = rnd(rng, 4, 4)
    np.testing.assert_allclose(ds.grad(lambda x: L.slogdet(x)[1])(a), np.linalg.inv(a).T)
    np.testing.assert_allclose(ds.grad(L.det)(a), np.linalg.det(a) * np.linalg.inv(a).T)
    ai = np.linalg.inv(a)
    np.testing.assert_allclose(
        ds.grad(lambda x: dnp.sum(dnp.einsum("ii->i", L.solve(x, b))))(a), -(ai @ b @ ai).T
    )
    s = spd(rng, 4, 4)
    w, v = np.linalg.eigh(s)
    vdv = v @ np.diag(np.arange(4.0)) @ v.T  # folded onto the lower triangle, which is read
    np.testing.assert_allclose(
        ds.grad(lambda x: dnp.sum(L.eigvalsh(x) * np.arange(4.0)))(s),
        np.tril(2 * vdv, -1) + np.diag(np.diag(vdv)),
        atol=1e-12,
    )


NORM_CASES = [
    ("vec", o, ax, kd)
    for o in (None, 2, 1, 3, 0.5, -1.5, np.inf, -np.inf, 0)
    for ax, kd in ((1, False), (-1, True))
] + [
    ("mat", o, ax, kd)
    for o in (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf)
    for ax, kd in (((1, 2), False), ((2, 0), True))
]


@pytest.mark.parametrize("kind,ord,axis,keepdims", NORM_CASES)
def test_norm(kind, ord, axis, keepdims, rng):
    x = rnd(rng, 2, 3, 4)

    def f(a):
        return L.norm(a, ord=ord, axis=axis, keepdims=keepdims)

    want = np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(ds.jvp(f, (x,), (x,))[0], want, rtol=1e-12)
    np.testing.assert_array_equal(f(x), want)
    modes = ("fwd", "rev")
    ds.check_grads(f, (x,), order=1 if ord == 0 else 2, modes=modes)


@pytest.mark.parametrize("ord", [None, 1, np.inf, "fro", 2, "nuc"])
def test_norm_default_axes(ord, rng):
    x = rnd(rng, 3, 4) if ord not in (None,) else rnd(rng, 2, 3, 4)
    if ord in (1, np.inf):
        x = rnd(rng, 4) if ord == 1 else rnd(rng, 3, 4)
    want = np.linalg.norm(x, ord=ord)
    np.testing.assert_allclose(ds.jvp(lambda a: L.norm(a, ord), (x,), (x,))[0], want)
    check(lambda a: L.norm(a, ord), x)
    np.testing.assert_allclose(
        ds.jvp(lambda a: L.norm(a, ord, keepdims=True), (x,), (x,))[0],
        np.linalg.norm(x, ord, keepdims=True),
    )


def test_norm_complex_vector(rng):
    z = rnd(rng, 5) + 1j * rnd(rng, 5)
    np.testing.assert_allclose(ds.jvp(L.norm, (z,), (z,))[0], np.linalg.norm(z))
    check(L.norm, z)


def test_complex_holomorphic(rng):
    a = well(rng, 3, 3) + 1j * rnd(rng, 3, 3)
    b = rnd(rng, 3, 2) + 1j * rnd(rng, 3, 2)
    check(L.inv, a)
    check(L.solve, a, b)
    check(L.det, a)
    check(lambda x: L.slogdet(x)[1], a)


def test_matrix_rank_values_and_zero_gradient(rng):
    a = rnd(rng, 2, 4, 3)
    a[1, :, 2] = a[1, :, 0]
    want = np.linalg.matrix_rank(a)
    assert list(want) == [3, 2]
    np.testing.assert_array_equal(ds.jvp(L.matrix_rank, (a,), (a,))[0], want)
    g = ds.grad(lambda x: dnp.sum(x) * 0 + dnp.sum(L.matrix_rank(x) * 1.0))(a)
    np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_array_equal(ds.vmap(L.matrix_rank)(a), want)


VMAP = [
    ("inv", L.inv, (True,)),
    ("det", L.det, (True,)),
    ("slogdet", lambda a: L.slogdet(a)[1], (True,)),
    ("sign", lambda a: L.slogdet(a)[0], (True,)),
    (
        "cholesky",
        lambda a: L.cholesky(dnp.matmul(a, dnp.swapaxes(a, -1, -2)) + 3 * np.eye(3)),
        (True,),
    ),
    ("eigh", lambda a: L.eigh(sym(a))[1] ** 2, (True,)),
    ("svd", lambda a: L.svd(a)[1], (True,)),
    ("qr", lambda a: L.qr(a)[1], (True,)),
    ("pinv", L.pinv, (True,)),
    ("norm_nuc", lambda a: L.norm(a, "nuc"), (True,)),
    ("solve_a_batched", L.solve, (True, False)),
    ("solve_b_batched", L.solve, (False, True)),
    ("solve_both", L.solve, (True, True)),
]


@pytest.mark.parametrize("name,f,which", VMAP, ids=[v[0] for v in VMAP])
def test_vmap_equals_stacking(name, f, which, rng):
    check_vmap_equals_stacking(f, which, rng)


def test_jacobians_batched(rng):
    a = well(rng, 3, 3)
    ai = np.linalg.inv(a)
    jr = ds.jacrev(L.inv)(a)
    jf = ds.jacfwd(L.inv)(a)
    np.testing.assert_allclose(jr, -np.einsum("ik,lj->ijkl", ai, ai), atol=1e-12)
    np.testing.assert_allclose(jf, jr, atol=1e-12)
    h = ds.hessian(lambda x: L.slogdet(x)[1])(a)
    np.testing.assert_allclose(h, -np.einsum("li,jk->ijkl", ai, ai), atol=1e-10)


@pytest.mark.parametrize(
    "f",
    [
        L.inv,
        L.det,
        lambda a: L.slogdet(a)[1],
        lambda a: L.solve(a, np.ones((3, 2), np.float32)),
        lambda a: L.cholesky(sym(a) + 3 * np.eye(3, dtype=np.float32)),
        lambda a: L.eigh(sym(a))[0],
        lambda a: L.svd(a)[1],
        lambda a: L.qr(a)[1],
        L.pinv,
        lambda a: L.norm(a, 2),
    ],
)
def test_float32_preserved(f, rng):
    a = well(rng, 3, 3).astype(np.float32)
    out = ds.jvp(f, (a,), (a,))
    assert out[0].dtype == np.float32 and out[1].dtype == np.float32
    g = ds.grad(lambda x: dnp.sum(f(x)))(a)
    assert g.dtype == np.float32


def test_errors(rng):
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        ds.grad(lambda x: dnp.sum(L.inv(x)))(rnd(rng, 2, 3))
    with pytest.raises(ValueError, match="invalid norm order"):
        ds.grad(lambda x: L.norm(x, "fro", axis=0))(rnd(rng, 3))


@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_differentiates_the_triangle_it_reads(uplo, rng):
    """eigh/eigvalsh read only the UPLO triangle (and the real diagonal), as NumPy does:
    derivatives match finite differences of NumPy's eigh on non-symmetric inputs, the
    gradient is zero on the other triangle, tangents there change nothing."""
    a = rnd(rng, 4, 4)
    np.testing.assert_allclose(
        ds.vjp(lambda x: L.eigvalsh(x, UPLO=uplo), a)[0], np.linalg.eigvalsh(a, UPLO=uplo)
    )
    check(lambda x: L.eigvalsh(x, UPLO=uplo), a)
    check(lambda x: L.eigh(x, UPLO=uplo)[0], rnd(rng, 2, 3, 3))
    check(lambda x: L.eigh(x, UPLO=uplo)[1] ** 2, a)  # sign-invariant
    unread = np.triu(np.ones((4, 4)), 1) if uplo == "L" else np.tril(np.ones((4, 4)), -1)
    f = lambda x: dnp.sum(L.eigh(x, UPLO=uplo)[1][:, 0] ** 2 * np.arange(1.0, 5.0))  # noqa: E731
    g = ds.grad(f)(a)
    np.testing.assert_array_equal(g * unread, 0.0)
    t = rnd(rng, 4, 4)
    _, d1 = ds.jvp(f, (a,), (t,))
    _, d2 = ds.jvp(f, (a,), (t * (1 - unread),))
    np.testing.assert_allclose(d1, d2, atol=1e-12)
    np.testing.assert_allclose(d1, np.sum(g * t), atol=1e-10)
    # Complex: the Hermitian matrix of one triangle; phase-invariant functions of vectors.
    c = rnd(rng, 2, 3, 3) + 1j * rnd(rng, 2, 3, 3)
    np.testing.assert_allclose(
        ds.vjp(lambda x: L.eigvalsh(x, UPLO=uplo), c)[0], np.linalg.eigvalsh(c, UPLO=uplo)
    )
    check(lambda x: L.eigvalsh(x, UPLO=uplo), c)
    check(lambda x: dnp.real(L.eigh(x, UPLO=uplo)[1] * dnp.conjugate(L.eigh(x, UPLO=uplo)[1])), c)


def test_symmetric_conventions(rng):
    """cholesky reads one triangle; its gradient is symmetric (JAX's convention) and
    tangents enter through their symmetric part."""
    s = spd(rng, 4, 4)
    w = np.arange(1.0, 5.0)
    for f in (lambda x: dnp.sum(L.cholesky(x) * w),):
        g = ds.grad(f)(s)
        np.testing.assert_allclose(g, g.T, atol=1e-12)
        t = rnd(rng, 4, 4)
        _, d1 = ds.jvp(f, (s,), (t,))
        _, d2 = ds.jvp(f, (s,), ((t + t.T) / 2,))
        np.testing.assert_allclose(d1, d2, atol=1e-12)
        np.testing.assert_allclose(d1, np.sum(g * t), atol=1e-10)


def test_logabsdet_ignores_imaginary_cotangent(rng):
    a = well(rng, 3, 3) + 1j * rnd(rng, 3, 3)
    g1 = ds.grad(lambda x: L.slogdet(x)[1])(a)
    g2 = ds.grad(lambda x: dnp.real(L.slogdet(x)[1] * (1 + 1j)))(a)
    np.testing.assert_allclose(g2, g1, atol=1e-12)


def test_complex_hermitian(rng):
    """eigh and cholesky of Hermitian matrices (JAX's convention); eigenvectors through
    phase-invariant functions (|v|^2, projectors)."""
    m = rnd(rng, 2, 3, 3) + 1j * rnd(rng, 2, 3, 3)
    a = m @ np.conj(np.swapaxes(m, -1, -2)) + 3 * np.eye(3)

    def herm(x):
        return (x + dnp.conjugate(dnp.swapaxes(x, -1, -2))) / 2

    def proj(x):
        v = L.eigh(herm(x))[1][..., :, :1]
        return dnp.matmul(v, dnp.conjugate(dnp.swapaxes(v, -1, -2)))

    np.testing.assert_allclose(ds.jvp(L.cholesky, (a,), (a,))[0], np.linalg.cholesky(a))
    np.testing.assert_allclose(
        ds.jvp(lambda x: L.cholesky(x, upper=True), (a,), (a,))[0],
        np.linalg.cholesky(a, upper=True),
    )
    check(lambda x: L.cholesky(herm(x), upper=True), a)
    check(lambda x: L.eigvalsh(herm(x)), a)
    check(lambda x: dnp.real(L.eigh(herm(x))[1] * dnp.conjugate(L.eigh(herm(x))[1])), a)
    check(proj, a)
    check(lambda x: L.cholesky(herm(x)), a)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch_a=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2),
    batch_b=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2),
    n=st.integers(1, 3),
    k=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_solve_broadcasting_property(batch_a, batch_b, n, k, seed):
    """solve over broadcasting stacks: NumPy's values, and gradients (both modes) that sum
    over broadcast axes."""
    try:
        np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        assume(False)
    r = np.random.default_rng(seed)
    a = r.standard_normal(batch_a + (n, n)) + 3 * np.eye(n)
    b = r.standard_normal(batch_b + (n, k))
    np.testing.assert_allclose(ds.jvp(L.solve, (a, b), (a, b))[0], np.linalg.solve(a, b))
    ds.check_grads(L.solve, (a, b), order=1, modes=("fwd", "rev"))
    # vmap over a new leading axis of b alone equals the stacked solves
    bs = np.stack([b, 2 * b])
    np.testing.assert_allclose(
        ds.vmap(L.solve, in_axes=(None, 0))(a, bs), np.stack([L.solve(a, x) for x in bs])
    )


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 4), (2, 4, 3)])
@pytest.mark.parametrize("full", [False, True])
def test_svd_complex(shape, full, rng):
    """Complex SVD: singular values, and phase-invariant products u_i v_i^H and |u|^2."""
    z = rnd(rng, *shape) + 1j * rnd(rng, *shape)
    k = min(shape[-2:])
    w = np.arange(1.0, k + 1)

    def f(a):
        u, s, vh = L.svd(a, full_matrices=full)
        return dnp.matmul(u[..., :, :k] * w, vh[..., :k, :])

    def g(a):
        u = L.svd(a, full_matrices=full)[0][..., :, :k]
        return dnp.real(u * dnp.conjugate(u))

    check(f, z)
    check(g, z)
    check(lambda a: L.svd(a, compute_uv=False), z)


def _cofactor_brute(a):
    n = a.shape[-1]
    return np.array(
        [
            [(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1)) for j in range(n)]
            for i in range(n)
        ]
    )


@pytest.mark.parametrize(
    "a",
    [
        np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]),  # rank 2
        np.diag([1.0, 2.0, 0.0]),
        np.zeros((3, 3)) + np.eye(3)[0:1].T @ np.eye(3)[0:1],  # rank 1
    ],
)
def test_det_singular(a):
    """det's derivative (the cofactor matrix) is finite at singular matrices, in both modes;
    so is its second derivative where the singular values are distinct (rank n - 1), against
    finite differences of the exact cofactors."""
    assert np.linalg.det(a) == 0
    c = _cofactor_brute(a)
    np.testing.assert_allclose(ds.grad(L.det)(a), c, atol=1e-12)
    t = np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(ds.jvp(L.det, (a,), (t,))[1], np.sum(c * t), atol=1e-12)
    if np.linalg.matrix_rank(a) < 2:
        return  # repeated zero singular values: the SVD-based second derivative is not finite
    eps = 1e-5
    h = np.zeros((3, 3, 3, 3))
    for k in range(3):
        for m in range(3):
            e = np.zeros((3, 3))
            e[k, m] = eps
            h[:, :, k, m] = (_cofactor_brute(a + e) - _cofactor_brute(a - e)) / (2 * eps)
    for hess in (ds.hessian(L.det)(a), ds.jacrev(ds.grad(L.det))(a)):
        np.testing.assert_allclose(hess, h, atol=1e-8)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 5), (2, 4, 3)])
def test_qr_complex(shape, rng):
    """Complex QR (diag(R) real, as LAPACK returns it): both factors, every mode's values."""
    z = rnd(rng, *shape) + 1j * rnd(rng, *shape)
    check(lambda a: L.qr(a)[0], z)
    check(lambda a: L.qr(a)[1], z)
    for mode in ("reduced", "complete"):
        got = ds.jvp(lambda a, mode=mode: L.qr(a, mode=mode), (z,), (z,))[0]
        for x, y in zip(got, np.linalg.qr(z, mode=mode), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (2, 3, 4)])
def test_pinv_lstsq_complex(shape, rng):
    z = rnd(rng, *shape) + 1j * rnd(rng, *shape)
    np.testing.assert_allclose(ds.jvp(L.pinv, (z,), (z,))[0], np.linalg.pinv(z), atol=1e-12)
    check(L.pinv, z)
    if len(shape) == 2:
        b = rnd(rng, shape[0], 2) + 1j * rnd(rng, shape[0], 2)
        want = np.linalg.lstsq(z, b)
        got = ds.jvp(L.lstsq, (z, b), (z, b))[0]
        np.testing.assert_allclose(got[0], want[0], atol=1e-12)
        np.testing.assert_allclose(got[1], want[1], atol=1e-12)
        check(lambda a, c: L.lstsq(a, c)[0], z, b)


# --- lstsq under vmap (and jacfwd/jacrev/hessian of a batch) -----------------------------------


def _lstsq_numpy_stack(a, b):
    """NumPy's lstsq on each matrix of a stack: ``(x, residuals, rank, s)`` stacked (the
    residuals as a list, since NumPy's may be empty for some matrices)."""
    outs = [np.linalg.lstsq(a[i], b[i]) for i in range(a.shape[0])]
    x, res, rank, s = zip(*outs, strict=True)
    return np.stack(x), list(res), np.array(rank), np.stack(s)


def _rank_deficient(rng, m, n):
    """An ``(m, n)`` matrix whose last column repeats its first (rank ``n - 1``)."""
    a = rnd(rng, m, n)
    a[:, -1] = a[:, 0]
    return a


# (id, a shape, b shape): tall (residuals defined), square, wide (residuals empty)
LSTSQ_SHAPES = [
    ("tall_matrix_b", (5, 3), (5, 2)),
    ("tall_vector_b", (5, 3), (5,)),
    ("square", (3, 3), (3, 2)),
    ("wide", (3, 5), (3,)),
]


@pytest.mark.parametrize("name,a_shape,b_shape", LSTSQ_SHAPES, ids=[c[0] for c in LSTSQ_SHAPES])
@pytest.mark.parametrize(
    "which", [(True, True), (True, False), (False, True)], ids=["both", "a_only", "b_only"]
)
def test_lstsq_vmap_equals_stacking(name, a_shape, b_shape, which, rng):
    """vmap(lstsq) over 4 matrices (and/or right-hand sides) equals NumPy's lstsq on each."""
    a_all, b_all = rnd(rng, 4, *a_shape), rnd(rng, 4, *b_shape)
    args = (a_all if which[0] else a_all[0], b_all if which[1] else b_all[0])
    in_axes = tuple(0 if w else None for w in which)
    x, res, rank, s = ds.vmap(L.lstsq, in_axes=in_axes)(*args)
    a_each = a_all if which[0] else np.broadcast_to(a_all[0], a_all.shape)
    b_each = b_all if which[1] else np.broadcast_to(b_all[0], b_all.shape)
    want_x, want_res, want_rank, want_s = _lstsq_numpy_stack(a_each, b_each)
    np.testing.assert_allclose(x, want_x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s, want_s, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rank, want_rank)
    assert np.issubdtype(np.asarray(rank).dtype, np.integer)
    np.testing.assert_allclose(res, np.stack(want_res), rtol=1e-10, atol=1e-12)
    assert res.shape == (4,) + want_res[0].shape


def test_lstsq_vmap_rank_deficient_batch(rng):
    """A batch mixing a full-rank and a rank-deficient tall matrix: one rank per matrix; the
    residuals are |b - a x|^2 of the minimum-norm solution for both (NumPy leaves the
    rank-deficient one's empty); x is NumPy's minimum-norm solution."""
    a = np.stack([rnd(rng, 5, 3), _rank_deficient(rng, 5, 3)])
    b = rnd(rng, 2, 5, 2)
    x, res, rank, s = ds.vmap(L.lstsq)(a, b)
    want_x, want_res, want_rank, want_s = _lstsq_numpy_stack(a, b)
    np.testing.assert_array_equal(want_rank, [3, 2])
    np.testing.assert_array_equal(rank, want_rank)
    np.testing.assert_allclose(x, want_x, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(s, want_s, rtol=1e-12, atol=1e-12)
    assert want_res[1].shape == (0,)  # NumPy: empty where the rank is deficient
    np.testing.assert_allclose(res[0], want_res[0], rtol=1e-10)
    direct = np.sum((b[1] - a[1] @ want_x[1]) ** 2, axis=0)
    np.testing.assert_allclose(res[1], direct, rtol=1e-8)
    # a wide batch has no residuals at all, rank-deficient or not
    wide = rnd(rng, 2, 3, 5)
    wide[1, 2] = wide[1, 0]  # a repeated row: rank 2 of 3
    c = rnd(rng, 3)
    x, res, rank, _ = ds.vmap(L.lstsq, in_axes=(0, None))(wide, c)
    assert res.shape == (2, 0)
    np.testing.assert_array_equal(rank, [3, 2])
    for i in range(2):
        np.testing.assert_allclose(x[i], np.linalg.lstsq(wide[i], c)[0], rtol=1e-8, atol=1e-10)


def test_lstsq_unbatched_outputs_stay_numpys(rng):
    """With a single concrete matrix (jvp, grad), rank is a Python int and a rank-deficient
    matrix has NumPy's empty residuals, as before vmap support."""
    a, b = _rank_deficient(rng, 5, 3), rnd(rng, 5, 2)
    (x, res, rank, s), _ = ds.jvp(L.lstsq, (a, b), (a, b))
    want = np.linalg.lstsq(a, b)
    assert type(rank) is int and rank == want[2] == 2
    assert res.shape == (0,) and want[1].shape == (0,)
    np.testing.assert_allclose(x, want[0], rtol=1e-8, atol=1e-10)
    (_, res, rank, _), _ = ds.jvp(L.lstsq, (a[:, :2], b), (a[:, :2], b))
    assert type(rank) is int and rank == 2
    np.testing.assert_allclose(res, np.linalg.lstsq(a[:, :2], b)[1], rtol=1e-10)


def _lstsq_x_batched(a, b):
    return ds.vmap(lambda m, c: L.lstsq(m, c)[0])(a, b)


def _lstsq_res_batched(a, b):
    return ds.vmap(lambda m, c: L.lstsq(m, c)[1])(a, b)


@pytest.mark.parametrize("f", [_lstsq_x_batched, _lstsq_res_batched], ids=["x", "residuals"])
def test_lstsq_batched_derivatives(f, rng):
    """Derivatives through vmap(lstsq) of full-rank tall matrices match finite differences to
    order 2, forward and reverse."""
    a, b = rnd(rng, 3, 5, 3), rnd(rng, 3, 5, 2)
    check(f, a, b)


def test_lstsq_jacobians_meet_a_batch(rng):
    """jacfwd/jacrev/hessian where lstsq's rank computation sees a batch: of a vmapped
    function (block diagonal over the batch) and vmapped over matrices, each equal to the
    per-matrix Jacobians and Hessians (themselves checked against finite differences)."""
    a, b = rnd(rng, 2, 5, 3), rnd(rng, 5, 2)

    def x_of(m):
        return L.lstsq(m, b)[0]

    def loss(m):
        x, res, _, _ = L.lstsq(m, b)
        return dnp.sum(x**3) + dnp.sum(res)

    per_jac = np.stack([ds.jacrev(x_of)(a[i]) for i in range(2)])  # (2, 3, 2, 5, 3)
    per_hess = np.stack([ds.hessian(loss)(a[i]) for i in range(2)])
    for i in range(2):
        check(x_of, a[i])
        check(loss, a[i])
    batched = ds.vmap(x_of)
    for jac in (ds.jacfwd, ds.jacrev):
        full = jac(batched)(a)  # (2, 3, 2, 2, 5, 3): zero off the batch diagonal
        for i in range(2):
            for j in range(2):
                want = per_jac[i] if i == j else np.zeros_like(per_jac[i])
                np.testing.assert_allclose(full[i, :, :, j], want, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ds.vmap(jac(x_of))(a), per_jac, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ds.vmap(ds.hessian(loss))(a), per_hess, rtol=1e-8, atol=1e-10)
    h = ds.hessian(lambda s: dnp.sum(ds.vmap(loss)(s)))(a)
    np.testing.assert_allclose(h[0, :, :, 0], per_hess[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(h[1, :, :, 1], per_hess[1], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(h[0, :, :, 1], 0.0, atol=1e-10)


def test_lstsq_shape_errors(rng):
    """Under a transform lstsq keeps NumPy's contract: one matrix, matching rows."""
    with pytest.raises(np.linalg.LinAlgError, match=r"\(2, 5, 3\)"):
        ds.jvp(L.lstsq, (rnd(rng, 2, 5, 3), rnd(rng, 5)), (rnd(rng, 2, 5, 3), rnd(rng, 5)))
    with pytest.raises(np.linalg.LinAlgError, match=r"\(5, 3\).*\(4,\)"):
        ds.vmap(L.lstsq, in_axes=(0, None))(rnd(rng, 2, 5, 3), rnd(rng, 4))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_large_matrices_share_one_lu(dtype, rng):
    """Matrices of 32+ rows go through a cached LU (forward solve/slogdet and the backward
    solves with A^T share it): same values and gradients as the closed forms, float32 kept."""
    n = 40
    m = rnd(rng, n, n)
    a = m @ m.T / n + np.eye(n)
    b = rnd(rng, n, 3)
    if dtype == np.complex128:
        a = a + 0.1j * rnd(rng, n, n)
        b = b + 1j * rnd(rng, n, 3)
    a, b = a.astype(dtype), b.astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    x, sl = ds.jvp(lambda p: (L.solve(p, b), L.slogdet(p)), (a,), (a,))[0]
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=tol, atol=tol)
    np.testing.assert_allclose(sl[0], np.linalg.slogdet(a)[0], rtol=tol)
    np.testing.assert_allclose(sl[1], np.linalg.slogdet(a)[1], rtol=tol)
    w = rnd(rng, n, 3)

    def f(p):
        out = L.slogdet(p)[1] + dnp.sum(L.solve(p, b) * w)
        return dnp.real(out) if dtype == np.complex128 else out

    g = ds.grad(f)(a)
    assert g.dtype == dtype
    ai = np.linalg.inv(a.astype(np.complex128 if dtype == np.complex128 else np.float64))
    want = ai.T - ai.T @ w @ (ai @ b).T
    # (for complex, the VJP of the holomorphic part without conjugation: JAX's convention)
    np.testing.assert_allclose(g, want, rtol=tol * 100, atol=tol * 100)
    if dtype != np.float32:
        ds.check_grads(f, (a,), order=1, modes=("fwd", "rev"))


def test_lu_cache_sees_mutation_and_singularity():
    n = 40
    a = 2.0 * np.eye(n)
    b = np.ones((n, 1))

    def solve_traced(p):
        return ds.jvp(lambda q: L.solve(q, b), (p,), (p,))[0]

    assert solve_traced(a)[0, 0] == 0.5
    a[0, 0] = 4.0  # the same array object, changed in place
    assert solve_traced(a)[0, 0] == 0.25
    a[0, 0] = 0.0
    with pytest.raises(np.linalg.LinAlgError):
        solve_traced(a)
    sign, logdet = ds.vjp(L.slogdet, a)[0]  # values only: no solve
    assert sign == 0 and logdet == -np.inf


def test_lu_cache_entry_dies_with_its_array():
    from diffsys.numpy import linalg as linalg_module

    a = 2.0 * np.eye(40)
    ds.jvp(lambda q: L.solve(q, np.ones((40, 1))), (a,), (a,))
    assert any(entry[0]() is a for entry in linalg_module._LU_CACHE)
    del a
    assert all(entry[0]() is not None for entry in linalg_module._LU_CACHE)


def test_tensorsolve_axes(rng):
    a = (rnd(rng, 6, 6) + 4 * np.eye(6)).reshape(6, 2, 3)
    a = np.moveaxis(a, 0, 2)  # (2, 3, 6): the solved-for axes first
    b = rnd(rng, 6)

    def f(x, y):
        return L.tensorsolve(x, y, axes=(0, 1))

    np.testing.assert_allclose(ds.jvp(f, (a, b), (a, b))[0], np.linalg.tensorsolve(a, b, (0, 1)))
    check(f, a, b)


def test_eigenvalue_gradient_is_finite_for_repeated_eigenvalues():
    g = ds.grad(lambda x: dnp.sum(dnp.linalg.eigvalsh(x)))(np.eye(3))
    np.testing.assert_allclose(g, np.eye(3))
    g = ds.grad(lambda x: dnp.linalg.eigvalsh(x)[-1])(np.diag([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(g, np.diag([0.0, 0.0, 1.0]))


# --- eig / eigvals: general matrices, complex spectra ------------------------------------------


def _phase_invariant(a, weights):
    """Real functions of eig's results that do not depend on the eigenvectors' phases."""
    w, v = L.eig(a)
    proj = dnp.matmul(v[..., :, :1], dnp.conjugate(dnp.swapaxes(v[..., :, :1], -1, -2)))
    return (
        dnp.sum(dnp.real(w) * weights[0])
        + dnp.sum(dnp.imag(w) ** 2 * weights[1])
        + dnp.sum(dnp.abs(v) ** 2 * weights[2])
        + dnp.sum(dnp.real(proj) + dnp.imag(proj) ** 2)
    )


@pytest.mark.parametrize("kind", ["real_complex_spectrum", "real_spectrum", "complex", "stack"])
def test_eig_derivatives_match_finite_differences(kind, rng):
    n = 4
    a = rnd(rng, n, n)
    if kind == "real_spectrum":
        a = a + a.T + np.diag(np.arange(n) * 3.0)
    elif kind == "complex":
        a = a + 1j * rnd(rng, n, n)
    elif kind == "stack":
        a = rnd(rng, 2, n, n)
    weights = (rnd(rng, n), rnd(rng, n), rnd(rng, n, n))
    w, v = ds.vjp(L.eig, a)[0]
    want_w, want_v = np.linalg.eig(a)
    np.testing.assert_allclose(w, want_w, rtol=1e-12)
    np.testing.assert_allclose(v, want_v, rtol=1e-12, atol=1e-14)
    assert w.dtype == want_w.dtype and v.dtype == want_v.dtype
    check(lambda x: _phase_invariant(x, weights), a)
    check(lambda x: L.eigvals(x), a)
    if kind == "real_spectrum":  # real eigenvectors: only their signs are arbitrary
        check(lambda x: L.eig(x)[1] ** 2, a)


def test_eig_vjp_is_the_transpose_of_its_jvp(rng):
    """For any cotangent, <g, J t> = <J^T g, t> (so the two modes agree on every function,
    phase-dependent ones included); eigenvectors keep unit norm to first order."""
    a = rnd(rng, 4, 4)
    t = rnd(rng, 4, 4)
    (w, v), (dw, dv) = ds.jvp(L.eig, (a,), (t,))
    assert w.dtype.kind == "c"
    gw = rnd(rng, 4) + 1j * rnd(rng, 4)
    gv = rnd(rng, 4, 4) + 1j * rnd(rng, 4, 4)
    (ga,) = ds.vjp(L.eig, a)[1]((gw, gv))
    assert ga.dtype == np.float64
    np.testing.assert_allclose(np.real(np.sum(gw * dw) + np.sum(gv * dv)), np.sum(ga * t))
    np.testing.assert_allclose(np.real(np.sum(np.conj(v) * dv, axis=0)), 0.0, atol=1e-12)
    # A V = V diag(w) to first order: dA V + A dV = dV diag(w) + V diag(dw)
    np.testing.assert_allclose(t @ v + a @ dv, dv * w + v * dw, atol=1e-12)


def test_eig_vmap_and_float32(rng):
    a = rnd(rng, 3, 4, 4)
    weights = (rnd(rng, 4), rnd(rng, 4), rnd(rng, 4, 4))
    f = lambda x: _phase_invariant(x, weights)  # noqa: E731
    np.testing.assert_allclose(ds.vmap(f)(a), [f(x) for x in a], rtol=1e-12)
    g = ds.vmap(ds.grad(f))(a)
    np.testing.assert_allclose(g, np.stack([ds.grad(f)(x) for x in a]), rtol=1e-10, atol=1e-12)
    a32 = a[0].astype(np.float32)
    out = ds.vjp(L.eig, a32)[0]
    assert out[0].dtype == np.linalg.eig(a32)[0].dtype
    assert ds.grad(lambda x: dnp.sum(dnp.real(L.eigvals(x))))(a32).dtype == np.float32
    g = ds.grad(lambda x: dnp.sum(dnp.real(L.eigvals(x))))(a[0])  # d trace / dA
    np.testing.assert_allclose(g, np.eye(4), atol=1e-12)
