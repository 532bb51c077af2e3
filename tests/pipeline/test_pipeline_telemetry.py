"""Telemetry: per-stage gradient norms, output-gradient norms and update ratios against
direct computation; starvation warnings and NaN/Inf errors naming the stage; history
export to JSON, CSV and PNG."""

from __future__ import annotations

import builtins
import csv
import json
import warnings

import numpy as np
import pytest
from pipeline_helpers import Scale, add, classifier_batch, make_classifier

import diffsys.numpy as dnp
from diffsys import optim
from diffsys import pipeline as pl
from diffsys.pipeline import NonFiniteError, StarvationWarning


def _chain(*stages, loss=dnp.sum):
    last = stages[-1].name
    return pl.Pipeline(list(stages), losses=[pl.Loss("l", loss, last)])


def test_norms_and_ratios_match_direct_computation(rng):
    pipe = _chain(pl.Stage("a", Scale(2.0)), pl.Stage("b", Scale(-3.0)))
    x = rng.normal(size=7)
    trainer = pl.Trainer(pipe, optim.sgd(0.1))
    r = trainer.step({"x": x})
    # L = sum(a b x): dL/da = b sum(x), dL/db = a sum(x); output gradients: b * ones, ones
    s = np.sum(x)
    assert r.grad_norms["a"] == pytest.approx(abs(-3.0 * s))
    assert r.grad_norms["b"] == pytest.approx(abs(2.0 * s))
    assert r.output_grad_norms["a"] == pytest.approx(3.0 * np.sqrt(7))
    assert r.output_grad_norms["b"] == pytest.approx(np.sqrt(7))
    assert r.param_norms == {"a": 2.0, "b": 3.0}
    assert r.update_ratios["a"] == pytest.approx(0.1 * abs(3.0 * s) / 2.0)
    assert r.update_ratios["b"] == pytest.approx(0.1 * abs(2.0 * s) / 3.0)
    assert r.loss == pytest.approx(-6.0 * s)
    assert pipe.telemetry.history[-1] is r


def test_starvation_warning_names_the_starved_stage(rng):
    pipe = _chain(
        pl.Stage("pre", Scale(1.0)),
        pl.Stage("quantize", dnp.round),
        pl.Stage("head", Scale(1.0)),
        loss=lambda v: dnp.sum(v**2),
    )
    pipe.telemetry = pl.Telemetry(starvation_threshold=1e-12, starvation_steps=3)
    trainer = pl.Trainer(pipe, optim.sgd(0.01))
    x = rng.normal(size=8) * 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reports = [trainer.step({"x": x}) for _ in range(4)]
    starved = [w for w in caught if issubclass(w.category, StarvationWarning)]
    assert len(starved) == 1  # once, on the third step
    assert "stage 'pre'" in str(starved[0].message)
    assert "3 consecutive steps" in str(starved[0].message)
    assert reports[2].warnings and not reports[1].warnings
    assert pipe.telemetry.starved() == ["pre"]
    assert reports[-1].grad_norms["head"] > 0


def _starvation_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, StarvationWarning)]


def test_starvation_needs_consecutive_low_steps_and_rearms_after_recovery():
    tel = pl.Telemetry(starvation_threshold=1e-6, starvation_steps=3)
    low, high = 1e-9, 1.0
    # 'dips' is below the threshold 6 times out of 9 but never 3 times in a row; 'dead' is
    # below throughout: flagged once on its third step, then again only after it recovered
    dips = [low, low, high, low, low, high, low, low, high]
    dead = [low] * 4 + [high] + [low] * 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flagged = []
        for step, (d, z) in enumerate(zip(dips, dead, strict=True)):
            report = tel.record(pl.StepReport(step, 0.0, grad_norms={"dips": d, "dead": z}))
            flagged.append([m.split("'")[1] for m in report.warnings])
    assert flagged == [[], [], ["dead"], [], [], [], [], ["dead"], []]
    assert len(_starvation_warnings(caught)) == 2
    assert tel.starved() == ["dead"]


