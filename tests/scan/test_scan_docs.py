"""The code samples of docs/scan.md run as written (in order, sharing one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "scan.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_guide_has_samples():
    assert len(BLOCKS) >= 7


def test_doc_blocks_run_in_order(capsys):
    namespace = {"__name__": "__doc_block__"}
    for index, block in enumerate(BLOCKS):
        exec(compile(block, f"{DOC}:block{index}", "exec"), namespace)
    assert "4 3636" in capsys.readouterr().out
