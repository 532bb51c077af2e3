"""Saving and loading pipelines: JSON config + safetensors, rebuilt from registered types, no
pickle; the round trip gives the same outputs and the same gradients."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_helpers import (
    Scale,
    SoftThreshold,
    add,
    affine,
    classifier_batch,
    make_classifier,
    mean_sq,
)

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim
from diffsys import pipeline as pl
from diffsys.pipeline import SerializationError


def _grads(pipe, batch):
    return ds.grad(lambda p: pipe.loss(p, batch, key=5)[0])(pipe.params)


def _assert_same(a, b):
    la, lb = ds.tree_leaves(a), ds.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(x, y)


@pl.register(name="tests.cube")
def _cube(x):
    return x**3


@pl.register(name="tests.cube_fwd")
def _cube_fwd(x):
    return x**3, x


@pl.register(name="tests.cube_bwd")
def _cube_bwd(x, g):
    return (3 * x**2 * g,)


def _rich_pipeline():
    cnn = nn.Sequential(
        [
            nn.Conv2d(1, 2, 3, padding=1, key=0),
            nn.BatchNorm(2),
            nn.relu,
            nn.Flatten(),
            nn.Linear(2 * 4 * 4, 5, key=1),
            nn.Dropout(0.1),
        ]
    )
    return pl.Pipeline(
        [
            pl.Stage("thr", SoftThreshold(0.1, 3.0), input_spec=pl.Spec(("B", 1, 4, 4), "float32")),
            pl.Stage("enc", nn.astype(cnn, np.float32), output_spec=("B", 5), checkpoint=True),
            pl.Stage(
                "side",
                affine,
                inputs="enc",
                params={"w": np.array(0.5, np.float32), "b": np.zeros(5, np.float32)},
            ),
            pl.Stage("sum", add, inputs=("enc", "side"), frozen=False),
            pl.Stage("cube", _cube, vjp=(_cube_fwd, _cube_bwd)),
            pl.Stage("q", Scale(1.0), kind="exact", frozen=True),
        ],
        batch_keys=("x", "y"),
        losses=[
            pl.Loss("ce", nn.cross_entropy, ("q", "y")),
            pl.Loss(
                "aux",
                mean_sq,
                "enc",
                weight=pl.scheduled("linear", init_value=0.5, end_value=0.0, transition_steps=10),
            ),
        ],
        metrics=[pl.Metric("accuracy", pl.accuracy, ("q", "y"))],
    )


def test_round_trip_same_outputs_gradients_state_and_config(rng, tmp_path):
    pipe = _rich_pipeline()
    batch = {"x": rng.normal(size=(6, 1, 4, 4)).astype(np.float32), "y": rng.integers(0, 5, 6)}
    trainer = pl.Trainer(pipe, optim.adam(0.01))
    for _ in range(2):
        trainer.step(batch)
    pipe.save(tmp_path / "p")
    again = pl.load(tmp_path / "p")
    assert list(again.stages) == list(pipe.stages)
    for name in pipe.stages:
        a, b = pipe.stages[name], again.stages[name]
        assert (a.kind, a.inputs, a.frozen, a.checkpoint, a.input_spec, a.output_spec) == (
            b.kind,
            b.inputs,
            b.frozen,
            b.checkpoint,
            b.input_spec,
            b.output_spec,
        )
    assert again.steps_done == 2 and again.mode == "train"
    assert [t.name for t in again.losses] == ["ce", "aux"]
    assert again.losses[1].weight_at(4) == pipe.losses[1].weight_at(4)
    _assert_same(again.params, pipe.params)
    _assert_same(again.state, pipe.state)
    assert again.named_parameter_dict().keys() == pipe.named_parameter_dict().keys()
    for mode in ("train", "infer"):
        _assert_same(
            again.apply(None, batch, mode=mode, key=3)[0],
            pipe.apply(None, batch, mode=mode, key=3)[0],
        )
    _assert_same(_grads(again, batch), _grads(pipe, batch))
    _assert_same(
        again.loss(None, batch, key=1)[1]["metrics"], pipe.loss(None, batch, key=1)[1]["metrics"]
    )


def test_saved_config_is_json_and_names_registered_types(tmp_path):
    make_classifier().save(tmp_path / "c")
    doc = json.loads((tmp_path / "c" / "checkpoint.json").read_text())
    cfg = doc["config"]
    assert cfg["format"] == "diffsys-pipeline"
    assert [s["name"] for s in cfg["stages"]] == ["thr", "enc", "act", "head"]
    assert cfg["stages"][0]["module"]["module"] == "tests.SoftThreshold"
    assert cfg["stages"][0]["module"]["static"] == {"sharpness": 4.0}
    assert cfg["stages"][1]["module"]["module"] == "nn.Linear"
    assert cfg["stages"][2]["fn"] == "nn.tanh"
    assert cfg["losses"][0]["fn"] == "nn.cross_entropy"
    assert list((tmp_path / "c").glob("*.pkl")) == []


def test_training_resumes_identically_after_load(rng, tmp_path):
    batch = classifier_batch(rng)
    pipe = make_classifier()
    trainer = pl.Trainer(pipe, optim.sgd(0.1))
    trainer.step(batch)
    pipe.save(tmp_path / "r")
    again = pl.load(tmp_path / "r")
    a = pl.Trainer(pipe, optim.sgd(0.1)).step(batch)
    b = pl.Trainer(again, optim.sgd(0.1)).step(batch)
    assert a.loss == b.loss and a.grad_norms == b.grad_norms


def test_unregistered_function_is_a_clear_error(tmp_path):
    def local(x):
        return x

    pipe = pl.Pipeline([pl.Stage("mine", local)])
    with pytest.raises(
        SerializationError,
        match=r"stage 'mine' function: .*local is not "
        r"registered.*register",
    ):
        pipe.save(tmp_path / "u")
    lam = pl.Pipeline([pl.Stage("a", Scale())], losses=[pl.Loss("l", lambda v: v.sum(), "a")])
    with pytest.raises(SerializationError, match=r"loss term 'l'.*not registered"):
        lam.save(tmp_path / "u")


def test_unregistered_module_class_is_a_clear_error(tmp_path):
    class Private(nn.Module):
        w: np.ndarray

        def __init__(self):
            self.w = np.ones(2)

        def __call__(self, x, *, key=None):
            return x * self.w

    with pytest.raises(
        SerializationError,
        match=r"stage 'p' \(Private\): .*Private is not "
        "registered",
    ):
        pl.Pipeline([pl.Stage("p", Private())]).save(tmp_path / "m")


def test_callable_weight_schedule_cannot_be_saved(tmp_path):
    pipe = pl.Pipeline(
        [pl.Stage("a", Scale())],
        losses=[pl.Loss("l", dnp.sum, "a", weight=optim.linear(1.0, 0.0, 5))],
    )
    with pytest.raises(SerializationError, match=r"loss term 'l'.*pipeline.scheduled"):
        pipe.save(tmp_path / "w")


def test_loading_needs_the_types_registered_and_intact_files(tmp_path):
    make_classifier().save(tmp_path / "c")
    path = tmp_path / "c" / "checkpoint.json"
    doc = json.loads(path.read_text())
    text = path.read_text().replace("tests.SoftThreshold", "tests.Missing")
    path.write_text(text)
    with pytest.raises(SerializationError, match="checksum"):
        pl.load(tmp_path / "c")
    with pytest.raises(SerializationError, match="no checkpoint"):
        pl.load(tmp_path / "nothing")
    assert doc["config"]["stages"][0]["module"]["module"] == "tests.SoftThreshold"


def test_register_rejects_nameless_and_conflicting_entries():
    with pytest.raises(ValueError, match="no stable name"):
        pl.register(lambda x: x)
    with pytest.raises(ValueError, match="already registered"):
        pl.register(dnp.cos, name="nn.tanh")
    assert pl.registered()["nn.Linear"] is nn.Linear
    assert pl.registered()["tests.SoftThreshold"] is SoftThreshold


def test_loading_an_unregistered_type_names_it(tmp_path):
    from diffsys.train.checkpoint import _checksum

    make_classifier().save(tmp_path / "c")
    path = tmp_path / "c" / "checkpoint.json"
    doc = json.loads(path.read_text())
    doc.pop("checksum")
    doc["config"]["stages"][0]["module"]["module"] = "tests.Missing"
    doc["checksum"] = _checksum(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(
        SerializationError,
        match=r"stage 'thr': field 'config\.stages\[0\]\.module\.module': 'tests.Missing' is "
        r"not registered in this process",
    ):
        pl.load(tmp_path / "c")
