"""The one runner for the tests that run a markdown guide's ``python`` code blocks.

Test folders are not packages: ``tests/conftest.py`` puts this folder on ``sys.path``, so
every test module can ``from doc_samples import Guide``.

Usage, in a test module::

    GUIDE = Guide("relax.md", min_blocks=8)        # docs/relax.md

    def test_the_guide_runs_in_order():
        namespace = GUIDE.run()                    # every block in order, one namespace

    @pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
    def test_block_runs(index):
        GUIDE.run_block(index)                     # one block on its own
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


class Guide:
    """The ``python`` code blocks of ``docs/<name>``, and ways to run them as written.

    A block's tracebacks name it ``<path>:block<k>`` with the line inside the block."""

    def __init__(self, name: str, *, min_blocks: int = 1) -> None:
        self.path = DOCS / name
        if not self.path.is_file():
            raise FileNotFoundError(f"doc_samples: no guide {self.path}")
        self.text = self.path.read_text(encoding="utf-8")
        self.blocks: list[str] = _BLOCK.findall(self.text)
        self.min_blocks = min_blocks

    def check_count(self) -> None:
        """Fail unless the guide has at least ``min_blocks`` blocks (a renamed fence, or a
        guide cut short, would otherwise leave nothing to run)."""
        assert len(self.blocks) >= self.min_blocks, (
            f"{self.path}: {len(self.blocks)} ```python blocks, expected at least {self.min_blocks}"
        )

    def run_block(self, index: int, namespace: dict | None = None) -> dict:
        """Run block ``index`` in ``namespace`` (a fresh one by default) and return it."""
        if namespace is None:
            namespace = {"__name__": "__doc_block__"}
        code = compile(self.blocks[index], f"{self.path}:block{index}", "exec")
        exec(code, namespace)  # noqa: S102 - the guide's own samples, run as a reader would
        return namespace

    def run(self, namespace: dict | None = None) -> dict:
        """Run every block in order in one namespace (the guide is one session); return it."""
        self.check_count()
        if namespace is None:
            namespace = {"__name__": "__doc_block__"}
        for index in range(len(self.blocks)):
            self.run_block(index, namespace)
        return namespace
