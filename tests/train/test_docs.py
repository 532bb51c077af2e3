"""The code samples of docs/nn.md run as written (each block on its own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("safetensors")

DOC = Path(__file__).resolve().parents[2] / "docs" / "nn.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_guide_has_samples():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_block_runs(index, capsys):
    exec(compile(BLOCKS[index], f"{DOC}:block{index}", "exec"), {"__name__": "__doc_block__"})
