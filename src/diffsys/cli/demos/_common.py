"""What the component demos share: the report folder, summary.json, optional PNG plots."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["Report", "one_blas_thread"]


class Report:
    """A demo's report folder and its console: ``say`` prints (and keeps) a line, ``figure``
    makes a matplotlib figure saved as a PNG (skipped, with a note, without matplotlib or with
    plots off), ``finish`` writes ``summary.json``."""

    def __init__(self, name: str, out: str, *, plots: bool = True, stream: TextIO | None = None):
        self.name = name
        self.dir = Path(out)
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"diffsys demo {name}: --out {str(self.dir)!r} is not a folder")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stream = stream or sys.stdout
        self.files: list[str] = []
        self.notes: list[str] = []
        self.start = time.perf_counter()
        self.Figure = None  # matplotlib.figure.Figure: no pyplot, no backend switch
        if plots:
            try:
                from matplotlib.figure import Figure

                self.Figure = Figure
            except ImportError:
                self.notes.append("no PNG plots: matplotlib is not installed (the 'plot' extra)")
        else:
            self.notes.append("no PNG plots: --no-plots")

    def say(self, line: str = "") -> None:
        print(line, file=self.stream, flush=True)

    def figure(self, filename: str, draw) -> None:
        """``draw(fig)`` fills a new figure, saved as ``filename`` in the report folder."""
        if self.Figure is None:
            return
        fig = self.Figure(figsize=(6.4, 4.2))
        draw(fig)
        fig.tight_layout()
        fig.savefig(self.dir / filename, dpi=90)
        self.files.append(filename)

    def finish(self, summary: dict) -> dict:
        summary = dict(summary, seconds=round(time.perf_counter() - self.start, 2))
        summary["files"] = sorted([*self.files, "summary.json"])
        summary["notes"] = self.notes
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        for note in self.notes:
            self.say(f"note: {note}")
        self.say(f"report: {self.dir} ({', '.join(summary['files'])})")
        return summary


def one_blas_thread():
    """BLAS on one thread while a demo runs, when threadpoolctl is there (scikit-learn brings
    it): the demos' matrices are small, and on a busy machine BLAS threads that wait for each
    other make small convolutions ten times slower. A no-op context without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
