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
    # the scikit-image photograph as a second 2-D target (the 'images' extra, in 'test')
    assert summary["sample_image"] == "astronaut" and summary["sample_learned"]
    assert summary["sample_psnr_final_hard_db"] > summary["sample_psnr_initial_db"] + 3
    for name in ("images.png", "target.png", "initial.png", "fitted.png", "psnr.png", "pose.png",
                 "shape.png", "sample.png"):
        assert (out / name).stat().st_size > 0 and name in summary["files"]
    assert "[10/10] report" in capsys.readouterr().out


def test_sample_image_target():
    import numpy as np

    from diffsys.cli.demos.render import sample_image

    img = sample_image("astronaut", (32, 48))
    assert img.shape == (32, 48, 3) and img.dtype == np.float64
    assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.1  # a photograph, not blank
    gray = sample_image("camera", (16, 16))  # grey images come back as RGB
    assert gray.shape == (16, 16, 3) and np.array_equal(gray[..., 0], gray[..., 2])


def test_without_scikit_image_the_demo_skips_that_step(tmp_path, capsys, monkeypatch):
    import sys

    import pytest

    from diffsys.cli.demos.render import sample_image

    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(ImportError, match="'images' extra"):
        sample_image()
    out = tmp_path / "r"
    assert main(["demo", "render", "--quick", "--no-plots", "--out", str(out)]) == 0
    assert "sample-image target skipped" in capsys.readouterr().out
    assert "sample_image" not in json.loads((out / "summary.json").read_text())


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