def test_a_stage_that_dips_below_the_threshold_now_and_then_is_not_flagged(rng):
    # L = sum(w x): the gradient of w is sum(x), zero on the all-zero batches
    pipe = _chain(pl.Stage("w", Scale(1.0)))
    pipe.telemetry = pl.Telemetry(starvation_threshold=1e-12, starvation_steps=3)
    trainer = pl.Trainer(pipe, optim.sgd(0.01))
    zero, some = np.zeros(4), np.abs(rng.normal(size=4)) + 0.1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x in [zero, zero, some] * 4:
            trainer.step({"x": x})
        assert _starvation_warnings(caught) == [] and pipe.telemetry.starved() == []
        norms = pipe.telemetry.series("grad_norms", "w")
        assert np.count_nonzero(norms == 0.0) == 8  # it did dip, 8 times out of 12
        for x in [zero] * 3:
            trainer.step({"x": x})
    found = _starvation_warnings(caught)
    assert len(found) == 1 and "stage 'w'" in found[0] and "3 consecutive steps" in found[0]


def test_no_starvation_warning_for_a_learning_pipeline(rng):
    pipe = make_classifier()
    pipe.telemetry = pl.Telemetry(starvation_steps=2)
    trainer = pl.Trainer(pipe, optim.adam(0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error", StarvationWarning)
        for _ in range(4):
            trainer.step(classifier_batch(rng))


def test_forward_nan_names_the_stage_where_it_first_appears(rng):
    pipe = _chain(
        pl.Stage("shift", Scale(-1.0)), pl.Stage("log", dnp.log), pl.Stage("head", Scale(1.0))
    )
    trainer = pl.Trainer(pipe, optim.sgd(0.1))
    before = float(pipe.params["shift"].weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteError, match=r"forward pass at stage 'log'") as info:
            trainer.step({"x": np.array([1.0, 2.0])})
    assert info.value.stage == "log" and info.value.where == "output"
    assert float(pipe.params["shift"].weight) == before  # no update


def test_nan_in_the_batch_is_named(rng):
    pipe = _chain(pl.Stage("a", Scale()))
    with pytest.raises(NonFiniteError, match=r"batch: entry 'x' \(read by stage 'a'\)") as info:
        pipe.step(pipe.init(optim.sgd(0.1)), {"x": np.array([1.0, np.nan])})
    assert info.value.where == "input"


def test_backward_nan_names_the_consumer_whose_backward_made_it(rng):
    # sqrt at 0: finite forward, infinite derivative; the gradient reaching 'scale''s output
    # is made by the backward pass of 'root'
    pipe = _chain(
        pl.Stage("scale", Scale(1.0)), pl.Stage("root", dnp.sqrt), pl.Stage("head", Scale(2.0))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(
            NonFiniteError,
            match=r"reaching stage 'scale''s output, made by the "
            r"backward pass of stage 'root'",
        ) as info:
            pipe.step(pipe.init(optim.sgd(0.1)), {"x": np.array([0.0, 1.0])})
    assert info.value.stage == "root" and info.value.where == "output gradient"


def _double(z):
    return 2.0 * z


def _root_times(num, den):
    return num * dnp.sqrt(den)  # d/d den = num / (2 sqrt(den)): Inf at den = 0


def _backward_error(pipe, batch) -> NonFiniteError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteError) as info:
            pipe.step(pipe.init(optim.sgd(0.1)), batch)
    return info.value


# Each DAG: (stages, losses, the consumer whose backward pass makes the Inf, the stage whose
# output it reaches). sqrt at 0 is finite forward and infinite backward; every other path is
# finite, so naming the first consumer in any listing order is wrong.
_FAN_OUT = [
    pl.Stage("pre", Scale(1.0), inputs="x"),
    pl.Stage("relu", dnp.maximum, inputs=("pre", "zero")),
    pl.Stage("double", _double, inputs="relu"),
    pl.Stage("root", dnp.sqrt, inputs="relu"),
    pl.Stage("join", add, inputs=("double", "root")),
]
_DAGS = {
    # relu -> double (2z), relu -> root (sqrt) -> join: the example
    "fan-out": (_FAN_OUT, [pl.Loss("l", dnp.sum, "join")], "root", "relu"),
    # a loss term reading a shared output is a consumer like a stage
    "fan-out-to-a-loss": (
        [pl.Stage("a", Scale(1.0), inputs="x"), pl.Stage("double", _double, inputs="a")],
        [
            pl.Loss("plain", dnp.sum, "double"),
            pl.Loss("root_loss", lambda v: dnp.sum(dnp.sqrt(v * v)), "a"),
        ],
        "root_loss",
        "a",
    ),
    # fan-in: 'ratio' reads num and den, both also read by 'other'; only den's gradient from
    # 'ratio' is infinite
    "fan-in": (
        [
            pl.Stage("num", Scale(1.0), inputs="x"),
            pl.Stage("den", Scale(1.0), inputs="x"),
            pl.Stage("other", add, inputs=("num", "den")),
            pl.Stage("ratio", _root_times, inputs=("num", "den")),
            pl.Stage("join", add, inputs=("other", "ratio")),
        ],
        [pl.Loss("l", dnp.sum, "join")],
        "ratio",
        "den",
    ),
    # entries of a declared tuple output, read by different consumers
    "tuple-entries": (
        [
            pl.Stage("pre", Scale(1.0), inputs="x"),
            pl.Stage("split", lambda z: (z, z * z), inputs="pre", output_spec=(None, None)),
            pl.Stage("double", _double, inputs="split.1"),
            pl.Stage("root", dnp.sqrt, inputs="split.1"),
            pl.Stage("keep", _double, inputs="split.0"),
            pl.Stage("join", lambda a, b, c: a + b + c, inputs=("double", "root", "keep")),
        ],
        [pl.Loss("l", dnp.sum, "join")],
        "root",
        "split",
    ),
}


@pytest.mark.parametrize("listing", ["as written", "reversed"])
@pytest.mark.parametrize("dag", list(_DAGS))
def test_backward_nan_is_blamed_on_the_consumer_that_made_it_in_any_dag(dag, listing):
    stages, losses, culprit, upstream = _DAGS[dag]
    if listing == "reversed":  # the pipeline sorts the stages; the order of readers changes
        stages, losses = stages[::-1], losses[::-1]
    pipe = pl.Pipeline(stages, losses=losses, batch_keys=("x", "zero"))
    err = _backward_error(pipe, {"x": np.array([0.0, 1.0, 2.0]), "zero": np.zeros(3)})
    assert (err.stage, err.where, err.upstream) == (culprit, "output gradient", upstream)
    kind = "loss term" if culprit == "root_loss" else "stage"
    made = f"made by the backward pass of {kind} {culprit!r} ("
    assert f"reaching stage {upstream!r}'s output, {made}" in str(err)


def test_a_shared_output_gets_the_sum_of_its_consumers_gradients(rng):
    # the per-consumer probes change nothing that is measured: a -> 2a, a -> 3a, L = sum of both
    pipe = pl.Pipeline(
        [
            pl.Stage("a", Scale(1.0)),
            pl.Stage("b", Scale(2.0), inputs="a"),
            pl.Stage("c", Scale(3.0), inputs="a"),
        ],
        losses=[pl.Loss(f"l{n}", dnp.sum, n) for n in "bca"],
    )
    x = rng.normal(size=5)
    r = pl.Trainer(pipe, optim.sgd(0.1)).step({"x": x})
    assert r.output_grad_norms["a"] == pytest.approx(6.0 * np.sqrt(5))
    assert r.grad_norms["a"] == pytest.approx(6.0 * abs(np.sum(x)))


def test_backward_nan_in_a_parameter_gradient_names_its_stage(rng):
    def sqrt_gain(params, x):
        return x * dnp.sqrt(params["g"])

    pipe = _chain(
        pl.Stage("pre", Scale(1.0)),
        pl.Stage("gain", sqrt_gain, params={"g": np.array(0.0)}),
        pl.Stage("head", Scale(2.0)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(
            NonFiniteError, match=r"backward pass of stage 'gain'.*\['gain.g'\]"
        ) as info:
            pipe.step(pipe.init(optim.sgd(0.1)), {"x": np.array([1.0, 2.0])})
    assert info.value.stage == "gain" and info.value.where == "parameter gradient"


def test_nan_in_a_loss_term_is_named(rng):
    pipe = _chain(pl.Stage("a", Scale(1.0)), loss=lambda v: dnp.log(dnp.sum(v)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteError, match=r"loss term 'l'") as info:
            pipe.step(pipe.init(optim.sgd(0.1)), {"x": np.array([-1.0, -2.0])})
    assert info.value.where == "loss term"


def test_skip_policy_warns_and_keeps_the_parameters(rng):
    pipe = _chain(pl.Stage("shift", Scale(-1.0)), pl.Stage("log", dnp.log))
    pipe.telemetry = pl.Telemetry(nonfinite="skip")
    trainer = pl.Trainer(pipe, optim.sgd(0.1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = trainer.step({"x": np.array([1.0])})
    assert report.skipped and "stage 'log'" in report.warnings[0]
    assert any("skipped" in str(w.message) for w in caught)
    assert float(pipe.params["shift"].weight) == -1.0
    assert trainer.ts.step == 1
    report = trainer.step({"x": np.array([-1.0])})
    assert not report.skipped


def test_telemetry_off_records_nothing(rng):
    pipe = make_classifier()
    ts = pipe.init(optim.sgd(0.1))
    ts, report = pipe.step(ts, classifier_batch(rng), telemetry=False)
    assert report.grad_norms == {} and pipe.telemetry.history == []
    with pytest.raises(TypeError, match="telemetry must be"):
        pipe.step(ts, classifier_batch(rng), telemetry="yes")


def test_history_exports_to_json_csv_and_png(rng, tmp_path):
    pipe = make_classifier()
    trainer = pl.Trainer(pipe, optim.adam(0.01))
    for _ in range(3):
        trainer.step(classifier_batch(rng))
    tel = pipe.telemetry
    tel.to_json(tmp_path / "h.json")
    doc = json.loads((tmp_path / "h.json").read_text())
    assert [d["step"] for d in doc] == [0, 1, 2]
    assert set(doc[0]["grad_norms"]) == {"thr", "enc", "head"}
    assert doc[1]["terms"]["ce"] == pytest.approx(tel.history[1].terms["ce"])
    tel.to_csv(tmp_path / "h.csv")
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert len(rows) == 3
    assert float(rows[2]["grad_norms/enc"]) == pytest.approx(tel.history[2].grad_norms["enc"])
    assert "metrics/accuracy" in rows[0]
    np.testing.assert_allclose(
        tel.series("grad_norms", "thr"), [r.grad_norms["thr"] for r in tel.history]
    )
    table = tel.table(last=3)
    assert table.splitlines()[0].split()[:3] == ["stage", "grad", "norm"]
    assert "thr" in table and "act" in table


def test_plot_without_matplotlib_says_how_to_get_it(rng, tmp_path, monkeypatch):
    pipe = make_classifier()
    pl.Trainer(pipe, optim.sgd(0.1)).step(classifier_batch(rng))
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="needs matplotlib, an optional extra: pip install"):
        pipe.telemetry.plot(tmp_path / "x.png")


def test_plot_of_an_empty_history_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="history is empty"):
        pl.Telemetry().plot(tmp_path / "x.png")


def test_telemetry_option_errors():
    with pytest.raises(ValueError, match="nonfinite must be"):
        pl.Telemetry(nonfinite="ignore")
    with pytest.raises(ValueError, match="starvation_steps must be >= 1"):
        pl.Telemetry(starvation_steps=0)


def test_history_plots_to_png(rng, tmp_path):
    pytest.importorskip("matplotlib")
    pipe = make_classifier()
    trainer = pl.Trainer(pipe, optim.adam(0.01))
    for _ in range(3):
        trainer.step(classifier_batch(rng))
    pipe.telemetry.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
