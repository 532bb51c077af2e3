"""The code samples of docs/physics.md run in order and print what the guide states."""

from __future__ import annotations

from doc_samples import Guide

GUIDE = Guide("physics.md", min_blocks=10)


def test_the_guide_has_samples():
    GUIDE.check_count()


def test_the_guide_runs_in_order():
    GUIDE.run()
