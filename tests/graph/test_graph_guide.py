"""The code samples of docs/graph.md run as written, in order (the guide is one session),
print what the guide shows, and the listing it shows is exactly the one ``str(graph)`` prints."""

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
    shown = GUIDE.outputs[0]  # the listing, then the replayed value and the gradient
    listing = re.match(r"(graph .*?\n  return %\d+\n)", shown, re.S).group(1)
    assert str(namespace["g"]) + "\n" == listing
    assert listing in capsys.readouterr().out
