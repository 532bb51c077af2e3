"""The code samples of docs/relax.md run as written (in order, sharing one namespace)."""

from __future__ import annotations

from doc_samples import Guide

GUIDE = Guide("relax.md", min_blocks=8)


def test_the_guide_has_samples():
    GUIDE.check_count()


def test_doc_blocks_run_in_order():
    GUIDE.run()
