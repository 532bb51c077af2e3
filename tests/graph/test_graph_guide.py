"""The code samples of docs/graph.md run as written, in order (the guide is one session),
and the listing the guide shows is the one ``str(graph)`` prints."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

pytest.importorskip("safetensors")

DOC = Path(__file__).resolve().parents[2] / "docs" / "graph.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, re.S | re.M)


def test_the_guide_runs_and_shows_the_real_listing(capsys):
    assert len(BLOCKS) >= 6
    namespace = {"__name__": "__doc_block__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sample may warn unless it says so
        for k, block in enumerate(BLOCKS):
            exec(compile(block, f"{DOC}:block{k}", "exec"), namespace)  # noqa: S102
    listing = re.search(r"^```text\n(.*?)^```", TEXT, re.S | re.M).group(1)
    assert str(namespace["g"]) + "\n" == listing
    assert listing in capsys.readouterr().out
