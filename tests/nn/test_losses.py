"""Losses: values against direct formulas (and PyTorch when installed), gradients against
finite differences, stability at extreme logits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import logsumexp

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn


def test_cross_entropy_integer_labels_matches_formula_and_grads(rng):
    logits = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    want = np.mean(logsumexp(logits, axis=1) - logits[np.arange(5), y])
    np.testing.assert_allclose(nn.cross_entropy(logits, y), want, rtol=1e-13)
    ds.check_grads(lambda z: nn.cross_entropy(z, y), (logits,), order=2)
    g = ds.grad(lambda z: nn.cross_entropy(z, y))(logits)
    p = np.exp(sp_log_softmax(logits, axis=1))
    p[np.arange(5), y] -= 1
    np.testing.assert_allclose(g, p / 5, rtol=1e-12, atol=1e-15)


def test_cross_entropy_probability_targets_and_label_smoothing(rng):
    logits = rng.standard_normal((6, 3))
    y = rng.integers(0, 3, 6)
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(
        nn.cross_entropy(logits, onehot), nn.cross_entropy(logits, y), rtol=1e-13
    )
    eps = 0.2
    smooth = (1 - eps) * onehot + eps / 3
    want = np.mean(-np.sum(smooth * sp_log_softmax(logits, axis=1), axis=1))
    np.testing.assert_allclose(nn.cross_entropy(logits, y, label_smoothing=eps), want, rtol=1e-13)
    np.testing.assert_allclose(
        nn.cross_entropy(logits, onehot, label_smoothing=eps), want, rtol=1e-13
    )
    ds.check_grads(lambda z: nn.cross_entropy(z, y, label_smoothing=eps), (logits,), order=2)
    ds.check_grads(lambda z, t: nn.cross_entropy(z, t), (logits, smooth), order=2)


def test_cross_entropy_other_axis_reductions_and_ignore_index(rng):
    logits = rng.standard_normal((2, 3, 4))  # classes on axis 1, like PyTorch segmentation
    y = rng.integers(0, 3, (2, 4))
    per = nn.cross_entropy(logits, y, axis=1, reduction="none")
    want = logsumexp(logits, axis=1) - np.take_along_axis(logits, y[:, None], 1)[:, 0]
    np.testing.assert_allclose(per, want, rtol=1e-13)
    np.testing.assert_allclose(nn.cross_entropy(logits, y, axis=1, reduction="sum"), want.sum())
    y2 = y.copy()
    y2[0, 0] = -100
    got = nn.cross_entropy(logits, y2, axis=1, ignore_index=-100)
    mask = y2 != -100
    np.testing.assert_allclose(got, want[mask].mean(), rtol=1e-13)
    ds.check_grads(lambda z: nn.cross_entropy(z, y, axis=1), (logits,), order=1)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_cross_entropy_is_stable_at_extreme_logits(scale):
    logits = np.array([[scale, 0.0, -scale], [0.0, scale, 1.0]])
    y = np.array([2, 1])
    loss = nn.cross_entropy(logits, y, reduction="none")
    assert np.all(np.isfinite(loss))
    want = logsumexp(logits, axis=1) - logits[np.arange(2), y]
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    g = ds.grad(lambda z: nn.cross_entropy(z, y))(logits)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-15)
    h = ds.hessian(lambda z: nn.cross_entropy(z, y))(logits)
    assert np.all(np.isfinite(h))
    assert np.isfinite(nn.cross_entropy(logits.astype(np.float32), y))


def test_nll_and_log_softmax(rng):
    logp = nn.log_softmax(rng.standard_normal((4, 5)))
    y = rng.integers(0, 5, 4)
    np.testing.assert_allclose(nn.nll(logp, y), -logp[np.arange(4), y].mean())
    ds.check_grads(lambda lp: nn.nll(lp, y), (logp,), order=2)
    big = nn.log_softmax(np.array([1e4, -1e4, 0.0]))
    np.testing.assert_allclose(big, [0.0, -2e4, -1e4])
    np.testing.assert_allclose(nn.softmax(np.array([1e4, 0.0])), [1.0, 0.0])


def test_bce_with_logits_formula_stability_and_grads(rng):
    x = rng.standard_normal(7) * 3
    t = rng.uniform(size=7)
    want = np.mean(-(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x)))))
    np.testing.assert_allclose(nn.bce_with_logits(x, t), want, rtol=1e-12)
    pw = np.full(7, 2.0)
    want_pw = np.mean(
        -(2 * t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))
    )
    np.testing.assert_allclose(nn.bce_with_logits(x, t, pos_weight=pw), want_pw, rtol=1e-12)
    ds.check_grads(lambda x, t: nn.bce_with_logits(x, t), (x, t), order=2)
    ds.check_grads(lambda x: nn.bce_with_logits(x, t, pos_weight=pw), (x,), order=2)
    extreme = np.array([1e4, -1e4, 1e4, -1e4])
    tt = np.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(
        nn.bce_with_logits(extreme, tt, reduction="none"), [0.0, 0.0, 1e4, 1e4]
    )
    g = ds.grad(lambda z: nn.bce_with_logits(z, tt))(extreme)
    np.testing.assert_allclose(g, [0.0, 0.0, 0.25, -0.25])


def test_regression_losses(rng):
    p, t = rng.standard_normal((2, 3, 4))
    d = p - t
    np.testing.assert_allclose(nn.mse(p, t), np.mean(d**2))
    np.testing.assert_allclose(nn.l1(p, t, reduction="sum"), np.abs(d).sum())
    ad = np.abs(d)
    hub = np.where(ad <= 0.5, 0.5 * d**2, 0.5 * (ad - 0.25))
    np.testing.assert_allclose(nn.huber(p, t, delta=0.5), hub.mean())
    np.testing.assert_allclose(nn.smooth_l1(p, t, beta=0.5), hub.mean() / 0.5)
    for f in (nn.mse, nn.l1, lambda a, b: nn.huber(a, b, delta=0.5)):
        ds.check_grads(f, (p, t), order=2)


def test_kl_div_matches_formula_with_zero_targets(rng):
    logq = nn.log_softmax(rng.standard_normal((3, 4)))
    pt = np.exp(nn.log_softmax(rng.standard_normal((3, 4))))
    pt[0, 1] = 0.0
    pt[0] /= pt[0].sum()
    terms = np.where(pt > 0, pt * (np.log(np.where(pt > 0, pt, 1)) - logq), 0)
    np.testing.assert_allclose(nn.kl_div(logq, pt), terms.sum() / 3, rtol=1e-13)
    np.testing.assert_allclose(
        nn.kl_div(logq, np.log(np.where(pt > 0, pt, 1e-300)), log_target=True),
        terms.sum() / 3,
        rtol=1e-9,
    )
    ds.check_grads(lambda lq: nn.kl_div(lq, pt), (logq,), order=2)
    assert np.isfinite(ds.grad(lambda t: nn.kl_div(logq, t))(pt)).all()


def test_cosine_embedding(rng):
    a, b = rng.standard_normal((2, 5, 3))
    t = np.array([1, -1, 1, -1, -1])
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    want = np.where(t == 1, 1 - cos, np.maximum(cos - 0.1, 0))
    np.testing.assert_allclose(nn.cosine_embedding(a, b, t, margin=0.1), want.mean(), rtol=1e-12)
    ds.check_grads(lambda a, b: nn.cosine_embedding(a, b, t, margin=-2.0), (a, b), order=2)


def test_losses_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z = rng.standard_normal((4, 5))
    y = rng.integers(0, 5, 4)
    tz = torch.tensor(z)
    np.testing.assert_allclose(
        nn.cross_entropy(z, y, label_smoothing=0.1),
        F.cross_entropy(tz, torch.tensor(y), label_smoothing=0.1).item(),
        rtol=1e-12,
    )
    t = rng.uniform(size=(4, 5))
    np.testing.assert_allclose(
        nn.bce_with_logits(z, t),
        F.binary_cross_entropy_with_logits(tz, torch.tensor(t)).item(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        nn.huber(z, t, delta=0.7), F.huber_loss(tz, torch.tensor(t), delta=0.7).item(), rtol=1e-12
    )
    lq = nn.log_softmax(z)
    pt = np.exp(nn.log_softmax(t))
    np.testing.assert_allclose(
        nn.kl_div(lq, pt),
        F.kl_div(torch.tensor(lq), torch.tensor(pt), reduction="batchmean").item(),
        rtol=1e-12,
    )


def test_loss_errors_are_clear():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        nn.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"integer targets must have shape \(2,\)"):
        nn.cross_entropy(np.zeros((2, 3)), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="reduction"):
        nn.mse(np.zeros(2), np.zeros(2), reduction="avg")
    with pytest.raises(ValueError, match="shape"):
        nn.mse(np.zeros(2), np.zeros(3))


# --- traced integer labels: per-example gradients (vmap) and graph tracing (ds.trace) ---------


def _linear_problem(rng):
    w = rng.standard_normal((4, 3))
    x = rng.standard_normal((6, 4))
    y = np.array([0, 2, 1, 1, 0, 2])
    return w, x, y


@pytest.mark.parametrize("ignore_index", [None, 1])
@pytest.mark.parametrize("loss_name", ["cross_entropy", "nll"])
def test_labels_batched_under_vmap_give_per_example_gradients(rng, loss_name, ignore_index):
    """vmap over (x, y): the labels are batched tracers, gathered as operands."""
    w, x, y = _linear_problem(rng)

    def loss(w, x, y):
        z = dnp.matmul(x, w)
        if loss_name == "nll":
            return nn.nll(nn.log_softmax(z), y, ignore_index=ignore_index)
        return nn.cross_entropy(z, y, ignore_index=ignore_index, label_smoothing=0.1)

    per_example = ds.vmap(ds.grad(loss), in_axes=(None, 0, 0))(w, x, y)
    loop = np.stack([ds.grad(loss)(w, x[k], y[k]) for k in range(len(y))])
    np.testing.assert_allclose(per_example, loop, rtol=1e-13, atol=1e-14)
    values = ds.vmap(loss, in_axes=(None, 0, 0))(w, x, y)
    np.testing.assert_allclose(values, [loss(w, x[k], y[k]) for k in range(len(y))])
    # Labels batched alone (a shared input), and a batch of label vectors.
    got = ds.vmap(lambda y: loss(w, x, y))(np.stack([y, y[::-1]]))
    np.testing.assert_allclose(got, [loss(w, x, y), loss(w, x, y[::-1])], rtol=1e-14)


def test_classification_step_traced_with_labels_as_graph_input(rng):
    """ds.trace of a training step: the labels are a graph input (not baked in), so the
    graph replays with other labels and no specialization warning is raised."""
    import warnings

    w, x, y = _linear_problem(rng)

    def step(w, x, y):
        return ds.value_and_grad(lambda w: nn.cross_entropy(dnp.matmul(x, w), y))(w)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ds.graph.GraphSpecializationWarning)
        graph = ds.trace(step)(w, x, y)
    for labels in (y, np.array([2, 2, 0, 1, 1, 0]), np.zeros(6, dtype=int)):
        value, grad = graph(w, x, labels)
        want_value, want_grad = step(w, x, labels)
        np.testing.assert_allclose(value, want_value, rtol=1e-14)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-13, atol=1e-15)


def test_traced_labels_out_of_range_raise(rng):
    w, x, y = _linear_problem(rng)
    with pytest.raises(IndexError):
        ds.vmap(lambda x, y: nn.cross_entropy(dnp.matmul(x, w), y))(x, y + 3)
