"""grad_report: per named leaf norms, max |g|, NaN/Inf and zero flags; table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn
from diffsys.debug import GradReport, grad_report


class Encoder(nn.Module):
    conv1: nn.Linear
    conv2: nn.Linear

    def __init__(self, rng):
        self.conv1 = nn.Linear(4, 6, key=rng)
        self.conv2 = nn.Linear(6, 3, key=rng)

    def __call__(self, x, *, key=None):
        return self.conv2(dnp.tanh(self.conv1(x)))


class Net(nn.Module):
    encoder: Encoder
    gate: nn.Linear  # a dead branch: relu of a large negative pre-activation is 0 everywhere
    head: nn.Linear

    def __init__(self):
        rng = np.random.default_rng(0)
        self.encoder = Encoder(rng)
        gate = nn.Linear(3, 3, key=rng)
        self.gate = gate.replace(bias=np.full(3, -100.0))
        self.head = nn.Linear(3, 1, key=rng)

    def __call__(self, x, *, key=None):
        h = self.encoder(x)
        return self.head(h + nn.relu(self.gate(h)))


def loss(model, x, y):
    return dnp.mean((model(x)[:, 0] - y) ** 2)


def test_dead_branch_flagged_and_norms_match_the_gradient():
    model = Net()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal(8)
    report = grad_report(loss, model, x, y)
    assert isinstance(report, GradReport)
    grads = ds.grad(loss)(model, x, y)
    want = dict(grads.named_parameters())
    assert report.names == list(want)
    assert "encoder.conv1.weight" in report.names
    for leaf in report:
        g = want[leaf.name]
        assert leaf.shape == g.shape and leaf.dtype == "float64"
        np.testing.assert_allclose(leaf.norm, np.linalg.norm(g), rtol=1e-12)
        np.testing.assert_allclose(leaf.max_abs, np.max(np.abs(g)), rtol=1e-12)
        assert not (leaf.nan or leaf.inf)
    assert report.zero == ["gate.weight", "gate.bias"]
    assert not report.ok
    np.testing.assert_allclose(report.value, loss(model, x, y), rtol=1e-12)
    np.testing.assert_array_equal(report.grads.encoder.conv1.weight, want["encoder.conv1.weight"])


def test_table_and_json():
    report = grad_report(loss, Net(), np.ones((2, 4)), np.zeros(2))
    text = str(report)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["leaf", "shape", "dtype"]
    gate_rows = [line for line in lines if line.startswith("gate.")]
    assert len(gate_rows) == 2 and all(row.endswith("ZERO") for row in gate_rows)
    assert "zero gradient: gate.weight, gate.bias" in lines[-1]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["zero"] == ["gate.weight", "gate.bias"]
    assert {leaf["name"] for leaf in data["leaves"]} == set(report.names)
    assert data["leaves"][0]["shape"] == list(report.leaves[0].shape)


def test_nan_and_inf_flags_and_json_has_no_nan():
    def f(p):
        return dnp.sum(dnp.sqrt(p["a"])) + dnp.sum(p["b"] * dnp.log(p["c"]))

    p = {"a": np.array([0.0, 1.0]), "b": np.array([1.0]), "c": np.array([-1.0])}
    with np.errstate(all="ignore"):
        report = grad_report(f, p)
    assert report["a"].inf and not report["a"].nan
    assert report["b"].nan  # d/db = log(c) with c < 0
    assert report.nonfinite == ["a", "b"] and report["c"].finite
    assert "NaN" in str(report) and "Inf" in str(report)
    text = json.dumps(report.to_dict(), allow_nan=False)  # no bare NaN in the JSON
    assert json.loads(text)["leaves"][0]["norm"] is None


def test_several_arguments_are_prefixed_by_parameter_name():
    def f(weights, bias, n_steps):
        return dnp.sum(weights["w"] * bias) * n_steps

    report = grad_report(f, {"w": np.ones(2)}, np.array(2.0), 3, argnums=(0, 1))
    assert report.names == ["weights.w", "bias"]
    assert report["bias"].norm == pytest.approx(6.0)
    assert isinstance(report.grads, tuple) and report.grads[1].shape == ()


def test_single_array_argument_uses_its_name_and_int_leaves_are_skipped():
    def f(x, table):
        return dnp.sum(x**2) + table["scale"] * 0.0

    report = grad_report(f, np.array([1.0, -3.0]), {"scale": 2.0})
    assert report.names == ["x"] and report["x"].max_abs == 6.0
    report = grad_report(f, np.ones(2), {"scale": 2.0, "ids": np.arange(3)}, argnums=1)
    assert report.names == ["scale"] and report.zero == ["scale"]
    assert report.grads["ids"] is None
    with pytest.raises(TypeError, match="no floating-point leaf"):
        grad_report(f, np.ones(2), {"ids": np.arange(3)}, argnums=1)
    with pytest.raises(KeyError, match="no leaf named 'nope'"):
        report["nope"]


def test_has_aux():
    report = grad_report(lambda x: (dnp.sum(x), "aux"), np.ones(3), has_aux=True)
    assert report.aux == "aux" and report.value == 3.0 and report.ok
