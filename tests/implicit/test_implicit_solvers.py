"""fixed_point, root, argmin: implicit gradients vs finite differences, unrolled differentiation
and closed forms; pytree parameters; convergence checks."""

from __future__ import annotations

import os
import warnings
import zlib

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.implicit import ConvergenceError, ConvergenceWarning, argmin, fixed_point, root


@pytest.fixture
def rng(request) -> np.random.Generator:
    salt = os.environ.get("DIFFSYS_TEST_SEED", "")
    return np.random.default_rng(zlib.crc32((salt + request.node.nodeid).encode()))


def _contraction(rng, n):
    """A tanh layer with a pytree of parameters whose map is a contraction (Lipschitz 0.6)."""
    W = rng.standard_normal((n, n))
    W *= 0.6 / np.linalg.norm(W, 2)
    params = {"W": W, "bias": (rng.standard_normal(n), 0.8)}

    def f(x, p):
        b, scale = p["bias"]
        return dnp.tanh(p["W"] @ x + b) * scale

    return f, params


# --- fixed points -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["anderson", "iterate"])
def test_fixed_point_gradient_matches_unrolled_differentiation(rng, method):
    n = 6
    f, params = _contraction(rng, n)
    x, info = fixed_point(f, np.zeros(n), params, method=method, return_info=True)
    assert info.converged and np.max(np.abs(f(x, params) - x)) <= 1e-10
    u = rng.standard_normal(n)
    implicit = ds.grad(lambda p: dnp.sum(u * fixed_point(f, np.zeros(n), p, method=method)))(params)

    def unrolled(p):  # 0.6^120 ~ 1e-27: converged far below the tolerance
        x = np.zeros(n)
        for _ in range(120):
            x = f(x, p)
        return dnp.sum(u * x)

    want = ds.grad(unrolled)(params)
    np.testing.assert_allclose(implicit["W"], want["W"], atol=1e-9)
    np.testing.assert_allclose(implicit["bias"][0], want["bias"][0], atol=1e-9)
    np.testing.assert_allclose(implicit["bias"][1], want["bias"][1], atol=1e-9)
    # forward mode agrees with the unrolled JVP too
    tangent = ds.tree_map(lambda a: rng.standard_normal(np.shape(a)), params)
    _, t_impl = ds.jvp(
        lambda p: fixed_point(f, np.zeros(n), p, method=method), (params,), (tangent,)
    )

    def unrolled_x(p):
        x = np.zeros(n)
        for _ in range(120):
            x = f(x, p)
        return x

    _, t_unr = ds.jvp(unrolled_x, (params,), (tangent,))
    np.testing.assert_allclose(t_impl, t_unr, atol=1e-9)


def test_fixed_point_check_grads_second_order(rng):
    n = 4
    f, params = _contraction(rng, n)
    ds.check_grads(lambda p: fixed_point(f, np.zeros(n), p), (params,), order=2)
    # a Hessian through the solution, against finite differences of the implicit gradient
    b0 = params["bias"][0]
    loss = lambda b: dnp.sum(fixed_point(f, np.zeros(n), {**params, "bias": (b, 0.8)}) ** 2)
    H = ds.hessian(loss)(b0)
    g = ds.grad(loss)
    eps = 1e-6
    fd = np.stack([(g(b0 + eps * e) - g(b0 - eps * e)) / (2 * eps) for e in np.eye(n)])
    np.testing.assert_allclose(H, fd, atol=1e-6)


