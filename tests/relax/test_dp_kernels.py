"""relax.dp's soft-DTW on plain arrays: Numba kernels (the ``jit`` extra) and the NumPy
fallback give the same tables and gradients, and Numba is imported only on first use."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import diffsys as ds
from diffsys.relax import _dp_kernels, dp, soft_dtw_cost

CASES = [(1, 1, 1.0), (1, 6, 0.5), (7, 3, 0.1), (25, 31, 1.0), (40, 40, 0.01), (50, 20, 3.0)]


def _cost(rng, n, m):
    x = np.cumsum(rng.standard_normal(n))
    y = np.cumsum(rng.standard_normal(m))
    return (x[:, None] - y[None, :]) ** 2


@pytest.fixture
def numpy_only(monkeypatch):
    """Numba made unimportable, the kernel cache emptied: dp must fall back to NumPy."""
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.setattr(_dp_kernels, "_KERNELS", None)
    assert _dp_kernels.sdtw_kernels() is None


@pytest.mark.parametrize(("n", "m", "gamma"), CASES)
def test_soft_dtw_numba_kernels_equal_the_numpy_recursions(rng, monkeypatch, n, m, gamma):
    pytest.importorskip("numba")
    kernels = _dp_kernels.sdtw_kernels()
    assert kernels is not None
    forward, backward = kernels
    D = _cost(rng, n, m)
    R_np = dp._sdtw_numpy(D, gamma)
    R_nb = forward(D, gamma, False)
    np.testing.assert_allclose(R_nb, R_np, rtol=1e-12, atol=0)
    np.testing.assert_allclose(backward(D, R_nb, gamma), dp._sdtw_grad_numpy(D, R_np, gamma),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(forward(D, gamma, True), dp._sdtw_numpy(D, gamma, hard=True))
    # the public op runs the kernels (once each) and gives the fallback's value and gradient
    calls = []

    def spy(k, f):
        return lambda *a: calls.append(k) or f(*a)

    monkeypatch.setattr(_dp_kernels, "_KERNELS", (spy("R", forward), spy("E", backward)))
    value, dD = ds.value_and_grad(lambda D: soft_dtw_cost(D, gamma))(D)
    assert calls == ["R", "E"]
    assert float(value) == pytest.approx(R_np[n, m], rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(dD, dp._sdtw_grad_numpy(D, R_np, gamma), rtol=1e-12, atol=1e-14)


def test_soft_dtw_numba_kernels_treat_infinite_costs_as_numpy(rng):
    pytest.importorskip("numba")
    forward, backward = _dp_kernels.sdtw_kernels()
    D = _cost(rng, 6, 5)
    D[2, :3] = np.inf  # forbidden cells, the path goes around them
    D[0, 4] = np.inf
    R = forward(D, 0.5, False)
    np.testing.assert_array_equal(np.isinf(R), np.isinf(dp._sdtw_numpy(D, 0.5)))
    np.testing.assert_allclose(R, dp._sdtw_numpy(D, 0.5), rtol=1e-12)
    with np.errstate(invalid="ignore"):
        want = dp._sdtw_grad_numpy(D, R, 0.5)
    np.testing.assert_allclose(backward(D, R, 0.5), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("n", "m", "gamma"), CASES[:4])
def test_soft_dtw_numpy_fallback_without_numba(rng, numpy_only, monkeypatch, n, m, gamma):
    D = _cost(rng, n, m)
    value, dD = ds.value_and_grad(lambda D: soft_dtw_cost(D, gamma))(D)
    # the traced recursion (diffsys operations, no kernels) is the independent reference
    want, want_dD = ds.value_and_grad(lambda d: dp._sdtw_traced(d, gamma))(D)
    assert float(value) == pytest.approx(float(want), rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(dD, want_dD, rtol=1e-10, atol=1e-12)
    assert float(soft_dtw_cost.hard(D)) == float(dp._sdtw_numpy(D, 1.0, hard=True)[n, m])
    assert _dp_kernels._KERNELS is False  # no compiled kernel was made or used


def test_import_diffsys_does_not_import_numba_until_soft_dtw_runs():
    pytest.importorskip("numba")
    code = (
        "import sys, numpy as np, diffsys\n"
        "from diffsys.relax import soft_dtw_cost\n"
        "before = 'numba' in sys.modules\n"
        "soft_dtw_cost(np.ones((3, 4)), 1.0)\n"
        "print(before, 'numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.split() == ["False", "True"]
