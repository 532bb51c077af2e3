"""diffsys.scipy.linalg: values equal scipy.linalg's, derivatives match finite differences to
order 2 in both modes (single and stacked matrices), vmap equals stacking per-row results,
closed-form gradients, and the documented conventions (one triangle read, pivots as
values)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.scipy import linalg as L
from linalg_cases import check_vmap_equals_stacking, rnd, spd, sym, well


def pivoting(rng, *shape):
    """A square stack whose LU factorization needs row swaps (a small leading pivot)."""
    a = rng.standard_normal(shape)
    a[..., 0, 0] = 0.01
    a[..., 1, 0] = 2.0
    return a


def banded(rng, l, u, n, *lead):
    ab = rng.standard_normal(lead + (l + u + 1, n))
    ab[..., u, :] += 4.0  # diagonally dominant
    return ab


def check(f, *args, order=2):
    ds.check_grads(f, args, order=order, modes=("fwd", "rev"))


def traced_value(f, *args):
    return ds.jvp(f, args, args)[0]


TRI = [(lo, tr, un) for lo in (True, False) for tr in (0, 1, 2, "T") for un in (False, True)]


@pytest.mark.parametrize("lower,trans,unit", TRI)
def test_solve_triangular(lower, trans, unit, rng):
    a, b = well(rng, 3, 3), rnd(rng, 3, 2)

    def f(a, b):
        return L.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit)

    want = sl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit)
    np.testing.assert_allclose(traced_value(f, a, b), want, rtol=1e-12)
    check(f, a, b)


def test_solve_triangular_vector_stack_and_broadcast(rng):
    a, b = well(rng, 2, 3, 3), rnd(rng, 2, 3, 2)
    check(lambda a, b: L.solve_triangular(a, b, lower=True), a, b)
    check(lambda a, b: L.solve_triangular(a, b, trans=1), a[0], b)  # a broadcast over b
    v = rnd(rng, 3)
    np.testing.assert_allclose(
        traced_value(lambda a, v: L.solve_triangular(a, v), a[0], v),
        sl.solve_triangular(a[0], v),
    )
    check(lambda a, v: L.solve_triangular(a, v, lower=True, unit_diagonal=True), a[0], v)


def test_solve_triangular_reads_one_triangle(rng):
    """The gradient in ``a`` vanishes off the triangle read (and on the unit diagonal)."""
    a, b = well(rng, 4, 4), rnd(rng, 4, 2)
    for lower, unit in ((True, False), (False, True)):
        g = ds.grad(
            lambda x, lower=lower, unit=unit: dnp.sum(
                L.solve_triangular(x, b, lower=lower, unit_diagonal=unit) ** 2
            )
        )(a)
        mask = np.tri(4, 4, -1 if unit else 0)
        mask = mask if lower else mask.T
        np.testing.assert_array_equal(g[mask == 0], 0.0)
        assert np.all(g[mask == 1] != 0.0)
        # and it equals the gradient through a dense solve with the masked matrix
        m = a * mask + (np.eye(4) if unit else 0)
        x = np.linalg.solve(m, b)
        want = -np.linalg.solve(m.T, 2 * x) @ x.T * mask
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12)


def test_solve_triangular_complex(rng):
    a = well(rng, 3, 3) + 1j * rnd(rng, 3, 3)
    b = rnd(rng, 3, 2) + 1j * rnd(rng, 3, 2)
    for trans in (0, 1, 2):
        f = lambda a, b, trans=trans: L.solve_triangular(a, b, trans=trans, lower=True)  # noqa: E731
        np.testing.assert_allclose(
            traced_value(f, a, b), sl.solve_triangular(a, b, trans=trans, lower=True)
        )
        check(f, a, b)


@pytest.mark.parametrize("lower", [False, True])
def test_cho_factor_solve(lower, rng):
    s, b = spd(rng, 3, 3), rnd(rng, 3, 2)
    c = traced_value(lambda x: L.cho_factor(x, lower=lower)[0], s)
    np.testing.assert_allclose(c, sl.cho_factor(s, lower=lower)[0], rtol=1e-12)
    x = traced_value(lambda x, b: L.cho_solve(L.cho_factor(x, lower=lower), b), s, b)
    np.testing.assert_allclose(x, sl.cho_solve(sl.cho_factor(s, lower=lower), b), rtol=1e-10)
    assert L.cho_factor(s, lower=lower)[1] is lower
    check(lambda a, b: L.cho_solve(L.cho_factor(sym(a), lower=lower), b), s, b)
    check(lambda a: L.cho_factor(sym(a), lower=lower)[0], s)
    # stacked, and a vector right-hand side
    ss, bs = spd(rng, 2, 3, 3), rnd(rng, 2, 3, 2)
    check(lambda a, b: L.cho_solve(L.cho_factor(sym(a), lower=lower), b), ss, bs)
    check(lambda a, v: L.cho_solve(L.cho_factor(sym(a), lower=lower), v), s, rnd(rng, 3))


def test_cho_solve_gradient_is_solve_gradient(rng):
    """Through the factor, ``cho_solve(cho_factor(A), b)`` differentiates as ``solve(A, b)``
    for symmetric perturbations."""
    s, b = spd(rng, 4, 4), rnd(rng, 4, 2)
    w = rnd(rng, 4, 2)
    g1 = ds.grad(lambda a: dnp.sum(L.cho_solve(L.cho_factor(sym(a)), b) * w))(s)
    g2 = ds.grad(lambda a: dnp.sum(dnp.linalg.solve(sym(a), b) * w))(s)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)


def test_lu_pivots_and_values(rng):
    a = pivoting(rng, 2, 4, 4)
    lu, piv = L.lu_factor(a)
    want_lu, want_piv = sl.lu_factor(a)
    assert np.any(want_piv != np.arange(4))  # the case has row swaps
    got_lu, got_piv = traced_value(lambda x: L.lu_factor(x)[0], a), None
    got_piv = ds.jvp(lambda x: L.lu_factor(x)[1], (a,), (a,))[0]
    np.testing.assert_allclose(got_lu, want_lu, rtol=1e-12)
    np.testing.assert_array_equal(got_piv, want_piv)
    np.testing.assert_array_equal(piv, want_piv)
    # the permutation helpers invert each other
    from diffsys.scipy.linalg import _piv_from_pmat_impl, _pmat_from_piv_impl

    q = _pmat_from_piv_impl(want_piv, np.float64)
    np.testing.assert_array_equal(_piv_from_pmat_impl(q), want_piv)
    lo = np.tril(want_lu, -1) + np.eye(4)
    np.testing.assert_allclose(q @ a, lo @ np.triu(want_lu), atol=1e-12)


@pytest.mark.parametrize("trans", [0, 1, 2])
def test_lu_solve(trans, rng):
    a, b = pivoting(rng, 4, 4), rnd(rng, 4, 2)

    def f(a, b):
        return L.lu_solve(L.lu_factor(a), b, trans=trans)

    np.testing.assert_allclose(
        traced_value(f, a, b), sl.lu_solve(sl.lu_factor(a), b, trans=trans), rtol=1e-10
    )
    check(f, a, b)
    # against the dense solve: same function, so the same gradients
    op = (lambda m: m) if trans == 0 else (lambda m: dnp.swapaxes(m, -1, -2))
    w = rnd(rng, 4, 2)
    for k in (0, 1):
        g1 = ds.grad(lambda a, b: dnp.sum(f(a, b) * w), argnums=k)(a, b)
        g2 = ds.grad(lambda a, b: dnp.sum(dnp.linalg.solve(op(a), b) * w), argnums=k)(a, b)
        np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-12)


def test_lu_factor_derivative_stacked_and_complex(rng):
    check(lambda a: L.lu_factor(a)[0], pivoting(rng, 2, 3, 3))
    z = pivoting(rng, 3, 3) + 1j * rnd(rng, 3, 3)
    check(lambda a: L.lu_factor(a)[0], z)
    b = rnd(rng, 3)
    check(lambda a, b: L.lu_solve(L.lu_factor(a), b), z, b)
    # lu_solve with a constant factorization: gradient in b only
    lu_piv = sl.lu_factor(z)
    check(lambda b: L.lu_solve(lu_piv, b), b + 0j)


def test_expm(rng):
    a = rnd(rng, 3, 3)
    np.testing.assert_allclose(traced_value(L.expm, a), sl.expm(a), rtol=1e-12)
    check(L.expm, a)
    check(L.expm, rnd(rng, 2, 3, 3))
    check(L.expm, rnd(rng, 2, 2) + 1j * rnd(rng, 2, 2))
    # the Fréchet derivative equals SciPy's expm_frechet, and the gradient of a diagonal
    e = rnd(rng, 3, 3)
    np.testing.assert_allclose(
        ds.jvp(L.expm, (a,), (e,))[1], sl.expm_frechet(a, e, compute_expm=False), rtol=1e-10
    )
    d = np.diag([0.1, -0.4, 0.7])
    np.testing.assert_allclose(
        ds.grad(lambda x: dnp.trace(L.expm(x)))(d), np.diag(np.exp([0.1, -0.4, 0.7])), rtol=1e-12
    )


def test_sqrtm(rng):
    s = spd(rng, 3, 3)
    x = traced_value(L.sqrtm, s)
    np.testing.assert_allclose(x, sl.sqrtm(s), rtol=1e-10)
    np.testing.assert_allclose(x @ x, s, rtol=1e-10)
    check(L.sqrtm, s)
    check(L.sqrtm, spd(rng, 2, 3, 3))
    check(L.sqrtm, well(rng, 3, 3) + 2 * np.eye(3))  # not symmetric, eigenvalues in Re > 0
    # d tr(sqrtm(A)) = A^{-1/2} / 2 (transposed)
    g = ds.grad(lambda a: dnp.trace(L.sqrtm(a)))(s)
    np.testing.assert_allclose(g, np.linalg.inv(sl.sqrtm(s)).T / 2, rtol=1e-9)


def test_solve_sylvester(rng):
    a, b, q = well(rng, 3, 3), well(rng, 2, 2), rnd(rng, 3, 2)
    np.testing.assert_allclose(
        traced_value(L.solve_sylvester, a, b, q), sl.solve_sylvester(a, b, q), rtol=1e-10
    )
    check(L.solve_sylvester, a, b, q)
    check(L.solve_sylvester, well(rng, 2, 3, 3), b, rnd(rng, 2, 3, 2))


@pytest.mark.parametrize("l,u", [(1, 1), (0, 2), (2, 0)])
def test_solve_banded(l, u, rng):
    ab, b = banded(rng, l, u, 5), rnd(rng, 5, 2)
    f = lambda ab, b: L.solve_banded((l, u), ab, b)  # noqa: E731
    np.testing.assert_allclose(traced_value(f, ab, b), sl.solve_banded((l, u), ab, b))
    check(f, ab, b)
    v = rnd(rng, 5)
    np.testing.assert_allclose(traced_value(f, ab, v), sl.solve_banded((l, u), ab, v))
    check(f, banded(rng, l, u, 4, 2), rnd(rng, 2, 4, 1))
    check(f, ab, rnd(rng, 2, 5, 2))  # b stacked over one band matrix


def test_solve_banded_gradient_is_dense_on_the_band(rng):
    l, u, n = 1, 2, 5
    ab, b = banded(rng, l, u, n), rnd(rng, n, 2)
    dense = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if 0 <= u + i - j <= l + u:
                dense[i, j] = ab[u + i - j, j]
    x = np.linalg.solve(dense, b)
    gd = -np.linalg.solve(dense.T, np.ones_like(x)) @ x.T
    g = ds.grad(lambda ab: dnp.sum(L.solve_banded((l, u), ab, b)))(ab)
    for k in range(l + u + 1):
        for j in range(n):
            i = k - u + j
            want = gd[i, j] if 0 <= i < n else 0.0
            np.testing.assert_allclose(g[k, j], want, rtol=1e-10, atol=1e-12)


def test_eigh_subsets(rng):
    s = spd(rng, 5, 5)
    w_all, v_all = sl.eigh(s)
    w, v = traced_value(lambda x: L.eigh(x, subset_by_index=[1, 3]), s)
    want_w, want_v = sl.eigh(s, subset_by_index=[1, 3])
    np.testing.assert_allclose(w, want_w, rtol=1e-10)
    np.testing.assert_allclose(np.abs(v), np.abs(want_v), atol=1e-10)
    lo, hi = (w_all[0] + w_all[1]) / 2, (w_all[3] + w_all[4]) / 2
    w = traced_value(lambda x: L.eigh(x, subset_by_value=(lo, hi), eigvals_only=True), s)
    np.testing.assert_allclose(w, sl.eigh(s, subset_by_value=(lo, hi), eigvals_only=True))
    assert w.shape == (3,)
    for kw in ({"subset_by_index": [0, 1]}, {"subset_by_value": (lo, hi)}, {"lower": False}):
        check(lambda x, kw=kw: L.eigh(sym(x), eigvals_only=True, **kw), s)
        check(lambda x, kw=kw: L.eigh(sym(x), **kw)[1] ** 2, s)
    # gradient of one eigenvalue is v v^T, folded onto the lower triangle that is read
    g = ds.grad(lambda x: L.eigh(x, subset_by_index=[4, 4], eigvals_only=True)[0])(s)
    vv = np.outer(v_all[:, 4], v_all[:, 4])
    np.testing.assert_allclose(g, np.tril(2 * vv, -1) + np.diag(np.diag(vv)), atol=1e-10)


def test_eigh_generalized(rng):
    a, b = spd(rng, 3, 3) - 4 * np.eye(3), spd(rng, 3, 3)
    w, v = traced_value(lambda a, b: L.eigh(a, b), a, b)
    want_w, want_v = sl.eigh(a, b)
    np.testing.assert_allclose(w, want_w, rtol=1e-10)
    np.testing.assert_allclose(np.abs(v), np.abs(want_v), atol=1e-10)
    check(lambda a, b: L.eigh(sym(a), sym(b), eigvals_only=True), a, b)
    check(lambda a, b: L.eigh(sym(a), sym(b), subset_by_index=[0, 1])[1] ** 2, a, b)


def test_block_diag(rng):
    blocks = (rnd(rng, 2, 3), rnd(rng, 1, 1), rnd(rng, 2), np.array(4.0), rnd(rng, 3, 2))
    got = traced_value(L.block_diag, *blocks)
    np.testing.assert_array_equal(got, sl.block_diag(*blocks))
    np.testing.assert_array_equal(L.block_diag(*blocks), sl.block_diag(*blocks))
    check(L.block_diag, *blocks)
    g = ds.grad(lambda a, b: dnp.sum(L.block_diag(a, b) * 2.0), argnums=(0, 1))(*blocks[:2])
    np.testing.assert_array_equal(g[0], 2.0)
    np.testing.assert_array_equal(g[1], 2.0)


VMAP = [
    ("solve_triangular_a", lambda a, b: L.solve_triangular(a, b, lower=True), (True, False)),
    ("solve_triangular_b", lambda a, b: L.solve_triangular(a, b, trans=1), (False, True)),
    ("solve_triangular_ab", lambda a, b: L.solve_triangular(a, b), (True, True)),
    (
        "cho_solve",
        lambda a, b: L.cho_solve(
            L.cho_factor(dnp.matmul(a, dnp.swapaxes(a, -1, -2)) + 3 * np.eye(3)), b
        ),
        (True, True),
    ),
    ("lu_solve", lambda a, b: L.lu_solve(L.lu_factor(a), b), (True, False)),
    ("lu_solve_t", lambda a, b: L.lu_solve(L.lu_factor(a), b, trans=1), (True, True)),
    ("expm", lambda a: L.expm(a * 0.3), (True,)),
    ("sqrtm", lambda a: L.sqrtm(dnp.matmul(a, dnp.swapaxes(a, -1, -2)) + np.eye(3)), (True,)),
    (
        "sylvester",
        lambda a, b: L.solve_sylvester(a, a + 1.0, b[..., :, :1] * np.ones(3)),
        (True, True),
    ),
    ("banded", lambda a, b: L.solve_banded((1, 1), a, b), (True, False)),
    ("eigh_subset", lambda a, b: L.eigh(sym(a), subset_by_index=[1, 2])[0], (True, False)),
    ("block_diag", lambda a, b: L.block_diag(a, b), (True, True)),
]


@pytest.mark.parametrize("name,f,which", VMAP, ids=[v[0] for v in VMAP])
def test_vmap_equals_stacking(name, f, which, rng):
    check_vmap_equals_stacking(f, which, rng)


def test_jacobians_batched(rng):
    """jacfwd/jacrev run the batching rules of the derivative rules."""
    a = rnd(rng, 3, 3) * 0.5
    jf = ds.jacfwd(L.expm)(a)
    jr = ds.jacrev(L.expm)(a)
    np.testing.assert_allclose(jf, jr, atol=1e-12)
    e = np.zeros((3, 3))
    e[0, 1] = 1.0
    np.testing.assert_allclose(jf[..., 0, 1], sl.expm_frechet(a, e, compute_expm=False))
    s = spd(rng, 3, 3)
    b = rnd(rng, 3)
    jf = ds.jacfwd(lambda x: L.cho_solve(L.cho_factor(sym(x)), b))(s)
    jr = ds.jacrev(lambda x: L.cho_solve(L.cho_factor(sym(x)), b))(s)
    np.testing.assert_allclose(jf, jr, atol=1e-12)


@pytest.mark.parametrize(
    "f",
    [
        L.expm,
        lambda a: L.solve_triangular(a, np.ones((3, 1), np.float32)),
        lambda a: L.lu_solve(L.lu_factor(a), np.ones(3, np.float32)),
        lambda a: L.solve_sylvester(a, a, np.ones((3, 3), np.float32)),
    ],
)
def test_float32_preserved(f, rng):
    a = well(rng, 3, 3).astype(np.float32)
    out = ds.jvp(f, (a,), (a,))
    assert out[0].dtype == np.float32 and out[1].dtype == np.float32
    assert ds.grad(lambda x: dnp.sum(f(x)))(a).dtype == np.float32


def test_errors(rng):
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        ds.grad(lambda x: dnp.sum(L.expm(x)))(rnd(rng, 2, 3))
    with pytest.raises(ValueError, match="rows"):
        ds.grad(lambda x: dnp.sum(L.solve_banded((1, 1), x, np.ones(4))))(rnd(rng, 2, 4))
    with pytest.raises(ValueError, match="trans"):
        ds.grad(lambda x: dnp.sum(L.solve_triangular(x, np.ones(3), trans="X")))(well(rng, 3, 3))


@pytest.mark.parametrize("lower", [True, False])
def test_eigh_reads_one_triangle(lower, rng):
    """Values as SciPy's from one triangle of non-symmetric inputs; derivatives of that
    function in ``a`` (finite differences of SciPy's eigh agree; zero on the other
    triangle), as diffsys.numpy.linalg.eigh."""
    a, b = rnd(rng, 3, 3), spd(rng, 3, 3) + np.triu(rnd(rng, 3, 3), 1)
    if not lower:
        b = b.T
    unread = np.triu(np.ones((3, 3)), 1) if lower else np.tril(np.ones((3, 3)), -1)
    for bb in (None, b):
        w = traced_value(lambda a: L.eigh(a, bb, lower=lower, eigvals_only=True), a)
        np.testing.assert_allclose(
            w, sl.eigh(a, bb, lower=lower, eigvals_only=True), rtol=1e-10, atol=1e-12
        )
        check(lambda a, bb=bb: L.eigh(a, bb, lower=lower, eigvals_only=True), a)
        check(lambda a, bb=bb: L.eigh(a, bb, lower=lower)[1] ** 2, a)
        g = ds.grad(lambda x, bb=bb: L.eigh(x, bb, lower=lower, eigvals_only=True)[0])(a)
        np.testing.assert_array_equal(g * unread, 0.0)


def test_complex_inputs(rng):
    m = rnd(rng, 3, 3) + 1j * rnd(rng, 3, 3)
    h = m @ m.conj().T + 3 * np.eye(3)

    def herm(x):
        return (x + dnp.conjugate(dnp.swapaxes(x, -1, -2))) / 2

    b = rnd(rng, 3, 2) + 1j * rnd(rng, 3, 2)
    for lower in (True, False):
        np.testing.assert_allclose(
            traced_value(lambda x, b: L.cho_solve(L.cho_factor(x, lower=lower), b), h, b),
            sl.cho_solve(sl.cho_factor(h, lower=lower), b),
        )
        check(lambda x, b: L.cho_solve(L.cho_factor(herm(x), lower=lower), b), h, b)
    np.testing.assert_allclose(traced_value(L.sqrtm, h), sl.sqrtm(h), rtol=1e-10)
    check(L.sqrtm, h)
    q = rnd(rng, 3, 3) + 1j * rnd(rng, 3, 3)
    check(L.solve_sylvester, h, h.T + 1, q)
    check(lambda x: L.eigh(herm(x), eigvals_only=True, subset_by_index=[1, 2]), h)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch_a=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2),
    batch_b=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2),
    n=st.integers(1, 3),
    k=st.integers(1, 2),
    lower=st.booleans(),
    trans=st.sampled_from([0, 1, 2]),
    seed=st.integers(0, 2**16),
)
def test_solve_triangular_broadcasting_property(batch_a, batch_b, n, k, lower, trans, seed):
    """Broadcasting stacks: SciPy's values, gradients (both modes) summed over broadcast axes."""
    try:
        np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        assume(False)
    r = np.random.default_rng(seed)
    a = r.standard_normal(batch_a + (n, n)) + 3 * np.eye(n)
    b = r.standard_normal(batch_b + (n, k))

    def f(a, b):
        return L.solve_triangular(a, b, trans=trans, lower=lower)

    ab, bb = np.broadcast_to(a, np.broadcast_shapes(batch_a, batch_b) + (n, n)), b
    want = sl.solve_triangular(
        ab, np.broadcast_to(bb, ab.shape[:-2] + (n, k)), trans=trans, lower=lower
    )
    np.testing.assert_allclose(traced_value(f, a, b), want, rtol=1e-10, atol=1e-12)
    ds.check_grads(f, (a, b), order=1, modes=("fwd", "rev"))


