"""``diffsys demo physics --quick`` runs, learns, and writes its report."""

from __future__ import annotations

import json
import os

from diffsys.cli import main


def test_physics_demo_quick(tmp_path, capsys):
    out = str(tmp_path / "report")
    code = main(["demo", "physics", "--quick", "--out", out])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for step in ("[1/3] billiards", "[2/3] system identification", "[3/3] gradient health"):
        assert step in printed
    summary = json.load(open(os.path.join(out, "summary.json")))
    shot = summary["billiards"]["shots"][0]
    assert shot["loss"][-1] < 0.5 * shot["loss"][0]
    assert max(summary["system_identification"]["relative_error"].values()) < 0.1
    for name in ("billiards.png", "system_identification.png", "gradient_health.png"):
        assert os.path.getsize(os.path.join(out, name)) > 1000
