"""Errors of ``diffsys.distributed``: each names what failed where, and how to fix it."""

from __future__ import annotations

import traceback

__all__ = ["ClusterError", "SerializationError", "VersionMismatchError", "WorkerError"]


class ClusterError(ConnectionError):
    """The scheduler cannot be reached, or the cluster has no workers."""


class VersionMismatchError(RuntimeError):
    """Workers run another diffsys version than the driver (results would not be comparable)."""


class SerializationError(TypeError):
    """A function or value that must go to the workers cannot be serialised there."""


class WorkerError(RuntimeError):
    """An exception raised on a worker, with what the worker was doing (``where``: the shard or
    the sweep configuration) and the original traceback as text (``remote_traceback``).

    It is raised ``from`` the original exception where that exception could travel back, so
    ``exc.__cause__`` is the worker's own exception object. ``remote_type`` is the original
    exception's class name and ``remote_attrs`` its ``stage``, ``where`` and ``upstream``
    attributes when it has them (a pipeline's ``NonFiniteError``), as strings: they travel
    back whatever the cause does.
    """

    def __init__(self, where: str, error: str, remote_traceback: str) -> None:
        super().__init__(where, error, remote_traceback)
        self.where = where
        self.error = error
        self.remote_traceback = remote_traceback
        self.remote_type = error.split(":", 1)[0]
        self.remote_attrs: dict[str, str] = {}

    def __str__(self) -> str:
        return (
            f"{self.where} failed on a worker: {self.error}\n"
            f"--- original traceback (on the worker) ---\n{self.remote_traceback.rstrip()}"
        )


def wrap_worker_exception(where: str, exc: BaseException) -> WorkerError:
    """The :class:`WorkerError` for ``exc`` caught on a worker while doing ``where``."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    err = WorkerError(where, f"{type(exc).__name__}: {exc}", text)
    err.remote_attrs = {
        k: str(getattr(exc, k)) for k in ("stage", "where", "upstream")
        if isinstance(getattr(exc, k, None), str)
    }
    err.__cause__ = exc
    return err
