"""Run every ```python code block of the given Markdown files, each in a fresh interpreter.

A block fails if it raises or prints a warning turned error (``-W error``). A block whose
first line is ``# doc: skip`` is not run. Exits non-zero if any block fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def main(paths: list[str]) -> int:
    failures = 0
    total = 0
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            code = match.group(1)
            line = text.count("\n", 0, match.start()) + 1
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
    print(f"code samples: {total - failures} ran, {failures} failed")
    return 1 if failures or not total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
