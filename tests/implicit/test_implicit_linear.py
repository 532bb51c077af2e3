"""linear_solve: forward methods, derivatives in b and params, convergence checks, errors."""

from __future__ import annotations

import os
import warnings
import zlib

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.implicit import ConvergenceError, ConvergenceWarning, linear_solve


@pytest.fixture
def rng(request) -> np.random.Generator:
    salt = os.environ.get("DIFFSYS_TEST_SEED", "")
    return np.random.default_rng(zlib.crc32((salt + request.node.nodeid).encode()))


def _spd(rng, n):
    Q = rng.standard_normal((n, n))
    return Q @ Q.T / n + np.eye(n)


@pytest.mark.parametrize("method", ["dense", "cg", "gmres", "bicgstab", "auto"])
def test_values(rng, method):
    A = _spd(rng, 30)
    b = rng.standard_normal(30)
    x, info = linear_solve(lambda v: A @ v, b, symmetric=True, method=method, return_info=True)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-8, atol=1e-9)
    assert info.converged and info.residual <= 1e-8
    assert info.method == ("dense" if method == "auto" else method)


def test_matrix_shaped_unknowns(rng):
    A = _spd(rng, 6)
    B = rng.standard_normal((2, 3))
    x = linear_solve(lambda X: (A @ X.reshape(-1)).reshape(2, 3), B)
    np.testing.assert_allclose(x.reshape(-1), np.linalg.solve(A, B.reshape(-1)))


@pytest.mark.parametrize("method", ["dense", "gmres", "bicgstab"])
def test_gradients_in_b_and_params_match_closed_form(rng, method):
    n = 8
    A0 = _spd(rng, n) + 0.3 * rng.standard_normal((n, n))  # not symmetric
    b = rng.standard_normal(n)
    u = rng.standard_normal(n)

    def f(b, A):
        return dnp.sum(u * linear_solve(lambda x, A: A @ x, b, A, method=method, tol=1e-12))

    gb, gA = ds.grad(f, argnums=(0, 1))(b, A0)
    lam = np.linalg.solve(A0.T, u)
    x = np.linalg.solve(A0, b)
    np.testing.assert_allclose(gb, lam, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gA, -np.outer(lam, x), rtol=1e-7, atol=1e-9)
    # forward mode
    db, dA = rng.standard_normal(n), rng.standard_normal((n, n))
    _, t = ds.jvp(f, (b, A0), (db, dA))
    np.testing.assert_allclose(t, gb @ db + np.sum(gA * dA), rtol=1e-7)


def test_check_grads_second_order_with_pytree_params(rng):
    n = 4
    A0 = _spd(rng, n)
    params = {"A": A0, "shift": (0.5, np.array(2.0))}

    def mv(x, p):
        return p["A"] @ x + p["shift"][0] * p["shift"][1] * x

    b = rng.standard_normal(n)
    ds.check_grads(lambda b, p: linear_solve(mv, b, p), (b, params), order=2)
    # the symmetric (self-adjoint) path and a user transpose agree with the derived transpose
    for kw in ({"symmetric": True}, {"transpose_matvec": lambda x, p: mv(x, p)}):
        g = ds.grad(lambda b: dnp.sum(linear_solve(mv, b, params, **kw) ** 2))(b)
        want = ds.grad(lambda b: dnp.sum(linear_solve(mv, b, params) ** 2))(b)
        np.testing.assert_allclose(g, want, rtol=1e-9)


def test_matrix_free_adjoint_on_a_large_system(rng):
    n = 400
    d = rng.uniform(1.0, 3.0, n)
    mv = lambda x, s: (
        d * x + s * (dnp.concatenate([x[1:], x[:1]]) + dnp.concatenate([x[-1:], x[:-1]]))
    )
    b = rng.standard_normal(n)
    for method in ("cg", "gmres", "bicgstab"):
        g = ds.grad(
            lambda s: dnp.sum(linear_solve(mv, b, s, symmetric=method == "cg", method=method))
        )(0.3)
        A = np.diag(d) + 0.3 * (np.roll(np.eye(n), 1, 0) + np.roll(np.eye(n), -1, 0))
        x, lam = np.linalg.solve(A, b), np.linalg.solve(A.T, np.ones(n))
        S = np.roll(np.eye(n), 1, 0) + np.roll(np.eye(n), -1, 0)
        np.testing.assert_allclose(g, -lam @ S @ x, rtol=1e-6)


def test_convergence_is_checked(rng):
    n = 300
    A = rng.standard_normal((n, n)) + np.eye(n)  # hard for a 2-iteration GMRES
    b = rng.standard_normal(n)
    with pytest.raises(ConvergenceError, match=r"linear_solve \(gmres\) did NOT converge"):
        linear_solve(lambda x: A @ x, b, method="gmres", maxiter=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, info = linear_solve(
            lambda x: A @ x, b, method="gmres", maxiter=2, on_failure="warn", return_info=True
        )
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert not info.converged and info.residual == pytest.approx(np.linalg.norm(A @ x - b))


def test_errors(rng):
    A = _spd(rng, 3)
    with pytest.raises(ValueError, match="linear_solve: method must be one of"):
        linear_solve(lambda x: A @ x, np.ones(3), method="lu")
    with pytest.raises(ValueError, match=r"must return the shape of its input \(3,\)"):
        linear_solve(lambda x: (A @ x)[:2], np.ones(3), method="gmres")
    with pytest.raises(TypeError, match="closes over a value being differentiated"):
        ds.grad(lambda s: dnp.sum(linear_solve(lambda x: s * x, np.ones(3), method="cg")))(2.0)
    with pytest.raises(
        np.linalg.LinAlgError, match="linear_solve: the 3x3 system matrix is singular"
    ):
        linear_solve(lambda x: 0.0 * x, np.ones(3))
