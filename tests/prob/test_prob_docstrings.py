"""The examples in the docstrings of diffsys.prob run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import diffsys.prob

MODULES = sorted(f"diffsys.prob.{m.name}" for m in pkgutil.iter_modules(diffsys.prob.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
