"""The code samples of docs/compress.md run in order and print what the guide states."""

from __future__ import annotations

import pytest

from doc_samples import Guide

pytest.importorskip("diffsys.systems.compress")

GUIDE = Guide("compress.md", min_blocks=7)


def test_the_guide_has_samples():
    GUIDE.check_count()


def test_the_guide_runs_in_order():
    GUIDE.run()
