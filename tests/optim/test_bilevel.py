"""optim.unrolled_hypergradient: the DARTS hypergradient, first order, finite difference and
exact (reverse over reverse), against a closed form and against each other."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim


def _quadratic(a, b, c):
    # L_train = 1/2 w.A w - w.B h ; L_val = 1/2 |w - c|^2 + 1/2 |h|^2 / 10
    train = lambda w, h: 0.5 * w @ a @ w - w @ b @ h  # noqa: E731
    val = lambda w, h: 0.5 * dnp.sum((w - c) ** 2) + 0.05 * dnp.sum(h**2)  # noqa: E731
    return train, val


def test_closed_form_on_a_quadratic():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(4, 4))
    a = m @ m.T + 4 * np.eye(4)
    b = rng.normal(size=(4, 3))
    c = rng.normal(size=4)
    w, h, lr = rng.normal(size=4), rng.normal(size=3), 0.05
    train, val = _quadratic(a, b, c)
    w1 = w - lr * (a @ w - b @ h)
    # dw1/dh = lr B, so d/dh L_val(w1, h) = lr B^T (w1 - c) + h / 10
    expected = lr * b.T @ (w1 - c) + 0.1 * h
    for method in ("exact", "finite_difference"):
        hg = optim.unrolled_hypergradient(train, val, w, h, lr=lr, method=method)
        np.testing.assert_allclose(hg.weights, w1, rtol=1e-12)
        np.testing.assert_allclose(hg.grad, expected, rtol=1e-6, atol=1e-9)
        assert hg.value == pytest.approx(float(val(w1, h)))
    first = optim.unrolled_hypergradient(train, val, w, h, lr=lr, method="first_order")
    np.testing.assert_allclose(first.grad, 0.1 * h)  # only the direct term
    np.testing.assert_allclose(first.weights, w)


def test_finite_difference_matches_exact_on_a_network():
    # nonlinear in w and h: the central difference is close to the exact mixed derivative
    net = nn.Sequential([nn.Linear(3, 5, key=0), nn.tanh, nn.Linear(5, 2, key=1)])
    w, h = nn.partition(net, frozen="layers.0.*")  # h: the first layer (the "architecture")
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    xv, tv = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    train = lambda w, h: dnp.mean((nn.combine(w, h)(x) - t) ** 2)  # noqa: E731
    val = lambda w, h: dnp.mean((nn.combine(w, h)(xv) - tv) ** 2)  # noqa: E731
    exact = optim.unrolled_hypergradient(train, val, w, h, lr=0.3, method="exact")
    fd = optim.unrolled_hypergradient(train, val, w, h, lr=0.3, method="finite_difference")
    first = optim.unrolled_hypergradient(train, val, w, h, lr=0.3, method="first_order")
    ge, gf, g1 = (np.concatenate([np.ravel(v) for v in ds.tree_leaves(g.grad)])
                  for g in (exact, fd, first))
    assert np.linalg.norm(gf - ge) < 1e-4 * np.linalg.norm(ge)
    # and the second-order term matters here: first order is measurably different
    assert np.linalg.norm(g1 - ge) > 1e-2 * np.linalg.norm(ge)


def test_zero_lr_is_first_order_and_bad_arguments_are_named():
    train = lambda w, h: (w - h) ** 2  # noqa: E731
    val = lambda w, h: (w - 3.0) ** 2 + h**2  # noqa: E731
    for method in ("exact", "finite_difference"):
        hg = optim.unrolled_hypergradient(train, val, 1.0, 0.5, lr=0.0, method=method)
        assert float(hg.grad) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        optim.unrolled_hypergradient(train, val, 1.0, 0.5, lr=0.1, method="second")
    with pytest.raises(ValueError, match="lr must be finite"):
        optim.unrolled_hypergradient(train, val, 1.0, 0.5, lr=-1.0)
