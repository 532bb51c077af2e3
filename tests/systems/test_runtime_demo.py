"""``diffsys demo scheduler --quick`` runs, writes its report, and its numbers hold together."""

from __future__ import annotations

import json

from diffsys.cli import main


def test_scheduler_demo_quick(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["demo", "scheduler", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lindley_vs_events_max_abs"] < 1e-9
    for key in ("mean", "p95", "cache"):
        held = summary[key]["held_out"]
        assert {"gradient", "random search"} <= set(held)
        assert len(summary[key]["gradient_relaxed"]) == len(summary[key]["gradient_exact"])
    assert {"FIFO round-robin", "SJF least-loaded"} <= set(summary["mean"]["held_out"])
    assert {"LRU", "LFU"} <= set(summary["cache"]["held_out"])
    # least-loaded beats round-robin on these bursty traces
    mean = summary["mean"]["held_out"]
    assert mean["FIFO least-loaded"] < mean["FIFO round-robin"]
    assert {"latency_ccdf.png", "mismatch.png", "held_out.png"} <= set(summary["files"])
    printed = capsys.readouterr().out
    assert "5. relaxation mismatch" in printed
