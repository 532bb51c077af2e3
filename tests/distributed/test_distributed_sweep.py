"""Sweeps: values, gradients and reports per configuration, retries, the results table."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import dp_helpers as h
import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp

pytest.importorskip("dask.distributed")  # the distributed extra (in the test extra)
dist = importlib.import_module("diffsys.distributed")

h.register_by_value(h)
h.register_by_value(sys.modules[__name__])


def fall_distance(params, config):
    """A tiny differentiable simulation: a falling body with drag, Euler steps."""
    g, drag = params["g"], params["drag"]
    v = dnp.zeros(())
    x = dnp.zeros(())
    for _ in range(config["steps"]):
        v = v + config["dt"] * (g - drag * v * config["area"])
        x = x + config["dt"] * v
    return x


def test_sweep_gathers_values_and_gradients_in_order(client):
    params = {"g": np.array(9.81), "drag": np.array(0.3)}
    configs = [{"dt": 0.01, "steps": s, "area": a} for s in (10, 50) for a in (0.5, 1.0, 2.0)]
    result = dist.sweep(dist.ValueAndGrad(fall_distance, params), configs, client=client)
    assert len(result) == 6
    for row, config in zip(result.rows, configs):
        value, grad = ds.value_and_grad(fall_distance)(params, config)
        assert row["steps"] == config["steps"] and row["area"] == config["area"]
        assert row["value"] == pytest.approx(float(value), rel=1e-14)
        np.testing.assert_allclose(row["grad"]["drag"], grad["drag"], rtol=1e-14)
        assert row["worker"].startswith("tcp://")
    values = result.column("value")
    assert values.shape == (6,) and np.argmin(values) == 2  # short fall, most drag
    assert result.best("value") is result.rows[2]
    text = result.table()
    assert text.splitlines()[0].split() == ["dt", "steps", "area", "value", "grad", "seconds"]
    assert "dict" in text.splitlines()[2]


def flaky(config):
    """Fails the first time it sees each configuration (a marker file remembers)."""
    marker = Path(config["dir"]) / f"seen-{config['k']}"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError(f"transient failure on k={config['k']}")
    return {"value": config["k"] ** 2}


def test_retries_rerun_failed_tasks(client, tmp_path):
    configs = [{"dir": str(tmp_path), "k": k} for k in range(4)]
    result = dist.sweep(flaky, configs, client=client, retries=1)
    assert result.column("value").tolist() == [0.0, 1.0, 4.0, 9.0]
    assert not result.errors


def test_without_retries_the_error_names_the_configuration(client, tmp_path):
    configs = [{"dir": str(tmp_path), "k": k} for k in range(2)]
    with pytest.raises(dist.WorkerError) as info:
        dist.sweep(flaky, configs, client=client, retries=0)
    assert info.value.where.startswith("sweep configuration 0 {")
    assert "RuntimeError: transient failure on k=0" in str(info.value)
    assert "in flaky" in info.value.remote_traceback


def test_record_keeps_going_and_marks_the_row(client, tmp_path):
    configs = [{"dir": str(tmp_path), "k": k} for k in range(3)]
    (tmp_path / "seen-1").write_text("1")  # only k=1 succeeds at the first try
    result = dist.sweep(flaky, configs, client=client, retries=0, on_error="record")
    assert [i for i, _ in result.errors] == [0, 2]
    assert result.rows[1]["value"] == 1 and "error" not in result.rows[1]
    assert result.rows[0]["error"].startswith("RuntimeError")
    assert np.isnan(result.column("value")[0])
    path = tmp_path / "sweep.csv"
    result.to_csv(path)
    assert path.read_text().splitlines()[0].startswith("dir,k,error")


def test_sweep_function_must_return_a_dict(client):
    with pytest.raises(dist.WorkerError, match="must return a dict"):
        dist.sweep(lambda c: c, [1], client=client, retries=0)
