"""The code samples of docs/nn.md run as written (each block on its own)."""

from __future__ import annotations

import pytest

from doc_samples import Guide

pytest.importorskip("safetensors")

GUIDE = Guide("nn.md", min_blocks=8)


def test_the_guide_has_samples():
    GUIDE.check_count()


@pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
def test_doc_block_runs(index, capsys):
    GUIDE.run_block(index)
