"""The examples in the docstrings of diffsys.systems.compress run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

compress = pytest.importorskip("diffsys.systems.compress")

MODULES = ["diffsys.systems.compress"] + sorted(
    f"diffsys.systems.compress.{m.name}" for m in pkgutil.iter_modules(compress.__path__)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
