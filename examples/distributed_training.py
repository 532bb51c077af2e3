"""Data-parallel training on a local Dask cluster, checked against one process.

    python examples/distributed_training.py            # needs: pip install "diffsys[distributed]"

The loss and the loader are defined here, so Dask sends them to the workers by value; the
cluster starts under ``if __name__ == "__main__":`` because worker processes import this file.
Replace ``dist.local_cluster(...)`` by ``dist.connect("tcp://scheduler:8786")`` for a real one.
"""

from __future__ import annotations

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import distributed as dist
from diffsys import optim

N, SHARDS = 20_000, 4


def make_data(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 8))
    return {"x": x, "y": np.sin(x @ np.linspace(-1, 1, 8)) + 0.05 * rng.normal(size=N)}


def load_shard(i: int) -> dict:
    """Shard ``i``: runs on a worker (here it regenerates the data; read a file in practice)."""
    rows = np.array_split(np.arange(N), SHARDS)[i]
    return {k: v[rows] for k, v in make_data().items()}


def loss(params, batch):
    h = dnp.tanh(batch["x"] @ params["w1"] + params["b1"])
    return dnp.mean((h @ params["w2"] + params["b2"] - batch["y"]) ** 2)


def init_params() -> dict:
    rng = np.random.default_rng(1)
    return {"w1": rng.normal(size=(8, 32)) / 3, "b1": np.zeros(32),
            "w2": rng.normal(size=32) / 6, "b2": np.zeros(())}


def main() -> None:
    with dist.local_cluster(n_workers=2, threads_per_worker=1) as client:
        trainer = dist.Trainer(loss, init_params(), optim.adam(0.02), load_shard,
                               n_shards=SHARDS, client=client)
        for r in trainer.fit(50)[::10]:
            print(f"step {r.step:3d}  loss {r.loss:.5f}  round {r.wall_s * 1e3:6.1f} ms "
                  f"(compute {r.compute_s * 1e3:.1f}, transfer {r.transfer_s * 1e3:.1f})")
        result = trainer.params
        trainer.close()

    params, opt = init_params(), optim.adam(0.02)
    state, data = opt.init(params), make_data()
    for _ in range(50):
        updates, state = opt.update(ds.grad(loss)(params, data), state, params)
        params = optim.apply_updates(params, updates)
    gap = max(float(np.max(np.abs(a - b)))
              for a, b in zip(ds.tree_leaves(result), ds.tree_leaves(params), strict=True))
    print(f"largest difference from one process on all the data: {gap:.1e}")


if __name__ == "__main__":
    main()