def test_fixed_point_x0_gets_no_gradient_and_result_does_not_depend_on_it(rng):
    f, params = _contraction(rng, 3)
    x_a = fixed_point(f, np.zeros(3), params)
    x_b = fixed_point(f, np.ones(3), params)
    np.testing.assert_allclose(x_a, x_b, atol=1e-9)
    g = ds.grad(lambda x0: dnp.sum(fixed_point(f, x0, params)))(np.zeros(3))
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("adjoint", ["gmres", "bicgstab", "dense"])
def test_large_fixed_point_with_matrix_free_adjoint(rng, adjoint):
    n = 300
    M = rng.standard_normal((n, n))
    M *= 0.5 / np.linalg.norm(M, 2)
    f = lambda x, b: dnp.tanh(M @ x + b)
    b = rng.standard_normal(n)
    g = ds.grad(lambda b: dnp.sum(fixed_point(f, np.zeros(n), b, adjoint=adjoint)))(b)
    x = fixed_point(f, np.zeros(n), b)
    D = 1 - np.tanh(M @ x + b) ** 2  # dx* = (I - D M)^-1 D db
    want = D * np.linalg.solve((np.eye(n) - D[:, None] * M).T, np.ones(n))
    np.testing.assert_allclose(g, want, rtol=1e-7, atol=1e-9)


