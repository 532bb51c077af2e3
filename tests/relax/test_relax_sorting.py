"""soft_rank / soft_sort / soft_topk: reference values, brute-force projections, derivatives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.relax import (
    permutahedron_projection,
    soft_rank,
    soft_sort,
    soft_topk,
    soft_topk_mask,
)

REGS = ("l2", "kl")


def _case_id(case: dict) -> str:
    return f"{case['op']}-{case['regularization']}-{case['regularization_strength']}"


# --- the torchsort reference vectors -------------------------------------------------------------


def test_reference_values_and_vjps(soft_sort_reference):
    cases = soft_sort_reference["cases"]
    assert len(cases) == 12
    for case in cases:
        op = {"soft_rank": soft_rank, "soft_sort": soft_sort}[case["op"]]
        x = np.array(case["x"])

        def f(x, op=op, case=case):
            return op(x, case["regularization"], case["regularization_strength"])

        out, pullback = ds.vjp(f, x)
        np.testing.assert_allclose(out, case["out"], rtol=1e-10, atol=1e-10, err_msg=_case_id(case))
        (got,) = pullback(np.array(case["cotangent"]))
        np.testing.assert_allclose(got, case["vjp"], rtol=1e-9, atol=1e-9, err_msg=_case_id(case))
        # forward mode agrees with the reference VJP: <J v, u> = <v, J^T u>
        v = np.linspace(-1.0, 1.0, x.size).reshape(x.shape)
        _, tangent = ds.jvp(f, (x,), (v,))
        np.testing.assert_allclose(
            np.sum(tangent * np.array(case["cotangent"])),
            np.sum(v * np.array(case["vjp"])),
            rtol=1e-9,
            atol=1e-9,
        )


# --- brute force: the defining projection, solved by an independent QP ----------------------------


def _brute_projection(z: np.ndarray, w: np.ndarray, regularization: str) -> np.ndarray:
    """Project onto the permutahedron P(w) by a generic constrained solver (SLSQP).

    Uses the subset description of the permutahedron, with no sorting or isotonic regression:
    ``sum(mu) = sum(w)`` and, for every proper subset S, ``sum(mu[S]) <= sum of the |S|
    largest w``. ``l2``: argmin ||mu - z||^2 over P(w); ``kl``: log argmin KL(mu, exp(z))
    over P(exp(w)).
    """
    n = len(z)
    base = np.sort(w if regularization == "l2" else np.exp(w))[::-1]
    caps = np.cumsum(base)
    rows = [
        np.isin(np.arange(n), subset).astype(float)
        for size in range(1, n)
        for subset in itertools.combinations(range(n), size)
    ]
    A = np.array(rows) if rows else np.zeros((0, n))
    b = np.array([caps[int(r.sum()) - 1] for r in rows])
    if regularization == "l2":
        obj = lambda mu: (0.5 * np.sum((mu - z) ** 2), mu - z)
        start = np.full(n, caps[-1] / n)
    else:
        ez = np.exp(z)

        def obj(mu):
            mu = np.maximum(mu, 1e-300)
            return np.sum(mu * np.log(mu / ez) - mu + ez), np.log(mu / ez)

        start = np.full(n, caps[-1] / n)
    cons = [
        {
            "type": "eq",
            "fun": lambda mu: np.array([mu.sum() - caps[-1]]),
            "jac": lambda mu: np.ones((1, n)),
        }
    ]
    if len(rows):
        cons.append({"type": "ineq", "fun": lambda mu: b - A @ mu, "jac": lambda mu: -A})
    bounds = None if regularization == "l2" else [(1e-300, None)] * n
    res = minimize(
        obj,
        start,
        jac=True,
        method="SLSQP",
        constraints=cons,
        bounds=bounds,
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    assert res.success, res.message
    return res.x if regularization == "l2" else np.log(res.x)


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("n", [2, 3, 5])
def test_projection_matches_brute_force_qp(rng, regularization, n):
    for _ in range(3):
        z = rng.standard_normal(n) * 2.0
        w = np.sort(rng.standard_normal(n))[::-1] * 1.5
        got = permutahedron_projection(z, w, regularization)
        want = _brute_projection(z, w, regularization)
        np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("eps", [0.3, 1.0, 3.0])
def test_soft_rank_and_sort_match_brute_force(rng, regularization, eps):
    n = 5
    x = rng.standard_normal(n)
    rho = np.arange(n, 0, -1.0)
    if regularization == "l2":
        want_rank = _brute_projection(x / eps, rho, "l2")
    else:
        want_rank = np.exp(_brute_projection(x / eps, np.log(rho), "kl"))
    want_sort = -_brute_projection(rho / eps, -x, regularization)
    np.testing.assert_allclose(soft_rank(x, regularization, eps), want_rank, atol=2e-5)
    np.testing.assert_allclose(soft_sort(x, regularization, eps), want_sort, atol=2e-5)


def test_projection_of_a_permutation_point_is_itself():
    w = np.array([4.0, 2.0, 1.0, -3.0])
    z = w[[2, 0, 3, 1]]
    np.testing.assert_allclose(permutahedron_projection(z, w), z, atol=1e-12)
    np.testing.assert_allclose(permutahedron_projection(z, w, "kl"), z, atol=1e-12)


# --- limits and invariants ----------------------------------------------------------------------


@pytest.mark.parametrize("regularization", REGS)
def test_small_strength_gives_hard_sort_and_rank(rng, regularization):
    x = rng.standard_normal((3, 20))
    hard_rank = np.argsort(np.argsort(x, axis=-1), axis=-1) + 1.0
    np.testing.assert_allclose(soft_rank(x, regularization, 1e-4), hard_rank, atol=1e-8)
    np.testing.assert_allclose(soft_sort(x, regularization, 1e-4), np.sort(x, axis=-1), atol=1e-8)
    np.testing.assert_allclose(
        soft_rank(x, regularization, 1e-4, descending=True), 21.0 - hard_rank, atol=1e-8
    )
    np.testing.assert_allclose(
        soft_sort(x, regularization, 1e-4, descending=True),
        np.sort(x, axis=-1)[:, ::-1],
        atol=1e-8,
    )


def test_large_strength_collapses_to_the_mean(rng):
    x = rng.standard_normal((2, 6))
    np.testing.assert_allclose(soft_rank(x, "l2", 1e6), np.full((2, 6), 3.5), atol=1e-4)
    np.testing.assert_allclose(
        soft_sort(x, "l2", 1e6), np.broadcast_to(x.mean(-1, keepdims=True), x.shape), atol=1e-4
    )


@pytest.mark.parametrize("regularization", REGS)
def test_sum_is_preserved_and_order_respected(rng, regularization):
    x = rng.standard_normal((4, 30))
    for eps in (0.05, 0.5, 5.0):
        r = soft_rank(x, regularization, eps)
        s = soft_sort(x, regularization, eps)
        np.testing.assert_allclose(r.sum(-1), 30 * 31 / 2)
        if regularization == "l2":  # the kl soft sort preserves sum(exp(-x)) instead
            np.testing.assert_allclose(s.sum(-1), x.sum(-1))
        assert np.all(np.diff(s, axis=-1) >= -1e-12)
        order = np.argsort(x, axis=-1)
        assert np.all(np.diff(np.take_along_axis(r, order, -1), axis=-1) >= -1e-12)


def test_soft_sort_kl_preserves_sum_of_exp_of_minus_x(rng):
    x = rng.standard_normal(8)
    s = soft_sort(x, "kl", 0.7)
    np.testing.assert_allclose(np.exp(-s).sum(), np.exp(-x).sum())


def test_ties_are_handled(rng):
    x = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    r = soft_rank(x, "l2", 1e-3)
    np.testing.assert_allclose(r, [2.0, 2.0, 2.0, 4.5, 4.5])
    np.testing.assert_allclose(soft_sort(x, "l2", 1e-3), x)


# --- exact far out: large |x| / eps, large shifts ------------------------------------------------


def test_issue_examples_are_exact():
    x = np.array([[3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(soft_rank(x, "l2", 1e-30), x)
    np.testing.assert_allclose(soft_rank(1.7e12 + 10 * x, "kl", 1e-3), x, rtol=1e-15)
    np.testing.assert_array_equal(soft_sort(x, "l2", 1e-30), [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(soft_sort(x, "kl", 1e-30), [[1.0, 2.0, 3.0]])


def _spread(rng, n, shift):
    """Distinct values ``shift + unit * k`` (k a random subset of integers), all exact: unit is
    a power of two at least 4 ulps of ``shift``; returns the values and the unit."""
    unit = 2.0 ** rng.integers(-12, 12)
    unit = max(unit, 2.0 ** np.ceil(np.log2(4 * np.spacing(abs(shift) + 1.0))))
    k = rng.choice(3 * n, size=n, replace=False).astype(np.float64)
    return shift + unit * k, unit


SHIFTS = [0.0, -3.5e6, 1.7e12, -2.0e15]


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("shift", SHIFTS, ids=str)
def test_hard_limit_is_exact_at_any_shift_and_tiny_strength(rng, regularization, shift):
    """Distinct values whose gaps dwarf eps: hard ranks, sorted values and top-k masks come
    out exactly (kl ranks as exp(log(rank)), within 2 ulps), with finite derivatives equal
    to the hard operations' (zero for ranks and masks, a permutation for the sort)."""
    n = 7
    for _ in range(4):
        x, unit = _spread(rng, n, shift)
        hard_rank = np.argsort(np.argsort(x)) + 1.0
        order = np.argsort(x)
        top3 = (hard_rank > n - 3).astype(float)
        ct = rng.standard_normal(n)
        for f in (0.5, 1e-3, 1e-30):
            eps = unit * f  # theta = x / eps has gaps >= 1 / f: every block is one element
            rank, pull = ds.vjp(lambda x, eps=eps: soft_rank(x, regularization, eps), x)
            np.testing.assert_allclose(rank, hard_rank, rtol=2 * np.finfo(float).eps, atol=0)
            np.testing.assert_array_equal(pull(ct)[0], np.zeros(n))
            if regularization == "l2" or f < 1e-2:  # the kl mask is exp(-gap / eps) off
                mask, pull = ds.vjp(
                    lambda x, eps=eps: soft_topk_mask(x, 3, regularization, eps), x
                )
                np.testing.assert_array_equal(mask, top3)
                np.testing.assert_array_equal(pull(ct)[0], np.zeros(n))
            # soft_sort projects rho / eps onto P(-x): exact once 1 / eps exceeds x's gaps
            eps_sort = f / (unit * 3 * n)
            out, pull = ds.vjp(lambda x, e=eps_sort: soft_sort(x, regularization, e), x)
            np.testing.assert_array_equal(out, x[order])
            want = np.zeros(n)
            want[order] = ct
            np.testing.assert_array_equal(pull(ct)[0], want)


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("shift", SHIFTS[1:], ids=str)
def test_shift_invariance_at_any_strength(rng, regularization, shift):
    """soft_rank(shift + d) = soft_rank(d) and soft_sort(shift + d) = shift + soft_sort(d),
    with pooled blocks too (eps of the order of the gaps), in values and in derivatives
    (and those, at the offsets d, match finite differences)."""
    n = 9
    for _ in range(3):
        d, unit = _spread(rng, n, shift)
        d = d - shift  # exact: the offsets alone
        x = shift + d
        ct = rng.standard_normal(n)
        for f in (0.37, 3.1, 29.3):  # away from exact ties, where the Jacobian has a kink
            eps = unit * f
            got, pull = ds.vjp(lambda x, eps=eps: soft_rank(x, regularization, eps), x)
            want, pull0 = ds.vjp(lambda x, eps=eps: soft_rank(x, regularization, eps), d)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
            np.testing.assert_allclose(pull(ct)[0], pull0(ct)[0], rtol=1e-11, atol=1e-11 / eps)
            eps_sort = f / (unit * n)
            got, pull = ds.vjp(lambda x, e=eps_sort: soft_sort(x, regularization, e), x)
            want, pull0 = ds.vjp(lambda x, e=eps_sort: soft_sort(x, regularization, e), d)
            # the values live at the magnitude of the shift: a few of its ulps
            np.testing.assert_allclose(got - shift, want, rtol=0, atol=8 * np.spacing(abs(shift)))
            np.testing.assert_allclose(pull(ct)[0], pull0(ct)[0], rtol=1e-9, atol=1e-9)
    # the derivatives compared above are right: finite differences at the offsets, in x and eps
    for op, e in ((soft_rank, unit * 3.1), (soft_sort, 3.1 / (unit * n))):
        ds.check_grads(lambda d, op=op, e=e: op(d, regularization, e), (d,), order=2)
        ds.check_grads(lambda e, op=op: op(d, regularization, e), (e,), order=1)


