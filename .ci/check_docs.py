"""Run every ```python code block of the given Markdown files, each in a fresh interpreter,
and check what it prints against the ```output block that follows it.

A block fails if it raises, prints a warning turned error (``-W error``), or prints other
than its ```output block shows (numbers to a tolerance, ``...`` for any text; a block with no
```output block must print nothing): the comparison is ``tests/doc_samples.py``'s, shared with
the test suite's guide runners. A block whose first line is ``# doc: skip`` is not run.
Exits non-zero if any block fails.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from doc_samples import compare_output, python_blocks  # noqa: E402


def main(paths: list[str]) -> int:
    failures = 0
    total = 0
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        for code, expected, line in python_blocks(text, path):
            if code.lstrip().startswith("# doc: skip"):
                continue
            total += 1
            with tempfile.TemporaryDirectory() as tmp:
                script = Path(tmp) / "block.py"
                script.write_text(code, encoding="utf-8")
                proc = subprocess.run(
                    [sys.executable, "-W", "error", str(script)],
                    capture_output=True, text=True, timeout=300, cwd=tmp,
                )
            if proc.returncode != 0:
                failures += 1
                print(f"FAILED {path}:{line}\n{proc.stdout}{proc.stderr}", file=sys.stderr)
                continue
            if expected is None:
                problem = (
                    f"it printed\n{proc.stdout.rstrip()}\nbut no ```output block follows it"
                    if proc.stdout.strip()
                    else None
                )
            else:
                problem = compare_output(expected, proc.stdout)
            if problem is not None:
                failures += 1
                print(f"FAILED {path}:{line}: {problem}", file=sys.stderr)
    print(f"code samples: {total - failures} ran, {failures} failed")
    return 1 if failures or not total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
