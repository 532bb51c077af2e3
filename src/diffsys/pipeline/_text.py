"""Plain-text tables for the pipeline's reports."""

from __future__ import annotations


def table(head: tuple, rows: list[tuple]) -> str:
    """Left-aligned columns, a rule under the header.

    >>> print(table(("a", "bb"), [(1, 2.5)]))
    a  bb
    -  ---
    1  2.5
    """
    rows = [tuple(str(x) for x in r) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]

    def line(cells) -> str:
        return "  ".join(x.ljust(w) for x, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])
