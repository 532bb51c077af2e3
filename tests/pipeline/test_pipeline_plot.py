"""Telemetry.plot returns its Figure, saves only when given a path, and leaves matplotlib's
backend and pyplot's figure list alone."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import classifier_batch, make_classifier

from diffsys import optim
from diffsys import pipeline as pl


def test_telemetry_plot_returns_the_figure_and_saves_only_given_a_path(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    pipe = make_classifier()
    trainer = pl.Trainer(pipe, optim.adam(0.01))
    rng = np.random.default_rng(0)
    for _ in range(3):
        trainer.step(classifier_batch(rng))
    before, open_before = matplotlib.get_backend(), plt.get_fignums()
    with matplotlib.rc_context():
        matplotlib.use("svg")
        try:
            fig = pipe.telemetry.plot()
            assert isinstance(fig, Figure) and len(fig.axes) == 4
            assert not list(tmp_path.iterdir())
            again = pipe.telemetry.plot(tmp_path / "h.png", series=("loss",))
            assert isinstance(again, Figure) and len(again.axes) == 1
            assert matplotlib.get_backend() == "svg"  # not switched to Agg
        finally:
            matplotlib.use(before)
    assert plt.get_fignums() == open_before
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
