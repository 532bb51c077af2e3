"""The code samples of docs/graph.md run as written, in order (the guide is one session),
and the listing the guide shows is the one ``str(graph)`` prints."""

from __future__ import annotations

import re
import warnings

import pytest

from doc_samples import Guide

pytest.importorskip("safetensors")

GUIDE = Guide("graph.md", min_blocks=6)


def test_the_guide_runs_and_shows_the_real_listing(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sample may warn unless it says so
        namespace = GUIDE.run()
    listing = re.search(r"^```text\n(.*?)^```", GUIDE.text, re.S | re.M).group(1)
    assert str(namespace["g"]) + "\n" == listing
    assert listing in capsys.readouterr().out
