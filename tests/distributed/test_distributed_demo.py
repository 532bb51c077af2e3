"""``diffsys demo distributed --quick``: it trains, matches one process, writes its report."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("dask.distributed")  # the distributed extra (in the test extra)

from diffsys import cli  # noqa: E402


def test_demo_distributed_quick(tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["demo", "distributed", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_param_diff"] <= 1e-12
    assert summary["loss_last"] < summary["loss_first"]
    assert [r["shards"] for r in summary["timing"]] == [1, 2]
    assert all(r["bytes_per_round"] > 0 for r in summary["timing"])
    assert len(summary["sweep"]) == 6
    assert (out / "distributed.png").stat().st_size > 10_000
