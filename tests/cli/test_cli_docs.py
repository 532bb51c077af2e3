"""The code samples of docs/demo.md run as written (each block on its own)."""

from __future__ import annotations

import re

import pytest

from doc_samples import Guide

GUIDE = Guide("demo.md", min_blocks=2)


def test_the_guide_has_samples():
    GUIDE.check_count()


@pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
def test_doc_block_runs(index, capsys):
    GUIDE.run_block(index)


def test_the_options_table_lists_every_option():
    from diffsys.cli import build_parser

    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    options = {o for a in demo._actions for o in a.option_strings if o.startswith("--")}
    assert {o for o in options if o != "--help"} <= set(re.findall(r"`(--[a-z-]+)", GUIDE.text))
