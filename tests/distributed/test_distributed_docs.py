"""docs/distributed.md runs in order (one session, one local cluster) and prints what it says."""

from __future__ import annotations

import pytest

from doc_samples import Guide

GUIDE = Guide("distributed.md", min_blocks=8)


def test_the_guide_runs_in_order():
    pytest.importorskip("dask.distributed")  # the distributed extra (in the test extra)
    GUIDE.run()