def test_fixed_point_convergence_failure_raises_or_warns():
    grow = lambda x, a: a * x + 1.0  # no fixed point is reached for a = 2 by iteration
    with pytest.raises(ConvergenceError, match=r"fixed_point \(iterate\) did NOT converge"):
        fixed_point(grow, np.zeros(2), 2.0, method="iterate", max_iter=30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, info = fixed_point(
            grow,
            np.zeros(2),
            2.0,
            method="iterate",
            max_iter=30,
            on_failure="warn",
            return_info=True,
        )
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert not info.converged and info.residual > 1e6 and info.iterations == 30
    x, info = fixed_point(grow, np.zeros(2), 0.5, return_info=True)
    np.testing.assert_allclose(x, 2.0)
    assert info.converged and info.residual <= 1e-10


def test_fixed_point_errors():
    with pytest.raises(ValueError, match="fixed_point: method must be 'anderson' or 'iterate'"):
        fixed_point(lambda x: x, np.zeros(2), method="newton")
    with pytest.raises(ValueError, match=r"fixed_point: f must return the shape of x \(2,\)"):
        fixed_point(lambda x: x[:1], np.zeros(2))
    with pytest.raises(ValueError, match="fixed_point: on_failure must be one of"):
        fixed_point(lambda x: x, np.zeros(2), on_failure="ignore")


# --- roots --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["newton", "hybr", "lm", "krylov"])
def test_root_gradients(rng, method):
    c = np.array([8.0, 27.0, 2.0])
    F = lambda x, c: x**3 + 0.5 * x - c
    x0 = np.cbrt(c) if method == "krylov" else np.ones(3)  # krylov needs a close start
    x = root(F, x0, c, method=method)
    np.testing.assert_allclose(F(x, c), 0.0, atol=1e-10)
    J = ds.jacrev(lambda c: root(F, x0, c, method=method))(c)
    np.testing.assert_allclose(J, np.diag(1.0 / (3 * x**2 + 0.5)), atol=1e-9)
    if method == "newton":
        ds.check_grads(lambda c: root(F, np.ones(3), c), (c,), order=2)


def test_root_with_coupled_equations_and_pytree_params(rng):
    A = np.eye(3) * 3 + 0.2 * rng.standard_normal((3, 3))
    params = {"A": A, "b": rng.standard_normal(3)}
    F = lambda x, p: p["A"] @ x + 0.1 * dnp.sin(x) - p["b"]
    ds.check_grads(lambda p: root(F, np.zeros(3), p), (params,), order=2)


def test_root_failure():
    with pytest.raises(ConvergenceError, match=r"root \(newton\) did NOT converge"):
        root(lambda x: x**2 + 1.0, np.ones(1), max_iter=5)


# --- argmin: ridge regression -----------------------------------------------------------------


def _ridge_problem(rng, m=30, d=5):
    X, y = rng.standard_normal((m, d)), rng.standard_normal(m)
    obj = lambda w, p: dnp.sum((X @ w - y) ** 2) + p * dnp.sum(w**2)
    return X, y, obj


@pytest.mark.parametrize("method", ["newton", "L-BFGS-B", "BFGS", "Newton-CG"])
def test_ridge_solution_derivative_wrt_regularization_matches_closed_form(rng, method):
    X, y, obj = _ridge_problem(rng)
    lam = 0.7
    A = X.T @ X + lam * np.eye(X.shape[1])
    w = np.linalg.solve(A, X.T @ y)
    np.testing.assert_allclose(argmin(obj, np.zeros(5), lam, method=method), w, atol=1e-8)
    want = -np.linalg.solve(A, w)  # dw/dlam = -(X^T X + lam I)^-1 w
    np.testing.assert_allclose(
        ds.jacfwd(lambda l: argmin(obj, np.zeros(5), l, method=method))(lam), want, atol=1e-8
    )
    np.testing.assert_allclose(
        ds.jacrev(lambda l: argmin(obj, np.zeros(5), l, method=method))(lam), want, atol=1e-8
    )


def test_argmin_gradients_wrt_data_and_second_order(rng):
    X, y, _ = _ridge_problem(rng, 12, 3)
    obj = lambda w, p: dnp.sum((p["X"] @ w - p["y"]) ** 2) + 0.3 * dnp.sum(w**2) + dnp.sum(w**4)
    params = {"X": X, "y": y}
    ds.check_grads(lambda p: argmin(obj, np.zeros(3), p, method="newton"), (params,), order=2)


def test_large_ridge_uses_matrix_free_cg(rng):
    m, d = 400, 250  # above the dense threshold: the adjoint Hessian solve is CG
    X, y = rng.standard_normal((m, d)) / np.sqrt(m), rng.standard_normal(m)
    obj = lambda w, lam: dnp.sum((X @ w - y) ** 2) + lam * dnp.sum(w**2)
    lam = 0.5
    g = ds.grad(lambda l: dnp.sum(argmin(obj, np.zeros(d), l, method="newton")))(lam)
    A = X.T @ X + lam * np.eye(d)
    w = np.linalg.solve(A, X.T @ y)
    np.testing.assert_allclose(g, -np.sum(np.linalg.solve(A, w)), rtol=1e-6)


@pytest.mark.parametrize("d", [5, 260])  # Newton polish: dense below 200 unknowns, CG above
def test_argmin_polishes_when_a_line_search_stalls(rng, d):
    X, y = rng.standard_normal((2 * d, d)), rng.standard_normal(2 * d)
    obj = lambda w, lam: dnp.sum((X @ w - y) ** 2) + lam * dnp.sum(w**2)
    # max|grad| <= 1e-11 on an objective of size ~d: below what L-BFGS-B's line search can see
    w, info = argmin(obj, np.zeros(d), 0.3, tol=1e-11, return_info=True)
    assert info.converged and info.residual <= 1e-11
    assert info.method in ("L-BFGS-B", "L-BFGS-B + Newton polish")
    np.testing.assert_allclose(w, np.linalg.solve(X.T @ X + 0.3 * np.eye(d), X.T @ y), atol=1e-10)
    with pytest.raises(ConvergenceError, match=r"argmin \(L-BFGS-B\) did NOT converge"):
        argmin(obj, np.zeros(d), 0.3, tol=1e-13, polish=False)


def test_argmin_errors():
    with pytest.raises(ValueError, match="argmin: objective must return a scalar"):
        argmin(lambda w: w**2, np.zeros(2))
    with pytest.raises(ValueError, match="argmin: adjoint must be one of"):
        argmin(lambda w: dnp.sum(w**2), np.zeros(2), adjoint="lu")
    with pytest.raises(ConvergenceError, match=r"argmin \(L-BFGS-B\) did NOT converge"):
        argmin(lambda w: dnp.sum(w**2) + w[0] ** 3, np.zeros(2) + 5.0, max_iter=2, polish=False)
    with np.errstate(over="ignore", invalid="ignore"):  # unbounded below: diverges
        with pytest.raises(ConvergenceError, match=r"argmin \(L-BFGS-B\) did NOT converge: resid"):
            argmin(lambda w: dnp.sum(w**3 + w), np.ones(2), max_iter=20)
