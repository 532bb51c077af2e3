"""Loss terms with (scheduled) weights and their per-term breakdown; train/infer modes; the
relaxation mismatch report against direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import Scale, SoftThreshold, classifier_batch, make_classifier

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim
from diffsys import pipeline as pl


def _two_loss_pipeline(aux_weight):
    return pl.Pipeline(
        [
            pl.Stage("a", Scale(2.0)),
            pl.Stage("b", Scale(3.0)),
        ],
        losses=[
            pl.Loss("main", lambda y, t: dnp.mean((y - t) ** 2), ("b", "y")),
            pl.Loss("aux", lambda h: dnp.mean(h**2), "a", weight=aux_weight),
        ],
    )


def test_total_is_the_weighted_sum_and_terms_are_reported_unweighted(rng):
    x, t = rng.normal(size=5), rng.normal(size=5)
    pipe = _two_loss_pipeline(0.25)
    loss, aux = pipe.loss(None, {"x": x, "y": t})
    main = np.mean((6 * x - t) ** 2)
    side = np.mean((2 * x) ** 2)
    assert float(loss) == pytest.approx(main + 0.25 * side)
    assert float(aux["terms"]["main"]) == pytest.approx(main)
    assert float(aux["terms"]["aux"]) == pytest.approx(side)
    assert aux["weights"] == {"main": 1.0, "aux": 0.25}
    g = ds.grad(lambda p: pipe.loss(p, {"x": x, "y": t})[0])(pipe.params)
    # d/da: main through b (3x), aux directly
    ga = np.mean(2 * (6 * x - t) * 3 * x) + 0.25 * np.mean(2 * (2 * x) * x)
    assert float(g["a"].weight) == pytest.approx(ga)


def test_scheduled_weight_anneals_an_auxiliary_loss_away(rng):
    x, t = rng.normal(size=5), rng.normal(size=5)
    sched = pl.scheduled("linear", init_value=1.0, end_value=0.0, transition_steps=4)
    pipe = _two_loss_pipeline(sched)
    trainer = pl.Trainer(pipe, optim.sgd(0.0))  # lr 0: the terms stay put, only weights move
    reports = [trainer.step({"x": x, "y": t}) for _ in range(6)]
    assert [r.weights["aux"] for r in reports] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    for r in reports:
        assert r.loss == pytest.approx(r.terms["main"] + r.weights["aux"] * r.terms["aux"])
    # any optim schedule (a plain callable) works as a weight too
    pipe2 = _two_loss_pipeline(optim.exponential_decay(1.0, 0.5))
    _, aux = pipe2.loss(None, {"x": x, "y": t}, step=3)
    assert aux["weights"]["aux"] == pytest.approx(0.125)


def test_gradient_of_a_zero_weight_term_is_excluded(rng):
    x, t = rng.normal(size=5), rng.normal(size=5)
    pipe = _two_loss_pipeline(0.0)
    g = ds.grad(lambda p: pipe.loss(p, {"x": x, "y": t})[0])(pipe.params)
    ga = np.mean(2 * (6 * x - t) * 3 * x)
    assert float(g["a"].weight) == pytest.approx(ga)


def test_loss_term_errors():
    with pytest.raises(TypeError, match="weight must be a number or a schedule"):
        pl.Loss("l", nn.mse, ("a", "y"), weight="big")
    with pytest.raises(ValueError, match="weight must be finite"):
        pl.Loss("l", nn.mse, ("a", "y"), weight=float("nan"))
    with pytest.raises(ValueError, match="unknown schedule 'nope'"):
        pl.scheduled("nope")
    pipe = pl.Pipeline([pl.Stage("a", Scale())], losses=[pl.Loss("vec", lambda v: v * 2, "a")])
    with pytest.raises(
        ValueError,
        match=r"loss term 'vec'.*returned shape \(3,\); a loss term "
        "must be a scalar",
    ):
        pipe.loss(None, {"x": np.ones(3)})
    with pytest.raises(ValueError, match="already named 'vec'"):
        pipe.add_loss("vec", nn.mse, ("a", "y"))


def test_train_and_infer_switch_relaxed_stages_and_nn_modes(rng):
    pipe = pl.Pipeline(
        [
            pl.Stage("thr", SoftThreshold(0.3, 2.0)),
            pl.Stage("drop", nn.Dropout(0.5)),
        ]
    )
    x = rng.normal(size=200)
    thr = pipe.params["thr"]
    pipe.infer()
    np.testing.assert_array_equal(pipe({"x": x}), thr.hard(x))  # hard op, dropout off
    pipe.train()
    y = pipe({"x": x}, key=0)
    relaxed = np.asarray(thr.relaxed(x))
    kept = y != 0
    assert 0.3 < kept.mean() < 0.7  # dropout is on in training
    np.testing.assert_allclose(y[kept], 2 * relaxed[kept])
    assert pipe.mode == "train"
    with pytest.raises(ValueError, match="mode must be one of"):
        pipe({"x": x}, mode="test")


def test_function_stage_with_surrogate_and_hard_forms(rng):
    pipe = pl.Pipeline(
        [pl.Stage("round", lambda x: x, hard=dnp.round)], losses=[pl.Loss("l", dnp.sum, "round")]
    )
    x = rng.normal(size=4) * 3
    assert pipe.stages["round"].kind == "relaxed"
    np.testing.assert_array_equal(pipe({"x": x}, mode="infer"), np.round(x))
    np.testing.assert_array_equal(pipe({"x": x}, mode="train"), x)


def test_straight_through_stage_hard_value_surrogate_gradient(rng):
    pipe = pl.Pipeline(
        [pl.Stage("thr", SoftThreshold(0.1, 3.0), kind="straight_through")],
        losses=[pl.Loss("l", dnp.sum, "thr")],
    )
    x = rng.normal(size=6)
    thr = pipe.params["thr"]
    np.testing.assert_array_equal(pipe({"x": x}, mode="train"), thr.hard(x))
    g = ds.grad(lambda p: pipe.loss(p, {"x": x})[0])(pipe.params)
    g_sur = ds.grad(lambda m: dnp.sum(m.relaxed(x)))(thr)
    assert float(g["thr"].threshold) == pytest.approx(float(g_sur.threshold))
    report = pipe.mismatch({"x": x})
    assert report["thr"].max_abs == 0.0  # same values: the mismatch is in the gradient


def test_mismatch_matches_direct_computation(rng):
    pipe = make_classifier()
    batch = classifier_batch(rng, 20)
    report = pipe.mismatch(batch)
    p = pipe.params
    x, y = batch["x"], batch["y"]
    r = np.asarray(p["thr"].relaxed(x))
    h = np.asarray(p["thr"].hard(x))
    row = report["thr"]
    assert row.kind == "relaxed"
    assert row.max_abs == pytest.approx(np.max(np.abs(r - h)), rel=1e-12)
    assert row.mean_abs == pytest.approx(np.mean(np.abs(r - h)), rel=1e-12)
    assert row.rel_l2 == pytest.approx(np.linalg.norm(r - h) / np.linalg.norm(h), rel=1e-12)

    def head(z):
        return p["head"](np.tanh(p["enc"](z)))

    loss_r = float(nn.cross_entropy(head(r), y))
    loss_h = float(nn.cross_entropy(head(h), y))
    assert report.loss_relaxed == pytest.approx(loss_r, rel=1e-12)
    assert report.loss_hard == pytest.approx(loss_h, rel=1e-12)
    assert row.loss_only_this_hard == pytest.approx(loss_h, rel=1e-12)  # the only relaxed stage
    acc = lambda z: float(np.mean(np.argmax(head(z), -1) == y))
    assert report.metrics_relaxed["accuracy"] == acc(r)
    assert report.metrics_hard["accuracy"] == acc(h)
    assert loss_r != loss_h
    text = str(report)
    assert "thr" in text and "loss: relaxed" in text and "accuracy" in text


def test_mismatch_with_two_relaxed_stages_isolates_each(rng):
    pipe = pl.Pipeline(
        [
            pl.Stage("t1", SoftThreshold(0.0, 2.0)),
            pl.Stage("t2", SoftThreshold(0.5, 2.0)),
        ],
        losses=[pl.Loss("l", lambda v: dnp.sum(v**2), "t2")],
    )
    x = rng.normal(size=30)
    p1, p2 = pipe.params["t1"], pipe.params["t2"]
    report = pipe.mismatch({"x": x})
    only1 = float(np.sum(np.asarray(p2.relaxed(p1.hard(x))) ** 2))
    only2 = float(np.sum(np.asarray(p2.hard(p1.relaxed(x))) ** 2))
    assert report["t1"].loss_only_this_hard == pytest.approx(only1, rel=1e-12)
    assert report["t2"].loss_only_this_hard == pytest.approx(only2, rel=1e-12)
    # t2's distance is measured on the input it sees with everything relaxed
    z = np.asarray(p1.relaxed(x))
    d = np.asarray(p2.relaxed(z)) - p2.hard(z)
    assert report["t2"].max_abs == pytest.approx(np.max(np.abs(d)), rel=1e-12)
    assert report.to_dict()["rows"][0]["stage"] == "t1"


class _Jitter(nn.Module):
    """Random relaxed stage: tanh(x + s * noise) in training, clip(x + s * noise) when hard."""

    scale: np.ndarray

    def __init__(self) -> None:
        self.scale = np.array(0.5)

    def __call__(self, x, *, key=None):
        return self.relaxed(x, key=key)

    def relaxed(self, x, *, key=None):
        return dnp.tanh(x + self.scale * np.random.default_rng(key).normal(size=x.shape))

    def hard(self, x, *, key=None):
        noise = np.random.default_rng(key).normal(size=x.shape)
        return dnp.clip(x + self.scale * noise, -1.0, 1.0)


def test_random_relaxed_stage_gets_the_same_draws_in_both_forms(rng):
    pipe = pl.Pipeline([pl.Stage("jit", _Jitter())], losses=[pl.Loss("l", dnp.sum, "jit")])
    x = rng.normal(size=50)
    r = np.asarray(pipe.apply(None, {"x": x}, mode="train", key=0)[0]["jit"])
    h = np.clip(np.arctanh(r), -1.0, 1.0)  # the hard form of the same noisy input
    report = pipe.mismatch({"x": x}, key=0)
    assert report["jit"].max_abs == pytest.approx(np.max(np.abs(r - h)), rel=1e-9)
    # straight-through: the hard value of the same draws, the surrogate's derivative
    st = pl.Pipeline([pl.Stage("jit", _Jitter(), kind="straight_through")])
    v = np.asarray(st.apply(None, {"x": x}, mode="train", key=0)[0]["jit"])
    np.testing.assert_allclose(v, h, rtol=1e-9, atol=1e-12)
    assert pipe.check_grads({"x": x}).ok
