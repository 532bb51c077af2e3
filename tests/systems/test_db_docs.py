"""docs/db.md runs as written (its blocks in order, one session), and the docstring examples
of diffsys.systems.db give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("duckdb")

from doc_samples import Guide  # noqa: E402

GUIDE = Guide("db.md", min_blocks=8)

MODULES = [
    "diffsys.systems.db",
    "diffsys.systems.db.exact",
    "diffsys.systems.db.ops",
    "diffsys.systems.db.modules",
    "diffsys.systems.db.query",
    "diffsys.systems.db.stages",
]


def test_the_guide_runs_in_order():
    namespace = GUIDE.run()
    assert namespace["db"].tables() == ("categories", "products")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