JAC = [
    ("lu_solve", lambda a: L.lu_solve(L.lu_factor(a), np.arange(1.0, 4.0)), pivoting),
    ("sqrtm", lambda a: L.sqrtm(sym(a)), spd),
    ("sylvester", lambda a: L.solve_sylvester(a, a.T + 1.0, np.eye(3)), well),
    ("banded", lambda a: L.solve_banded((1, 1), a, np.ones(3)), well),
    ("eigh_subset", lambda a: L.eigh(sym(a), subset_by_index=[1, 2])[1] ** 2, spd),
    ("tri_trans2", lambda a: L.solve_triangular(a, np.ones((3, 2)), trans=2), well),
]


@pytest.mark.parametrize("name,f,make", JAC, ids=[j[0] for j in JAC])
def test_jacfwd_equals_jacrev(name, f, make, rng):
    """Both run the batching rules of the derivative rules (vmap over tangents/cotangents)."""
    a = make(rng, 3, 3)
    jf = ds.jacfwd(f)(a)
    jr = ds.jacrev(f)(a)
    np.testing.assert_allclose(jf, jr, rtol=1e-9, atol=1e-11)
    e = np.zeros_like(a)
    e[1, 2] = 1.0
    np.testing.assert_allclose(jf[..., 1, 2], ds.jvp(f, (a,), (e,))[1], rtol=1e-9, atol=1e-11)
