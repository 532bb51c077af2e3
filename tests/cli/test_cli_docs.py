"""The code samples of docs/demo.md run as written (each block on its own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "demo.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_guide_has_samples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_block_runs(index, capsys):
    exec(compile(BLOCKS[index], f"{DOC}:block{index}", "exec"), {"__name__": "__doc_block__"})


def test_the_options_table_lists_every_option():
    from diffsys.cli import build_parser

    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    options = {o for a in demo._actions for o in a.option_strings if o.startswith("--")}
    text = DOC.read_text(encoding="utf-8")
    assert {o for o in options if o != "--help"} <= set(re.findall(r"`(--[a-z-]+)", text))
