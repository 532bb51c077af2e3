"""Test modules need unique file names: the test folders are not packages, so pytest
imports every test module by its base name and two of the same name collide."""

from collections import Counter
from pathlib import Path


def test_test_module_names_are_unique():
    names = Counter(p.name for p in Path(__file__).parent.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], names.most_common(3)
