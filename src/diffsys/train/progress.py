"""Progress display of training loops (``train.fit``, ``diffsys demo``): one line per epoch,
plus a live rich progress bar on a terminal when rich is installed.

Every display has the same four calls: ``start_epoch(epoch)``, ``advance(logs)`` after each
step, ``end_epoch(epoch, logs)``, ``close()``. The epoch line is the same in plain and rich
mode (the rich bar is transient: it disappears when the run ends, leaving the lines), so
logs, CI and terminals read alike. ``line(epoch, logs, seconds) -> str`` replaces the
default epoch line.

>>> import io
>>> from diffsys.train.progress import make_progress
>>> out = io.StringIO()
>>> bar = make_progress("plain", epochs=2, steps_per_epoch=3, stream=out, label="run")
>>> bar.start_epoch(0); bar.advance({"loss": 0.5}); bar.end_epoch(0, {"loss": 0.25})
>>> out.getvalue().split("  (")[0]
'run  epoch 1/2  loss 0.25'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["PlainProgress", "Progress", "RichProgress", "SilentProgress", "make_progress"]

#: ``line(epoch, logs, seconds) -> str``: the text printed at the end of an epoch (0-based).
EpochLine = Callable[[int, dict, float], str]

MODES = ("auto", "rich", "plain", "none")


def format_logs(logs: dict) -> str:
    """``"loss 0.25  accuracy 0.9"``: the numbers of ``logs`` (not ``epoch``), 4 digits."""
    parts = []
    for k, v in logs.items():
        if k != "epoch" and isinstance(v, float | int) and not isinstance(v, bool):
            parts.append(f"{k} {v:.4g}")
    return "  ".join(parts)


class Progress:
    """The display protocol, showing nothing (``SilentProgress``); subclasses show more."""

    def __init__(
        self,
        epochs: int,
        steps_per_epoch: int,
        stream: TextIO | None = None,
        *,
        label: str = "",
        line: EpochLine | None = None,
    ) -> None:
        self.epochs = int(epochs)
        self.steps = int(steps_per_epoch)
        self.stream = stream if stream is not None else sys.stdout
        self.label = label
        self._line = line
        self._t0 = time.perf_counter()

    def line(self, epoch: int, logs: dict, seconds: float) -> str:
        """The epoch line: ``[label  ]epoch 3/15  loss 0.25  ...  (1.2 s)``, or ``line=``'s."""
        if self._line is not None:
            return self._line(epoch, logs, seconds)
        label = f"{self.label}  " if self.label else ""
        return f"{label}epoch {epoch + 1}/{self.epochs}  {format_logs(logs)}  ({seconds:.1f} s)"

    def start_epoch(self, epoch: int) -> None:
        self._t0 = time.perf_counter()

    def advance(self, logs: dict) -> None:
        pass

    def end_epoch(self, epoch: int, logs: dict) -> None:
        pass

    def close(self) -> None:
        pass


SilentProgress = Progress


class PlainProgress(Progress):
    """One line per epoch."""

    def end_epoch(self, epoch: int, logs: dict) -> None:
        text = self.line(epoch, logs, time.perf_counter() - self._t0)
        print(text, file=self.stream, flush=True)


class RichProgress(Progress):
    """A transient rich progress bar over the run's steps with the running numbers, and the
    same line per epoch as :class:`PlainProgress` (printed above the bar)."""

    def __init__(self, epochs: int, steps_per_epoch: int, stream=None, **kwargs) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bar

        super().__init__(epochs, steps_per_epoch, stream, **kwargs)
        console = Console(file=stream) if stream is not None else Console()
        self.bar = Bar(
            TextColumn(f"[bold]{self.label or 'train'}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps  {task.fields[logs]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=self.epochs * self.steps, logs="")

    def advance(self, logs: dict) -> None:
        self.bar.update(self.task, advance=1, logs=format_logs(logs))

    def end_epoch(self, epoch: int, logs: dict) -> None:
        text = self.line(epoch, logs, time.perf_counter() - self._t0)
        self.bar.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def close(self) -> None:
        self.bar.stop()


def make_progress(
    mode: str | bool | None,
    epochs: int,
    steps_per_epoch: int,
    *,
    stream: TextIO | None = None,
    label: str = "",
    line: EpochLine | None = None,
) -> Progress:
    """The display for ``mode``: ``"auto"`` or ``True`` (rich on a terminal when rich is
    installed, else plain), ``"rich"``, ``"plain"``, or ``"none"``/``None``/``False``
    (silent). Lines go to ``stream`` (default ``sys.stdout``)."""
    kw = dict(stream=stream, label=label, line=line)
    if mode in (None, False, "none"):
        return SilentProgress(epochs, steps_per_epoch, **kw)
    if mode == "plain":
        return PlainProgress(epochs, steps_per_epoch, **kw)
    if mode not in ("auto", "rich", True):
        raise ValueError(f"progress must be one of {MODES} or None, got {mode!r}")
    try:
        import rich  # noqa: F401
    except ImportError:
        if mode == "rich":
            raise ImportError(
                "progress='rich' needs the rich package, an optional extra: pip install rich "
                "(or use progress='plain')"
            ) from None
        return PlainProgress(epochs, steps_per_epoch, **kw)
    out = stream if stream is not None else sys.stdout
    if mode == "rich" or (hasattr(out, "isatty") and out.isatty()):
        return RichProgress(epochs, steps_per_epoch, **kw)
    return PlainProgress(epochs, steps_per_epoch, **kw)
