"""Data-parallel rounds on Dask: shards stay on workers, parameters go out once per round,
gradients come back through a tree reduction in a fixed order.

One round of :class:`DataParallel`:

1. the driver packs the current parameters (the leaves, as safetensors bytes: no pickle) and
   broadcasts them once to every worker (``client.scatter(..., broadcast=True)``);
2. each worker runs ``value_and_grad`` of the objective on each shard it holds and weights
   the result by the shard's share of the data (``n_i / N`` for a mean loss);
3. the weighted gradients are summed pairwise on the workers, ``((g0 + g1) + (g2 + g3)) +
   ...``, always in shard order whatever finishes first, so the result is reproducible to
   the bit for a given number of shards; the driver gathers the single sum.

Shards are made on the workers by a loader (``loader(i) -> batch``) and stay there: a lost
worker's shards are made again from their loader by Dask elsewhere, and a round's gradient
tasks are pure functions of (parameters, shard), so the driver applies each round's update
exactly once whatever happened on the workers.

What Dask pickles: the objective and loader (once, at setup, with cloudpickle: code defined in
an importable module travels by reference, closures by value) and the tree structure of the
parameters (once). Per round only arrays travel, as safetensors bytes, and small ints.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.pytree import tree_flatten, tree_leaves, tree_unflatten
from ..core.tracer import concrete
from ..core.transforms import value_and_grad
from ._wire import add_packed, pack, unpack
from .cluster import check_serialisable, check_versions
from .errors import WorkerError, wrap_worker_exception

__all__ = ["DataParallel", "RoundResult", "batch_size"]

_TIMINGS = ("reduce_s",)  # the critical path of the tree; per-worker compute adds up
_BUSY = "busy."  # + worker address: the compute time of that worker's shards, summed


def batch_size(batch) -> int:
    """The number of examples in ``batch``: the leading length of its first array leaf."""
    for leaf in tree_leaves(batch):
        shape = np.shape(leaf)
        if shape:
            return int(shape[0])
    raise ValueError(
        "distributed: cannot tell how many examples a shard holds: none of its leaves is an "
        "array with a leading (batch) axis"
    )


@dataclass
class RoundResult:
    """One round's reduced loss, gradients and aux values, with its costs.

    ``compute_s``: the busiest worker's ``value_and_grad`` time (its shards' summed);
    ``reduce_s``: the summing on the critical path of the reduction tree; ``wall_s``: the
    round on the driver, so ``wall_s - compute_s - reduce_s`` is transfer and scheduling.
    ``param_bytes`` / ``grad_bytes``: one message each way (the parameters reach every worker
    once, each shard's gradient moves once).
    """

    loss: float
    grads: Any
    aux: dict[str, float] = field(default_factory=dict)
    compute_s: float = 0.0
    reduce_s: float = 0.0
    wall_s: float = 0.0
    param_bytes: int = 0
    grad_bytes: int = 0
    n_workers: int = 0
    n_shards: int = 0

    @property
    def bytes_per_round(self) -> int:
        """Bytes moved this round: parameters to each worker, each shard's gradient once."""
        return self.param_bytes * self.n_workers + self.grad_bytes * self.n_shards


@dataclass
class _Job:
    """What every worker needs, sent once: the objective and the parameters' tree structure."""

    objective: Callable  # objective(params, batch, step) -> (loss, {name: float})
    treedef: Any


def _load_shard(loader, index: int):
    try:
        batch = loader(index)
        n = batch_size(batch)
    except Exception as exc:
        raise wrap_worker_exception(f"loading shard {index}", exc) from exc
    return batch, n


def _shard_size(shard) -> int:
    return shard[1]


def _shard_grad(job: _Job, shard, payload: bytes, index: int, weight: float, step: int) -> bytes:
    """On a worker: ``weight * value_and_grad(objective)`` on shard ``index``, packed."""
    batch = shard[0]
    try:
        t0 = time.perf_counter()
        leaves, _ = unpack(payload)
        params = tree_unflatten(job.treedef, leaves)
        custom = getattr(job.objective, "shard_value_and_grad", None)
        if custom is not None:  # the objective weights what it returns itself
            out, scalars = custom(params, batch, step, weight)
            g_leaves = [np.asarray(g) for g in tree_flatten(out)[0]]
        else:
            (loss, aux), grads = value_and_grad(job.objective, has_aux=True)(params, batch, step)
            g_leaves = [weight * np.asarray(g) for g in tree_flatten(grads)[0]]
            scalars = {"loss": weight * float(loss)}
            scalars.update({f"aux.{k}": weight * float(v) for k, v in sorted(aux.items())})
        from dask.distributed import get_worker

        scalars[_BUSY + get_worker().address] = time.perf_counter() - t0
        scalars["reduce_s"] = 0.0
        return pack(g_leaves, scalars)
    except WorkerError:
        raise
    except Exception as exc:
        raise wrap_worker_exception(f"shard {index} (step {step})", exc) from exc


def _reduce_pair(a: bytes, b: bytes) -> bytes:
    t0 = time.perf_counter()
    out_leaves, scalars = unpack(add_packed(a, b, keep_max=_TIMINGS))
    scalars["reduce_s"] += time.perf_counter() - t0
    return pack(out_leaves, scalars)


def _check_job(job: _Job) -> str:
    """On a worker: the job arrived and unpickled (its code is importable there)."""
    return type(job.objective).__name__


class DataParallel:
    """The round engine: ``objective`` over shards on a Dask ``client``.

    ``objective(params, batch, step) -> (loss, aux)`` where ``aux`` maps names to floats
    (use :func:`plain_objective` for a ``loss(params, batch)``). An objective with a method
    ``shard_value_and_grad(params, batch, step, weight) -> (tree, scalars)`` computes a
    shard's part itself: a tree shaped like ``params`` and scalars (``"loss"``, ``"aux.NAME"``),
    both already weighted, which the round sums (the pipeline trainer sends the new
    stage state this way, in the slots of the state it received). ``shards``: a
    ``loader(i) -> batch`` run on the workers with ``n_shards``, or a sequence of batches
    (scattered once). ``reduction="mean"`` weights shard ``i`` by ``n_i / N`` (the loss is a
    per-example mean, plus terms that do not depend on the data), ``"sum"`` by 1.
    """

    def __init__(
        self,
        objective: Callable,
        params_like,
        shards: Callable[[int], Any] | Sequence,
        *,
        client,
        n_shards: int | None = None,
        reduction: str = "mean",
        check_version: bool = True,
    ) -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"DataParallel: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.client = client
        self.workers = sorted(
            check_versions(client) if check_version else client.scheduler_info()["workers"]
        )
        _, treedef = tree_flatten(params_like)
        job = _Job(objective, treedef)
        check_serialisable(job, "the objective (loss function) or the parameters' structure")
        tag = uuid.uuid4().hex[:8]
        self._job_value = job
        try:  # the workers unpickle the job as it arrives: a missing module shows here
            self._job = client.scatter(job, broadcast=True, hash=False)
            client.submit(_check_job, self._job, pure=False).result()
        except Exception as exc:
            raise _setup_error(exc) from exc
        if callable(shards):
            if n_shards is None or n_shards < 1:
                raise ValueError("DataParallel: with a loader function, give n_shards >= 1")
            check_serialisable(shards, "the shard loader")
            self._shards = [
                client.submit(
                    _load_shard,
                    shards,
                    i,
                    key=f"diffsys-shard-{i}-{tag}",
                    workers=[self.workers[i % len(self.workers)]],
                    allow_other_workers=True,
                )
                for i in range(n_shards)
            ]
        else:
            batches = list(shards)
            if not batches:
                raise ValueError("DataParallel: no shards given")
            self._shards = [
                client.scatter((b, batch_size(b)), workers=[self.workers[i % len(self.workers)]])
                for i, b in enumerate(batches)
            ]
        sizes = client.gather([client.submit(_shard_size, s, pure=False) for s in self._shards])
        self.shard_sizes = [int(n) for n in sizes]
        total = sum(self.shard_sizes)
        self.weights = [n / total if reduction == "mean" else 1.0 for n in self.shard_sizes]
        self.n_examples = total

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def round(self, params, step: int = 0, *, max_retries: int = 3) -> RoundResult:
        """Loss, gradients and aux of the objective at ``params`` over all shards.

        A round that loses data to a dying worker beyond what Dask recomputes by itself
        (the broadcast parameters or the job, which have no lineage) is run again from the
        start, up to ``max_retries`` times: it is a pure function of the parameters and
        shards, so the result is the same. Exceptions of the user's code
        (:class:`WorkerError`) are not retried."""
        from dask.distributed import KilledWorker

        lost = (KilledWorker, CancelledError, OSError)
        for attempt in range(max_retries + 1):
            try:
                return self._round(params, step)
            except lost:
                if attempt == max_retries:
                    raise
                if self._job.status != "finished":
                    self._job = self.client.scatter(self._job_value, broadcast=True, hash=False)
        raise AssertionError("unreachable")  # pragma: no cover

    def _round(self, params, step: int) -> RoundResult:
        t0 = time.perf_counter()
        leaves, treedef = tree_flatten(params)
        payload = pack([np.asarray(x) for x in leaves])
        sent = self.client.scatter(payload, broadcast=True, hash=False)
        held = []  # every future of the round stays referenced until its sum is in
        parts = [
            self.client.submit(_shard_grad, self._job, s, sent, i, w, step, pure=False)
            for i, (s, w) in enumerate(zip(self._shards, self.weights, strict=True))
        ]
        while len(parts) > 1:  # pairwise, in shard order: a fixed summation tree
            nxt = [
                self.client.submit(_reduce_pair, parts[j], parts[j + 1], pure=False)
                for j in range(0, len(parts) - 1, 2)
            ]
            if len(parts) % 2:
                nxt.append(parts[-1])
            held += parts
            parts = nxt
        data = parts[0].result()
        grad_bytes = len(data)
        del held
        g_leaves, scalars = unpack(data)
        return RoundResult(
            loss=scalars.pop("loss"),
            grads=tree_unflatten(treedef, g_leaves),
            aux={k[4:]: v for k, v in scalars.items() if k.startswith("aux.")},
            compute_s=max(v for k, v in scalars.items() if k.startswith(_BUSY)),
            reduce_s=scalars["reduce_s"],
            wall_s=time.perf_counter() - t0,
            param_bytes=len(payload),
            grad_bytes=grad_bytes,
            n_workers=len(self.workers),
            n_shards=self.n_shards,
        )

    def close(self) -> None:
        """Release the shards and the job on the cluster."""
        self.client.cancel([*self._shards, self._job])


def _setup_error(exc: BaseException) -> Exception:
    from .errors import SerializationError

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError | AttributeError) or any(
        name in text for name in ("ModuleNotFoundError", "ImportError", "Can't get attribute")
    ):
        return SerializationError(
            f"distributed: a worker could not load the objective ({text}). "
            "Functions defined in a module travel by reference: that module must be importable "
            "on every worker (install your package there, or define the function in the "
            "script so it travels by value)."
        )
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class _Plain:
    """``objective(params, batch, step)`` for a plain ``loss(params, batch)``."""

    def __init__(self, loss: Callable, has_aux: bool) -> None:
        self.loss = loss
        self.has_aux = has_aux

    def __call__(self, params, batch, step):
        out = self.loss(params, batch)
        if self.has_aux:
            value, aux = out
            return value, {k: float(concrete(v)) for k, v in aux.items()}
        return out, {}


def plain_objective(loss: Callable, *, has_aux: bool = False) -> Callable:
    """The round objective of ``loss(params, batch) -> scalar`` (or ``(scalar, {name: float})``
    with ``has_aux``)."""
    return _Plain(loss, has_aux)