# --- batching, axes and dtypes --------------------------------------------------------------------


@pytest.mark.parametrize("regularization", REGS)
def test_leading_axes_match_row_by_row(rng, regularization):
    x = rng.standard_normal((2, 3, 7))
    for op in (soft_rank, soft_sort):
        got = op(x, regularization, 0.5)
        want = np.stack([[op(row, regularization, 0.5) for row in mat] for mat in x])
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_axis_argument(rng):
    x = rng.standard_normal((6, 3))
    for op in (soft_rank, soft_sort):
        np.testing.assert_allclose(op(x, axis=0), op(x.T).T, atol=1e-12)
    np.testing.assert_allclose(soft_topk_mask(x, 2, axis=0), soft_topk_mask(x.T, 2).T)
    np.testing.assert_allclose(soft_topk(x, 2, axis=0), soft_topk(x.T, 2).T)


@pytest.mark.parametrize("regularization", REGS)
def test_vmap_jacobians_and_many_short_rows(rng, regularization):
    x = rng.standard_normal((5, 6))
    f = lambda x: soft_rank(x, regularization, 0.4)
    np.testing.assert_allclose(ds.vmap(f)(x), f(x), atol=1e-12)
    row = x[0]
    jf, jr = ds.jacfwd(f)(row), ds.jacrev(f)(row)
    np.testing.assert_allclose(jf, jr, atol=1e-12)
    # many short rows take the vectorized NumPy PAV: same values as row by row
    many = rng.standard_normal((2000, 5))
    np.testing.assert_allclose(f(many)[:7], np.stack([f(r) for r in many[:7]]), atol=1e-12)


