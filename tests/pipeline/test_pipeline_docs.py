"""docs/pipeline.md's samples run as written (in order, one namespace), and the docstring
examples of diffsys.pipeline give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import sys
import types

import pytest

import diffsys.pipeline
from doc_samples import Guide

GUIDE = Guide("pipeline.md", min_blocks=10)
MODULES = sorted(
    f"diffsys.pipeline.{m.name}" for m in pkgutil.iter_modules(diffsys.pipeline.__path__)
)


def test_the_guide_has_samples():
    GUIDE.check_count()


def test_doc_blocks_run_in_order(capsys, monkeypatch):
    # a real module: the guide defines an nn.Module (a dataclass), which needs one
    module = types.ModuleType("pipeline_doc_blocks")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = GUIDE.run(module.__dict__)
    out = capsys.readouterr().out
    assert "stage 'pre' input 0 ('x'): expected shape ('B', 16), got (4, 15)" in out
    assert "stage 'clobber' modified its input in place" in out
    assert "stage 'gain'" in out
    assert namespace["bad_report"].worst == "cube"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
