"""docs/compiler.md runs as written (its blocks in order, one session, printing what it
states), and the docstring examples of diffsys.systems.compiler give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

from doc_samples import Guide

GUIDE = Guide("compiler.md", min_blocks=7)


def test_the_guide_runs_in_order():
    namespace = GUIDE.run()
    assert len(namespace["m"].tried) == 8
    assert all(len(v) == 2 for v in namespace["res"]["seconds"].values())  # the matmul part


@pytest.mark.parametrize(
    "name",
    [
        "diffsys.systems.compiler.exact",
        "diffsys.systems.compiler.kernels",
        "diffsys.systems.compiler.schedule",
        "diffsys.systems.compiler.ops",
        "diffsys.systems.compiler.search",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
