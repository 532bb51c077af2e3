"""One rank of the PyTorch DDP peer of the ``dp_round_*`` workloads (started by
``workloads/distributed.py``, not by hand).

Usage: ``python _ddp_rank.py RANK WORLD PORT N SEED``. The rank joins a ``gloo`` process group
on 127.0.0.1:PORT, makes its shard of the demo's data itself (as the Dask workers do), wraps
the demo's MLP in ``DistributedDataParallel`` and then, for every line ``go`` on stdin, runs one
forward + backward on its shard (DDP averages the gradients across ranks during the backward
pass, in buckets) and all-reduces the loss. Rank 0 answers with the loss and the gradients
(float64 bytes after a length line), the others with ``done``; ``quit`` ends the rank.
"""

from __future__ import annotations

import os
import sys


def main(rank: int, world: int, port: int, n: int, seed: int) -> None:
    import numpy as np
    import torch
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    from diffsys.cli.demos.distributed import ShardLoader, init_params

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    tdist.init_process_group("gloo", rank=rank, world_size=world)

    class MLP(torch.nn.Module):
        def __init__(self, p: dict) -> None:
            super().__init__()
            for k, v in p.items():
                setattr(self, k, torch.nn.Parameter(torch.tensor(v)))

        def forward(self, x, y):
            h = torch.tanh(x @ self.w1 + self.b1)
            return torch.mean((h @ self.w2 + self.b2 - y) ** 2)

    model = MLP(init_params(seed))
    ddp = DistributedDataParallel(model)
    shard = ShardLoader(n, world, seed)(rank)
    x, y = torch.tensor(shard["x"]), torch.tensor(shard["y"])
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin:
        if line.strip() != "go":
            break
        ddp.zero_grad(set_to_none=True)
        loss = ddp(x, y)  # each shard's mean; DDP averages the gradients (equal shards)
        loss.backward()
        total = loss.detach().clone()
        tdist.all_reduce(total)
        if rank == 0:
            parts = [total / world] + [getattr(model, k).grad for k in ("w1", "b1", "w2", "b2")]
            data = np.concatenate([p.numpy().ravel() for p in parts]).astype(np.float64)
            out.write(f"{data.nbytes}\n".encode() + data.tobytes())
        else:
            out.write(b"done\n")
        out.flush()
    tdist.destroy_process_group()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:6]))
