"""Every layer: values against PyTorch (when installed) or a direct NumPy formula, and
gradients against finite differences in float64, forward and reverse mode."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn


def _check_layer(layer, x, order=1, modes=("fwd", "rev")):
    """check_grads with respect to the input and every parameter of ``layer``."""
    params, static = nn.partition(layer)

    def f(p, x):
        return nn.combine(p, static)(x)

    ds.check_grads(f, (params, x), order=order, modes=modes)


def torch_or_skip():
    return pytest.importorskip("torch")


# --- gradients ---

LAYERS = {
    "linear": (lambda: nn.Linear(4, 3, key=0), (2, 4)),
    "linear_3d_input": (lambda: nn.Linear(4, 3, key=0), (2, 5, 4)),
    "linear_no_bias": (lambda: nn.Linear(4, 3, bias=False, key=0), (2, 4)),
    "conv1d": (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1, key=0), (2, 2, 7)),
    "conv2d": (lambda: nn.Conv2d(2, 4, 3, padding="same", key=0), (2, 2, 5, 4)),
    "conv2d_strided_dilated_groups": (
        lambda: nn.Conv2d(
            4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, key=0
        ),
        (2, 4, 6, 6),
    ),
    "conv_transpose2d": (
        lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, key=0),
        (2, 3, 3, 4),
    ),
    "maxpool2d": (lambda: nn.MaxPool2d(2), (2, 3, 4, 6)),
    "maxpool2d_overlapping_padded": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 5, 5)),
    "maxpool1d": (lambda: nn.MaxPool1d(2), (2, 3, 6)),
    "avgpool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (1, 2, 5, 6)),
    "adaptive_avgpool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 2, 5, 7)),
    "layernorm": (lambda: nn.LayerNorm((3, 4)), (2, 3, 4)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), (3, 4, 5)),
    "flatten": (lambda: nn.Flatten(), (2, 3, 4)),
    "mha": (lambda: nn.MultiHeadAttention(4, 2, key=0), (2, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradients_match_finite_differences(name, rng):
    make, shape = LAYERS[name]
    layer = make()
    x = rng.standard_normal(shape)
    _check_layer(layer, x, order=2 if name in ("linear", "conv2d", "layernorm") else 1)


@pytest.mark.parametrize(
    "fn",
    [
        nn.relu,
        nn.sigmoid,
        nn.tanh,
        nn.softplus,
        nn.silu,
        nn.gelu,
        lambda x: nn.gelu(x, approximate=True),
        nn.elu,
        nn.leaky_relu,
        nn.log_sigmoid,
        nn.softmax,
        nn.log_softmax,
        lambda x: nn.softmax(x, axis=0),
        nn.selu,
        nn.erf,
    ],
)
def test_activation_gradients_order_two(fn, rng):
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of relu & co
    ds.check_grads(fn, (x,), order=2)


def test_batchnorm_gradients_in_training_and_eval_mode(rng):
    bn, state = nn.with_state(nn.BatchNorm(3))
    x = rng.standard_normal((5, 3, 2))
    params, static = nn.partition(bn)

    def f(p, x):
        return nn.combine(p, static)(x, state)[0]

    ds.check_grads(f, (params, x), order=2)
    ev = nn.eval_mode(bn)
    _, state2 = bn(x, state)
    ds.check_grads(lambda x: ev(x, state2)[0], (x,), order=1)


def test_embedding_gradient_accumulates_repeated_indices(rng):
    emb = nn.Embedding(5, 3, key=0)
    idx = np.array([[1, 1, 4]])
    g = ds.grad(lambda m: dnp.sum(m(idx)))(emb)
    want = np.zeros((5, 3))
    want[1] = 2
    want[4] = 1
    np.testing.assert_array_equal(g.weight, want)
    ds.check_grads(lambda w: emb.replace(weight=w)(idx), (emb.weight,), order=2)


def test_embedding_errors_name_the_layer():
    emb = nn.Embedding(5, 3, key=0)
    with pytest.raises(IndexError, match=r"Embedding\(5, 3\).*out of range"):
        emb(np.array([5]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([1.0]))


def test_embedding_with_a_traced_index_in_a_graph_and_under_vmap():
    emb = nn.Embedding(5, 3, key=0)
    f = lambda m, i: dnp.sum(m(i) ** 2)
    graph = ds.trace(f)(emb, np.array([0, 2]))
    other = np.array([4, 4])  # a new index: the graph must not have kept [0, 2]
    np.testing.assert_allclose(graph(emb, other), f(emb, other))
    np.testing.assert_allclose(ds.grad(graph)(emb, other).weight, ds.grad(f)(emb, other).weight)
    batch = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(ds.vmap(emb)(batch), emb.weight[batch])
    with pytest.raises(TypeError, match="integers"):
        ds.vmap(emb)(batch.astype(float))


def test_dropout_mask_statistics_scaling_and_gradient():
    d = nn.Dropout(0.25)
    x = np.ones(20000)
    y = d(x, key=np.random.default_rng(1))
    assert set(np.unique(y)) == {0.0, 1.0 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    g = ds.grad(lambda x: dnp.sum(d(x, key=np.random.default_rng(1))))(x)
    np.testing.assert_array_equal(g, y)  # the same mask, from the same seed
    np.testing.assert_array_equal(nn.eval_mode(d)(x), x)
    assert d(np.ones(3, np.float32), key=0).dtype == np.float32


def test_conv_jvp_and_vmap_agree_with_loops(rng):
    x = rng.standard_normal((3, 2, 5, 5))
    w = rng.standard_normal((4, 2, 3, 3))
    f = lambda x: nn.conv(x, w, padding=1)  # noqa: E731
    batched = ds.vmap(f)(x[:, None])
    np.testing.assert_allclose(batched[:, 0], f(x), rtol=1e-12)
    jac = ds.jacrev(lambda x: dnp.sum(nn.conv(x, w) ** 2, axis=(1, 2, 3)))(x[:1])
    fd = ds.jacfwd(lambda x: dnp.sum(nn.conv(x, w) ** 2, axis=(1, 2, 3)))(x[:1])
    np.testing.assert_allclose(jac, fd, rtol=1e-10)


def test_float32_in_float32_out():
    x = np.ones((2, 3, 8, 8), np.float32)
    net = nn.astype(
        nn.Sequential(
            [
                nn.Conv2d(3, 4, 3, key=0),
                nn.relu,
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(36, 2, key=1),
            ]
        ),
        np.float32,
    )
    y = net(x)
    assert y.dtype == np.float32
    g = ds.grad(lambda m: nn.cross_entropy(m(x), np.array([0, 1])))(net)
    assert all(leaf.dtype == np.float32 for leaf in ds.tree_leaves(g))


# --- values against PyTorch ---


@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (3, "same_s1", 1, 1)],
)
def test_conv2d_and_its_gradients_match_pytorch(stride, padding, dilation, groups, rng):
    torch = torch_or_skip()
    if padding == "same_s1":
        stride, padding = 1, "same"
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 4 // groups, 3, 3))
    b = rng.standard_normal(6)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    y = nn.conv(x, w, b, stride, padding, dilation, groups)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    ct = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(ct))
    _, vjp = ds.vjp(lambda x, w, b: nn.conv(x, w, b, stride, padding, dilation, groups), x, w, b)
    for got, want in zip(vjp(ct), (tx.grad, tw.grad, tb.grad), strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-11, atol=1e-11)


def test_conv_transpose_and_pools_match_pytorch(rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    tx = torch.tensor(x)
    np.testing.assert_allclose(
        nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, key=0).replace(weight=w, bias=np.zeros(6))(
            x
        ),
        F.conv_transpose2d(tx, torch.tensor(w), None, 2, 1, 1, 2).numpy(),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        nn.MaxPool2d(3, 2, 1)(x), F.max_pool2d(tx, 3, 2, 1).numpy(), rtol=0, atol=0
    )
    np.testing.assert_allclose(
        nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x),
        F.avg_pool2d(tx, 3, 2, 1, count_include_pad=False).numpy(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        nn.AdaptiveAvgPool2d((3, 4))(x), F.adaptive_avg_pool2d(tx, (3, 4)).numpy(), rtol=1e-12
    )


def test_norms_match_pytorch(rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = rng.standard_normal((4, 6, 3, 2))
    tx = torch.tensor(x)
    np.testing.assert_allclose(
        nn.GroupNorm(3, 6)(x), F.group_norm(tx, 3).numpy(), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        nn.LayerNorm((3, 2))(x), F.layer_norm(tx, (3, 2)).numpy(), rtol=1e-10, atol=1e-12
    )
    bn, state = nn.with_state(nn.BatchNorm(6))
    y, state = bn(x, state)
    rm, rv = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    ty = F.batch_norm(tx, rm, rv, training=True, momentum=0.1)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state[bn.state_name]["mean"], rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(state[bn.state_name]["var"], rv.numpy(), rtol=1e-12)
    y_eval, _ = nn.eval_mode(bn)(x, state)
    ty_eval = F.batch_norm(tx, rm, rv, training=False)
    np.testing.assert_allclose(y_eval, ty_eval.numpy(), rtol=1e-10, atol=1e-12)


def test_multihead_attention_matches_pytorch_with_masks(rng):
    torch = torch_or_skip()
    e, h, n, length = 8, 2, 3, 5
    mha = nn.MultiHeadAttention(e, h, key=0)
    ref = torch.nn.MultiheadAttention(e, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(
            torch.tensor(np.concatenate([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        )
        ref.in_proj_bias.copy_(
            torch.tensor(np.concatenate([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        )
        ref.out_proj.weight.copy_(torch.tensor(mha.out_proj.weight))
        ref.out_proj.bias.copy_(torch.tensor(mha.out_proj.bias))
    x = rng.standard_normal((n, length, e))
    pad = np.ones((n, length), bool)
    pad[0, 3:] = False
    out, w = mha(x, causal=True, padding_mask=pad, return_weights=True)
    causal_block = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
    tout, tw = ref(
        *(torch.tensor(x),) * 3,
        attn_mask=causal_block,
        key_padding_mask=torch.tensor(~pad),
        average_attn_weights=False,
    )
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_fully_masked_rows_give_uniform_weights_not_nan():
    q = np.ones((1, 2, 4))
    out, w = nn.dot_product_attention(q, q, q, np.zeros((2, 2), bool))
    assert np.all(np.isfinite(out)) and np.allclose(w, 0.5)


# --- errors ---


def test_shape_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Linear\(4 -> 3\).*\(\.\.\., 4\).*\(2, 5\)"):
        nn.Linear(4, 3, key=0)(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"Conv2d\(3 -> 4.*\(N, 3,.*\(1, 2, 5, 5\)"):
        nn.Conv2d(3, 4, 3, key=0)(np.ones((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="larger than"):
        nn.Conv2d(1, 1, 7, key=0)(np.ones((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="groups=3 must divide"):
        nn.Conv2d(4, 6, 3, groups=3, key=0)
    with pytest.raises(ValueError, match=r"LayerNorm\(4,\)"):
        nn.LayerNorm(4)(np.ones((2, 3)))


# --- initializers ---


@pytest.mark.parametrize(
    "name, shape, std",
    [
        ("xavier_uniform", (300, 200), np.sqrt(2 / 500)),
        ("xavier_normal", (300, 200), np.sqrt(2 / 500)),
        ("kaiming_normal", (64, 32, 3, 3), np.sqrt(2) / np.sqrt(32 * 9)),
        ("kaiming_uniform", (64, 32, 3, 3), np.sqrt(2) / np.sqrt(32 * 9)),
        ("lecun_normal", (400, 100), 1 / np.sqrt(100)),
    ],
)
def test_initializer_scales_and_seeding(name, shape, std):
    fn = getattr(nn.init, name)
    a = fn(0, shape)
    assert a.shape == shape and a.dtype == np.float64
    assert abs(a.std() / std - 1) < 0.05
    np.testing.assert_array_equal(a, fn(np.random.default_rng(0), shape))
    assert not np.array_equal(a, fn(1, shape))
    assert fn(0, shape, np.float32).dtype == np.float32


def test_orthogonal_and_constant_initializers():
    q = nn.init.orthogonal(0, (4, 7), gain=2.0)
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(4), atol=1e-12)
    q = nn.init.orthogonal(0, (6, 2, 2))
    m = q.reshape(6, 4)
    np.testing.assert_allclose(m.T @ m, np.eye(4), atol=1e-12)
    assert np.all(nn.init.zeros(None, (2, 2)) == 0) and np.all(nn.init.ones(None, 3) == 1)
    with pytest.raises(TypeError, match="seeded explicitly"):
        nn.init.normal(None, (2,))
