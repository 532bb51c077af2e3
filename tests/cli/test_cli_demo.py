"""``diffsys demo``: a quick run writes the report, and the learned blur moves the right way."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from diffsys import nn
from diffsys.cli import main
from diffsys.cli.data import load_digits, synthetic_digits
from diffsys.cli.demo import DemoConfig, run_demo
from diffsys.cli.report import PLOTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick demo (seed 0, scikit-learn digits when installed), shared by the tests."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("demo") / "report"
    stream = io.StringIO()
    result = run_demo(
        DemoConfig(quick=True, out=str(out), progress="plain", save_pipeline=False),
        stream=stream,
    )
    return result, stream.getvalue(), out


def test_quick_run_prints_progress_tables_and_mismatch(quick_run):
    result, text, _ = quick_run
    assert "learned  epoch  4/4" in text and "frozen   epoch  4/4" in text
    assert "Per-stage gradient norms" in text
    for stage in ("blur", "threshold", "encoder", "classifier"):
        assert f"\n{stage} " in text
    assert "Relaxation mismatch" in text and "accuracy: relaxed" in text
    assert "Learned vs frozen preprocessing" in text
    assert result.ok


def test_quick_run_writes_summary_and_plots(quick_run):
    result, _, out = quick_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert summary["config"]["epochs"] == 4 and summary["config"]["quick"] is True
    assert set(summary["runs"]) == {"learned", "frozen"}
    for run in summary["runs"].values():
        assert len(run["epochs"]) == 4
        # both runs learn to classify the noisy test set: far above chance (1 in 10 classes;
        # 0.48 and 0.54 with seed 0) and well above their accuracy after the first epoch (0.25)
        assert run["final"]["test_accuracy"] > 0.3
        assert run["final"]["test_accuracy"] > run["epochs"][0]["test_accuracy"] + 0.1
    assert summary["runs"]["frozen"]["trainable_stages"] == ["encoder", "classifier"]
    assert summary["pipeline"]["kinds"]["threshold"] == "relaxed"
    assert summary["mismatch"]["rows"][0]["stage"] == "threshold"
    assert set(summary["grad_norms"]) == {"blur", "threshold", "encoder", "classifier"}
    assert summary["plots"] == list(PLOTS)
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    for name in ("epochs.csv", "telemetry_learned.csv", "telemetry_learned.json"):
        assert (out / name).stat().st_size > 0
        assert name in summary["files"]


def test_learned_sigma_grows_and_beats_frozen_preprocessing(quick_run):
    """On noisy digits the blur learns to widen (it averages noise away before the
    threshold), and the pipeline that learns its preprocessing classifies the noisy test
    set better than the same pipeline with the preprocessing frozen at its initial values."""
    result, _, _ = quick_run
    learned, frozen = result.summary["runs"]["learned"], result.summary["runs"]["frozen"]
    assert learned["initial"]["sigma"] == pytest.approx(0.3)
    assert learned["final"]["sigma"] > 1.5 * learned["initial"]["sigma"]
    sigmas = [e["sigma"] for e in learned["epochs"]]
    assert sigmas[0] > learned["initial"]["sigma"]  # it moves from the first epoch on
    assert frozen["final"]["sigma"] == pytest.approx(0.3)  # frozen means frozen
    assert learned["final"]["test_accuracy"] > frozen["final"]["test_accuracy"]
    assert result.summary["checks"] == {
        "sigma_grew": True,
        "learned_beats_frozen": True,
        "loss_fell": True,
    }


def test_reported_test_scores_are_those_of_the_hard_pipeline(quick_run):
    """The demo evaluates in inference mode: its test accuracy and loss are those of the
    trained stages composed by hand with the hard threshold (a step). With the relaxed
    threshold (a sigmoid) the same stages score differently on these images, so a demo that
    evaluated the training-mode pipeline would fail here."""
    result, _, _ = quick_run
    x, y = result.test["x"], result.test["y"]
    assert x.shape == (len(y), 1, 8, 8) and len(y) >= 1000
    for run in (result.learned, result.frozen):
        p = run.pipeline.params
        blurred = p["blur"](x)
        scores = {}
        for form in ("hard", "relaxed"):
            logits = p["classifier"](p["encoder"](getattr(p["threshold"], form)(blurred)))
            accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
            scores[form] = (accuracy, float(nn.cross_entropy(logits, y)))
        final = result.summary["runs"][run.label]["final"]
        assert final["test_accuracy"] == scores["hard"][0], run.label
        assert final["test_loss"] == pytest.approx(scores["hard"][1], rel=1e-9), run.label
        assert scores["relaxed"][0] != scores["hard"][0], run.label  # the test can tell
        assert run.pipeline.mode == "train"  # the evaluation put the mode back


def test_clean_inputs_need_less_blur(tmp_path):
    """The direction depends on the noise: on clean digits the blur narrows below its
    initial width (blurring only loses detail there), on noisy ones it widens."""
    runs = {}
    for noise in (0.0, 0.5):
        result = run_demo(
            DemoConfig(
                quick=True,
                noise=noise,
                out=str(tmp_path / str(noise)),
                progress="none",
                plots=False,
                save_pipeline=False,
            ),
            stream=io.StringIO(),
        )
        runs[noise] = result.summary["runs"]["learned"]["final"]["sigma"]
    assert runs[0.0] < 0.3 < runs[0.5]
    assert runs[0.5] > runs[0.0] + 0.1


def test_main_runs_the_demo_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(
        [
            "demo",
            "--epochs",
            "3",
            "--synthetic",
            "--out",
            str(out),
            "--progress",
            "plain",
            "--no-plots",
            "--seed",
            "2",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "synthetic 8x8 digits (--synthetic)" in text and "plots: skipped (--no-plots)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["source"] == "synthetic digits"
    assert summary["command"].startswith("diffsys demo --epochs 3")
    assert summary["plots"] == [] and not (out / "loss.png").exists()
    # the trained pipeline was saved and loads with the learned sigma
    pytest.importorskip("safetensors")
    from diffsys import pipeline as pl

    again = pl.load(out / "pipeline")
    final = summary["runs"]["learned"]["final"]
    assert float(again.params["blur"].sigma) == pytest.approx(final["sigma"], rel=1e-12)
    assert list(again.stages) == ["blur", "threshold", "encoder", "classifier"]
    assert again.mode == "infer"  # saved ready to use: the hard threshold, as evaluated


def test_without_matplotlib_the_plots_are_skipped_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    stream = io.StringIO()
    result = run_demo(
        DemoConfig(
            epochs=1, synthetic=True, out=str(tmp_path), progress="plain", save_pipeline=False
        ),
        stream=stream,
    )
    assert "plots: skipped, matplotlib is not installed" in stream.getvalue()
    assert result.summary["plots"] == [] and (tmp_path / "summary.json").exists()


def test_without_scikit_learn_synthetic_digits_are_used_and_said(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    data = load_digits(0)
    assert data.source == "synthetic digits"
    assert "scikit-learn is not installed: using SYNTHETIC" in data.note
    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)


def test_synthetic_digits_are_learnable_and_balanced():
    x, y = synthetic_digits(500, seed=1)
    assert x.shape == (500, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    assert np.bincount(y).tolist() == [50] * 10
    # nearest class mean classifies clean synthetic digits well above chance
    means = np.stack([x[y == c].reshape(-1, 64).mean(0) for c in range(10)])
    pred = np.argmin(((x.reshape(-1, 1, 64) - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == y) > 0.6


def test_the_split_is_stratified_and_seeded():
    a, b = load_digits(0, synthetic=True), load_digits(0, synthetic=True)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert np.bincount(a.y_test).min() >= 44
    c = load_digits(1, synthetic=True)
    assert not np.array_equal(a.y_train, c.y_train)


def test_bad_config_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="--epochs must be at least 1"):
        run_demo(DemoConfig(epochs=0, out=str(tmp_path)), stream=io.StringIO())
    with pytest.raises(ValueError, match="--noise must be >= 0"):
        run_demo(DemoConfig(noise=-1.0, out=str(tmp_path)), stream=io.StringIO())


def test_rich_progress_prints_epoch_lines(tmp_path):
    pytest.importorskip("rich")
    stream = io.StringIO()
    run_demo(
        DemoConfig(
            epochs=1,
            synthetic=True,
            out=str(tmp_path),
            progress="rich",
            plots=False,
            save_pipeline=False,
        ),
        stream=stream,
    )
    text = stream.getvalue()
    assert "learned  epoch  1/1" in text and "frozen   epoch  1/1" in text
