"""The code samples of docs/nas.md and docs/augment.md run as written and print what they
state; ``diffsys demo nas --quick`` and ``diffsys demo augment --quick`` run and report."""

from __future__ import annotations

import json

from diffsys.cli import main
from doc_samples import Guide

NAS = Guide("nas.md", min_blocks=7)
AUGMENT = Guide("augment.md", min_blocks=5)


def test_the_guides_have_samples():
    NAS.check_count()
    AUGMENT.check_count()


def test_nas_guide_runs_in_order():
    NAS.run()


def test_augment_guide_runs_in_order():
    AUGMENT.run()


def test_demo_nas_quick(tmp_path, capsys):
    assert main(["demo", "nas", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mismatch"]["accuracy_relaxed"] > 0.2
    cells = summary["compare"]["cells"]
    assert "found (first_order)" in cells and len(cells) == 3
    budget = summary["compare"]["budget_parameters"]
    for row in cells.values():
        assert abs(row["parameters"] - budget) <= 0.1 * budget
    for name in ("nas_weights.png", "nas_compare.png", "nas_search_loss.png"):
        assert (tmp_path / name).exists()
    assert "[3] found cell vs random cells" in capsys.readouterr().out


def test_demo_augment_quick(tmp_path, capsys):
    assert main(["demo", "augment", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    objective = summary["search"]["match"]["objective"]
    assert objective[-1] < objective[0]
    assert set(summary["compare"]["policies"]) == {
        "no augmentation", "fixed policy", "learned (match)"}
    for name in ("augment_policy.png", "augment_examples.png", "augment_compare.png"):
        assert (tmp_path / name).exists()
    assert "[3] fresh classifiers" in capsys.readouterr().out