def test_float32_stays_float32_and_ints_are_accepted(rng):
    x = rng.standard_normal((2, 5)).astype(np.float32)
    for op in (soft_rank, soft_sort):
        assert op(x).dtype == np.float32
        assert ds.grad(lambda x, op=op: dnp.sum(op(x) ** 2))(x).dtype == np.float32
    np.testing.assert_allclose(
        soft_rank(np.array([3, 1, 2]), regularization_strength=0.01), [3, 1, 2]
    )


def test_empty_and_single_element_rows():
    assert soft_rank(np.zeros((3, 0))).shape == (3, 0)
    np.testing.assert_allclose(soft_rank(np.array([[5.0], [2.0]])), [[1.0], [1.0]])
    np.testing.assert_allclose(soft_sort(np.array([5.0]), "kl"), [5.0])


# --- derivatives ----------------------------------------------------------------------------------


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("op", [soft_rank, soft_sort], ids=["rank", "sort"])
def test_check_grads(rng, op, regularization):
    x = rng.standard_normal((2, 6))
    ds.check_grads(lambda x: op(x, regularization, 0.7), (x,), order=2)
    ds.check_grads(lambda x: op(x, regularization, 0.7, descending=True), (x,), order=1)


@pytest.mark.parametrize("regularization", REGS)
def test_gradient_wrt_regularization_strength(rng, regularization):
    x = rng.standard_normal(6)
    for op in (soft_rank, soft_sort):
        ds.check_grads(lambda eps, op=op: op(x, regularization, eps), (0.8,), order=2)


