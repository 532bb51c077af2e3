"""pipeline.check_grads: finite-difference checks stage by stage, catching a wrong custom
adjoint and naming its stage; relaxed stages checked through their surrogate."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import SoftThreshold, classifier_batch, make_classifier

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim
from diffsys import pipeline as pl
from diffsys.relax import Bernoulli, score_function


def _cube(x):
    return x**3


def _cube_fwd(x):
    return x**3, x


def _cube_bwd_right(x, g):
    return (3 * x**2 * g,)


def _cube_bwd_wrong(x, g):
    return (2 * x**2 * g,)  # the deliberate mistake


def _with_adjoint(bwd):
    return pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(3, 3, key=0)),
            pl.Stage("cube", _cube, vjp=(_cube_fwd, bwd)),
            pl.Stage("head", nn.Linear(3, 2, key=1)),
        ],
        losses=[pl.Loss("l", dnp.sum, "head")],
    )


def test_correct_pipeline_passes_with_small_errors(rng):
    pipe = make_classifier()
    report = pipe.check_grads(classifier_batch(rng))
    assert report.ok and report.failed == []
    assert [r.stage for r in report.rows] == ["thr", "enc", "act", "head"]
    for r in report.rows:
        assert r.passed is True
        assert r.rel_error_fwd < 1e-6 and r.rel_error_rev < 1e-6
    assert report["thr"].checked == "surrogate"
    assert report["enc"].n_params == 4 * 8 + 8
    assert report["enc"].n_inputs == 2 * 4  # the first 2 rows of the batch
    assert report.worst in {"thr", "enc", "act", "head"}


def test_wrong_custom_adjoint_is_caught_and_named(rng):
    batch = {"x": rng.normal(size=(4, 3))}
    assert _with_adjoint(_cube_bwd_right).check_grads(batch).ok
    pipe = _with_adjoint(_cube_bwd_wrong)
    assert pipe.stages["cube"].kind == "custom"
    with pytest.raises(ds.GradientCheckError, match=r"stage\(s\) \['cube'\].*worst: 'cube'") as e:
        pipe.check_grads(batch)
    report = e.value.report
    assert report.worst == "cube"
    row = report["cube"]
    assert row.passed is False and "reverse-mode" in row.message
    assert row.rel_error_rev > 0.1  # the adjoint is off by a third
    assert row.rel_error_fwd < 1e-6  # forward mode differentiates the function itself
    assert report["enc"].passed and report["head"].passed
    assert "FAILED" in str(report)
    quiet = pipe.check_grads(batch, raise_on_failure=False)
    assert quiet.failed == ["cube"]


def test_check_grads_of_selected_stages_and_second_order(rng):
    pipe = make_classifier()
    report = pipe.check_grads(classifier_batch(rng), stages=["thr"], order=2)
    assert [r.stage for r in report.rows] == ["thr"]
    with pytest.raises(KeyError, match="no stage 'zzz'"):
        pipe.check_grads(classifier_batch(rng), stages=["zzz"])


def test_straight_through_stage_is_checked_through_its_surrogate(rng):
    pipe = pl.Pipeline([pl.Stage("thr", SoftThreshold(0.0, 3.0), kind="straight_through")])
    report = pipe.check_grads({"x": rng.normal(size=(3, 4))})
    assert report["thr"].checked == "surrogate" and report["thr"].passed


def test_score_function_stage_is_skipped_with_a_reason(rng):
    def sampled(logits, *, key=None):
        return score_function(
            lambda z: dnp.sum(z, axis=(1, 2)) * 1.0, Bernoulli(logits), rng=key, n_samples=4
        )

    pipe = pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(3, 2, key=0)),
            pl.Stage("sample", sampled, kind="score_function"),
        ]
    )
    report = pipe.check_grads({"x": rng.normal(size=(2, 3))})
    assert report["sample"].passed is None
    assert "stochastic estimate" in report["sample"].message
    assert report["enc"].passed


def test_stage_without_float_inputs_or_params_is_skipped(rng):
    pipe = pl.Pipeline([pl.Stage("count", lambda x: dnp.sum(x > 0))])
    report = pipe.check_grads({"x": np.arange(4)})
    assert report["count"].passed is None and report.worst is None


def _equilibrium(params, u):
    """z = tanh(w * z + u), solved by fixed_point and differentiated implicitly."""
    from diffsys.implicit import fixed_point

    return fixed_point(lambda z, p: dnp.tanh(p[0] * z + p[1]), dnp.zeros_like(u), (params["w"], u))


def test_implicit_stage_is_checked_and_trains(rng):
    pipe = pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(3, 3, key=0)),
            pl.Stage("solve", _equilibrium, params={"w": np.array(0.5)}, kind="implicit"),
        ],
        losses=[pl.Loss("l", lambda z: dnp.sum(z**2), "solve")],
    )
    batch = {"x": rng.normal(size=(4, 3))}
    report = pipe.check_grads(batch)
    assert report["solve"].kind == "implicit" and report["solve"].passed
    assert report["solve"].rel_error_rev < 1e-5
    ts, step = pipe.step(pipe.init(optim.sgd(0.1)), batch)
    assert step.grad_norms["solve"] > 0 and step.grad_norms["enc"] > 0


def test_score_function_stage_sends_gradients_upstream(rng):
    def sampled(logits, *, key=None):
        # objective 1 for each "on" sample: E = sum sigmoid(logits)
        return score_function(
            lambda z: dnp.sum(z, axis=(1, 2)) * 1.0,
            Bernoulli(logits),
            rng=key,
            n_samples=64,
            baseline="loo",
        )

    pipe = pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(3, 2, key=0)),
            pl.Stage("sample", sampled, kind="score_function"),
        ],
        losses=[pl.Loss("l", lambda v: -v, "sample")],
    )
    ts, report = pipe.step(pipe.init(optim.sgd(0.1), seed=3), {"x": rng.normal(size=(2, 3))})
    assert report.grad_norms["enc"] > 0
    assert report.output_grad_norms["enc"] > 0
