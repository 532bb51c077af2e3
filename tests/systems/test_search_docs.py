"""docs/search.md runs as written (its blocks in order, one session), and the docstring
examples of diffsys.systems.search give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("duckdb")

from doc_samples import Guide  # noqa: E402

GUIDE = Guide("search.md", min_blocks=3)


def test_the_guide_runs_in_order():
    namespace = GUIDE.run()
    assert namespace["index"].version >= 1


@pytest.mark.parametrize(
    "name",
    [
        "diffsys.systems.search",
        "diffsys.systems.search.ops",
        "diffsys.systems.search.index",
        "diffsys.systems.search.modules",
        "diffsys.systems.search.stages",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
