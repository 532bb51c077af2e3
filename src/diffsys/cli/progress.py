"""Progress of the demo's training runs: a rich progress bar on a terminal when rich is
installed, one plain line per epoch otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["PlainProgress", "RichProgress", "SilentProgress", "make_progress"]


def epoch_line(label: str, epochs: int, row: dict, seconds: float) -> str:
    return (
        f"  {label:<8} epoch {row['epoch']:>2}/{epochs}  loss {row['train_loss']:.4f}  "
        f"train acc {row['train_accuracy']:.3f}  test acc {row['test_accuracy']:.3f}  "
        f"sigma {row['sigma']:.3f}  threshold {row['threshold']:.3f}  ({seconds:.1f} s)"
    )


class SilentProgress:
    """Shows nothing."""

    def start_run(self, label: str, epochs: int, steps_per_epoch: int) -> None:
        self.label, self.epochs = label, epochs
        self._t0 = time.perf_counter()

    def advance(self, loss: float) -> None:
        pass

    def end_epoch(self, row: dict) -> None:
        pass

    def end_run(self) -> None:
        pass


class PlainProgress(SilentProgress):
    """One line per epoch."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def end_epoch(self, row: dict) -> None:
        now = time.perf_counter()
        print(
            epoch_line(self.label, self.epochs, row, now - self._t0), file=self.stream, flush=True
        )
        self._t0 = now


class RichProgress(SilentProgress):
    """A rich progress bar over a run's steps with the running loss; a line per epoch."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console

        self.console = Console(file=stream)
        self.progress = None

    def start_run(self, label: str, epochs: int, steps_per_epoch: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        super().start_run(label, epochs, steps_per_epoch)
        self.progress = Progress(
            TextColumn(f"[bold]{label:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps  loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(label, total=epochs * steps_per_epoch, loss="-")

    def advance(self, loss: float) -> None:
        self.progress.update(self.task, advance=1, loss=f"{loss:.4f}")

    def end_epoch(self, row: dict) -> None:
        now = time.perf_counter()
        self.progress.console.print(
            epoch_line(self.label, self.epochs, row, now - self._t0),
            highlight=False,
            soft_wrap=True,
        )
        self._t0 = now

    def end_run(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_progress(mode: str, stream: TextIO | None = None):
    """``mode``: ``"auto"`` (rich on a terminal when installed, else plain), ``"rich"``,
    ``"plain"`` or ``"none"``."""
    stream = stream or sys.stdout
    if mode == "none":
        return SilentProgress()
    if mode == "plain":
        return PlainProgress(stream)
    try:
        import rich  # noqa: F401
    except ImportError:
        if mode == "rich":
            raise RuntimeError(
                "diffsys demo: --progress rich needs the rich package (pip install rich)"
            ) from None
        return PlainProgress(stream)
    if mode == "rich" or (hasattr(stream, "isatty") and stream.isatty()):
        return RichProgress(stream)
    return PlainProgress(stream)
