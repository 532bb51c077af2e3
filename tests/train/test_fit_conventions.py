"""train.fit's conventions (issue 13, section 5): a default seed, dict datasets, a loss
without an ``rng`` argument, and a progress line that names the epoch once."""

from __future__ import annotations

import numpy as np

import diffsys as ds
from diffsys import nn, optim, train


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 3))
    return x, x @ np.array([1.0, -2.0, 0.5])


def test_fit_has_a_default_seed_and_takes_a_loss_without_rng():
    x, y = _data()
    model = nn.Linear(3, 1, key=0)

    def loss(m, batch):
        return nn.mse(m(batch[0])[:, 0], batch[1])

    res = train.fit(loss, model, optim.sgd(0.1), (x, y), batch_size=16, epochs=3, progress=None)
    with_rng = train.fit(
        lambda m, b, rng: loss(m, b),
        model,
        optim.sgd(0.1),
        (x, y),
        batch_size=16,
        epochs=3,
        seed=0,
        progress=None,
    )
    for a, b in zip(ds.tree_leaves(res.params), ds.tree_leaves(with_rng.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_fit_takes_a_dict_dataset_and_gives_dict_batches():
    x, y = _data()
    model = nn.Linear(3, 1, key=0)
    seen = []

    def loss(m, batch, rng):
        seen.append(sorted(batch))
        return nn.mse(m(batch["x"])[:, 0], batch["y"])

    res = train.fit(
        loss,
        model,
        optim.sgd(0.1),
        {"x": x, "y": y},
        batch_size=16,
        epochs=2,
        seed=3,
        progress=None,
    )
    ref = train.fit(
        lambda m, b, rng: nn.mse(m(b[0])[:, 0], b[1]),
        model,
        optim.sgd(0.1),
        (x, y),
        batch_size=16,
        epochs=2,
        seed=3,
        progress=None,
    )
    assert seen[0] == ["x", "y"] and res.step == 6
    for a, b in zip(ds.tree_leaves(res.params), ds.tree_leaves(ref.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_progress_line_names_the_epoch_once(capsys):
    x, y = _data()
    train.fit(
        lambda m, b: nn.mse(m(b[0])[:, 0], b[1]),
        nn.Linear(3, 1, key=0),
        optim.sgd(0.1),
        (x, y),
        batch_size=16,
        epochs=2,
        progress="plain",
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for i, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {i}/2  loss ") and line.count("epoch") == 1, line
