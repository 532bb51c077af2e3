"""The one runner for the tests that run a markdown guide's ``python`` code blocks, and check
what they print.

Test folders are not packages: ``tests/conftest.py`` puts this folder on ``sys.path``, so
every test module can ``from doc_samples import Guide`` (``.ci/check_docs.py`` imports it too).

A block that prints shows what it prints in an ``output`` block right after it (blank lines
only in between)::

    ```python
    print(np.sqrt(np.array([2.0, 8.0])))
    ```

    ```output
    [1.41421356 2.82842712]
    ```

:func:`compare_output` compares the two: numbers to a relative tolerance (``RTOL``, plus
``ATOL`` for numbers near zero; integers exactly), the text between them exactly up to
whitespace, and ``...`` in the expected text stands for any text (an address, a path, a
timing). A block that prints without an ``output`` block, or an ``output`` block that does
not follow a ``python`` block, fails: a guide states the values it prints.
``python tests/doc_samples.py docs/<name>.md`` writes (or refreshes) the ``output`` blocks
from what the blocks print today; review the diff.

Usage, in a test module::

    GUIDE = Guide("relax.md", min_blocks=8)        # docs/relax.md

    def test_the_guide_runs_in_order():
        namespace = GUIDE.run()                    # every block in order, one namespace

    @pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
    def test_block_runs(index):
        GUIDE.run_block(index)                     # one block on its own
"""

from __future__ import annotations

import contextlib
import difflib
import io
import math
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(text: str, where: str = "") -> list[tuple[str, str | None, int]]:
    """``(code, expected output or None, line)`` for each ``python`` block of a markdown text;
    ``where`` names the file in errors."""
    blocks: list[tuple[str, str | None, int]] = []
    previous_end, previous_python = 0, False
    for match in _FENCE.finditer(text):
        info, body = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if info == "python":
            blocks.append((body, None, line))
        elif info == "output":
            between = text[previous_end : match.start()]
            if not (previous_python and between.strip() == ""):
                raise ValueError(
                    f"{where}:{line}: an ```output block must follow a ```python block, with "
                    "only blank lines in between"
                )
            blocks[-1] = (blocks[-1][0], body, blocks[-1][2])
        previous_end, previous_python = match.end(), info == "python"
    return blocks


RTOL = 1e-4
ATOL = 1e-9
_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])|[-+]?(?:nan|inf)\b"
_TOKEN = re.compile(rf"(\.\.\.)|({_NUMBER})|\s+|(\w+|\S)")
_ANY = object()  # ``...`` in the expected text


def _tokens(text: str, *, wildcards: bool) -> list:
    """Numbers as ``(text, float)``, ``...`` as ``_ANY`` (if ``wildcards``), words and single
    punctuation characters as strings; whitespace dropped (a word boundary is kept by the
    tokens themselves: ``1 2`` is two numbers, ``12`` one)."""
    out: list = []
    for ellipsis, number, other in _TOKEN.findall(text):
        if ellipsis:
            out.append(_ANY if wildcards else "...")
        elif number:
            out.append((number, float(number)))
        elif other:
            out.append(other)
    return out


def _same(want, got, rtol: float, atol: float) -> bool:
    if isinstance(want, tuple) != isinstance(got, tuple):
        return False
    if not isinstance(want, tuple):
        return want == got
    (w_text, w), (_, g) = want, got
    if re.fullmatch(r"[-+]?\d+", w_text):  # an integer: a count, an index, a shape
        return g == w
    if math.isnan(w) or math.isnan(g):
        return math.isnan(w) and math.isnan(g)
    return math.isclose(g, w, rel_tol=rtol, abs_tol=atol)


def _glob_match(pattern: list, tokens: list, rtol: float, atol: float) -> bool:
    """Whether ``tokens`` match ``pattern``, where ``_ANY`` stands for any run of tokens."""
    i = j = 0
    star, resume = -1, 0
    while j < len(tokens):
        if i < len(pattern) and pattern[i] is not _ANY and _same(pattern[i], tokens[j], rtol, atol):
            i, j = i + 1, j + 1
        elif i < len(pattern) and pattern[i] is _ANY:
            star, resume = i, j
            i += 1
        elif star >= 0:
            resume += 1
            i, j = star + 1, resume
        else:
            return False
    return all(p is _ANY for p in pattern[i:])


def _show(token) -> str:
    return token[0] if isinstance(token, tuple) else str(token)


