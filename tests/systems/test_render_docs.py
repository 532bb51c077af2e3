"""The code samples of docs/render.md run as written (each block on its own) and print what
the guide states."""

from __future__ import annotations

import pytest

from doc_samples import Guide

GUIDE = Guide("render.md", min_blocks=8)


def test_the_guide_has_samples():
    GUIDE.check_count()


@pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
def test_doc_block_runs(index, capsys):
    GUIDE.run_block(index)
