"""Bad input: worker exceptions name the shard or configuration with the original traceback;
unreachable schedulers, version mismatches, unsendable functions and a missing extra fail with
clear errors."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time

import dp_helpers as h
import numpy as np
import pytest

import diffsys
from diffsys import optim

pytest.importorskip("dask.distributed")  # the distributed extra (in the test extra)
dist = importlib.import_module("diffsys.distributed")

h.register_by_value(h)
h.register_by_value(sys.modules[__name__])


def broken_loader(i: int) -> dict:
    if i == 1:
        raise FileNotFoundError("no file shard-0001.npz")
    return h.Loader(3)(i)


def loss_that_fails_on_long_shards(params, batch):
    if len(batch["y"]) > 20:
        check_batch_length(batch["y"])
    return h.loss(params, batch)


def check_batch_length(y):
    raise ValueError(f"batch of {len(y)} rows is too long")


def test_loader_error_names_the_shard_and_keeps_the_traceback(client):
    with pytest.raises(dist.WorkerError) as info:
        dist.Trainer(h.loss, h.init_params(), optim.sgd(0.1), broken_loader, n_shards=3,
                     client=client)
    err = info.value
    assert err.where == "loading shard 1"
    assert "FileNotFoundError: no file shard-0001.npz" in str(err)
    assert "in broken_loader" in err.remote_traceback


def test_loss_error_names_the_shard_and_step(client):
    # 61 rows in 3 shards: 21, 20, 20; only shard 0 is too long
    tr = dist.Trainer(loss_that_fails_on_long_shards, h.init_params(), optim.sgd(0.1),
                      h.Loader(3), n_shards=3, client=client)
    with pytest.raises(dist.WorkerError) as info:
        tr.step()
    err = info.value
    assert err.where == "shard 0 (step 0)"
    assert "ValueError: batch of 21 rows is too long" in str(err)
    assert "in check_batch_length" in err.remote_traceback
    assert "in loss_that_fails_on_long_shards" in err.remote_traceback
    assert tr.steps_done == 0  # no update applied
    tr.close()


def test_unreachable_scheduler_fails_within_the_timeout():
    t0 = time.perf_counter()
    with pytest.raises(dist.ClusterError, match=r"no Dask scheduler answered at 'tcp://127.0.0.1:9'"):
        dist.connect("tcp://127.0.0.1:9", timeout=2)
    assert time.perf_counter() - t0 < 20


def test_workers_of_another_version_are_refused(client, monkeypatch):
    real = diffsys.__version__
    assert set(dist.worker_versions(client).values()) == {real}
    monkeypatch.setattr(diffsys, "__version__", "9.9.9")
    with pytest.raises(dist.VersionMismatchError) as info:
        dist.Trainer(h.loss, h.init_params(), optim.sgd(0.1), h.Loader(2), n_shards=2,
                     client=client)
    assert "driver runs diffsys 9.9.9" in str(info.value)
    assert f"run diffsys {real}" in str(info.value)
    with pytest.raises(dist.VersionMismatchError):
        dist.sweep(lambda c: {"value": c}, [1], client=client)


def test_unsendable_loss_explains_what_must_be_importable(client):
    lock = threading.Lock()

    def loss(params, batch):
        with lock:
            return h.loss(params, batch)

    with pytest.raises(dist.SerializationError) as info:
        dist.Trainer(loss, h.init_params(), optim.sgd(0.1), h.Loader(2), n_shards=2,
                     client=client)
    msg = str(info.value)
    assert "objective" in msg and "importable on every worker" in msg and "lock" in msg.lower()


def test_loader_without_n_shards_is_refused(client):
    with pytest.raises(ValueError, match="n_shards"):
        dist.DataParallel(dist.plain_objective(h.loss), h.init_params(), h.Loader(2),
                          client=client)


def test_batch_without_a_batch_axis_is_named():
    with pytest.raises(ValueError, match="leading"):
        dist.batch_size({"x": np.float64(1.0)})


def test_import_without_the_extra_names_it():
    code = (
        "import sys; sys.modules['dask.distributed'] = None\n"
        "try:\n    import diffsys.distributed\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ":".join(sys.path)})
    assert "'distributed' extra" in out.stdout


def test_loss_from_a_module_workers_cannot_import_is_explained(client, tmp_path, monkeypatch):
    (tmp_path / "driver_only_losses.py").write_text(
        "def loss(params, batch):\n    return (params['w1'] ** 2).sum()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # on the driver only: the workers run already
    module = importlib.import_module("driver_only_losses")
    try:
        with pytest.raises(dist.SerializationError) as info:
            dist.Trainer(module.loss, h.init_params(), optim.sgd(0.1), h.Loader(2), n_shards=2,
                         client=client)
    finally:
        sys.modules.pop("driver_only_losses", None)
    msg = str(info.value)
    assert "driver_only_losses" in msg and "importable on every worker" in msg
