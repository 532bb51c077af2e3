"""Checkpoints: exact round trips, bit-for-bit resumption, and clear errors on damage."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("safetensors")

import diffsys as ds  # noqa: E402
from diffsys import nn, optim, train  # noqa: E402


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        [nn.Linear(5, 16, key=rng), nn.tanh, nn.Dropout(0.2), nn.Linear(16, 3, key=rng)]
    )


def _data():
    rng = np.random.default_rng(42)
    x = rng.standard_normal((96, 5))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    return x, y


def _loss(model, x, y, rng):
    return nn.cross_entropy(model(x, key=rng), y)


def _train(model, opt, opt_state, rng, start, stop, x, y):
    """Steps ``start..stop-1``; batch order from (seed, epoch), dropout from ``rng``."""
    vg = ds.value_and_grad(_loss)
    steps_per_epoch = 6
    for step in range(start, stop):
        epoch, k = divmod(step, steps_per_epoch)
        order = train.epoch_permutation(len(x), seed=7, epoch=epoch)
        idx = order[k * 16 : (k + 1) * 16]
        _, grads = vg(model, x[idx], y[idx], rng)
        updates, opt_state = opt.update(grads, opt_state, model)
        model = optim.apply_updates(model, updates)
    return model, opt_state


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_resuming_is_bit_for_bit_identical(tmp_path, dtype):
    x, y = _data()
    x = x.astype(dtype)
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adamw(optim.cosine_decay(1e-2, 20)))
    n, k = 17, 8

    model = nn.astype(_model(), dtype)
    rng = np.random.default_rng(3)
    full, full_state = _train(model, opt, opt.init(model), rng, 0, n, x, y)

    model = nn.astype(_model(), dtype)
    rng = np.random.default_rng(3)
    part, part_state = _train(model, opt, opt.init(model), rng, 0, k, x, y)
    train.save_checkpoint(
        tmp_path, {"model": part, "opt": part_state}, step=k, rng=rng, config={"lr": 1e-2}
    )
    del part, part_state, rng

    fresh = nn.astype(_model(seed=99), dtype)  # a template with other values
    tree, info = train.load_checkpoint(tmp_path, like={"model": fresh, "opt": opt.init(fresh)})
    assert info.step == k and info.config == {"lr": 1e-2}
    resumed, resumed_state = _train(
        tree["model"], opt, tree["opt"], info.rng["default"], info.step, n, x, y
    )
    for a, b in zip(ds.tree_leaves(full), ds.tree_leaves(resumed), strict=True):
        assert a.dtype == b.dtype == dtype
        assert np.array_equal(a, b)
    for a, b in zip(ds.tree_leaves(full_state), ds.tree_leaves(resumed_state), strict=True):
        assert np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype


def test_the_sanity_of_the_resume_test_itself(tmp_path):
    """Resuming with a different RNG state must differ: the test above can fail."""
    x, y = _data()
    opt = optim.adam(1e-2)
    model = _model()
    full, _ = _train(model, opt, opt.init(model), np.random.default_rng(3), 0, 10, x, y)
    part, st = _train(model, opt, opt.init(model), np.random.default_rng(3), 0, 5, x, y)
    wrong, _ = _train(part, opt, st, np.random.default_rng(4), 5, 10, x, y)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(ds.tree_leaves(full), ds.tree_leaves(wrong), strict=True)
    )


def test_round_trip_of_state_scalars_and_names(tmp_path):
    net, state = nn.with_state(nn.Sequential([nn.Linear(2, 3, key=0), nn.BatchNorm(3)]))
    _, state = net(np.random.default_rng(0).standard_normal((4, 2)), state)
    opt = optim.adam(0.1)
    tree = {
        "params": net,
        "state": state,
        "opt": opt.init(net),
        "epoch": 3,
        "lr": 0.5,
        "scale": np.float32(2.0),
    }
    train.save_checkpoint(tmp_path, tree, step=11, metadata={"note": "x"})
    index = json.loads((tmp_path / "checkpoint.json").read_text())
    names = [leaf["name"] for leaf in index["leaves"]]
    assert "params.layers.0.weight" in names and "state.layers.1.mean" in names
    assert "opt.0.mu.layers.1.weight" in names
    loaded, info = train.load_checkpoint(tmp_path, like=tree)
    assert loaded["epoch"] == 3 and isinstance(loaded["epoch"], int)
    assert loaded["lr"] == 0.5 and info.metadata == {"note": "x"}
    count = loaded["opt"][0].count
    assert isinstance(count, np.ndarray) and count.shape == () and count.dtype == np.int64
    assert isinstance(loaded["scale"], np.float32) and loaded["scale"] == 2.0
    for a, b in zip(ds.tree_leaves(tree), ds.tree_leaves(loaded), strict=True):
        assert np.array_equal(a, b)
    assert len(list(tmp_path.glob("tensors-*.safetensors"))) == 1
    train.save_checkpoint(tmp_path, {**tree, "epoch": 4}, step=12)
    assert len(list(tmp_path.glob("tensors-*.safetensors"))) == 1  # the old file is removed
    assert not list(tmp_path.glob(".*tmp"))


def _saved(tmp_path):
    model = _model()
    train.save_checkpoint(tmp_path, {"model": model}, step=1)
    return model, next(tmp_path.glob("tensors-*.safetensors"))


def test_truncated_tensor_file_is_a_clear_error(tmp_path):
    model, tensors = _saved(tmp_path)
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    with pytest.raises(train.CheckpointError, match="truncated"):
        train.load_checkpoint(tmp_path, like={"model": model})


def test_tampered_tensor_file_is_a_clear_error(tmp_path):
    model, tensors = _saved(tmp_path)
    data = bytearray(tensors.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last array's data
    tensors.write_bytes(bytes(data))
    with pytest.raises(train.CheckpointError, match="SHA-256.*modified"):
        train.load_checkpoint(tmp_path, like={"model": model})


def test_tampered_or_truncated_index_is_a_clear_error(tmp_path):
    model, _ = _saved(tmp_path)
    index = tmp_path / "checkpoint.json"
    text = index.read_text()
    index.write_text(text.replace('"step": 1', '"step": 2'))
    with pytest.raises(train.CheckpointError, match="checksum"):
        train.load_checkpoint(tmp_path, like={"model": model})
    index.write_text(text[: len(text) // 2])
    with pytest.raises(train.CheckpointError, match="not valid JSON"):
        train.load_checkpoint(tmp_path, like={"model": model})
    with pytest.raises(train.CheckpointError, match="no checkpoint"):
        train.load_checkpoint(tmp_path / "nowhere", like={"model": model})


def test_template_mismatch_names_the_leaf(tmp_path):
    model, _ = _saved(tmp_path)
    other = nn.Sequential(
        [nn.Linear(5, 8, key=0), nn.tanh, nn.Dropout(0.2), nn.Linear(8, 3, key=0)]
    )
    with pytest.raises(train.CheckpointError, match=r"model.layers.0.weight.*\[16, 5\].*\[8, 5\]"):
        train.load_checkpoint(tmp_path, like={"model": other})
    with pytest.raises(train.CheckpointError, match="missing from the checkpoint"):
        train.load_checkpoint(tmp_path, like={"model": model, "extra": np.zeros(1)})
    with pytest.raises(train.CheckpointError, match="float32"):
        train.load_checkpoint(tmp_path, like={"model": nn.astype(model, np.float32)})


def test_rng_is_restored_in_place(tmp_path):
    g = np.random.default_rng(5)
    g.random(3)
    train.save_checkpoint(tmp_path, {"x": np.zeros(1)}, rng={"data": g})
    expected = g.random(4)
    target = np.random.default_rng(0)
    _, info = train.load_checkpoint(tmp_path, like={"x": np.zeros(1)}, rng={"data": target})
    assert info.rng["data"] is target
    np.testing.assert_array_equal(target.random(4), expected)
