"""The code samples of docs/debug.md run as written (in order, sharing one namespace)."""

from __future__ import annotations

from doc_samples import Guide

GUIDE = Guide("debug.md", min_blocks=4)


def test_the_guide_has_samples():
    GUIDE.check_count()


def test_doc_blocks_run_in_order(capsys):
    GUIDE.run()
    out = capsys.readouterr().out
    assert "VJP rule of primitive 'sqrt' for its argument 0" in out
    assert "block0:6, in loss" in out  # the user's line: line 6 of the first block
    assert "zero gradient: gate.weight, gate.bias" in out
