"""Per-stage optimizers and learning rates (pl.per_stage, pl.scale_stages,
pl.Trainer(stage_lr_scale=...)) and the Trainer's progress display."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys import nn, optim
from diffsys import pipeline as pl


def _pipe():
    return pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(3, 4, key=0), inputs=("x",)),
            pl.Stage("head", nn.Linear(4, 1, key=1), inputs=("enc",)),
        ],
        losses=[pl.Loss("mse", lambda p, y: nn.mse(p[:, 0], y), ("head", "y"))],
        metrics=[pl.Metric("mae", lambda p, y: nn.l1(p[:, 0], y), ("head", "y"))],
    )


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 3))
    return {"x": x, "y": x @ np.array([1.0, -1.0, 0.5])}


def _delta(before, after):
    return [a - b for a, b in zip(ds.tree_leaves(before), ds.tree_leaves(after), strict=True)]


def test_stage_lr_scale_multiplies_one_stages_adam_steps_exactly():
    p0 = _pipe().params
    # one step from the same point: 'enc' moves 3x as far, 'head' the same
    one_plain = pl.Trainer(_pipe(), optim.adam(0.01), telemetry=False)
    one_scaled = pl.Trainer(_pipe(), optim.adam(0.01), telemetry=False, stage_lr_scale={"enc": 3.0})
    one_plain.step(_batch())
    one_scaled.step(_batch())
    for a, b in zip(
        _delta(p0["enc"], one_plain.params["enc"]),
        _delta(p0["enc"], one_scaled.params["enc"]),
        strict=True,
    ):
        np.testing.assert_allclose(b, 3.0 * a, rtol=1e-12)
    for a, b in zip(
        _delta(p0["head"], one_plain.params["head"]),
        _delta(p0["head"], one_scaled.params["head"]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_stage_lr_scale_names_an_unknown_stage():
    with pytest.raises(ValueError, match=r"stage_lr_scale names \['blur'\].*\['enc', 'head'\]"):
        pl.Trainer(_pipe(), optim.sgd(0.1), stage_lr_scale={"blur": 2.0})


def test_per_stage_gives_a_stage_its_own_optimizer_and_frozen_stages_are_fine():
    pipe = _pipe()
    opt = pl.per_stage({"head": optim.set_to_zero()}, default=optim.sgd(0.1))
    trainer = pl.Trainer(pipe, opt, telemetry=False)
    p0 = trainer.params
    trainer.step(_batch())
    for leaf0, leaf1 in zip(
        ds.tree_leaves(p0["head"]), ds.tree_leaves(trainer.params["head"]), strict=True
    ):
        np.testing.assert_array_equal(leaf0, leaf1)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(
            ds.tree_leaves(p0["enc"]), ds.tree_leaves(trainer.params["enc"]), strict=True
        )
    )
    pipe.freeze("head")
    trainer.reset_optimizer()
    trainer.step(_batch(1))  # the 'head' label has no leaves now


def test_scale_stages_is_the_chain_the_demo_used():
    g = {"blur": {"s": np.array([2.0])}, "enc": {"w": np.ones(2)}}
    opt = optim.chain(optim.sgd(0.5), pl.scale_stages({"blur": 5.0}))
    u, _ = opt.update(g, opt.init(g))
    np.testing.assert_array_equal(u["blur"]["s"], np.array([-5.0]))
    np.testing.assert_array_equal(u["enc"]["w"], -0.5 * np.ones(2))
    with pytest.raises(TypeError, match="stage 'blur'"):
        pl.scale_stages({"blur": "fast"})


def test_trainer_fit_shows_progress_like_train_fit(capsys):
    trainer = pl.Trainer(_pipe(), optim.sgd(0.05), telemetry=False)
    batches = [_batch(s) for s in range(4)]
    reports = trainer.fit(batches, epochs=2, progress="plain")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(reports) == 8 and len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss ") and "mae " in lines[0]
    mean = np.mean([r.loss for r in reports[:4]])
    assert f"loss {mean:.4g}" in lines[0]
    trainer.fit(batches, epochs=1, progress=None)
    assert capsys.readouterr().out == ""


def test_a_trainer_accumulates_gradients_with_multisteps():
    trainer = pl.Trainer(_pipe(), optim.MultiSteps(optim.sgd(0.1), 2), telemetry=False)
    p0 = trainer.params
    trainer.step(_batch(0))
    for a, b in zip(ds.tree_leaves(p0), ds.tree_leaves(trainer.params), strict=True):
        np.testing.assert_array_equal(a, b)  # the first call only accumulates
    trainer.step(_batch(1))
    ref = pl.Trainer(_pipe(), optim.sgd(0.1), telemetry=False)
    g = [
        ds.grad(lambda p, b=b: ref.pipeline.loss(p, b, mode="train")[0])(p0)
        for b in (_batch(0), _batch(1))
    ]
    want = ds.tree_map(lambda p, g0, g1: p - 0.1 * (g0 + (g1 - g0) / 2), p0, g[0], g[1])
    for a, b in zip(ds.tree_leaves(want), ds.tree_leaves(trainer.params), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12)
