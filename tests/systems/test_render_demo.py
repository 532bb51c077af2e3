"""``diffsys demo render``: runs, learns, and writes its report."""

from __future__ import annotations

import json

from diffsys.cli import main


def test_render_demo_quick(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "render", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["learned"] and summary["psnr_final_hard_db"] > summary["psnr_initial_db"] + 3
    assert summary["pairs"] < summary["dense_pairs"]
    for name in ("images.png", "target.png", "initial.png", "fitted.png", "psnr.png"):
        assert (out / name).stat().st_size > 0
    assert "[4/4] report" in capsys.readouterr().out


def test_render_demo_no_plots(tmp_path):
    out = tmp_path / "r"
    assert main(["demo", "render", "--quick", "--no-plots", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["files"] == ["summary.json"]
