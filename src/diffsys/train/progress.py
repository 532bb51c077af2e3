"""Progress display: a rich progress bar on a terminal when rich is installed, plain lines
otherwise (logs, CI, notebooks without a TTY)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _format(logs: dict) -> str:
    parts = []
    for k, v in logs.items():
        if isinstance(v, float | int) and not isinstance(v, bool):
            parts.append(f"{k} {v:.4g}")
    return "  ".join(parts)


class PlainProgress:
    """One line per epoch."""

    def __init__(self, epochs: int, steps_per_epoch: int, stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self._t0 = time.perf_counter()

    def start_epoch(self, epoch: int) -> None:
        self._t0 = time.perf_counter()

    def advance(self, logs: dict) -> None:
        pass

    def end_epoch(self, epoch: int, logs: dict) -> None:
        dt = time.perf_counter() - self._t0
        print(
            f"epoch {epoch + 1}/{self.epochs}  {_format(logs)}  ({dt:.1f} s)",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        pass


class RichProgress:
    """A rich progress bar over the steps of each epoch, with the running loss."""

    def __init__(self, epochs: int, steps_per_epoch: int, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.epochs = epochs
        self.steps = steps_per_epoch
        self.console = Console(file=stream) if stream is not None else Console()
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[logs]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = None

    def start_epoch(self, epoch: int) -> None:
        self.task = self.progress.add_task(
            "train", total=self.steps, epoch=epoch + 1, epochs=self.epochs, logs=""
        )

    def advance(self, logs: dict) -> None:
        self.progress.update(self.task, advance=1, logs=_format(logs))

    def end_epoch(self, epoch: int, logs: dict) -> None:
        self.progress.update(self.task, completed=self.steps, logs=_format(logs))

    def close(self) -> None:
        self.progress.stop()


def make_progress(mode, epochs: int, steps_per_epoch: int):
    """``mode``: ``"auto"`` (rich on a TTY when installed), ``"rich"``, ``"plain"`` or
    ``None``/``False`` (silent)."""
    if mode in (None, False, "none"):
        return None
    if mode == "plain":
        return PlainProgress(epochs, steps_per_epoch)
    if mode in ("auto", "rich", True):
        try:
            import rich  # noqa: F401
        except ImportError:
            if mode == "rich":
                raise
            return PlainProgress(epochs, steps_per_epoch)
        if mode == "rich" or sys.stdout.isatty():
            return RichProgress(epochs, steps_per_epoch)
        return PlainProgress(epochs, steps_per_epoch)
    raise ValueError(f"progress must be 'auto', 'rich', 'plain' or None, got {mode!r}")
