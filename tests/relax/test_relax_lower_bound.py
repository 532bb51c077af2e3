"""relax.lower_bound: max(x, bound) whose reverse derivative still lets a gradient through
below the bound when a descent step would raise x (CompressAI's LowerBound)."""

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import relax


def test_value_and_identity_derivative_above_the_bound(rng):
    x = rng.uniform(0.6, 3.0, 6)
    np.testing.assert_array_equal(relax.lower_bound(x, 0.5), x)
    np.testing.assert_array_equal(relax.lower_bound(np.array([-2.0, 0.1]), 0.5), [0.5, 0.5])
    ds.check_grads(lambda x: relax.lower_bound(x, 0.5) ** 3, (x,), order=2, modes=("fwd", "rev"))


def test_below_the_bound_the_gradient_passes_only_towards_it():
    x = np.array([-1.0, 0.0, 2.0])
    up = ds.grad(lambda x: dnp.sum(-3.0 * relax.lower_bound(x, 0.5)))(x)  # descent raises x
    np.testing.assert_array_equal(up, [-3.0, -3.0, -3.0])
    down = ds.grad(lambda x: dnp.sum(3.0 * relax.lower_bound(x, 0.5)))(x)  # descent lowers x
    np.testing.assert_array_equal(down, [0.0, 0.0, 3.0])
    # a plain clamp (dnp.maximum) holds both: the difference is the whole point
    plain = ds.grad(lambda x: dnp.sum(-3.0 * dnp.maximum(x, 0.5)))(x)
    np.testing.assert_array_equal(plain, [0.0, 0.0, -3.0])
    # forward mode: the clamp's own derivative
    _, t = ds.jvp(lambda x: relax.lower_bound(x, 0.5), (x,), (np.ones(3),))
    np.testing.assert_array_equal(t, [0.0, 0.0, 1.0])


def test_vmap_float32_and_errors():
    x = np.array([[0.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    out = ds.vmap(lambda r: relax.lower_bound(r, 0.5))(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0.5))
    assert out.dtype == np.float32
    assert ds.grad(lambda x: dnp.sum(relax.lower_bound(x, 0.5)))(x).dtype == np.float32
    with pytest.raises(TypeError, match="bound must be a Python or NumPy scalar"):
        relax.lower_bound(x, np.array([0.1, 0.2]))
