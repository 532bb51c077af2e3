"""``diffsys demo physics --quick`` runs, learns, and writes its report."""

from __future__ import annotations

import json
import os

from PIL import Image

from diffsys.cli import main


def test_physics_demo_quick(tmp_path, capsys):
    out = str(tmp_path / "report")
    code = main(["demo", "physics", "--quick", "--out", out])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for step in ("[1/4] billiards", "[2/4] soft robot", "[3/4] system identification",
                 "[4/4] gradient health"):
        assert step in printed
    summary = json.load(open(os.path.join(out, "summary.json")))
    billiards = summary["billiards"]
    assert billiards["starts"] == len(billiards["shots"]) == 4
    assert billiards["success_rate"] == billiards["successes"] / 4
    for shot in billiards["shots"]:
        assert shot["success"] == (shot["hard_miss"] < 0.1)
    median = sorted(s["loss"][-1] / s["loss"][0] for s in billiards["shots"])[1]
    assert median < 0.5
    robot = summary["robot"]
    assert robot["distance_after"] > robot["distance_before"] + 0.005
    assert max(summary["system_identification"]["relative_error"].values()) < 0.1
    for name in ("billiards.png", "robot.png", "system_identification.png",
                 "gradient_health.png", "billiards.gif"):
        assert os.path.getsize(os.path.join(out, name)) > 1000
    gif = Image.open(os.path.join(out, "billiards.gif"))
    assert gif.n_frames > 10
