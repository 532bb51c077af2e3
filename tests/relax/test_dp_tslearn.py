"""soft-DTW against tslearn's (Cuturi & Blondel's reference recursions, compiled with Numba).

tslearn is in the ``timeseries`` extra (also in ``test``), so these tests skip only where it is
not installed; under CI a skip fails the run (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys.relax import soft_dtw, soft_dtw_cost

pytest.importorskip("tslearn")
metrics = pytest.importorskip("tslearn.metrics")


@pytest.mark.parametrize(("n", "m", "d", "gamma"),
                         [(1, 1, 1, 1.0), (1, 7, 2, 0.5), (9, 4, 1, 0.1), (30, 25, 3, 1.0),
                          (40, 40, 1, 0.01), (64, 50, 2, 2.0)])
def test_soft_dtw_value_and_gradients_equal_tslearn(n, m, d, gamma):
    rng = np.random.default_rng(n * 100 + m)
    x = np.cumsum(rng.standard_normal((n, d)), axis=0)
    y = np.cumsum(rng.standard_normal((m, d)), axis=0)
    dist = metrics.SquaredEuclidean(x, y)
    D = dist.compute()
    ref = metrics.SoftDTW(D, gamma)
    want = ref.compute()
    want_dD = ref.grad()
    want_dx = dist.jacobian_product(want_dD)
    scale = max(1.0, abs(want))

    value, dD = ds.value_and_grad(lambda D: soft_dtw_cost(D, gamma))(D)
    assert abs(float(value) - want) <= 1e-10 * scale
    np.testing.assert_allclose(dD, want_dD, rtol=0, atol=1e-10)
    # on the series themselves (tslearn's soft_dtw and its Jacobian product)
    assert abs(float(soft_dtw(x, y, gamma)) - metrics.soft_dtw(x, y, gamma)) <= 1e-10 * scale
    dx = ds.grad(lambda x: soft_dtw(x, y, gamma))(x)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-10 * scale)
