"""The code samples of docs/systems-data.md run as written (each block on its own)."""

from __future__ import annotations

import pytest

from doc_samples import Guide

GUIDE = Guide("systems-data.md", min_blocks=6)


def test_the_guide_has_samples():
    GUIDE.check_count()


@pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
def test_doc_block_runs(index, capsys):
    if "pipeline" in GUIDE.blocks[index]:
        pytest.importorskip("diffsys.pipeline")
    GUIDE.run_block(index)
