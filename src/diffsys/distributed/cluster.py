"""Connecting to Dask: a small local cluster, a bounded-time connect, the version check.

>>> from diffsys import distributed as dist
>>> with dist.local_cluster(n_workers=1) as client:   # doctest: +SKIP
...     print(len(client.scheduler_info()["workers"]))
1
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator

from .errors import ClusterError, SerializationError, VersionMismatchError

__all__ = ["check_serialisable", "check_versions", "connect", "local_cluster", "worker_versions"]


@contextlib.contextmanager
def local_cluster(
    n_workers: int = 2, *, threads_per_worker: int = 1, processes: bool = True, **kwargs
) -> Iterator:
    """A ``dask.distributed.LocalCluster`` with a connected ``Client``, closed on exit.

    Worker processes by default (``processes=True``): each has its own Python and NumPy, as on
    a real cluster. Extra keyword arguments go to ``LocalCluster``.
    """
    from dask.distributed import Client, LocalCluster

    kwargs.setdefault("dashboard_address", ":0")  # a free port, never a clash
    cluster = LocalCluster(
        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes, **kwargs
    )
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def connect(address: str, *, timeout: float = 10.0):
    """A ``dask.distributed.Client`` connected to the scheduler at ``address``
    (``"tcp://host:8786"``), or :class:`ClusterError` within about ``timeout`` seconds.

    Point the same code at a real cluster by starting a scheduler there (``dask scheduler``,
    dask-jobqueue for SLURM/PBS, the Kubernetes operator) and passing its address here.
    """
    from dask.distributed import Client

    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"distributed.connect: no Dask scheduler answered at {address!r} within {timeout} s "
            f"({type(exc).__name__}: {exc}). Check the address and port (a scheduler prints "
            "'Scheduler at: tcp://...' when it starts), that it runs, and that no firewall "
            "blocks the port; for a cluster on this machine use distributed.local_cluster()."
        ) from exc


def _diffsys_version() -> str:
    import diffsys

    return diffsys.__version__


def worker_versions(client) -> dict[str, str]:
    """The diffsys version each worker imports, by worker address."""
    return client.run(_diffsys_version)


def check_versions(client) -> dict[str, str]:
    """Refuse workers whose diffsys version differs from the driver's; their versions."""
    import diffsys

    mine = diffsys.__version__
    found = worker_versions(client)
    if not found:
        raise ClusterError("distributed: the cluster has no workers (wait for them to start)")
    bad = {addr: v for addr, v in found.items() if v != mine}
    if bad:
        raise VersionMismatchError(
            f"distributed: the driver runs diffsys {mine} but worker(s) "
            + ", ".join(f"{a} run diffsys {v}" for a, v in sorted(bad.items()))
            + "; install the same diffsys version on the driver and every worker"
        )
    return found


def check_serialisable(obj, what: str) -> None:
    """Raise :class:`SerializationError` if ``obj`` cannot be sent to workers.

    Dask sends functions with cloudpickle: a function defined in an importable module travels
    by reference (its module must be importable on every worker, installed the same way), a
    lambda or nested function travels by value with the values it closes over, which must be
    picklable themselves (no open files, locks, sockets, database connections or clients).
    """
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SerializationError(
            f"distributed: {what} cannot be sent to the workers ({type(exc).__name__}: {exc}). "
            "Dask ships functions with cloudpickle: define the function at module level in a "
            "module that is importable on every worker (installed the same way as on the "
            "driver), or make sure everything it closes over can be pickled (arrays, numbers, "
            "diffsys modules; not open files, locks, connections or a Dask client); open such "
            "resources inside the function, on the worker."
        ) from exc
