"""A worker process killed in the middle of a round: the round is recomputed elsewhere, no
update is lost or applied twice, the run equals an uninterrupted one bit for bit."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path

import dp_helpers as h
import numpy as np
import pytest

import diffsys as ds
from diffsys import optim

pytest.importorskip("dask.distributed")  # the distributed extra (in the test extra)
dist = importlib.import_module("diffsys.distributed")

h.register_by_value(h)
h.register_by_value(sys.modules[__name__])


def killing_objective(marker: str, at: int):
    base = dist.plain_objective(h.loss)

    def objective(params, batch, step):
        if step == at and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return base(params, batch, step)

    return objective


def run(client, objective, steps: int):
    opt = optim.adam(0.05)
    params = h.init_params()
    state = opt.init(params)
    engine = dist.DataParallel(objective, params, h.Loader(3), n_shards=3, client=client)
    for step in range(steps):
        res = engine.round(params, step)
        updates, state = opt.update(res.grads, state, params)
        params = optim.apply_updates(params, updates)
    engine.close()
    return params


def test_killed_worker_round_is_recomputed(client, tmp_path):
    pids_before = set(client.run(os.getpid).values())
    clean = run(client, dist.plain_objective(h.loss), 6)
    marker = tmp_path / "killed"
    hurt = run(client, killing_objective(str(marker), at=3), 6)
    assert marker.exists()  # a worker really died at step 3
    assert int(marker.read_text()) in pids_before
    for a, b in zip(ds.tree_leaves(hurt), ds.tree_leaves(clean)):
        np.testing.assert_array_equal(a, b)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    assert int(marker.read_text()) not in set(client.run(os.getpid).values())
