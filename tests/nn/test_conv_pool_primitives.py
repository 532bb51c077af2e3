"""The convolution, pooling and linear primitives one by one: derivatives to second order in both
modes, batching rules against Python loops (every combination of batched operands), Jacobians
and Hessians of a small CNN against finite differences, and exact selection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn
from diffsys.core import batching
from diffsys.core.primitive import registry
from diffsys.nn import _conv_op as co
from diffsys.nn import _pool_op as po
from diffsys.nn._linear_op import linear_p
from diffsys.nn._select import select_p

SPEC = co.ConvSpec(stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2), groups=2)
KERNEL = (2, 3)
X_SHAPE = (2, 4, 5, 6)  # (N, C, H, W)
W_SHAPE = (6, 2) + KERNEL  # (O, C / groups, kh, kw)


def _conv_operands(rng):
    x = rng.standard_normal(X_SHAPE)
    w = rng.standard_normal(W_SHAPE)
    b = rng.standard_normal(W_SHAPE[0])
    cols = co.im2col_p(x, kernel=KERNEL, spec=SPEC)
    g = rng.standard_normal(co.conv_mm_p(cols, w, b, spec=SPEC).shape)
    return x, w, b, cols, g


# One entry per primitive: (function of the differentiable operands, operands).
def _conv_cases(rng):
    x, w, b, cols, g = _conv_operands(rng)
    sp = X_SHAPE[2:]
    return {
        "im2col": (lambda x: co.im2col_p(x, kernel=KERNEL, spec=SPEC), (x,)),
        "col2im": (
            lambda c: co.col2im_p(c, kernel=KERNEL, spec=SPEC, in_spatial=sp),
            (rng.standard_normal(cols.shape),),
        ),
        "conv_matmul": (lambda c, w, b: co.conv_mm_p(c, w, b, spec=SPEC), (cols, w, b)),
        "conv_matmul_transpose_columns": (
            lambda g, w: co.conv_mm_tc_p(g, w, spec=SPEC),
            (g, w),
        ),
        "conv_matmul_transpose_weight": (
            lambda c, g: co.conv_mm_tw_p(c, g, spec=SPEC, kernel=KERNEL),
            (cols, g),
        ),
        "conv": (lambda x, w, b: co.conv_p(x, w, b, spec=SPEC), (x, w, b)),
        "conv_transpose_input": (
            lambda g, w: co.conv_tx_p(g, w, spec=SPEC, in_spatial=sp),
            (g, w),
        ),
        "conv_bias_grad": (co.bias_grad_p, (g,)),
    }


POOL = po.PoolSpec(kernel=(3, 2), stride=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 2))
TILED = po.PoolSpec(kernel=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)), dilation=(1, 1))


def _pool_cases(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    xt = rng.standard_normal((2, 3, 4, 6))
    cases = {}
    for name, spec, xx in (("", POOL, x), ("_tiled", TILED, xt)):
        y = po.max_pool_p(xx, spec=spec)
        g = rng.standard_normal(y.shape)
        sp = xx.shape[2:]
        cases |= {
            "max_pool" + name: (lambda a, s=spec: po.max_pool_p(a, spec=s), (xx,)),
            "max_pool_route" + name: (
                lambda g, s=spec, xx=xx, y=y: po.max_pool_route_p(g, xx, y, spec=s),
                (g,),
            ),
            "max_pool_pick" + name: (
                lambda t, s=spec, xx=xx, y=y: po.max_pool_pick_p(t, xx, y, spec=s),
                (rng.standard_normal(xx.shape),),
            ),
            "avg_pool" + name: (
                lambda a, s=spec: po.avg_pool_p(a, spec=s, count_include_pad=False),
                (xx,),
            ),
            "avg_pool_transpose" + name: (
                lambda g, s=spec, sp=sp: po.avg_pool_t_p(
                    g, spec=s, count_include_pad=True, in_spatial=sp
                ),
                (g,),
            ),
        }
    return cases


def _all_cases(rng):
    mask = rng.standard_normal((3, 4)) > 0
    cases = _conv_cases(rng) | _pool_cases(rng)
    cases["select"] = (lambda g: select_p(g, mask), (rng.standard_normal((3, 4)),))
    x, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    cases["linear"] = (linear_p, (x, w, b))
    return cases


NAMES = sorted(_all_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("name", NAMES)
def test_primitive_derivatives_to_second_order(name, rng):
    fun, args = _all_cases(rng)[name]
    ds.check_grads(fun, args, order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", NAMES)
def test_batching_rules_match_a_loop_for_every_batched_subset(name, rng):
    fun, args = _all_cases(rng)[name]
    for batched in itertools.product((False, True), repeat=len(args)):
        if not any(batched):
            continue
        stacked = [
            np.stack([a + 0.1 * k for k in range(3)]) if b else a
            for a, b in zip(args, batched, strict=True)
        ]
        in_axes = tuple(0 if b else None for b in batched)
        got = ds.vmap(fun, in_axes=in_axes)(*stacked)
        want = np.stack(
            [
                fun(*[a[k] if b else a for a, b in zip(stacked, batched, strict=True)])
                for k in range(3)
            ]
        )
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=str(batched))


def test_every_nn_primitive_has_its_own_batching_rule():
    import diffsys.nn  # noqa: F401 - registers the primitives

    missing = [p.name for p in list(registry.values()) if p.name.startswith("nn.")]
    missing = [n for n in missing if registry[n].batch_rule is None]
    assert missing == []


def test_vmap_directly_over_max_pool_layers_and_their_gradients(rng):
    x = rng.standard_normal((4, 2, 3, 6, 6))  # a batch of (N, C, H, W) inputs
    for layer in (nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d(2)):
        np.testing.assert_array_equal(ds.vmap(layer)(x), np.stack([layer(a) for a in x]))
        grad = ds.grad(lambda a, layer=layer: dnp.sum(layer(a) ** 3))
        np.testing.assert_allclose(
            ds.vmap(grad)(x), np.stack([grad(a) for a in x]), rtol=1e-13, atol=1e-13
        )
    pool1d = nn.MaxPool1d(2)
    x1 = rng.standard_normal((3, 2, 2, 8))
    np.testing.assert_array_equal(ds.vmap(pool1d)(x1), np.stack([pool1d(a) for a in x1]))
    # a batch axis elsewhere than in front
    got = ds.vmap(nn.MaxPool2d(2), in_axes=2, out_axes=1)(np.moveaxis(x, 0, 2))
    np.testing.assert_array_equal(got, np.moveaxis(np.stack([nn.MaxPool2d(2)(a) for a in x]), 0, 1))


@pytest.fixture
def loop_fallbacks():
    """The names of the nn primitives that vmap had to loop over (the fallback rule)."""
    calls = []
    fallback = batching._fallback_rule[0]

    def counting(prim, *a, **k):
        if prim.name.startswith("nn."):
            calls.append(prim.name)
        return fallback(prim, *a, **k)

    batching.set_fallback_rule(counting)
    try:
        yield calls
    finally:
        batching.set_fallback_rule(fallback)


def test_per_example_weight_gradients_and_weight_jacobians_need_no_loop(rng, loop_fallbacks):
    net = nn.Sequential(
        [
            nn.Conv2d(2, 3, 3, padding=1, key=0),
            nn.relu,
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(12, 2, key=1),
        ]
    )
    x = rng.standard_normal((5, 2, 4, 4))

    def loss(m, xi):
        return dnp.sum(m(xi[None]) ** 2)

    per_example = ds.vmap(ds.grad(loss), in_axes=(None, 0))(net, x)
    for k in range(5):
        one = ds.grad(loss)(net, x[k])
        for a, b in zip(ds.tree_leaves(per_example), ds.tree_leaves(one), strict=True):
            np.testing.assert_allclose(a[k], b, rtol=1e-12, atol=1e-13)
    w = net.layers[0].weight
    jr = ds.jacrev(
        lambda w: net.replace(layers=[net.layers[0].replace(weight=w)] + net.layers[1:])(x)
    )(w)
    jf = ds.jacfwd(
        lambda w: net.replace(layers=[net.layers[0].replace(weight=w)] + net.layers[1:])(x)
    )(w)
    np.testing.assert_allclose(jr, jf, rtol=1e-12, atol=1e-13)
    assert loop_fallbacks == []


def _tiny_cnn(theta, x):
    """conv 1->2 (2x2, pad 1) -> tanh -> max-pool 2 -> conv 2->2 (2x2, groups 2) -> softplus
    -> avg-pool 2 -> flatten; theta packs both weights and the first bias."""
    w1 = dnp.reshape(theta[:8], (2, 1, 2, 2))
    b1 = theta[8:10]
    w2 = dnp.reshape(theta[10:18], (2, 1, 2, 2))
    h = nn.tanh(nn.conv(x, w1, b1, padding=1))
    h = nn.max_pool(h, 2)
    h = nn.softplus(nn.conv(h, w2, groups=2))
    h = nn.avg_pool(h, 2, stride=1)
    return dnp.reshape(h, (-1,))


def _fd_jacobian(f, theta, h=1e-6):
    cols = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        cols.append((f(theta + e) - f(theta - e)) / (2 * h))
    return np.stack(cols, axis=-1)


def test_jacobians_and_hessian_of_a_small_cnn_match_finite_differences(rng):
    x = rng.standard_normal((2, 1, 6, 6))
    theta = rng.standard_normal(18) * 0.7

    def f(t):
        return _tiny_cnn(t, x)

    # the max-pool windows must not be near a tie, or finite differences jump
    h = np.tanh(np.asarray(nn.conv(x, theta[:8].reshape(2, 1, 2, 2), theta[8:10], padding=1)))
    top2 = np.sort(
        h[:, :, :6, :6].reshape(2, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4), 1
    )
    assert np.min(top2[:, -1] - top2[:, -2]) > 1e-4

    j_fd = _fd_jacobian(lambda t: np.asarray(f(t)), theta)
    np.testing.assert_allclose(ds.jacfwd(f)(theta), j_fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ds.jacrev(f)(theta), j_fd, rtol=1e-6, atol=1e-8)

    def loss(t):
        return dnp.sum(f(t) ** 2)

    # second central differences of the loss itself
    n, eps = theta.size, 1e-4
    fd = np.zeros((n, n))
    base = [np.eye(n)[i] * eps for i in range(n)]
    for i in range(n):
        for j in range(i, n):
            v = sum(
                s * float(loss(theta + a * base[i] + c * base[j]))
                for a, c, s in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))
            )
            fd[i, j] = fd[j, i] = v / (4 * eps * eps)
    hess = ds.hessian(loss)(theta)
    np.testing.assert_allclose(hess, hess.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hess, fd, rtol=1e-4, atol=1e-5 * np.abs(fd).max())
    # and the reverse-over-reverse route agrees with jacfwd(jacrev)
    np.testing.assert_allclose(ds.jacrev(ds.grad(loss))(theta), hess, rtol=1e-10, atol=1e-12)


def test_recomputed_columns_give_the_same_values_and_derivatives(rng, monkeypatch):
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)

    def f(x, w, b):
        return nn.conv(x, w, b, stride=(1, 2), padding="same")

    def grads():
        return ds.grad(lambda x, w, b: dnp.sum(f(x, w, b) ** 2), argnums=(0, 1, 2))(x, w, b)

    kept, kept_grads = f(x, w, b), grads()
    monkeypatch.setattr(co, "KEEP_COLUMNS_BYTES", 0)  # conv_p, columns made again
    np.testing.assert_array_equal(f(x, w, b), kept)
    for a, c in zip(grads(), kept_grads, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-14, atol=1e-14)
    ds.check_grads(f, (x, w, b), order=2)


def test_selection_is_exact_for_infinite_and_nan_cotangents():
    x = np.array([[[[-1.0, 2.0], [0.5, -3.0]]]])
    g = np.array([[[[np.inf, np.nan], [-np.inf, 1.0]]]])
    _, vjp = ds.vjp(nn.relu, x)
    np.testing.assert_array_equal(vjp(g)[0], [[[[0.0, np.nan], [-np.inf, 0.0]]]])
    _, vjp = ds.vjp(lambda a: nn.max_pool(a, 2), x)
    np.testing.assert_array_equal(vjp(np.full((1, 1, 1, 1), np.inf))[0], [[[[0, np.inf], [0, 0]]]])
    # ties go to the first maximum, as in PyTorch
    _, vjp = ds.vjp(lambda a: nn.max_pool(a, 2), np.zeros((1, 1, 2, 2)))
    np.testing.assert_array_equal(vjp(np.ones((1, 1, 1, 1)))[0], [[[[1.0, 0], [0, 0]]]])


def test_outputs_do_not_depend_on_the_input_memory_layout(rng):
    x = rng.standard_normal((3, 2, 7, 6)).astype(np.float32)
    layer = nn.Sequential(
        [
            nn.Conv2d(2, 4, 3, padding=1, key=0, dtype=np.float32),
            nn.relu,
            nn.MaxPool2d(2),
            nn.AvgPool2d(3, stride=1, padding=1),
        ]
    )
    want = layer(x)
    for view in (
        np.asfortranarray(x),
        np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2),
        np.ascontiguousarray(x[:, :, ::-1])[:, :, ::-1],
    ):
        got = layer(view)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_a_window_whose_maximum_is_nan_routes_its_gradient_to_its_first_nan():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 2, 2] = x[0, 0, 3, 3] = np.nan
    y, vjp = ds.vjp(lambda a: nn.max_pool(a, 2), x)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 1, 1])
    expected = np.zeros_like(x)
    expected[0, 0, 0, 1] = expected[0, 0, 1, 3] = expected[0, 0, 3, 1] = 1.0  # NaN, 7, 13
    expected[0, 0, 2, 2] = 1.0  # the first of the window's two NaNs, in window order
    np.testing.assert_array_equal(vjp(np.ones((1, 1, 2, 2)))[0], expected)
    # forward mode picks the same entries
    _, tangent = ds.jvp(lambda a: nn.max_pool(a, 2), (x,), (np.arange(16.0).reshape(x.shape),))
    np.testing.assert_array_equal(tangent, [[[[1.0, 7.0], [13.0, 10.0]]]])
