"""systems.nas: the supernet (relaxed vs discretised), bilevel search, stages."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys import nn, optim
from diffsys import pipeline as pl
from diffsys.systems import nas

SMALL = ("zero", "skip", "avg_pool3x3", "conv3x3")


def _net(**kw):
    kw = {"channels": 2, "nodes": 2, "candidates": SMALL, "key": 0, **kw}
    return nas.Supernet(**kw)


def test_supernet_gradients_to_alpha_weights_and_input(rng):
    net = _net()
    net = net.replace(alpha=rng.normal(size=net.alpha.shape))
    x = rng.random((2, 1, 8, 8))
    ds.check_grads(lambda a: net.replace(alpha=a)(x), (net.alpha,), order=2, modes=("rev",))
    ds.check_grads(lambda a, t: net.replace(alpha=a)(x * t), (net.alpha, 1.3), order=1)
    w, rest = nn.partition(net, frozen="alpha")
    ds.check_grads(lambda w: nn.combine(w, rest)(x), (w,), order=1, modes=("rev",))


def test_hard_form_is_the_discrete_network_and_the_relaxed_one_converges_to_it(rng):
    net = _net(nodes=3)
    # rows are permutations of 0, 0.5, 1, 1.5: each edge's best candidate wins by 0.5
    alpha = np.stack([rng.permutation(4) * 0.5 for _ in range(6)])
    net = net.replace(alpha=alpha)
    x = rng.random((4, 1, 8, 8))
    discrete = net.discretise()
    assert discrete.genotype == nas.discretise(alpha, SMALL, nodes=3)
    np.testing.assert_allclose(net.hard(x), discrete(x), rtol=1e-12, atol=1e-12)
    # a network built from the genotype with the same weights computes the same
    gaps = []
    for t in (1.0, 0.3, 0.1, 0.03, 0.01):
        gaps.append(float(np.max(np.abs(net.replace(temperature=t)(x) - net.hard(x)))))
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 1e-6 < gaps[0]


def test_excluding_zero_in_discretisation(rng):
    net = _net(nodes=1)
    net = net.replace(alpha=np.array([[5.0, 1.0, 0.0, 2.0]]))
    assert net.genotype().ops == ("zero",)
    assert net.genotype(exclude=("zero",)).ops == ("conv3x3",)
    assert net.discretise(exclude=("zero",)).ops == ("conv3x3",)


def test_search_finds_the_edge_that_carries_the_signal():
    # one edge, zero or skip: only skip lets the image reach the head, so the validation
    # loss's hypergradient must move alpha towards skip
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 256)
    x = np.zeros((256, 1, 8, 8))
    x[np.arange(256), 0, y, y] = 1.0
    net = nas.Supernet(3, nodes=1, candidates=("zero", "skip"), classes=4, key=0)
    for method in ("first_order", "finite_difference"):
        res = nas.search(net, (x[:128], y[:128]), (x[128:], y[128:]), steps=40, warmup=20,
                         batch=32, lr_weights=0.02, lr_arch=0.1, method=method)
        assert res.genotype.ops == ("skip",), method
        w = res.history["weights"][-1][0]
        assert w[1] > 0.7, w
        assert res.history["val_loss"][-1] < res.history["val_loss"][0]


def test_finite_difference_hypergradient_matches_exact_on_a_supernet(rng):
    net = _net(nodes=1, candidates=("skip", "avg_pool3x3", "conv3x3"))
    net = net.replace(alpha=rng.normal(size=net.alpha.shape) * 0.1)
    w, a = nn.partition(net, frozen="alpha")
    a, _ = nn.partition(a)
    x, y = rng.random((6, 1, 8, 8)), rng.integers(0, 10, 6)
    xv, yv = rng.random((6, 1, 8, 8)), rng.integers(0, 10, 6)
    train = lambda w, a: nn.cross_entropy(nn.combine(w, a)(x), y)  # noqa: E731
    val = lambda w, a: nn.cross_entropy(nn.combine(w, a)(xv), yv)  # noqa: E731
    exact = optim.unrolled_hypergradient(train, val, w, a, lr=0.5, method="exact").grad.alpha
    fd = optim.unrolled_hypergradient(train, val, w, a, lr=0.5, method="finite_difference")
    first = optim.unrolled_hypergradient(train, val, w, a, lr=0.5, method="first_order")
    # the central difference is second-order accurate; the ReLUs' kinks limit it a little
    err_fd = np.linalg.norm(fd.grad.alpha - exact)
    err_first = np.linalg.norm(first.grad.alpha - exact)
    assert err_fd < 1e-2 * np.linalg.norm(exact), (err_fd, exact)
    assert err_first > 10 * err_fd, (err_first, err_fd)


def test_train_and_accuracy_of_a_discrete_network():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    x = np.zeros((200, 1, 8, 8))
    x[np.arange(200), 0, y, 2 * y] = 1.0
    net = nas.DiscreteNet(nas.Genotype(("skip",), 1), channels=3, classes=4, key=0)
    before = nas.accuracy(net, x, y)
    net, losses = nas.train(net, x, y, steps=60, batch=32, lr=0.03)
    assert losses[-1] < 0.5 * losses[0]
    assert nas.accuracy(net, x, y) > max(0.9, before)


def test_supernet_stage_reports_the_discretisation_mismatch(rng):
    net = _net(nodes=2).replace(alpha=rng.normal(size=(3, 4)))
    pipe = pl.Pipeline(
        [nas.supernet_stage("cell", net)],
        losses=[pl.Loss("ce", nn.cross_entropy, inputs=("cell", "y"))],
    )
    batch = {"x": rng.random((5, 1, 8, 8)), "y": rng.integers(0, 10, 5)}
    report = pipe.mismatch(batch)
    row = report["cell"]
    assert row.kind == "relaxed"
    expected = np.max(np.abs(net.relaxed(batch["x"]) - net.hard(batch["x"])))
    assert row.max_abs == pytest.approx(expected)
    assert report.loss_hard == pytest.approx(float(nn.cross_entropy(net.hard(batch["x"]),
                                                                     batch["y"])))
    assert nas.network_stage("net", net.discretise()).kind == "exact"
    with pytest.raises(TypeError, match="supernet_stage 'cell': expected a Supernet"):
        nas.supernet_stage("cell", net.discretise())


def test_bad_input_names_the_network():
    net = _net(nodes=1)
    with pytest.raises(ValueError, match=r"Supernet\(channels=2, nodes=1, K=4\): expected a batch"):
        net(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="Supernet: candidates must be distinct"):
        nas.Supernet(2, candidates=("skip", "skip"), key=0)
