"""Composition: sequential and DAG pipelines, parameter namespaces and ownership, frozen
stages, per-stage checkpointing, stateful stages; gradients reach every trainable stage and
equal those of the same function composed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import Scale, SoftThreshold, add, affine, classifier_batch, make_classifier

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim
from diffsys import pipeline as pl
from diffsys.relax import sigmoid


def _hand_loss(params, x, y):
    thr = params["thr"]
    h = x * sigmoid(thr.sharpness * (x - thr.threshold))
    h = dnp.tanh(params["enc"](h))
    return nn.cross_entropy(params["head"](h), y)


def _assert_trees_close(a, b, rtol=1e-10, atol=1e-12):
    la, lb = ds.tree_leaves(a), ds.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def test_gradients_reach_every_stage_and_match_the_hand_composed_function(rng):
    pipe = make_classifier()
    batch = classifier_batch(rng)
    (loss, aux), grads = ds.value_and_grad(pipe.loss, has_aux=True)(pipe.params, batch)
    ref_loss, ref_grads = ds.value_and_grad(_hand_loss)(pipe.params, batch["x"], batch["y"])
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
    _assert_trees_close(grads, ref_grads)
    for stage in ("thr", "enc", "head"):
        assert ds.tree_leaves(grads[stage])
        assert all(np.any(g != 0) for g in ds.tree_leaves(grads[stage])), stage


def test_step_gradient_norms_are_those_of_the_hand_composed_gradient(rng):
    pipe = make_classifier()
    batch = classifier_batch(rng)
    ref = ds.grad(_hand_loss)(pipe.params, batch["x"], batch["y"])
    ts = pipe.init(optim.sgd(0.1))
    ts2, report = pipe.step(ts, batch)
    for stage in ("thr", "enc", "head"):
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in ds.tree_leaves(ref[stage])))
        assert report.grad_norms[stage] == pytest.approx(norm, rel=1e-10)
    # SGD: new = old - 0.1 * grad, stage by stage
    for stage in ("thr", "enc", "head"):
        for new, old, g in zip(
            ds.tree_leaves(ts2.params[stage]),
            ds.tree_leaves(ts.params[stage]),
            ds.tree_leaves(ref[stage]),
            strict=True,
        ):
            np.testing.assert_allclose(new, old - 0.1 * g, rtol=1e-12, atol=1e-14)
    assert ts2.step == 1 and ts.step == 0  # functional: the old state is unchanged


def test_parameters_are_namespaced_by_stage():
    pipe = pl.Pipeline(
        [
            pl.Stage("encoder", nn.Sequential([nn.Linear(2, 3, key=0), nn.tanh])),
            pl.Stage("head", nn.Linear(3, 1, key=1)),
        ]
    )
    assert list(pipe.named_parameter_dict()) == [
        "encoder.layers.0.weight",
        "encoder.layers.0.bias",
        "head.weight",
        "head.bias",
    ]
    assert set(pipe.params) == {"encoder", "head"}


def test_dag_stage_reads_several_upstream_outputs_and_batch_entries(rng):
    pipe = pl.Pipeline(
        [
            pl.Stage("a", Scale(2.0)),
            pl.Stage("b", Scale(-1.0), inputs="x"),
            pl.Stage("sum", add, inputs=("a", "b")),
            pl.Stage("plus_z", add, inputs=("sum", "z")),
        ],
        batch_keys=("x", "z"),
        losses=[pl.Loss("l", dnp.sum, "plus_z")],
    )
    x, z = rng.normal(size=3), rng.normal(size=3)
    outputs, _ = pipe.apply(None, {"x": x, "z": z})
    np.testing.assert_allclose(outputs["plus_z"], 2 * x - x + z)
    grads = ds.grad(lambda p: pipe.loss(p, (x, z))[0])(pipe.params)  # tuple batch
    assert float(grads["a"].weight) == pytest.approx(np.sum(x))
    assert float(grads["b"].weight) == pytest.approx(np.sum(x))


def test_stages_may_be_listed_out_of_order_and_cycles_are_errors():
    pipe = pl.Pipeline(
        [
            pl.Stage("second", Scale(3.0), inputs="first"),
            pl.Stage("first", Scale(2.0), inputs="x"),
        ]
    )
    assert pipe.order == ["first", "second"]
    assert float(pipe({"x": np.array(1.0)})) == 6.0
    with pytest.raises(ValueError, match=r"cycle.*'p'.*'q'|cycle.*'q'.*'p'"):
        pl.Pipeline([pl.Stage("p", add, inputs=("x", "q")), pl.Stage("q", add, inputs=("x", "p"))])


def test_stage_output_entries_by_dotted_name():
    def split(x):
        return {"lo": x[:2], "hi": x[2:]}

    pipe = pl.Pipeline(
        [
            pl.Stage("split", split, output_spec={"lo": (2,), "hi": (None,)}),
            pl.Stage("join", add, inputs=("split.lo", "split.hi")),
        ]
    )
    np.testing.assert_allclose(pipe({"x": np.arange(4.0)}), [2.0, 4.0])


def test_function_stage_with_its_own_parameter_pytree(rng):
    params = {"w": np.array(2.0), "b": np.array(0.5)}
    pipe = pl.Pipeline(
        [pl.Stage("aff", affine, params=params)], losses=[pl.Loss("l", dnp.sum, "aff")]
    )
    x = rng.normal(size=4)
    g = ds.grad(lambda p: pipe.loss(p, {"x": x})[0])(pipe.params)
    assert float(g["aff"]["w"]) == pytest.approx(np.sum(x))
    assert float(g["aff"]["b"]) == pytest.approx(4.0)
    assert list(pipe.named_parameter_dict()) == ["aff.b", "aff.w"]


def test_a_parameter_owned_by_two_stages_is_an_error_naming_both():
    shared = nn.Linear(2, 2, key=0)
    other = nn.Linear(2, 2, key=1).replace(weight=shared.weight)
    with pytest.raises(
        ValueError,
        match=r"two stages, 'enc' \(as 'enc.weight'\) and 'dec' "
        r"\(as 'dec.weight'\)",
    ):
        pl.Pipeline([pl.Stage("enc", shared), pl.Stage("dec", other)])


def test_construction_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="two stages are named 'a'"):
        pl.Pipeline([pl.Stage("a", Scale()), pl.Stage("a", Scale())])
    with pytest.raises(ValueError, match=r"stage 'b' reads 'nope', which is neither a stage"):
        pl.Pipeline([pl.Stage("a", Scale()), pl.Stage("b", add, inputs=("a", "nope"))])
    with pytest.raises(ValueError, match="name of a batch key"):
        pl.Pipeline([pl.Stage("x", Scale())])
    with pytest.raises(ValueError, match="no dots"):
        pl.Stage("a.b", Scale())
    with pytest.raises(TypeError, match="expected an nn.Module or a function, got int"):
        pl.Stage("a", 3)
    with pytest.raises(ValueError, match=r"kind must be one of"):
        pl.Stage("a", Scale(), kind="magic")
    with pytest.raises(TypeError, match="needs a hard operation"):
        pl.Stage("a", Scale(), kind="relaxed")
    with pytest.raises(TypeError, match="item 0 is a int"):
        pl.Pipeline([3])
    with pytest.raises(ValueError, match=r"loss term 'l' reads 'zz'"):
        pl.Pipeline([pl.Stage("a", Scale())], losses=[pl.Loss("l", dnp.sum, "zz")])
    with pytest.raises(ValueError, match="no loss terms"):
        pl.Pipeline([pl.Stage("a", Scale())]).loss(None, {"x": np.ones(2)})
    with pytest.raises(ValueError, match=r"expected parameters for stages \['a'\]"):
        pl.Pipeline([pl.Stage("a", Scale())]).params = {}


def test_frozen_stage_gets_no_gradient_but_passes_it_upstream(rng):
    pipe = pl.Pipeline(
        [
            pl.Stage("first", Scale(2.0)),
            pl.Stage("middle", Scale(3.0), frozen=True),
            pl.Stage("last", Scale(0.5)),
        ],
        losses=[pl.Loss("l", dnp.sum, "last")],
    )
    x = rng.normal(size=5)
    g = ds.grad(lambda p: pipe.loss(p, {"x": x})[0])(pipe.params)
    assert float(g["middle"].weight) == 0.0
    assert float(g["first"].weight) == pytest.approx(3.0 * 0.5 * np.sum(x))
    assert pipe.trainable_stages() == ("first", "last")
    trainer = pl.Trainer(pipe, optim.sgd(0.1))
    report = trainer.step({"x": x})
    assert set(report.grad_norms) == {"first", "last"}
    assert float(pipe.params["middle"].weight) == 3.0
    pipe.unfreeze("middle")
    with pytest.raises(ValueError, match="trainable stages changed since init"):
        trainer.step({"x": x})
    trainer.reset_optimizer()
    assert "middle" in trainer.step({"x": x}).grad_norms


def test_frozen_preprocessing_comparison_trains_only_downstream(rng):
    batch = classifier_batch(rng)
    pipe = make_classifier(frozen_threshold=True)
    before = float(pipe.params["thr"].threshold)
    trainer = pl.Trainer(pipe, optim.adam(0.05))
    for _ in range(5):
        trainer.step(batch)
    assert float(pipe.params["thr"].threshold) == before
    pipe2 = make_classifier()
    trainer2 = pl.Trainer(pipe2, optim.adam(0.05))
    for _ in range(5):
        trainer2.step(batch)
    assert float(pipe2.params["thr"].threshold) != before


def test_checkpointed_stage_gives_the_same_gradients_and_recomputes(rng):
    calls = []

    def body(x):
        calls.append(1)
        return dnp.sin(x) * dnp.cos(x)

    def build(checkpoint):
        return pl.Pipeline(
            [
                pl.Stage("scale", Scale(1.5)),
                pl.Stage("body", body, checkpoint=checkpoint),
                pl.Stage("out", Scale(2.0)),
            ],
            losses=[pl.Loss("l", dnp.sum, "out")],
        )

    x = rng.normal(size=6)
    plain, ckpt = build(False), build(True)
    g_plain = ds.grad(lambda p: plain.loss(p, {"x": x})[0])(plain.params)
    calls.clear()
    g_ckpt = ds.grad(lambda p: ckpt.loss(p, {"x": x})[0])(ckpt.params)
    _assert_trees_close(g_plain, g_ckpt, rtol=1e-13)
    assert len(calls) == 2  # the forward pass and its recomputation in the backward pass


def test_checkpointed_stage_with_dropout_recomputes_the_same_mask(rng):
    net = nn.Sequential([nn.Linear(4, 16, key=0), nn.Dropout(0.5), nn.Linear(16, 1, key=1)])

    def build(checkpoint):
        return pl.Pipeline(
            [pl.Stage("net", net, checkpoint=checkpoint)], losses=[pl.Loss("l", dnp.sum, "net")]
        )

    x = rng.normal(size=(8, 4))
    grads = []
    for checkpoint in (False, True):
        pipe = build(checkpoint)
        grads.append(ds.grad(lambda p, pipe=pipe: pipe.loss(p, {"x": x}, key=7)[0])(pipe.params))
    _assert_trees_close(grads[0], grads[1], rtol=1e-13)


def test_stateful_stage_keeps_batchnorm_statistics_in_the_pipeline_state(rng):
    net = nn.Sequential([nn.Linear(3, 4, key=0), nn.BatchNorm(4)])
    pipe = pl.Pipeline(
        [pl.Stage("net", net)], losses=[pl.Loss("l", lambda y: dnp.mean(y**2), "net")]
    )
    assert set(pipe.state) == {"net"}
    x = rng.normal(loc=3.0, size=(16, 3))
    trainer = pl.Trainer(pipe, optim.sgd(0.01))
    trainer.step({"x": x})
    stats = pipe.state["net"]["layers.1"]
    assert int(stats["count"]) == 1
    assert np.any(stats["mean"] != 0)
    pipe.infer()  # evaluation: running statistics, state unchanged by calls
    y = pipe({"x": x})
    assert y.shape == (16, 4)
    assert int(pipe.state["net"]["layers.1"]["count"]) == 1


def test_user_stage_objects_are_not_modified_by_a_pipeline():
    s = pl.Stage("b", Scale(2.0))
    pl.Pipeline([pl.Stage("a", Scale()), s])
    assert s.inputs is None


def test_relaxed_module_protocol_is_recognised():
    s = pl.Stage("t", SoftThreshold())
    assert s.kind == "relaxed" and s.relaxed
    st = pl.Stage("t", SoftThreshold(), kind="straight_through")
    assert st.kind == "straight_through"
    assert pl.Stage("l", nn.Linear(2, 2, key=0)).kind == "exact"
    assert pl.Stage("f", dnp.sin).kind == "exact"


def test_checkpoint_policy_is_passed_to_ds_checkpoint(rng):
    try:
        ds.checkpoint(lambda x: x, policy="dots_saveable")
    except NotImplementedError:
        pytest.skip("this diffsys has no ds.checkpoint policies yet")

    def build(checkpoint):
        net = nn.Sequential([nn.Linear(4, 8, key=0), nn.tanh, nn.Linear(8, 2, key=1)])
        return pl.Pipeline(
            [pl.Stage("net", net, checkpoint=checkpoint)], losses=[pl.Loss("l", dnp.sum, "net")]
        )

    x = rng.normal(size=(5, 4))
    grads = []
    for checkpoint in (False, True, "dots_saveable", "everything_saveable"):
        pipe = build(checkpoint)
        assert pipe.stages["net"].checkpoint == checkpoint
        grads.append(ds.grad(lambda p, pipe=pipe: pipe.loss(p, {"x": x})[0])(pipe.params))
    for g in grads[1:]:
        _assert_trees_close(grads[0], g, rtol=1e-13)
    with pytest.raises(ValueError, match="policy"):
        build("no_such_policy")


def test_remaining_error_messages():
    lin = nn.Linear(2, 2, key=0)
    with pytest.raises(TypeError, match="an nn.Module owns its parameters"):
        pl.Stage("a", lin, params={"w": np.ones(1)})
    with pytest.raises(TypeError, match=r"vjp=\(fwd, bwd\) is for function stages"):
        pl.Stage("a", lin, vjp=(add, add))
    with pytest.raises(ValueError, match="vjp= makes a 'custom' stage, not 'exact'"):
        pl.Stage("a", dnp.sin, vjp=(add, add), kind="exact")
    with pytest.raises(TypeError, match="hard= is for 'relaxed' and 'straight_through'"):
        pl.Stage("a", dnp.sin, hard=dnp.round, kind="exact")
    pipe = pl.Pipeline([pl.Stage("s", Scale())])
    with pytest.raises(TypeError, match="add_loss: give a Loss, or name, fn and inputs"):
        pipe.add_loss("l")
    with pytest.raises(TypeError, match="add_metric: give a Metric"):
        pipe.add_metric("m")
    with pytest.raises(TypeError, match="expected an optimizer"):
        pipe.init("adam")
    with pytest.raises(TypeError, match="expected a dict by stage name, got list"):
        pipe.params = []
    with pytest.raises(ValueError, match="a batch tuple of 3 entries, but batch_keys names 2"):
        pipe((np.ones(2), np.ones(2), np.ones(2)))
    with pytest.raises(TypeError, match="key must be an int seed or a numpy.random.Generator"):
        pipe({"x": np.ones(2)}, key="seed")
    with pytest.raises(KeyError, match="no stage 'nope'"):
        pipe.freeze("nope")
    with pytest.raises(KeyError, match=r"the parameters have no entry 's'"):
        pipe.apply({}, {"x": np.ones(2)})
    dotted = pl.Pipeline([pl.Stage("s", Scale()), pl.Stage("t", add, inputs=("s.k", "x"))])
    with pytest.raises(
        pl.ContractError,
        match=r"stage 't' reads 's.k': stage 's' returned a "
        r"ndarray that has no entry 'k'",
    ):
        dotted({"x": np.ones(2)})
