"""``diffsys demo compress --quick`` runs, codes the held-out image exactly, and writes its
report (the RD curve beside JPEG among the PNGs)."""

from __future__ import annotations

import json
import os

import pytest

from diffsys.cli import main

pytest.importorskip("diffsys.systems.compress")


def test_compress_demo_quick(tmp_path, capsys):
    out = str(tmp_path / "report")
    code = main(["demo", "compress", "--quick", "--out", out])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for step in ("1. ", "2. training", "3. the held-out image, really coded", "5. coding"):
        assert step in printed
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["ok"] and len(summary["rows"]) == 2
    for row in summary["rows"]:
        assert row["exact"]
        assert abs(row["gap_percent"]) < 2.0  # actual vs estimated bits (128x128: header ~1%)
    rates = [row["bpp_actual"] for row in summary["rows"]]
    assert rates[0] != rates[1]
    for name in ("rd_curve.png", "rates.png", "reconstructions.png", "training.png"):
        assert os.path.getsize(os.path.join(out, name)) > 1000
