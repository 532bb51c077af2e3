"""``diffsys demo logic --quick`` learns and writes its report."""

from __future__ import annotations

import json

from diffsys.cli import main


def test_demo_logic_quick(tmp_path, capsys):
    assert main(["demo", "logic", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["digit_sums"]["digit_accuracy"] >= 0.8  # 40 steps on 400 pairs
    assert summary["learned_graph"]["edges_recovered"] >= 0.9
    assert summary["alignment"]["objective_barycenter"] < summary["alignment"]["objective_mean"]
    assert (tmp_path / "learned_graph.png").exists() and (tmp_path / "alignment.png").exists()
    assert (tmp_path / "digit_sums.png").exists()
    assert "[1] learned graph" in capsys.readouterr().out


def test_demo_logic_aligns_real_series_with_tslearn_and_says_when_it_cannot(
    tmp_path, monkeypatch, capsys
):
    import sys

    import pytest

    pytest.importorskip("tslearn")
    assert main(["demo", "logic", "--quick", "--no-plots", "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["alignment"]["source"].startswith("UCR Trace")
    monkeypatch.setitem(sys.modules, "tslearn.datasets", None)  # as if tslearn were absent
    assert main(["demo", "logic", "--quick", "--no-plots", "--out", str(tmp_path / "b")]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert "timeseries" in summary["alignment"]["source"]
