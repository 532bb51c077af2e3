"""Data-parallel training on a LocalCluster: equal to the single-process run on the
concatenated data, reproducible, shards kept on the workers, pipelines with telemetry."""

from __future__ import annotations

import importlib
import sys

import dp_helpers as h
import numpy as np
import pytest

import diffsys as ds
from diffsys import nn, optim
from diffsys import pipeline as pl

pytest.importorskip("dask.distributed")  # the distributed extra (in the test extra)
dist = importlib.import_module("diffsys.distributed")

h.register_by_value(h)
h.register_by_value(sys.modules[__name__])
if "tests.dp_helpers.RunningCenter" not in pl.registered():  # Trainer.save names its class
    pl.register(h.RunningCenter, name="tests.dp_helpers.RunningCenter")


def single_process(opt, steps: int):
    params, data = h.init_params(), h.make_data()
    state = opt.init(params)
    losses = []
    for _ in range(steps):
        value, grads = ds.value_and_grad(h.loss)(params, data)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        losses.append(float(value))
    return params, losses


def max_diff(a, b) -> float:
    for x, y in zip(ds.tree_leaves(a), ds.tree_leaves(b)):
        assert np.shape(x) == np.shape(y) and np.asarray(x).dtype == np.asarray(y).dtype
    return max(float(np.max(np.abs(x - y))) for x, y in zip(ds.tree_leaves(a), ds.tree_leaves(b)))


@pytest.mark.parametrize("n_shards", [1, 2, 3])
def test_data_parallel_equals_single_process(client, n_shards):
    steps = 8
    ref_params, ref_losses = single_process(optim.adam(0.05), steps)
    tr = dist.Trainer(
        h.loss, h.init_params(), optim.adam(0.05), h.Loader(n_shards), n_shards=n_shards,
        client=client,
    )
    reports = tr.fit(steps)
    assert tr.engine.shard_sizes == [len(p) for p in np.array_split(np.arange(61), n_shards)]
    assert max(abs(r.loss - v) for r, v in zip(reports, ref_losses)) <= 1e-12
    assert max_diff(tr.params, ref_params) <= 1e-12
    assert ref_losses[-1] < ref_losses[0]  # it trains
    tr.close()


def test_rounds_are_bitwise_reproducible(client):
    runs = []
    for _ in range(2):
        tr = dist.Trainer(h.loss, h.init_params(), optim.sgd(0.1), h.Loader(3), n_shards=3,
                          client=client)
        tr.fit(3)
        runs.append(tr.params)
        tr.close()
    for a, b in zip(ds.tree_leaves(runs[0]), ds.tree_leaves(runs[1])):
        np.testing.assert_array_equal(a, b)


def test_per_round_traffic_does_not_grow_with_the_data(client):
    sent = []
    for n in (61, 6100):
        engine = dist.DataParallel(
            dist.plain_objective(h.loss), h.init_params(), h.Loader(2, n), n_shards=2,
            client=client,
        )
        res = engine.round(h.init_params())
        assert engine.n_examples == n
        # the shards were made on the workers and stay there
        held = client.who_has(engine._shards)
        assert all(held[f.key] for f in engine._shards)
        sent.append((res.param_bytes, res.grad_bytes, res.bytes_per_round))
        assert res.compute_s > 0 and res.wall_s >= res.compute_s
        engine.close()
    assert sent[0] == sent[1]
    n_param = sum(np.size(x) for x in ds.tree_leaves(h.init_params()))
    assert sent[0][0] < 8 * n_param + 1024  # the parameters and a small header, no data


def test_shards_given_as_batches_are_sent_once(client):
    data = h.make_data()
    batches = [{k: v[:25] for k, v in data.items()}, {k: v[25:] for k, v in data.items()}]
    engine = dist.DataParallel(dist.plain_objective(h.loss), h.init_params(), batches,
                               client=client)
    res = engine.round(h.init_params())
    value, grads = ds.value_and_grad(h.loss)(h.init_params(), data)
    assert abs(res.loss - float(value)) <= 1e-12
    assert max_diff(res.grads, grads) <= 1e-12
    engine.close()


def test_reduction_sum_adds_shard_losses(client):
    def total(params, batch):
        return ds.numpy.sum((batch["x"] @ params["w1"]) ** 2)

    engine = dist.DataParallel(dist.plain_objective(total), h.init_params(), h.Loader(3),
                               n_shards=3, client=client, reduction="sum")
    res = engine.round(h.init_params())
    value, grads = ds.value_and_grad(total)(h.init_params(), h.make_data())
    assert abs(res.loss - float(value)) <= 1e-10 * abs(float(value))
    assert max_diff(res.grads["w1"], grads["w1"]) <= 1e-10 * float(np.max(np.abs(grads["w1"])))
    engine.close()