def test_l2_second_derivative_is_zero(rng):
    x = rng.standard_normal(6)
    h = ds.hessian(lambda x: soft_rank(x, "l2", 0.5)[2])(x)
    np.testing.assert_allclose(h, 0.0, atol=1e-12)


def test_l2_jacobian_is_block_averaging(rng):
    # s - rho pools the three close values into one block and leaves 3.0 alone: J = I - B with
    # B the block-averaging matrix (a singleton block gives 1 - 1 = 0: an exact rank)
    x = np.array([0.0, 0.05, 0.1, 3.0])
    J = ds.jacrev(lambda x: soft_rank(x, "l2", 1.0))(x)
    want = np.eye(4) - np.diag([0.0, 0.0, 0.0, 1.0])
    want[:3, :3] -= 1.0 / 3.0
    np.testing.assert_allclose(J, want, atol=1e-12)


# --- top-k ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("regularization", REGS)
def test_topk_mask(rng, regularization):
    x = rng.standard_normal((3, 10))
    for k in (1, 3, 10):
        m = soft_topk_mask(x, k, regularization, 0.5)
        np.testing.assert_allclose(m.sum(-1), k)
        assert np.all((m >= -1e-12) & (m <= 1 + 1e-12))
        hard = soft_topk_mask(x, k, regularization, 1e-5)
        want = np.zeros_like(x)
        np.put_along_axis(want, np.argsort(-x, axis=-1)[:, :k], 1.0, axis=-1)
        np.testing.assert_allclose(hard, want, atol=1e-8)
    ds.check_grads(lambda x: soft_topk_mask(x, 3, regularization, 0.5), (x,), order=2)


