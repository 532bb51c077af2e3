"""docs/runtime.md runs as written (its blocks in order, one session, printing what it states),
and the docstring examples of diffsys.systems.runtime give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

from doc_samples import Guide

GUIDE = Guide("runtime.md", min_blocks=4)


def test_the_guide_runs_in_order():
    namespace = GUIDE.run()
    assert "result" in namespace


@pytest.mark.parametrize(
    "name",
    [
        "diffsys.systems.runtime.workload",
        "diffsys.systems.runtime.exact",
        "diffsys.systems.runtime.ops",
        "diffsys.systems.runtime.train",
        "diffsys.systems.runtime.modules",
        "diffsys.systems.runtime.stages",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
