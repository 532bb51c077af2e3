"""The training helper: deterministic epochs, metrics, early stopping, progress output."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys import nn, optim, train


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    return x, y


def _loss(m, batch, rng):
    x, y = batch
    pred = m(x)[:, 0]
    return nn.mse(pred, y), {"mae": nn.l1(pred, y)}


def test_fit_trains_reports_metrics_and_is_deterministic(capsys):
    x, y = _data()
    model = nn.Linear(3, 1, key=0)
    kw = dict(batch_size=16, epochs=15, seed=1, has_aux=True, progress="plain")
    res = train.fit(
        _loss,
        model,
        optim.sgd(0.05),
        (x, y),
        **kw,
        eval_fn=lambda m: {"val_loss": nn.mse(m(x)[:, 0], y)},
    )
    assert len(res.history) == 15 and res.step == 15 * 5
    assert res.history[-1]["loss"] < 1e-2 < res.history[0]["loss"]
    assert {"loss", "mae", "val_loss", "epoch"} <= set(res.history[0])
    out = capsys.readouterr().out
    assert "epoch 1/15" in out and "val_loss" in out
    again = train.fit(_loss, model, optim.sgd(0.05), (x, y), **{**kw, "progress": None})
    for a, b in zip(ds.tree_leaves(res.params), ds.tree_leaves(again.params), strict=True):
        assert np.array_equal(a, b)


def test_fit_resumes_at_an_epoch_exactly():
    x, y = _data()
    model = nn.Linear(3, 1, key=0)
    opt = optim.adam(0.05)
    kw = dict(batch_size=16, seed=2, has_aux=True, progress=None)
    full = train.fit(_loss, model, opt, (x, y), epochs=6, **kw)
    half = train.fit(_loss, model, opt, (x, y), epochs=3, **kw)
    rest = train.fit(
        _loss, half.params, opt, (x, y), epochs=6, start_epoch=3, opt_state=half.opt_state, **kw
    )
    for a, b in zip(ds.tree_leaves(full.params), ds.tree_leaves(rest.params), strict=True):
        assert np.array_equal(a, b)


def test_early_stopping_restores_the_best_parameters():
    x, y = _data()
    model = nn.Linear(3, 1, key=0)
    seen = []

    def eval_fn(m):  # a validation loss that gets worse after epoch 2
        e = len(seen)
        seen.append(m)
        return {"val_loss": [3.0, 2.0, 1.0, 1.5, 1.6, 1.7, 1.8][e]}

    stop = train.EarlyStopping(patience=2)
    res = train.fit(
        _loss,
        model,
        optim.sgd(0.01),
        (x, y),
        batch_size=16,
        epochs=7,
        seed=0,
        has_aux=True,
        eval_fn=eval_fn,
        callbacks=[stop],
        progress=None,
    )
    assert res.stopped_early and len(res.history) == 5
    assert stop.best_epoch == 2 and res.params is seen[2]
    with pytest.raises(KeyError, match="not among"):
        train.EarlyStopping(monitor="acc")(0, {"loss": 1.0}, None)


def test_iterate_batches_shuffles_from_the_seed_and_checks_lengths():
    x = np.arange(10)
    a = [b[0].tolist() for b in train.iterate_batches((x,), 4, seed=0, epoch=1)]
    b = [b[0].tolist() for b in train.iterate_batches((x,), 4, seed=0, epoch=1)]
    c = [b[0].tolist() for b in train.iterate_batches((x,), 4, seed=0, epoch=2)]
    assert a == b and a != c and sorted(sum(a, [])) == list(range(10))
    assert [len(b[0]) for b in train.iterate_batches((x,), 4, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="array 1 has 3 samples"):
        list(train.iterate_batches((x, np.arange(3)), 2))


def test_rich_progress_renders(capsys):
    pytest.importorskip("rich")
    x, y = _data()
    train.fit(
        _loss,
        nn.Linear(3, 1, key=0),
        optim.sgd(0.05),
        (x, y),
        batch_size=40,
        epochs=2,
        seed=0,
        has_aux=True,
        progress="rich",
    )
    assert "epoch" in capsys.readouterr().out
