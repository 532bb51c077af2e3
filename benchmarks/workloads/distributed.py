"""One data-parallel training round (loss and gradient over all the data) on a Dask
LocalCluster with 1 and 2 worker processes, against the same computation in one process.

The model is the demo's (`diffsys.cli.demos.distributed`): a 16-64-1 tanh MLP, mean squared
error, 40,000 examples, float64. A round broadcasts the parameters (safetensors bytes),
runs `value_and_grad` on each worker's shard (made on the worker), sums the weighted
gradients in a fixed tree and gathers the sum. `dp_round_1proc` is the single-process
cost; `dp_round_dask1 - dp_round_1proc` is the overhead of a round (transfer, scheduling,
serialisation); `dp_round_dask2` shows the scaling on this machine's cores. The PyTorch
peers: the same gradient in one process (`dp_round_1proc`), and PyTorch's own data-parallel
training, `DistributedDataParallel` over a `gloo` process group of 1 and 2 CPU processes
(`dp_round_dask1`, `dp_round_dask2`), each rank making its shard itself; a call signals the
ranks over pipes, they run forward + backward (DDP averages the gradients in buckets during
the backward pass) and rank 0 sends the loss and gradients back to the timing process.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable

import numpy as np

from ._common import torch_single_thread
from ._spec import Impl, Thunk, Workload

N = 40_000
SEED = 0


def _problem():
    from diffsys.cli.demos.distributed import init_params, make_data

    return init_params(SEED), make_data(N, SEED)


def init_params_shapes() -> dict:
    """The parameters in the order of the results (w1, b1, w2, b2)."""
    from diffsys.cli.demos.distributed import init_params

    p = init_params(SEED)
    return {k: p[k] for k in ("w1", "b1", "w2", "b2")}


def _numpy_value_and_grad(p, d):
    x, y = d["x"], d["y"]
    h = np.tanh(x @ p["w1"] + p["b1"])
    r = h @ p["w2"] + p["b2"] - y
    loss = np.mean(r**2)
    g_r = 2.0 * r / len(y)
    g_h = np.outer(g_r, p["w2"]) * (1.0 - h**2)
    return loss, x.T @ g_h, g_h.sum(0), h.T @ g_r, g_r.sum()


def reference() -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v) for v in _numpy_value_and_grad(*_problem()))


def _flat(loss, g) -> tuple:
    return (np.asarray(loss), g["w1"], g["b1"], g["w2"], g["b2"])


def _numpy() -> Thunk:
    p, d = _problem()
    return lambda: _numpy_value_and_grad(p, d)


def _diffsys() -> Thunk:
    import diffsys as ds
    from diffsys.cli.demos.distributed import loss

    p, d = _problem()
    f = ds.value_and_grad(loss)
    return lambda: _flat(*f(p, d))


def _dask(n_workers: int) -> Callable[[], Thunk]:
    def build() -> Thunk:
        from diffsys import distributed as dist
        from diffsys.cli.demos.distributed import ShardLoader, loss

        cm = dist.local_cluster(n_workers=n_workers, threads_per_worker=1)
        client = cm.__enter__()
        atexit.register(cm.__exit__, None, None, None)
        client.wait_for_workers(n_workers, timeout=60)
        p, _ = _problem()
        engine = dist.DataParallel(dist.plain_objective(loss), p,
                                   ShardLoader(N, n_workers, SEED), n_shards=n_workers,
                                   client=client)

        def thunk():
            res = engine.round(p)
            return _flat(res.loss, res.grads)

        return thunk

    return build


def _ddp(world: int) -> Callable[[], Thunk]:
    """PyTorch DDP over ``world`` gloo processes on this machine (see ``_ddp_rank.py``)."""

    def build() -> Thunk:
        import os
        import select
        import socket
        import subprocess
        import sys
        from pathlib import Path

        import torch.distributed as tdist

        if not (tdist.is_available() and tdist.is_gloo_available()):
            raise ImportError("this PyTorch build has no torch.distributed with gloo")
        with socket.socket() as sock:  # a free port for the process group's rendezvous
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        script = str(Path(__file__).with_name("_ddp_rank.py"))
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2] / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        ranks = [
            subprocess.Popen(
                [sys.executable, script, str(r), str(world), str(port), str(N), str(SEED)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            )
            for r in range(world)
        ]

        def stop() -> None:
            for proc in ranks:
                if proc.poll() is None:
                    try:
                        proc.stdin.write(b"quit\n")
                        proc.stdin.close()
                        proc.wait(timeout=10)
                    except (OSError, subprocess.TimeoutExpired):
                        proc.kill()

        atexit.register(stop)
        for proc in ranks:
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            if not ready or proc.stdout.readline().strip() != b"ready":
                stop()
                raise RuntimeError(f"DDP rank did not start (exit code {proc.poll()})")

        shapes = [(k, np.shape(v)) for k, v in init_params_shapes().items()]

        def thunk():
            for proc in ranks:
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
            size = int(ranks[0].stdout.readline())
            flat = np.frombuffer(ranks[0].stdout.read(size), dtype=np.float64)
            for proc in ranks[1:]:
                proc.stdout.readline()
            out, at = [flat[0]], 1
            for _, shape in shapes:
                size = int(np.prod(shape))
                out.append(flat[at : at + size].reshape(shape))
                at += size
            return tuple(out)

        thunk.close = stop  # the rank processes end at exit, or now
        thunk.ranks = ranks
        return thunk

    return build


def _torch() -> Thunk:
    torch = torch_single_thread()
    p, d = _problem()
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    x, y = torch.tensor(d["x"]), torch.tensor(d["y"])

    def thunk():
        for v in tp.values():
            v.grad = None
        h = torch.tanh(x @ tp["w1"] + tp["b1"])
        loss = torch.mean((h @ tp["w2"] + tp["b2"] - y) ** 2)
        loss.backward()
        return (loss.detach().numpy(), *(tp[k].grad.numpy() for k in ("w1", "b1", "w2", "b2")))

    return thunk


_DESCRIPTION = __doc__.split("\n\n", 1)[1].replace("\n", " ")


def _workload(name: str, title: str, impls: dict, target: float, relative=None) -> Workload:
    return Workload(
        name=name,
        title=title,
        description=_DESCRIPTION,
        unit="ms",
        scale=1e3,
        target=target,
        reference=reference,
        impls=impls,
        tolerance=1e-10,
        own_target=True,
        relative_target=relative,
    )


WORKLOADS = (
    _workload(
        "dp_round_1proc",
        "data-parallel round: one process (baseline)",
        {
            "diffsys": Impl(_diffsys, "`ds.value_and_grad(loss)(params, data)`"),
            "numpy": Impl(_numpy, "hand-written backward pass"),
            "torch": Impl(_torch, "`loss.backward()`, one thread"),
        },
        target=150.0,
    ),
    _workload(
        "dp_round_dask1",
        "data-parallel round: Dask, 1 worker process",
        {
            "diffsys": Impl(_dask(1), "`distributed.DataParallel.round`, 1 shard"),
            "torch": Impl(_ddp(1), "`DistributedDataParallel`, gloo, 1 process"),
        },
        target=200.0,
        relative=("dp_round_1proc", "diffsys", 1.25),  # overhead <= 25% of the compute
    ),
    _workload(
        "dp_round_dask2",
        "data-parallel round: Dask, 2 worker processes",
        {
            "diffsys": Impl(_dask(2), "`distributed.DataParallel.round`, 2 shards"),
            "torch": Impl(_ddp(2), "`DistributedDataParallel`, gloo, 2 processes"),
        },
        target=150.0,
        relative=("dp_round_1proc", "diffsys", 0.7),  # 2 workers: >= 1.43x with 2 free cores
    ),
)
