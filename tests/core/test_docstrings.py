"""The examples in the engine's docstrings are true."""

import doctest
import importlib

import pytest

MODULES = [
    "diffsys",
    "diffsys.check",
    pytest.param(  # custom_jvp's example: exp(1000) overflows on purpose
        "diffsys.core.custom",
        marks=pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning"),
    ),
    "diffsys.core.primitive",
    "diffsys.core.pytree",
    "diffsys.core.transforms",
    "diffsys.core.warn",
    "diffsys.graph._jit",
    "diffsys.numpy._indexing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    assert result.attempted > 0