def test_topk_mask_kl_is_capped_softmax(rng):
    x = rng.standard_normal(6)
    m = soft_topk_mask(x, 2, "kl", 1.0)
    # min(1, c * exp(x)) with c set so that the sum is 2
    from scipy.optimize import brentq

    c = brentq(lambda c: np.minimum(1.0, c * np.exp(x)).sum() - 2.0, 1e-9, 1e9)
    np.testing.assert_allclose(m, np.minimum(1.0, c * np.exp(x)), atol=1e-10)


def test_topk_mask_matches_brute_force(rng):
    x = rng.standard_normal(5)
    w = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(
        soft_topk_mask(x, 2, "l2", 0.5), _brute_projection(x / 0.5, w, "l2"), atol=2e-5
    )


def test_topk_values(rng):
    x = rng.standard_normal((2, 8))
    v = soft_topk(x, 3, "l2", 0.3)
    assert v.shape == (2, 3)
    np.testing.assert_allclose(v, soft_sort(x, "l2", 0.3, descending=True)[:, :3])
    np.testing.assert_allclose(soft_topk(x, 3, "l2", 1e-6), -np.sort(-x, axis=-1)[:, :3], atol=1e-8)
    ds.check_grads(lambda x: soft_topk(x, 3, "kl", 0.3), (x,), order=1)


# --- errors ---------------------------------------------------------------------------------------


def test_errors_name_the_function():
    x = np.ones(4)
    with pytest.raises(ValueError, match="soft_rank: regularization must be one of"):
        soft_rank(x, "l1")
    with pytest.raises(ValueError, match="soft_sort: regularization_strength must be"):
        soft_sort(x, "l2", 0.0)
    with pytest.raises(ValueError, match=r"soft_rank: expected an array with at least one axis"):
        soft_rank(np.float64(1.0))
    with pytest.raises(TypeError, match="soft_sort: expected real floating-point values"):
        soft_sort(np.ones(3, dtype=complex))
    with pytest.raises(ValueError, match=r"soft_topk_mask: k must satisfy 1 <= k <= n = 4"):
        soft_topk_mask(x, 5)
    with pytest.raises(TypeError, match="soft_topk: k must be an int"):
        soft_topk(x, 2.0)
    with pytest.raises(ValueError, match=r"soft_rank: axis 2 is out of range for shape \(4,\)"):
        soft_rank(x, axis=2)
