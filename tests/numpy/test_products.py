"""Products: matmul (and ``@``), dot, tensordot, einsum, outer, inner, vdot. Values equal
NumPy's, derivatives match finite differences to order 2 in both modes, batching rules agree
with a loop, float32 stays float32, errors name the shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffsys as ds
import diffsys.numpy as dnp


def rnd(*shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed * 1000 + sum(shape) + len(shape))
    return rng.standard_normal(shape).astype(dtype)


def assert_close(actual, expected, rtol=1e-12, atol=1e-12):
    assert not isinstance(actual, ds.Tracer)
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def check_op(f, f_np, *args):
    expected = f_np(*args)
    assert_close(f(*args), expected)
    out, _ = ds.jvp(f, args, tuple(np.ones_like(a) for a in args))
    assert_close(out, expected)
    out, _ = ds.vjp(f, *args)
    assert_close(out, expected)
    ds.check_grads(f, args, order=2, modes=("fwd", "rev"))


# (id, function of (module, a, b), shape of a, shape of b)
BINARY = [
    ("matmul_1d_1d", lambda m, a, b: m.matmul(a, b), (3,), (3,)),
    ("matmul_1d_2d", lambda m, a, b: m.matmul(a, b), (3,), (3, 4)),
    ("matmul_2d_1d", lambda m, a, b: m.matmul(a, b), (2, 3), (3,)),
    ("matmul_2d_2d", lambda m, a, b: m.matmul(a, b), (2, 3), (3, 4)),
    ("matmul_3d_2d", lambda m, a, b: m.matmul(a, b), (5, 2, 3), (3, 4)),
    ("matmul_2d_3d", lambda m, a, b: m.matmul(a, b), (2, 3), (5, 3, 4)),
    ("matmul_1d_3d", lambda m, a, b: m.matmul(a, b), (3,), (2, 3, 4)),
    ("matmul_3d_1d", lambda m, a, b: m.matmul(a, b), (2, 4, 3), (3,)),
    ("matmul_broadcast", lambda m, a, b: m.matmul(a, b), (2, 1, 3, 4), (5, 4, 2)),
    ("matmul_broadcast_ones", lambda m, a, b: m.matmul(a, b), (1, 3, 4), (2, 1, 4, 2)),
    ("op_matmul_2d", lambda m, a, b: a @ b, (2, 3), (3, 4)),
    ("op_matmul_1d_1d", lambda m, a, b: a @ b, (4,), (4,)),
    ("op_matmul_broadcast", lambda m, a, b: a @ b, (2, 1, 3, 4), (5, 4, 2)),
    ("dot_0d_0d", lambda m, a, b: m.dot(a, b), (), ()),
    ("dot_0d_2d", lambda m, a, b: m.dot(a, b), (), (2, 3)),
    ("dot_2d_0d", lambda m, a, b: m.dot(a, b), (2, 3), ()),
    ("dot_1d_1d", lambda m, a, b: m.dot(a, b), (3,), (3,)),
    ("dot_2d_1d", lambda m, a, b: m.dot(a, b), (2, 3), (3,)),
    ("dot_1d_2d", lambda m, a, b: m.dot(a, b), (3,), (3, 2)),
    ("dot_2d_2d", lambda m, a, b: m.dot(a, b), (2, 3), (3, 4)),
    ("dot_3d_3d", lambda m, a, b: m.dot(a, b), (2, 3, 4), (5, 4, 2)),
    ("dot_3d_2d", lambda m, a, b: m.dot(a, b), (2, 3, 4), (4, 2)),
    ("dot_2d_3d", lambda m, a, b: m.dot(a, b), (2, 3), (4, 3, 2)),
    ("dot_1d_3d", lambda m, a, b: m.dot(a, b), (3,), (2, 3, 4)),
    ("dot_3d_1d", lambda m, a, b: m.dot(a, b), (2, 4, 3), (3,)),
    ("tensordot_0", lambda m, a, b: m.tensordot(a, b, axes=0), (2, 3), (4,)),
    ("tensordot_1", lambda m, a, b: m.tensordot(a, b, axes=1), (2, 3), (3, 4)),
    ("tensordot_2", lambda m, a, b: m.tensordot(a, b, axes=2), (2, 3, 4), (3, 4, 2)),
    ("tensordot_default", lambda m, a, b: m.tensordot(a, b), (2, 3, 4), (3, 4)),
    (
        "tensordot_pairs",
        lambda m, a, b: m.tensordot(a, b, axes=([1, 0], [0, 1])),
        (2, 3, 4),
        (3, 2, 5),
    ),
    ("tensordot_pair_ints", lambda m, a, b: m.tensordot(a, b, axes=(2, 0)), (2, 3, 4), (4, 5)),
    ("tensordot_neg", lambda m, a, b: m.tensordot(a, b, axes=([-1], [-2])), (2, 3), (4, 3, 2)),
    ("einsum_matmul", lambda m, a, b: m.einsum("ij,jk->ik", a, b), (2, 3), (3, 4)),
    ("einsum_batch", lambda m, a, b: m.einsum("bij,bjk->bik", a, b), (5, 2, 3), (5, 3, 4)),
    ("einsum_outer", lambda m, a, b: m.einsum("i,j->ij", a, b), (3,), (4,)),
    ("einsum_implicit", lambda m, a, b: m.einsum("ij,jk", a, b), (2, 3), (3, 4)),
    ("einsum_implicit_order", lambda m, a, b: m.einsum("ba,ac", a, b), (2, 3), (3, 4)),
    ("einsum_ellipsis", lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b), (5, 2, 3), (5, 3, 4)),
    (
        "einsum_ellipsis_ranks",
        lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b),
        (2, 5, 2, 3),
        (3, 4),
    ),
    (
        "einsum_ellipsis_bcast",
        lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b),
        (2, 1, 3, 4),
        (5, 4, 2),
    ),
    ("einsum_ellipsis_implicit", lambda m, a, b: m.einsum("...j,j", a, b), (2, 3, 4), (4,)),
    ("einsum_hadamard", lambda m, a, b: m.einsum("ij,ij->ij", a, b), (2, 3), (2, 3)),
    ("einsum_full", lambda m, a, b: m.einsum("ij,jk->", a, b), (2, 3), (3, 4)),
    ("einsum_lonely_letter", lambda m, a, b: m.einsum("ij,k->ik", a, b), (2, 3), (4,)),
    ("einsum_diag_product", lambda m, a, b: m.einsum("ii,i->i", a, b), (3, 3), (3,)),
    ("einsum_spaces", lambda m, a, b: m.einsum("ij, jk -> ki", a, b), (2, 3), (3, 4)),
    ("outer", lambda m, a, b: m.outer(a, b), (3,), (4,)),
    ("outer_flatten", lambda m, a, b: m.outer(a, b), (2, 2), (3,)),
    ("inner_1d", lambda m, a, b: m.inner(a, b), (3,), (3,)),
    ("inner_nd", lambda m, a, b: m.inner(a, b), (2, 3), (4, 3)),
    ("inner_0d", lambda m, a, b: m.inner(a, b), (), (2, 3)),
    ("vdot", lambda m, a, b: m.vdot(a, b), (2, 2), (4,)),
    ("vdot_1d", lambda m, a, b: m.vdot(a, b), (3,), (3,)),
]

UNARY_EINSUM = [
    ("trace", "ii->", (3, 3)),
    ("diagonal", "ii->i", (3, 3)),
    ("sum_all", "ij->", (2, 3)),
    ("sum_axis", "ij->j", (2, 3)),
    ("transpose", "ij->ji", (2, 3)),
    ("implicit_transpose", "ji", (2, 3)),
    ("diag_3d", "iij->ji", (3, 3, 2)),
    ("ellipsis_trace", "...ii->...", (2, 3, 3)),
    ("ellipsis_sum", "i...->...", (2, 3, 4)),
]


def _np_fn(name, fn):
    # np.dot / tensordot / inner of 0-d operands give NumPy scalars: compare as arrays.
    return lambda a, b: np.asarray(fn(np, a, b))


@pytest.mark.parametrize("name, fn, sa, sb", BINARY, ids=[b[0] for b in BINARY])
def test_binary_product(name, fn, sa, sb):
    a, b = rnd(*sa, seed=1), rnd(*sb, seed=2)
    check_op(lambda a, b: fn(dnp, a, b), _np_fn(name, fn), a, b)


@pytest.mark.parametrize("name, fn, sa, sb", BINARY, ids=[b[0] for b in BINARY])
def test_binary_product_one_constant(name, fn, sa, sb):
    """A plain array on either side (including on the left of ``@`` and ``*``)."""
    a, b = rnd(*sa, seed=1), rnd(*sb, seed=2)
    expected = np.asarray(fn(np, a, b))
    fa = lambda a: fn(dnp, a, b)
    fb = lambda b: fn(dnp, a, b)
    assert_close(ds.vjp(fa, a)[0], expected)
    assert_close(ds.vjp(fb, b)[0], expected)
    ds.check_grads(fa, (a,), order=1)
    ds.check_grads(fb, (b,), order=1)


@pytest.mark.parametrize("name, subscripts, shape", UNARY_EINSUM, ids=[u[0] for u in UNARY_EINSUM])
def test_einsum_one_operand(name, subscripts, shape):
    x = rnd(*shape)
    check_op(lambda x: dnp.einsum(subscripts, x), lambda x: np.asarray(np.einsum(subscripts, x)), x)


def test_einsum_three_operands():
    a, b, c = rnd(2, 3), rnd(3, 4, seed=1), rnd(4, 5, seed=2)
    for subs in ("ij,jk,kl->il", "ij,jk,kl->", "ij,jk,kl", "ij,jk,kl->li"):
        check_op(
            lambda a, b, c: dnp.einsum(subs, a, b, c),
            lambda a, b, c: np.asarray(np.einsum(subs, a, b, c)),
            a,
            b,
            c,
        )


def test_einsum_three_operands_shared_letter():
    a, b, c = rnd(3, 2), rnd(3), rnd(3, 4, seed=1)
    check_op(
        lambda a, b, c: dnp.einsum("ia,i,ib->ab", a, b, c),
        lambda a, b, c: np.einsum("ia,i,ib->ab", a, b, c),
        a,
        b,
        c,
    )


def test_einsum_same_operand_twice():
    """x appears in two operand slots: both contributions add up."""
    x = rnd(3, 3)
    f = lambda x: dnp.einsum("ij,jk->ik", x, x)
    check_op(f, lambda x: np.einsum("ij,jk->ik", x, x), x)
    g = ds.grad(lambda x: dnp.sum(f(x)))(x)
    ones = np.ones((3, 3))
    np.testing.assert_allclose(g, ones @ x.T + x.T @ ones, rtol=1e-12)


# --- batching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, fn, sa, sb", BINARY, ids=[b[0] for b in BINARY])
def test_binary_product_vmap(name, fn, sa, sb):
    a, b = rnd(3, *sa, seed=1), rnd(3, *sb, seed=2)
    f = lambda a, b: fn(dnp, a, b)
    expected = np.stack([np.asarray(fn(np, ai, bi)) for ai, bi in zip(a, b, strict=True)])
    assert_close(ds.vmap(f)(a, b), expected)
    expected = np.stack([np.asarray(fn(np, ai, b[0])) for ai in a])
    assert_close(ds.vmap(f, in_axes=(0, None))(a, b[0]), expected)
    expected = np.stack([np.asarray(fn(np, a[0], bi)) for bi in b])
    assert_close(ds.vmap(f, in_axes=(None, 0))(a[0], b), expected)


@pytest.mark.parametrize("name, subscripts, shape", UNARY_EINSUM, ids=[u[0] for u in UNARY_EINSUM])
def test_einsum_one_operand_vmap(name, subscripts, shape):
    xs = rnd(3, *shape)
    expected = np.stack([np.asarray(np.einsum(subscripts, x)) for x in xs])
    assert_close(ds.vmap(lambda x: dnp.einsum(subscripts, x))(xs), expected)


def test_vmap_in_axes_nonzero():
    a, b = rnd(3, 2, 4), rnd(4, 5)
    out = ds.vmap(dnp.matmul, in_axes=(1, None))(a, b)
    expected = np.stack([a[:, k, :] @ b for k in range(2)])
    assert_close(out, expected)


def test_vmap_of_grad_of_matmul():
    """Per-example gradients: vmap over grad of a loss built from products."""
    w = rnd(3, 2)
    xs = rnd(4, 3, seed=3)
    loss = lambda w, x: dnp.sum(dnp.tanh(x @ w) ** 2)
    out = ds.vmap(ds.grad(loss), in_axes=(None, 0))(w, xs)
    expected = np.stack([ds.grad(loss)(w, x) for x in xs])
    assert_close(out, expected, rtol=1e-12, atol=1e-14)


# --- Jacobians, Hessians --------------------------------------------------------------------------


def fd_jacobian(f, x, eps=1e-6):
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = eps
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    return np.stack(cols, axis=-1).reshape(np.shape(f(x)) + x.shape)


def fd_hessian(f, x, eps=1e-4):
    n = x.size
    h = np.zeros((n, n))
    eye = np.eye(n) * eps
    for i in range(n):
        for j in range(n):
            ei, ej = eye[i].reshape(x.shape), eye[j].reshape(x.shape)
            h[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * eps * eps
            )
    return h.reshape(x.shape + x.shape)


B = rnd(3, 4, seed=7)
C = rnd(2, 4, 3, seed=8)


def product_pipeline(x):
    """(2, 3) -> (8,), through every product."""
    y = x @ B  # (2, 4)
    z = dnp.einsum("ij,kjl->kil", y, C)  # (2, 2, 3)
    t = dnp.tensordot(z, x, axes=([1, 2], [0, 1]))  # (2,)
    d = dnp.dot(x, x.T)  # (2, 2)
    o = dnp.outer(t, dnp.einsum("ii->i", d))  # (2, 2)
    v = dnp.inner(x, x)  # (2, 2)
    s = dnp.vdot(x, x[::-1])
    return dnp.concatenate([dnp.ravel(o * v), t * s, dnp.matmul(x[0], x[1]) * t])


def test_jacfwd_jacrev_finite_differences():
    x = rnd(2, 3, seed=5)
    jf = ds.jacfwd(product_pipeline)(x)
    jr = ds.jacrev(product_pipeline)(x)
    fd = fd_jacobian(product_pipeline, x)
    assert jf.shape == jr.shape == fd.shape == (8, 2, 3)
    np.testing.assert_allclose(jf, jr, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jf, fd, rtol=1e-5, atol=1e-6)


def test_hessian_of_products():
    def f(x):
        return dnp.sum(product_pipeline(x) ** 2) / 100.0

    x = rnd(2, 3, seed=5) * 0.5
    h = ds.hessian(f)(x)
    fd = fd_hessian(f, x)
    assert h.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(h, fd, rtol=1e-4, atol=1e-4 * np.abs(fd).max())


def test_hessian_of_quadratic_form_is_exact():
    a = rnd(4, 4, seed=9)
    h = ds.hessian(lambda x: x @ a @ x)(rnd(4))
    np.testing.assert_allclose(h, a + a.T, rtol=1e-14, atol=1e-14)
    h = ds.hessian(lambda x: dnp.einsum("i,ij,j->", x, a, x))(rnd(4))
    np.testing.assert_allclose(h, a + a.T, rtol=1e-14, atol=1e-14)


# --- float32 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, fn, sa, sb", BINARY, ids=[b[0] for b in BINARY])
def test_binary_product_float32(name, fn, sa, sb):
    a, b = rnd(*sa, dtype=np.float32, seed=1), rnd(*sb, dtype=np.float32, seed=2)
    loss = lambda a, b: dnp.sum(fn(dnp, a, b) ** 2)
    out = ds.vjp(lambda a, b: fn(dnp, a, b), a, b)[0]
    assert np.asarray(out).dtype == np.float32
    ga, gb = ds.grad(loss, argnums=(0, 1))(a, b)
    assert ga.dtype == np.float32 and ga.shape == a.shape
    assert gb.dtype == np.float32 and gb.shape == b.shape
    ga64, gb64 = ds.grad(loss, argnums=(0, 1))(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(ga, ga64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb, gb64, rtol=1e-4, atol=1e-4)


def test_einsum_one_operand_float32():
    for _, subscripts, shape in UNARY_EINSUM:
        x = rnd(*shape, dtype=np.float32)
        g = ds.grad(lambda x: dnp.sum(dnp.einsum(subscripts, x) ** 2))(x)
        assert g.dtype == np.float32 and g.shape == x.shape, subscripts


# --- einsum's sublist form -----------------------------------------------------------------------


def test_einsum_sublist_form():
    a, b = rnd(2, 3), rnd(3, 4, seed=1)
    E = Ellipsis
    cases = [
        # (function of the operand list, subscripts, operands used)
        (lambda m, a, b: m.einsum(a, [0, 1], b, [1, 2], [0, 2]), "ij,jk->ik", "ab"),
        (lambda m, a, b: m.einsum(a, [0, 1], b, [1, 2]), "ij,jk", "ab"),
        (lambda m, a, b: m.einsum(a, [E, 1], [E]), "...j->...", "a"),
        (lambda m, a, b: m.einsum(a, [0, 1], a, [0, 1], [0]), "ij,ij->i", "aa"),
    ]
    for fn, subs, used in cases:
        expected = np.asarray(np.einsum(subs, *[{"a": a, "b": b}[c] for c in used]))
        assert_close(np.asarray(fn(np, a, b)), expected)
        f = lambda a, b, fn=fn: fn(dnp, a, b)
        assert_close(f(a, b), expected)
        assert_close(ds.vjp(f, a, b)[0], expected)
        if "b" in used:
            ds.check_grads(f, (a, b), order=2)
        else:
            ds.check_grads(lambda a, f=f: f(a, b), (a,), order=2)


# --- complex operands ---------------------------------------------------------------------------


def _crnd(*shape, seed=0):
    return rnd(*shape, seed=seed) + 1j * rnd(*shape, seed=seed + 50)


def _check_real_pairing(f, *xs):
    """JAX's convention for complex cotangents: ``Re <vjp(u), v> == Re <u, J v>`` (no
    conjugation), checked against central differences."""
    rng = np.random.default_rng(0)
    vs = [
        rng.standard_normal(x.shape)
        + (1j * rng.standard_normal(x.shape) if np.iscomplexobj(x) else 0.0)
        for x in xs
    ]
    out, vjp_fn = ds.vjp(f, *xs)
    u = rng.standard_normal(np.shape(out)) + 1j * rng.standard_normal(np.shape(out))
    cts = vjp_fn(u)
    for ct, x in zip(cts, xs, strict=True):
        assert ct.dtype == x.dtype and ct.shape == x.shape
    eps = 1e-6
    plus = f(*[x + eps * v for x, v in zip(xs, vs, strict=True)])
    minus = f(*[x - eps * v for x, v in zip(xs, vs, strict=True)])
    numeric = (plus - minus) / (2 * eps)
    lhs = sum(np.sum(ct * v) for ct, v in zip(cts, vs, strict=True))
    np.testing.assert_allclose(np.real(lhs), np.real(np.sum(u * numeric)), rtol=1e-7)
    _, t = ds.jvp(f, tuple(xs), tuple(vs))
    np.testing.assert_allclose(t, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "f, shapes, complex_args",
    [
        (dnp.vdot, [(3,), (3,)], (0, 1)),
        (dnp.vdot, [(2, 2), (4,)], (0,)),
        (dnp.matmul, [(2, 3), (3,)], (0, 1)),
        (dnp.matmul, [(2, 3), (3, 2)], (0,)),
        (dnp.matmul, [(2, 3), (3, 2)], (1,)),
        (lambda a, b: dnp.einsum("ij,jk->ki", a, b), [(2, 3), (3, 4)], (0,)),
        (dnp.outer, [(2,), (3,)], (1,)),
        (dnp.inner, [(2, 3), (3,)], (0, 1)),
        (lambda a, b: dnp.tensordot(a, b, axes=([0], [1])), [(2, 3), (4, 2)], (1,)),
    ],
)
def test_complex_products(f, shapes, complex_args):
    xs = [_crnd(*s, seed=i) if i in complex_args else rnd(*s, seed=i) for i, s in enumerate(shapes)]
    _check_real_pairing(f, *xs)


@pytest.mark.parametrize(
    "f, args",
    [
        (dnp.vdot, (_crnd(3), _crnd(3, seed=1))),
        (dnp.matmul, (_crnd(2, 3), rnd(3, seed=1))),
    ],
    ids=["vdot_complex", "matmul_complex_real"],
)
def test_check_grads_complex_non_holomorphic(f, args):
    ds.check_grads(f, args, order=1)


# --- errors ---------------------------------------------------------------------------------------


def test_matmul_mismatch_names_both_shapes():
    a, b = rnd(2, 3), rnd(4, 5)
    for f in (lambda a: dnp.matmul(a, b), lambda a: a @ b, lambda a: b.T @ a.T):
        with pytest.raises(ValueError) as info:
            ds.grad(lambda a: dnp.sum(f(a)))(a)
        msg = str(info.value)
        assert "(2, 3)" in msg and "(4, 5)" in msg or "(5, 4)" in msg and "(3, 2)" in msg, msg


def test_matmul_batch_mismatch_names_both_shapes():
    a, b = rnd(2, 2, 3), rnd(3, 3, 4)
    with pytest.raises(ValueError) as info:
        ds.grad(lambda a: dnp.sum(a @ b))(a)
    assert "(2, 2, 3)" in str(info.value) and "(3, 3, 4)" in str(info.value)


def test_matmul_scalar_operand_raises():
    with pytest.raises(ValueError, match="matmul"):
        ds.grad(lambda a: dnp.sum(dnp.matmul(a, np.ones(3))))(np.float64(2.0))


def test_dot_mismatch_names_shapes():
    a, b = (
        rnd(2, 3),
        rnd(
            4,
        ),
    )
    with pytest.raises(ValueError) as info:
        ds.grad(lambda a: dnp.sum(dnp.dot(a, b)))(a)
    assert "(2, 3)" in str(info.value) and "(4,)" in str(info.value)


def test_einsum_wrong_operand_count_raises():
    with pytest.raises(ValueError, match="einsum"):
        ds.grad(lambda a: dnp.sum(dnp.einsum("ij,jk->ik", a)))(rnd(2, 2))


def test_einsum_subscripts_rank_mismatch_raises():
    with pytest.raises(ValueError, match="einsum"):
        ds.grad(lambda a: dnp.sum(dnp.einsum("ijk->i", a)))(rnd(2, 2))


def test_tensordot_mismatch_raises():
    with pytest.raises(ValueError):
        ds.grad(lambda a: dnp.sum(dnp.tensordot(a, rnd(4, 2), axes=1)))(rnd(2, 3))


# --- property-based: matmul over random broadcastable shapes --------------------------------------


_MATMUL_SHAPES = hnp.mutually_broadcastable_shapes(
    signature="(m?,n),(n,p?)->(m?,p?)", max_dims=3, max_side=3
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=_MATMUL_SHAPES, seed=st.integers(0, 2**16))
def test_matmul_random_broadcast_shapes(shapes, seed):
    sa, sb = shapes.input_shapes
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    expected = np.asarray(np.matmul(a, b))
    out, vjp_fn = ds.vjp(dnp.matmul, a, b)
    assert_close(out, expected)
    # The exact VJP, written with explicit loops over the broadcast result.
    g = rng.standard_normal(expected.shape)
    ga, gb = vjp_fn(g)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    bshape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    g2 = g.reshape(bshape + (a2.shape[-2], b2.shape[-1]))
    ea, eb = np.zeros(a2.shape), np.zeros(b2.shape)
    for i in np.ndindex(bshape):
        ia = tuple(k if d > 1 else 0 for k, d in zip(i[len(i) - (a2.ndim - 2) :], a2.shape[:-2]))
        ib = tuple(k if d > 1 else 0 for k, d in zip(i[len(i) - (b2.ndim - 2) :], b2.shape[:-2]))
        ea[ia] += g2[i] @ b2[ib].T
        eb[ib] += a2[ia].T @ g2[i]
    np.testing.assert_allclose(ga, ea.reshape(a.shape), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, eb.reshape(b.shape), rtol=1e-10, atol=1e-12)
    ds.check_grads(dnp.matmul, (a, b), order=1)
    # Batched over a leading axis of a only.
    a3 = np.stack([a, 2 * a])
    assert_close(
        ds.vmap(dnp.matmul, in_axes=(0, None))(a3, b),
        np.stack([np.matmul(a, b), np.matmul(2 * a, b)]),
    )


def test_tensordot_errors_name_shapes():
    a = rnd(2, 3)
    cases = [
        (lambda a: dnp.tensordot(a, rnd(4, 2), axes=1), "(2, 3)", "(4, 2)"),
        (lambda a: dnp.tensordot(a, rnd(2, 2), axes=([0], [0, 1])), "(2, 3)", "(2, 2)"),
        (
            lambda a: dnp.tensordot(
                a,
                rnd(
                    3,
                ),
                axes=3,
            ),
            "(2, 3)",
            "(3,)",
        ),
    ]
    for f, s1, s2 in cases:
        with pytest.raises(ValueError) as info:
            ds.grad(lambda a: dnp.sum(f(a)))(a)
        assert "tensordot" in str(info.value) and s1 in str(info.value) and s2 in str(info.value)


def test_dot_nd_mismatch_names_dot_and_shapes():
    with pytest.raises(ValueError) as info:
        ds.grad(lambda a: dnp.sum(dnp.dot(a, rnd(4, 2, 5))))(rnd(2, 3))
    msg = str(info.value)
    assert msg.startswith("dot") and "(2, 3)" in msg and "(4, 2, 5)" in msg


def test_einsum_letter_size_mismatch_names_shapes():
    with pytest.raises(ValueError) as info:
        ds.grad(lambda a: dnp.sum(dnp.einsum("ij,jk", a, rnd(4, 2))))(rnd(2, 3))
    msg = str(info.value)
    assert "'j'" in msg and "(2, 3)" in msg and "(4, 2)" in msg
    with pytest.raises(ValueError, match="'i'"):
        ds.grad(lambda a: dnp.einsum("ii", a))(rnd(2, 3))


def test_einsum_ellipsis_dropped_from_output_raises_like_numpy():
    with pytest.raises(ValueError):
        np.einsum("...j->j", rnd(2, 3))
    with pytest.raises(ValueError, match=r"\.\.\."):
        ds.grad(lambda a: dnp.sum(dnp.einsum("...j->j", a)))(rnd(2, 3))
    # An ellipsis that covers no dimension may be left out, as in NumPy.
    a = rnd(3)
    assert_close(ds.vjp(lambda a: dnp.einsum("...j->j", a), a)[0], np.einsum("...j->j", a))


@st.composite
def _einsum_case(draw):
    letters = "abcd"
    sizes = {c: draw(st.integers(1, 3)) for c in letters}
    n_ops = draw(st.integers(1, 3))
    ins = [
        "".join(draw(st.lists(st.sampled_from(letters), min_size=0, max_size=3)))
        for _ in range(n_ops)
    ]
    used = sorted(set("".join(ins)))
    out = "".join(draw(st.permutations(used))[: draw(st.integers(0, len(used)))])
    explicit = draw(st.booleans())
    subscripts = ",".join(ins) + ("->" + out if explicit else "")
    return subscripts, [tuple(sizes[c] for c in s) for s in ins]


@settings(max_examples=50, deadline=None)
@given(case=_einsum_case(), seed=st.integers(0, 2**16))
def test_einsum_random_subscripts(case, seed):
    subscripts, shapes = case
    rng = np.random.default_rng(seed)
    ops = [rng.standard_normal(s) for s in shapes]
    f = lambda *ops: dnp.einsum(subscripts, *ops)
    expected = np.asarray(np.einsum(subscripts, *ops))
    assert_close(ds.vjp(f, *ops)[0], expected, rtol=1e-10, atol=1e-12)
    ds.check_grads(f, ops, order=2)
    stacked = [np.stack([o, 2.0 * o]) for o in ops]
    batched_expected = np.stack([expected, expected * 2.0 ** len(ops)])
    assert_close(ds.vmap(f)(*stacked), batched_expected, rtol=1e-10, atol=1e-12)


# --- a complex cotangent reaching a real operand ----------------------------------------------
# The cotangent of a real operand is real (JAX's convention: the real part). It matters before
# the gradient reaches the input when the real operand comes from a non-holomorphic function
# of a complex input, such as |z|: its VJP would turn a stray imaginary part into a wrong
# gradient. Each case multiplies a real value made from |z| by a complex constant.

_B = _crnd(2, 1, seed=7)
_M = _crnd(2, 3, seed=8)
_V = _crnd(2, seed=9)

REAL_OPERAND = [
    ("matmul_left", lambda r: r[None, :] @ _B),
    ("matmul_right", lambda r: _V[None, :] @ dnp.reshape(r, (2, 1))),
    ("matmul_1d", lambda r: dnp.matmul(r, _M)),
    ("matmul_batched", lambda r: dnp.matmul(dnp.stack([r, 2.0 * r])[:, None, :], _M)),
    ("einsum", lambda r: dnp.einsum("i,ij->j", r, _M)),
    ("einsum_broadcast", lambda r: dnp.einsum("...i,ij->...j", r[None, :], _M)),
    ("einsum_diag", lambda r: dnp.einsum("ii,i->i", dnp.outer(r, r), _V)),
    ("tensordot", lambda r: dnp.tensordot(r, _M, axes=1)),
    ("dot", lambda r: dnp.dot(r, _M)),
    ("dot_nd", lambda r: dnp.dot(r, dnp.stack([_M, _M]))),
    ("inner", lambda r: dnp.inner(r, _V)),
    ("outer", lambda r: dnp.outer(r, _V)),
    ("vdot", lambda r: dnp.vdot(_V, r)),
    ("vdot_conj_real", lambda r: dnp.vdot(r, _V)),
    ("kron", lambda r: dnp.kron(r, _V)),
]


@pytest.mark.parametrize("name, product", REAL_OPERAND, ids=[c[0] for c in REAL_OPERAND])
def test_real_operand_gets_real_cotangent(name, product):
    z = _crnd(2, seed=3)
    f = lambda z: dnp.real(dnp.sum(product(dnp.abs(z)) * (1.0 + 0.5j)))
    ds.check_grads(f, (z,), order=2, modes=("fwd", "rev"))
    # the same function by the chain rule: d f / d|z| is real, then |z|'s gradient
    r = np.abs(z)
    g_r = ds.grad(lambda r: dnp.real(dnp.sum(product(r) * (1.0 + 0.5j))))(r)
    assert g_r.dtype == np.float64
    np.testing.assert_allclose(ds.grad(f)(z), g_r * np.conj(z) / r, rtol=1e-12)


def test_issue_reproducer_real_matmul_operand():
    """grad of Re(sum(|z|[None, :] @ B)) is Re(B[:, 0]) * conj(z) / |z|, at orders 1 and 2."""
    z = np.array([1.0 + 2.0j, -0.5 + 0.3j])
    B = np.array([[1.0 - 1.0j], [0.5 + 2.0j]])
    f = lambda z: dnp.real(dnp.sum(dnp.abs(z)[None, :] @ B))
    np.testing.assert_allclose(ds.grad(f)(z), B.real[:, 0] * np.conj(z) / np.abs(z), rtol=1e-12)
    ds.check_grads(f, (z,), order=2, modes=("fwd", "rev"))


def test_complex_times_real_second_order_reverse():
    """A real operand's cotangent is projected by real_part: its VJP must also drop the
    imaginary part of a complex cotangent, or the reverse-over-reverse check fails (check_grads
    seeds i * u; this is what broke lu_solve's complex test when matmul first projected)."""
    a, b = _crnd(3, 3, seed=4), rnd(3, 2, seed=5)
    for f in (dnp.matmul, lambda a, b: dnp.einsum("ij,jk->ik", a, b)):
        ds.check_grads(f, (a, b), order=2, modes=("fwd", "rev"))
    ds.check_grads(dnp.multiply, (a, b[:, :1]), order=2, modes=("fwd", "rev"))
