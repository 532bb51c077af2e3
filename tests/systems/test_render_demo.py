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
    assert len(summary["pose_errors_deg"]) == 2 and 0 <= summary["pose_success_rate"] <= 1
    for name in ("images.png", "target.png", "initial.png", "fitted.png", "psnr.png", "pose.png",
                 "shape.png"):
        assert (out / name).stat().st_size > 0
    assert "[8/8] report" in capsys.readouterr().out


def test_pose_recovery_converges():
    import numpy as np

    from diffsys.cli.demos.render_pose import recover_poses

    result = recover_poses(np.random.default_rng(1), starts=1, steps=100)
    assert result["errors"][0] < 5.0  # from a 20-45 degree turn


def test_render_demo_no_plots(tmp_path):
    out = tmp_path / "r"
    assert main(["demo", "render", "--quick", "--no-plots", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["files"] == ["summary.json"]


def test_shape_from_silhouettes_improves_held_out_iou():
    import numpy as np

    from diffsys.cli.demos.render_shape import fit_shape

    result = fit_shape(steps=12, train_views=4)
    assert np.mean(result["iou_after"]) > np.mean(result["iou_before"]) + 0.01
    assert result["losses"][-1] < result["losses"][0]
