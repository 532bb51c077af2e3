"""The code samples of docs/jit.md run as written, in order, and print what the guide says."""

from __future__ import annotations

import re
import warnings

from doc_samples import Guide

GUIDE = Guide("jit.md", min_blocks=5)


def test_the_guide_runs_and_prints_what_it_says(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sample may warn unless it says so
        GUIDE.run()
    printed = capsys.readouterr().out.splitlines()
    # every `print(...)   # expected` comment of the guide matches the line printed
    expected = re.findall(r"^print\(.*\)\s+# (.*?)(?::.*)?$", GUIDE.text, re.M)
    assert len(expected) == len(printed) >= 5
    for want, got in zip(expected, printed, strict=True):
        assert got == want, (got, want)
