"""Pipeline modes (issue 13, section 5): mode contexts, a warning when the loss is
differentiated in inference mode, named_parameters pairs, @pl.register("name")."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pipeline_helpers import SoftThreshold

import diffsys as ds
from diffsys import nn
from diffsys import pipeline as pl


def _pipe():
    return pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(3, 3, key=0), inputs=("x",)),
            pl.Stage("th", SoftThreshold(0.1, 5.0), inputs=("enc",), kind="relaxed"),
            pl.Stage("head", nn.Linear(3, 1, key=1), inputs=("th",)),
        ],
        losses=[pl.Loss("mse", lambda p, y: nn.mse(p[:, 0], y), ("head", "y"))],
    )


def _batch():
    x = np.random.default_rng(0).standard_normal((8, 3))
    return {"x": x, "y": x.sum(axis=1)}


def test_inference_and_training_contexts_restore_the_mode_even_on_errors():
    pipe = _pipe()
    hard = None
    with pipe.inference() as p:
        assert p is pipe and pipe.mode == "infer"
        hard = np.asarray(pipe(_batch()))
        with pipe.training():
            assert pipe.mode == "train"
        assert pipe.mode == "infer"
    assert pipe.mode == "train"
    np.testing.assert_array_equal(hard, np.asarray(pipe(_batch(), mode="infer")))
    pipe.infer()
    with pytest.raises(ZeroDivisionError), pipe.training():
        1 / 0
    assert pipe.mode == "infer"
    # the methods switch in place and return the pipeline (`pipe = pipe.infer()` reads well)
    assert pipe.infer() is pipe and pipe.mode == "infer"
    assert pipe.eval() is pipe and pipe.train() is pipe and pipe.mode == "train"


def test_differentiating_the_loss_in_inference_mode_warns_and_names_the_stage():
    pipe = _pipe().infer()
    vg = ds.value_and_grad(pipe.loss, has_aux=True)
    with pytest.warns(pl.HardModeGradientWarning, match=r"\['th'\].*mode='train'"):
        vg(pipe.params, _batch())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vg(pipe.params, _batch(), mode="train")  # explicit: no warning
        vg(pipe.params, _batch(), mode="infer")
        pipe.loss(pipe.params, _batch())  # evaluated, not differentiated
        with pipe.training():
            (_, _), grads = vg(pipe.params, _batch())
    assert np.any(grads["enc"].weight != 0)  # trained through the surrogate


def test_pipeline_named_parameters_yields_pairs():
    pipe = _pipe()
    pairs = list(pipe.named_parameters())
    assert all(isinstance(n, str) and isinstance(p, np.ndarray) for n, p in pairs)
    assert [n for n, _ in pairs] == list(pipe.named_parameter_dict())
    assert ("th.threshold", pipe.params["th"].threshold) in [
        (n, p) for n, p in pairs if n == "th.threshold"
    ]


def test_register_accepts_the_decorator_factory_spelling():
    @pl.register("tests.conventions.triple")
    def triple(x):
        return 3 * x

    assert pl.registered()["tests.conventions.triple"] is triple

    @pl.register("tests.conventions.Twice")
    class Twice(nn.Module):
        w: np.ndarray

        def __init__(self):
            self.w = np.array(2.0)

        def __call__(self, x, *, key=None):
            return self.w * x

    assert pl.registered()["tests.conventions.Twice"] is Twice
    with pytest.raises(TypeError, match="two names"):
        pl.register("a.b", name="c.d")
    with pytest.raises(TypeError, match="expected a module class or a function, got int"):
        pl.register(3)