def compare_output(
    expected: str, actual: str, *, rtol: float = RTOL, atol: float = ATOL
) -> str | None:
    """``None`` if ``actual`` (what a block printed) matches ``expected`` (what the guide
    shows), else a message that says where they differ."""
    pattern = _tokens(expected, wildcards=True)
    tokens = _tokens(actual, wildcards=False)
    if _glob_match(pattern, tokens, rtol, atol):
        return None
    if _ANY not in pattern:  # name the first difference
        for want, got in zip(pattern, tokens, strict=False):
            if not _same(want, got, rtol, atol):
                if isinstance(want, tuple) and isinstance(got, tuple):
                    return (
                        f"the guide shows {want[0]} where the block printed {got[0]} (rtol "
                        f"{rtol:g}, atol {atol:g}); printed:\n{actual.rstrip()}"
                    )
                break
    diff = "\n".join(
        difflib.unified_diff(
            expected.strip().splitlines(), actual.strip().splitlines(),
            "the guide shows", "the block printed", lineterm="",
        )
    )
    return f"the printed text differs from the guide's:\n{diff}"


class _Tee(io.StringIO):
    def __init__(self, stream) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)


class Guide:
    """The ``python`` code blocks of ``docs/<name>``, and ways to run them as written and check
    what they print against the guide's ``output`` blocks.

    A block's tracebacks name it ``<path>:block<k>`` with the line inside the block."""

    def __init__(self, name: str, *, min_blocks: int = 1) -> None:
        self.path = DOCS / name
        if not self.path.is_file():
            raise FileNotFoundError(f"doc_samples: no guide {self.path}")
        self.text = self.path.read_text(encoding="utf-8")
        parsed = python_blocks(self.text, str(self.path))
        self.blocks: list[str] = [code for code, _, _ in parsed]
        self.outputs: list[str | None] = [out for _, out, _ in parsed]
        self.lines: list[int] = [line for _, _, line in parsed]
        self.min_blocks = min_blocks

    def check_count(self) -> None:
        """Fail unless the guide has at least ``min_blocks`` blocks (a renamed fence, or a
        guide cut short, would otherwise leave nothing to run)."""
        assert len(self.blocks) >= self.min_blocks, (
            f"{self.path}: {len(self.blocks)} ```python blocks, expected at least {self.min_blocks}"
        )

    def check_output(self, index: int, printed: str) -> None:
        """Fail unless what block ``index`` printed is what the guide shows after it."""
        where = f"{self.path}:{self.lines[index]} (block {index})"
        expected = self.outputs[index]
        if expected is None:
            assert not printed.strip(), (
                f"{where} printed\n{printed.rstrip()}\nbut the guide shows no ```output block "
                "after it: add one with what it prints"
            )
            return
        problem = compare_output(expected, printed)
        assert problem is None, f"{where}: {problem}"

    def run_block(self, index: int, namespace: dict | None = None) -> dict:
        """Run block ``index`` in ``namespace`` (a fresh one by default), check what it printed
        (it still reaches ``sys.stdout``), and return the namespace."""
        if namespace is None:
            namespace = {"__name__": "__doc_block__"}
        code = compile(self.blocks[index], f"{self.path}:block{index}", "exec")
        tee = _Tee(sys.stdout)
        with contextlib.redirect_stdout(tee):
            exec(code, namespace)  # noqa: S102 - the guide's own samples, run as a reader would
        self.check_output(index, tee.getvalue())
        return namespace

    def run(self, namespace: dict | None = None) -> dict:
        """Run every block in order in one namespace (the guide is one session); return it."""
        self.check_count()
        if namespace is None:
            namespace = {"__name__": "__doc_block__"}
        for index in range(len(self.blocks)):
            self.run_block(index, namespace)
        return namespace


def update(path: Path) -> int:
    """Run the guide's blocks in order (one module namespace) and write what each prints into
    its ``output`` block where that block is missing or no longer matches (blocks that match,
    ``...`` included, are left as written). Returns the number of blocks rewritten. Review the
    diff: the new values are whatever the code prints today."""
    import types

    text = path.read_text(encoding="utf-8")
    module = types.ModuleType("doc_samples_update")
    sys.modules[module.__name__] = module
    printed = []
    for index, (code, _, _) in enumerate(python_blocks(text, str(path))):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(code, f"{path}:block{index}", "exec"), module.__dict__)  # noqa: S102
        printed.append(buffer.getvalue())
    fences = list(_FENCE.finditer(text))
    edits, index = [], -1
    for k, match in enumerate(fences):
        if match.group(1) != "python":
            continue
        index += 1
        out = printed[index]
        after = fences[k + 1] if k + 1 < len(fences) else None
        if after is not None and after.group(1) == "output":  # python_blocks checked the gap
            if compare_output(after.group(2), out) is not None:
                block = f"```output\n{out}```" if out.strip() else ""
                edits.append((match.end(), after.end(), f"\n\n{block}" if block else ""))
        elif out.strip():
            edits.append((match.end(), match.end(), f"\n\n```output\n{out}```"))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    path.write_text(text, encoding="utf-8")
    return len(edits)


if __name__ == "__main__":
    # python tests/doc_samples.py docs/relax.md README.md ...: state what the blocks print
    for name in sys.argv[1:]:
        print(f"{name}: {update(Path(name))} output block(s) written")
