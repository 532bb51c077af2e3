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
