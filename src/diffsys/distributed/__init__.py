"""``diffsys.distributed``: data-parallel training and sweeps on Dask (``dask.distributed``).

Needs the ``distributed`` extra (``pip install diffsys[distributed]``). docs/distributed.md is
the guide::

    from diffsys import distributed as dist, optim, pipeline as pl

    with dist.local_cluster(n_workers=2) as client:      # or dist.connect("tcp://host:8786")
        trainer = dist.Trainer(loss, params, optim.adam(1e-2), load_shard, n_shards=8,
                               client=client)            # shards are loaded on the workers
        trainer.fit(100)                                 # rounds: broadcast, grads, tree-sum
        pl.Trainer(pipe, optim.adam(1e-2), client=client, shards=load_shard,
                   n_shards=8).fit(100)                  # a Pipeline, its telemetry included
        table = dist.sweep(simulate, configs, client=client, retries=2)
"""

try:
    import dask.distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "diffsys.distributed needs Dask's distributed scheduler: install the 'distributed' "
        "extra (pip install 'diffsys[distributed]')"
    ) from exc

from .cluster import check_serialisable, check_versions, connect, local_cluster, worker_versions
from .data_parallel import DataParallel, RoundResult, batch_size, plain_objective
from .errors import ClusterError, SerializationError, VersionMismatchError, WorkerError
from .sweep import SweepResult, ValueAndGrad, sweep
from .trainer import PipelineRounds, PipelineTrainer, RoundReport, Trainer

__all__ = [n for n in dir() if not n.startswith("_")]
