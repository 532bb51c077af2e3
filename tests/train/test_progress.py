"""One progress module (diffsys.train.progress) for train.fit and the demo: the same epoch
line in plain and rich mode, each number once."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest

from diffsys import nn, optim, train
from diffsys.train.progress import PlainProgress, Progress, make_progress


def test_one_progress_module():
    assert importlib.util.find_spec("diffsys.cli.progress") is None
    import diffsys.cli.demo as demo

    assert demo.make_progress is make_progress


def _fit(progress, stream_capture):
    x = np.random.default_rng(0).normal(size=(40, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    loss = lambda m, batch, rng: nn.mse(m(batch[0])[:, 0], batch[1])  # noqa: E731
    train.fit(
        loss,
        nn.Linear(3, 1, key=0),
        optim.sgd(0.1),
        (x, y),
        batch_size=10,
        epochs=2,
        seed=0,
        progress=progress,
    )
    return stream_capture.readouterr().out


def test_fit_plain_line_says_each_thing_once(capsys):
    out = _fit("plain", capsys)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss ")
    assert all(line.count("epoch") == 1 for line in lines), lines  # not "epoch 1/2  epoch 1"


def test_rich_and_plain_print_the_same_epoch_lines():
    pytest.importorskip("rich")
    texts = {}
    for mode in ("plain", "rich"):
        out = io.StringIO()
        bar = make_progress(
            mode,
            2,
            3,
            stream=out,
            label="run",
            line=lambda e, logs, s: f"run epoch {e + 1}: loss {logs['loss']:.3f}",
        )
        for epoch in range(2):
            bar.start_epoch(epoch)
            for _ in range(3):
                bar.advance({"loss": 1.0})
            bar.end_epoch(epoch, {"loss": 0.5 / (epoch + 1)})
        bar.close()
        texts[mode] = [line for line in out.getvalue().splitlines() if line.strip()]
    assert texts["plain"] == ["run epoch 1: loss 0.500", "run epoch 2: loss 0.250"]
    assert texts["rich"] == texts["plain"]  # the bar is transient: only the lines stay


def test_make_progress_modes():
    assert type(make_progress(None, 1, 1)) is Progress
    assert type(make_progress("none", 1, 1)) is Progress
    assert isinstance(make_progress("plain", 1, 1), PlainProgress)
    with pytest.raises(ValueError, match="progress must be one of"):
        make_progress("fancy", 1, 1)
