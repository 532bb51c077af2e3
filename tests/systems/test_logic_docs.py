"""The code samples of docs/logic.md and docs/dp.md run as written and print what they state."""

from __future__ import annotations

from doc_samples import Guide

LOGIC = Guide("logic.md", min_blocks=4)
DP = Guide("dp.md", min_blocks=3)


def test_the_guides_have_samples():
    LOGIC.check_count()
    DP.check_count()


def test_logic_guide_runs_in_order():
    LOGIC.run()


def test_dp_guide_runs_in_order():
    DP.run()

