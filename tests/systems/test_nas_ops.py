"""systems.nas: candidate operations, the mixed operation (relaxed and hard), genotypes."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys.systems import nas


def _ref_pool(x, kind):
    """3x3, stride 1, pad 1 pooling by loops (padding excluded from max and mean)."""
    b, c, h, w = x.shape
    out = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            win = x[:, :, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
            out[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return out


def _ref_conv(x, w, b, dilation):
    """Same-padded convolution (cross-correlation) by loops."""
    k = w.shape[-1]
    pad = dilation * (k // 2)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((x.shape[0], w.shape[0]) + x.shape[2:])
    for u in range(k):
        for v in range(k):
            patch = xp[:, :, u * dilation : u * dilation + x.shape[2],
                       v * dilation : v * dilation + x.shape[3]]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, u, v])
    return np.maximum(out + b[None, :, None, None], 0.0)


@pytest.mark.parametrize("op", nas.CANDIDATES)
def test_candidates_against_loop_references(op, rng):
    x = rng.normal(size=(2, 3, 6, 6))
    w, b = None, None
    if op.startswith(("conv", "dil")):
        k = 5 if op == "conv5x5" else 3
        w, b = rng.normal(size=(3, 3, k, k)), rng.normal(size=3)
    got = nas.apply_candidate(op, x, w, b)
    ref = {
        "zero": np.zeros_like(x),
        "skip": x,
        "max_pool3x3": _ref_pool(x, "max") if op == "max_pool3x3" else None,
        "avg_pool3x3": _ref_pool(x, "mean") if op == "avg_pool3x3" else None,
    }.get(op)
    if ref is None:
        ref = _ref_conv(x, w, b, 2 if op == "dil_conv3x3" else 1)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["avg_pool3x3", "conv3x3", "conv5x5", "dil_conv3x3"])
def test_candidate_gradients(op, rng):
    x = rng.normal(size=(1, 2, 5, 5))
    if op == "avg_pool3x3":
        ds.check_grads(lambda x: nas.apply_candidate(op, x), (x,), order=2)
        return
    k = 5 if op == "conv5x5" else 3
    w, b = rng.normal(size=(2, 2, k, k)), rng.normal(size=2) + 3.0  # away from ReLU's kink
    ds.check_grads(lambda x, w, b: nas.apply_candidate(op, x, w, b), (x, w, b), order=1)


def test_mixed_op_gradients_to_order_two(rng):
    outs = rng.normal(size=(4, 3, 2))
    alpha = rng.normal(size=4)
    ds.check_grads(lambda o, a, t: nas.mixed_op(o, a, t), (outs, alpha, 0.7), order=2)


def test_mixed_op_hard_is_the_argmax_candidate_and_the_gap_shrinks(rng):
    outs = rng.normal(size=(5, 4, 3))
    alpha = np.array([0.1, 0.9, -0.3, 0.5, 0.2])
    np.testing.assert_array_equal(nas.mixed_op.hard(outs, alpha), outs[1])
    gaps = [nas.mixed_op.gap(outs, alpha, temperature=t) for t in (1.0, 0.3, 0.1, 0.03, 0.01)]
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 1e-9
    # at T = 1 it is the plain softmax mixture
    p = np.exp(alpha) / np.exp(alpha).sum()
    np.testing.assert_allclose(nas.mixed_op(outs, alpha), np.tensordot(p, outs, 1), rtol=1e-12)


def test_mixed_op_shape_errors_name_the_op():
    with pytest.raises(ValueError, match=r"mixed_op: expected outputs \(K, ...\)"):
        nas.mixed_op(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        nas.mixed_op(np.zeros((3, 2)), np.zeros(3), temperature=0.0)
    with pytest.raises(ValueError, match="unknown candidate 'conv7x7'"):
        nas.apply_candidate("conv7x7", np.zeros((1, 1, 4, 4)))


def test_genotype_and_discretise():
    g = nas.Genotype(("conv3x3", "zero", "skip"), nodes=2)
    assert str(g) == "n1 = conv3x3(n0); n2 = skip(n1)"
    assert nas.Genotype.from_dict(g.to_dict()) == g
    alpha = np.array([[0.0, 1.0, 3.0], [2.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    cands = ("zero", "skip", "conv3x3")
    assert nas.discretise(alpha, cands, nodes=2).ops == ("conv3x3", "zero", "zero")
    assert nas.discretise(alpha, cands, nodes=2, exclude=("zero",)).ops == (
        "conv3x3", "conv3x3", "skip")
    with pytest.raises(ValueError, match=r"alpha must have shape \(edges, K\) = \(3, 3\)"):
        nas.discretise(alpha[:2], cands, nodes=2)
    with pytest.raises(ValueError, match="a cell with 2 nodes has 3 edges"):
        nas.Genotype(("skip",), nodes=2)


def test_parameter_counts_match_the_networks():
    for ops in (("conv3x3", "skip", "conv5x5"), ("zero", "max_pool3x3", "dil_conv3x3")):
        g = nas.Genotype(ops, nodes=2)
        net = nas.DiscreteNet(g, channels=5, key=0)
        n = sum(int(np.size(p)) for _, p in net.named_parameters())
        assert n == nas.network_parameter_count(g, 5)


def test_random_genotypes_keep_the_budget():
    target = nas.network_parameter_count(nas.Genotype(("conv3x3",) * 3, nodes=2), 6)
    gs = nas.random_genotypes(1, 5, nodes=2, channels=6, target=target, tolerance=0.05)
    assert len({g.ops for g in gs}) == 5
    for g in gs:
        assert abs(nas.network_parameter_count(g, 6) - target) <= 0.05 * target
    with pytest.raises(ValueError, match="found only"):
        nas.random_genotypes(1, 5, nodes=1, channels=6, target=10**9, max_tries=50)