def make_pipeline():
    return pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(3, 8, key=0)),
            pl.Stage("act", ds.numpy.tanh),
            pl.Stage("head", nn.Linear(8, 1, key=1)),
        ],
        losses=[pl.Loss("mse", lambda p, y: nn.mse(p[:, 0], y), ("head", "y"))],
        metrics=[pl.Metric("mae", lambda p, y: np.mean(np.abs(p[:, 0] - y)), ("head", "y"))],
    )


def test_pipeline_trainer_equals_pl_trainer(client):
    ref_pipe = make_pipeline()
    ref = pl.Trainer(ref_pipe, optim.adam(0.02))
    data = h.make_data()
    ref_reports = [ref.step(data) for _ in range(5)]

    pipe = make_pipeline()
    tr = dist.PipelineTrainer(pipe, optim.adam(0.02), h.Loader(3), n_shards=3, client=client)
    reports = tr.fit(5)
    for r, q in zip(reports, ref_reports):
        assert abs(r.loss - q.loss) <= 1e-12
        assert abs(r.terms["mse"] - q.terms["mse"]) <= 1e-12
        assert abs(r.metrics["mae"] - q.metrics["mae"]) <= 1e-12
        assert sorted(r.grad_norms) == ["enc", "head"]
        for name in r.grad_norms:
            assert abs(r.grad_norms[name] - q.grad_norms[name]) <= 1e-12
            assert abs(r.update_ratios[name] - q.update_ratios[name]) <= 1e-12
    assert max_diff(pipe.params, ref_pipe.params) <= 1e-12
    assert len(pipe.telemetry.history) == 5 and pipe.steps_done == 5
    assert len(tr.history_rounds) == 5 and tr.history_rounds[-1].bytes > 0
    tr.close()


@pytest.mark.parametrize("n_shards", [1, 2, 3])
def test_pl_trainer_with_a_client_equals_one_process(client, n_shards):
    """pl.Trainer(client=...) runs the rounds of diffsys.distributed and the update and
    telemetry of pl.Trainer: every reported figure, output gradient norms included, and the
    parameters equal the single-process run on the concatenated data."""
    ref_pipe = make_pipeline()
    ref = pl.Trainer(ref_pipe, optim.adam(0.02))
    ref_reports = [ref.step(h.make_data()) for _ in range(4)]
    pipe = make_pipeline()
    tr = pl.Trainer(pipe, optim.adam(0.02), client=client, shards=h.Loader(n_shards),
                    n_shards=n_shards)
    reports = tr.fit(4)
    for r, q in zip(reports, ref_reports, strict=True):
        assert abs(r.loss - q.loss) <= 1e-12 * abs(q.loss)
        assert sorted(r.output_grad_norms) == sorted(q.output_grad_norms) == ["act", "enc", "head"]
        for field in ("grad_norms", "output_grad_norms", "param_norms", "update_ratios"):
            a, b = getattr(r, field), getattr(q, field)
            assert a.keys() == b.keys()
            for name in a:
                assert abs(a[name] - b[name]) <= 1e-12 * max(abs(b[name]), 1.0), (field, name)
    assert max_diff(pipe.params, ref_pipe.params) <= 1e-12
    assert [r.step for r in pipe.telemetry.history] == [0, 1, 2, 3]
    assert len(tr.history_rounds) == 4 and tr.history_rounds[0].bytes > 0
    tr.close()


def head_mse(p, y):
    return nn.mse(p[:, 0], y)


if "tests.distributed.head_mse" not in pl.registered():
    pl.register(head_mse, name="tests.distributed.head_mse")


def stateful_pipeline():
    return pl.Pipeline(
        [
            pl.Stage("center", h.running_center(3)),
            pl.Stage("enc", nn.Linear(3, 8, key=0)),
            pl.Stage("act", ds.numpy.tanh),
            pl.Stage("head", nn.Linear(8, 1, key=1)),
        ],
        losses=[pl.Loss("mse", head_mse, ("head", "y"))],
    )


@pytest.mark.parametrize("n_shards", [2, 3])
def test_stateful_stage_state_is_merged_across_shards(client, n_shards):
    ref_pipe = stateful_pipeline()
    ref = pl.Trainer(ref_pipe, optim.sgd(0.1))
    for _ in range(4):
        ref.step(h.make_data())
    pipe = stateful_pipeline()
    tr = pl.Trainer(pipe, optim.sgd(0.1), client=client, shards=h.Loader(n_shards),
                    n_shards=n_shards)
    tr.fit(4)
    name = pipe.params["center"].state_name
    got, want = pipe.state["center"][name], ref_pipe.state["center"][name]
    assert int(got["count"]) == int(want["count"]) == 4
    assert got["count"].dtype == want["count"].dtype
    assert np.max(np.abs(got["mean"] - want["mean"])) <= 1e-12
    assert np.max(np.abs(want["mean"])) > 0.01  # the state moved
    assert max_diff(pipe.params, ref_pipe.params) <= 1e-12
    tr.close()


