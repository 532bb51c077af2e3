"""The demo as a newcomer reads it: terminal output that explains itself (contracts, the loss,
the mismatch columns) and plots that do (the penalty ramp marked, smoothed gradient norms,
legends beside the data), made without touching matplotlib's backend."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from diffsys.cli.demo import DemoConfig, run_demo
from diffsys.cli.report import (
    PLOT_FUNCTIONS,
    grad_norms_figure,
    loss_figure,
    moving_average,
    weight_ramp,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "diffsys"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    stream = io.StringIO()
    result = run_demo(
        DemoConfig(
            quick=True, epochs=3, out=str(out), progress="plain", plots=False, save_pipeline=False
        ),
        stream=stream,
    )
    return result, stream.getvalue()


def test_the_contract_column_reads_as_shapes_not_reprs(small_run):
    _, text = small_run
    assert "[None]" not in text and "-> None" not in text and "Spec((" not in text
    assert "(B, 1, 8, 8) float64 -> any" in text
    assert "any -> (B, 10)" in text
    assert "contract: input spec(s) -> output spec" in text  # and what it means


def test_the_loss_is_described_once_with_its_ramp(small_run):
    result, text = small_run
    assert text.count("losses:") == 1
    assert text.count("binarize(threshold) =") == 1
    steps = 3 * (len(result.learned.steps["loss"]) // 3)
    start, full, weight = weight_ramp(result.learned.pipeline, steps)
    per_epoch = steps / 3
    assert (
        f"ramps 0 -> {weight:g} from epoch {start / per_epoch:.1f} to {full / per_epoch:.1f}"
        in (text)
    )


def test_the_mismatch_columns_are_explained(small_run):
    _, text = small_run
    table_at = text.index("max |r-h|")
    legend = text[table_at:]
    assert "r, h: the stage's relaxed (training) and hard (inference) outputs" in legend
    assert "rel L2 = ||r - h|| / ||h||" in legend
    assert "(only it hard): the pipeline's loss and metrics with only that stage hard" in legend


def test_weight_ramp_reads_the_schedule():
    from diffsys import pipeline as pl

    pipe = pl.Pipeline(
        [pl.Stage("s", lambda x: x)],
        batch_keys=("x",),
        losses=[
            pl.Loss(
                "binarize",
                lambda v: v.sum(),
                "s",
                weight=pl.scheduled(
                    "linear", init_value=0.0, end_value=3.0, transition_begin=10, transition_steps=5
                ),
            )
        ],
    )
    assert weight_ramp(pipe, 40) == (11, 15, 3.0)
    constant = pl.Pipeline(
        [pl.Stage("s", lambda x: x)], losses=[pl.Loss("binarize", lambda v: v.sum(), "s")]
    )
    assert weight_ramp(constant, 40) is None


def test_loss_plot_marks_where_the_binarization_penalty_starts(small_run, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    result, _ = small_run
    learned, frozen = result.learned, result.frozen
    fig = loss_figure(learned, frozen)  # no path: nothing written
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())
    ax = fig.axes[0]
    n = len(learned.steps["loss"])
    per_epoch = n / (len(learned.epochs) - 1)
    start, full, _ = weight_ramp(learned.pipeline, n)
    spans = [p for p in ax.patches if "ramps" in (p.get_label() or "")]
    assert len(spans) == 1
    span = spans[0]
    if hasattr(span, "get_width"):  # a Rectangle (matplotlib >= 3.9)
        x0, x1 = span.get_x(), span.get_x() + span.get_width()
    else:  # a Polygon
        xs = np.asarray(span.get_xy())[:, 0]
        x0, x1 = float(xs.min()), float(xs.max())
    assert x0 == pytest.approx((start + 1) / per_epoch) and x1 == pytest.approx(
        (full + 1) / per_epoch
    )
    labels = [line.get_label() for line in ax.lines]
    assert "learned: train cross-entropy only" in labels  # the term without the penalty
    loss_figure(learned, frozen, path=tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grad_norm_plot_is_smoothed_with_the_legend_beside_the_data(small_run):
    pytest.importorskip("matplotlib")
    result, _ = small_run
    learned = result.learned
    fig = grad_norms_figure(learned)
    ax = fig.axes[0]
    window = round(len(learned.steps["loss"]) / (len(learned.epochs) - 1))
    labelled = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(labelled) == {"blur", "threshold", "encoder", "classifier"}
    for stage, line in labelled.items():
        raw = np.asarray(learned.steps[f"grad_norm.{stage}"], dtype=float)
        smooth = np.asarray(line.get_ydata(), dtype=float)
        np.testing.assert_allclose(smooth, moving_average(raw, window))
        assert np.std(np.diff(np.log(smooth))) < np.std(np.diff(np.log(raw)))
    fig.draw_without_rendering()
    legend = ax.get_legend().get_window_extent()
    axes_box = ax.get_window_extent()
    assert legend.x0 >= axes_box.x1  # beside the axes, never over the curves


def test_moving_average():
    np.testing.assert_allclose(moving_average([1.0, 3.0, 5.0, 7.0], 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(moving_average([1.0, np.nan, 5.0], 2), [1.0, 1.0, 5.0])


def test_plots_leave_matplotlib_alone(small_run, tmp_path):
    """No matplotlib.use() in the library (it switches a notebook user's backend), and no
    figure left open in pyplot."""
    matplotlib = pytest.importorskip("matplotlib")
    for path in SRC.rglob("*.py"):
        assert "matplotlib.use(" not in path.read_text(encoding="utf-8"), path
    import matplotlib.pyplot as plt

    result, _ = small_run
    before = matplotlib.get_backend()
    open_before = plt.get_fignums()
    with matplotlib.rc_context():
        matplotlib.use("svg")
        try:
            for name, plot in PLOT_FUNCTIONS.items():
                plot(result.learned, result.frozen, path=tmp_path / name)
            assert matplotlib.get_backend() == "svg"
        finally:
            matplotlib.use(before)
    assert plt.get_fignums() == open_before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PLOT_FUNCTIONS)
