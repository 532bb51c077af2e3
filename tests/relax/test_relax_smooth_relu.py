"""relax.soft_relu: T softplus(x / T), a relaxed max(x, 0) (shared by the runtime and physics
components' smooth recursions)."""

import numpy as np

import diffsys as ds
from diffsys import relax


def test_soft_relu_derivatives_and_gap_to_max():
    x = np.array([-2.0, -0.1, 0.0, 0.3, 1.5])
    ds.check_grads(lambda x, t: relax.soft_relu(x, t), (x, 0.5), order=2, modes=("fwd", "rev"))
    gaps = [np.max(np.abs(relax.soft_relu(x, t) - np.maximum(x, 0.0))) for t in (1.0, 0.1, 0.01)]
    assert gaps[0] > gaps[1] > gaps[2] and np.isclose(gaps[2], 0.01 * np.log(2.0))
    np.testing.assert_array_equal(relax.soft_relu.hard(x), np.maximum(x, 0.0))
