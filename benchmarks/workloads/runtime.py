"""The relaxed job dispatcher of ``diffsys.systems.runtime``: value and gradient of the mean
latency of 300 jobs on 4 servers with respect to the 10 policy weights.

One step per job (Lindley's recursion with ``T softplus(./T)``, a softmax over the servers'
scores, the latency the expected wait plus service); every framework returns
``(mean latency, d/dtheta)``. The reference is a hand-written NumPy adjoint. diffsys runs
``smooth_dispatch`` (``ds.scan`` with graph replay); the peers run the same recursion as a
Python loop (PyTorch, autograd) or ``jax.lax.scan`` under ``jax.jit``.
"""

from __future__ import annotations

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

N_JOBS = 300
T_WAIT, T_ASSIGN = 0.05, 0.1  # smooth_dispatch's defaults (the wait one in mean service times)


def _inputs():
    from diffsys.systems.runtime import make_jobs, service_scale

    jobs = make_jobs(N_JOBS, seed=0)
    theta = np.random.default_rng(0).normal(size=10)
    scale = service_scale(jobs)
    service = jobs.sizes[:, None] / jobs.speeds
    return jobs, theta, jobs.gaps, service, np.log(jobs.sizes / scale), scale


def _numpy_value_and_grad(theta, gaps, service, log_size, scale):
    """Forward storing each step's values; the adjoint by hand."""
    n, s = service.shape
    tw = T_WAIT * scale
    w, tape, total = np.zeros(s), [], 0.0
    for i in range(n):
        u = w - gaps[i]
        w = tw * np.logaddexp(0.0, u / tw)
        z = (-theta[0] * w / scale - theta[1] * service[i] / scale + theta[2 : 2 + s]
             + theta[2 + s :] * log_size[i]) / T_ASSIGN  # fmt: skip
        p = np.exp(z - z.max())
        p /= p.sum()
        total += np.sum(p * (w + service[i]))
        tape.append((u, w, p))
        w = w + p * service[i]
    g, gw_next = np.zeros_like(theta), np.zeros(s)
    for i in reversed(range(n)):
        u, w, p = tape[i]
        gw = gw_next + p / n
        gp = gw_next * service[i] + (w + service[i]) / n
        gscore = p * (gp - np.sum(p * gp)) / T_ASSIGN
        g[0] -= np.sum(gscore * w) / scale
        g[1] -= np.sum(gscore * service[i]) / scale
        g[2 : 2 + s] += gscore
        g[2 + s :] += gscore * log_size[i]
        gw = gw - gscore * theta[0] / scale
        gw_next = gw / (1.0 + np.exp(-u / tw))  # d softplus = sigmoid
    return total / n, g


def reference() -> tuple[np.ndarray, ...]:
    _, theta, *rest = _inputs()
    value, g = _numpy_value_and_grad(theta, *rest)
    return np.asarray(value), g


def _numpy() -> Thunk:
    _, theta, *rest = _inputs()
    return lambda: _numpy_value_and_grad(theta, *rest)


def _diffsys() -> Thunk:
    import diffsys as ds
    from diffsys.systems.runtime import smooth_dispatch

    jobs, theta, *_ = _inputs()
    f = ds.value_and_grad(
        lambda th: smooth_dispatch(
            jobs, th, wait_temperature=T_WAIT, assign_temperature=T_ASSIGN, replay=True
        ).mean()
    )
    return lambda: f(theta)


def _step(xp, softplus, theta, w, gap, service, log_size, scale, s):
    tw = T_WAIT * scale
    w = tw * softplus((w - gap) / tw)
    z = (-theta[0] * w / scale - theta[1] * service / scale + theta[2 : 2 + s]
         + theta[2 + s :] * log_size) / T_ASSIGN  # fmt: skip
    e = xp.exp(z - xp.max(z))
    p = e / xp.sum(e)
    return w + p * service, xp.sum(p * (w + service))


def _torch() -> Thunk:
    torch = torch_single_thread()
    _, theta, gaps, service, log_size, scale = _inputs()
    tt = torch.tensor(theta, requires_grad=True)
    tg, ts, tl = (torch.tensor(a) for a in (gaps, service, log_size))
    sp = torch.nn.functional.softplus

    def run():
        w, total = torch.zeros(4, dtype=torch.float64), 0.0
        for i in range(N_JOBS):
            w, lat = _step(torch, sp, tt, w, tg[i], ts[i], tl[i], scale, 4)
            total = total + lat
        loss = total / N_JOBS
        (g,) = torch.autograd.grad(loss, tt)
        return loss.detach().numpy(), g.numpy()

    return run


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    _, theta, gaps, service, log_size, scale = _inputs()

    def loss(th):
        w, total = np.zeros(4), 0.0
        for i in range(N_JOBS):
            w, lat = _step(anp, lambda x: anp.logaddexp(0.0, x), th, w, gaps[i], service[i],
                           log_size[i], scale, 4)  # fmt: skip
            total = total + lat
        return total / N_JOBS

    f = autograd.value_and_grad(loss)
    return lambda: f(theta)


def _jax() -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    _, theta, gaps, service, log_size, scale = _inputs()

    def loss(th):
        def step(w, x):
            return _step(jnp, jax.nn.softplus, th, w, *x, scale, 4)

        _, lat = jax.lax.scan(step, jnp.zeros(4), (gaps, service, log_size))
        return jnp.mean(lat)

    f = jax_blocking(jax.jit(jax.value_and_grad(loss)))
    jt = jnp.asarray(theta)
    return lambda: f(jt)


WORKLOAD = Workload(
    name="runtime_dispatch",
    title="Relaxed job dispatcher: 300 jobs, 4 servers, value and gradient",
    description=__doc__.split("\n\n", 1)[1].replace("\n", " "),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    relative_target=("runtime_dispatch", "torch", 1.0),  # no slower than PyTorch's loop
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`smooth_dispatch` (`ds.scan`, replay), `ds.value_and_grad`"),
        "numpy": Impl(_numpy, "hand-written adjoint"),
        "autograd": Impl(_autograd, "Python loop, `autograd.value_and_grad`"),
        "torch": Impl(_torch, "Python loop, `torch.autograd.grad`"),
        "jax-jit": Impl(_jax, "`jax.lax.scan` under `jax.jit`"),
    },
    own_target=True,
)
