"""The examples in the docstrings of systems.nas, systems.augment and optim.bilevel run and
give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import diffsys.systems.augment
import diffsys.systems.nas

MODULES = ["diffsys.optim.bilevel"] + [
    f"{pkg.__name__}.{m.name}"
    for pkg in (diffsys.systems.nas, diffsys.systems.augment)
    for m in pkgutil.iter_modules(pkg.__path__)
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    assert result.attempted > 0, f"{name} has no docstring example"