def test_pl_trainer_with_a_client_resumes_bit_identically(client, tmp_path):
    """Trainer.save after 2 rounds, a new driver's Trainer.load(..., client=) goes on: the same
    parameters, state and optimizer state as 4 uninterrupted rounds, to the bit."""
    full = pl.Trainer(stateful_pipeline(), optim.adam(0.05), client=client,
                      shards=h.Loader(2), n_shards=2)
    full.fit(4, progress=None)
    first = pl.Trainer(stateful_pipeline(), optim.adam(0.05), client=client,
                       shards=h.Loader(2), n_shards=2)
    first.fit(2, progress=None)
    first.save(tmp_path / "run")
    first.close()
    again = pl.Trainer.load(tmp_path / "run", optim.adam(0.05), client=client,
                            shards=h.Loader(2), n_shards=2)
    assert again.ts.step == 2
    again.fit(2, progress=None)
    for a, b in zip(ds.tree_leaves((again.ts.params, again.ts.state, again.ts.opt_state)),
                    ds.tree_leaves((full.ts.params, full.ts.state, full.ts.opt_state)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    full.close()
    again.close()


def test_pl_trainer_client_arguments_are_checked(client):
    pipe = make_pipeline()
    with pytest.raises(TypeError, match="give shards="):
        pl.Trainer(pipe, optim.sgd(0.1), client=client)
    with pytest.raises(TypeError, match="need client="):
        pl.Trainer(pipe, optim.sgd(0.1), shards=h.Loader(2), n_shards=2)
    tr = pl.Trainer(pipe, optim.sgd(0.1), client=client, shards=h.Loader(2), n_shards=2)
    with pytest.raises(TypeError, match="without a batch"):
        tr.step(h.make_data())
    with pytest.raises(TypeError, match="number of rounds"):
        tr.fit([h.make_data()])
    tr.close()
    with pytest.raises(TypeError, match="a batch is needed"):
        pl.Trainer(pipe, optim.sgd(0.1)).step()


def test_pipeline_frozen_stage_gets_no_update(client):
    pipe = make_pipeline()
    pipe.freeze("enc")
    before = np.array(pipe.params["enc"].weight)
    tr = dist.PipelineTrainer(pipe, optim.sgd(0.1), h.Loader(2), n_shards=2, client=client)
    report = tr.step()
    np.testing.assert_array_equal(pipe.params["enc"].weight, before)
    assert sorted(report.grad_norms) == ["head"]
    tr.close()


def test_checkpoint_restart_continues_bit_identically(client, tmp_path):
    tr = dist.Trainer(h.loss, h.init_params(), optim.adam(0.05), h.Loader(2), n_shards=2,
                      client=client)
    tr.fit(6, checkpoint_dir=tmp_path, checkpoint_every=3)  # saved after steps 3 and 6
    full = tr.params
    tr.close()
    tr = dist.Trainer(h.loss, h.init_params(), optim.adam(0.05), h.Loader(2), n_shards=2,
                      client=client)
    tr.fit(3)
    tr.save(tmp_path)
    again = dist.Trainer(h.loss, h.init_params(seed=9), optim.adam(0.05), h.Loader(2),
                         n_shards=2, client=client)
    again.restore(tmp_path)
    assert again.steps_done == 3
    again.fit(3)
    for a, b in zip(ds.tree_leaves(again.params), ds.tree_leaves(full)):
        np.testing.assert_array_equal(a, b)
    tr.close()
    again.close()


class NanShard(h.Loader):
    """Shard 1 has a NaN target."""

    def __call__(self, i: int) -> dict:
        batch = super().__call__(i)
        if i == 1:
            batch["y"] = batch["y"].copy()
            batch["y"][0] = np.nan
        return batch


def test_pipeline_non_finite_names_the_stage_and_shard_and_skips_the_update(client):
    data = {k: np.concatenate([NanShard(3)(i)[k] for i in range(3)]) for k in ("x", "y")}
    with pytest.raises(pl.NonFiniteError) as local:  # what one process says about it
        pl.Trainer(make_pipeline(), optim.sgd(0.1)).step(data)
    pipe = make_pipeline()
    before = np.array(pipe.params["head"].weight)
    tr = dist.PipelineTrainer(pipe, optim.sgd(0.1), NanShard(3), n_shards=3, client=client)
    with pytest.raises(pl.NonFiniteError) as info:
        tr.step()
    assert (info.value.stage, info.value.where) == (local.value.stage, local.value.where)
    assert (info.value.stage, info.value.where) == ("mse", "loss term")
    assert str(info.value).startswith("shard 1 (step 0): " + str(local.value))
    np.testing.assert_array_equal(pipe.params["head"].weight, before)
    assert tr.ts.step == 0
    tr.close()


def test_wire_docstring():
    import doctest

    from diffsys.distributed import _wire

    result = doctest.testmod(_wire)
    assert result.failed == 0 and result.attempted > 0
