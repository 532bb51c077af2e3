"""The code samples of docs/prob.md run as written (in order, sharing one namespace)."""

from __future__ import annotations

from doc_samples import Guide

GUIDE = Guide("prob.md", min_blocks=7)


def test_the_guide_has_samples():
    GUIDE.check_count()


def test_doc_blocks_run_in_order():
    GUIDE.run()
