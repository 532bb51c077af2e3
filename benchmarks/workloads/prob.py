"""One ELBO gradient of Bayesian logistic regression with a mean-field Gaussian guide.

Data: 1000 points, 20 features; prior ``w ~ N(0, 1)``; guide ``N(loc, exp(log_scale))``; the
ELBO is averaged over 8 reparameterised particles whose standard-normal noise is drawn, in
order, from ``numpy.random.default_rng(0)`` (one ``(20,)`` draw per particle), so every
framework differentiates the same Monte-Carlo estimate. Returned: the gradients of ``-ELBO``
with respect to ``loc`` and ``log_scale``, checked against the hand-written NumPy gradient.
diffsys runs the model and guide as ``diffsys.prob`` programs through ``Trace_ELBO``; PyTorch
uses ``torch.distributions``; JAX uses ``numpyro.distributions`` when NumPyro is installed.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

N, D, PARTICLES = 1000, 20, 8
_LOG_2PI = math.log(2 * math.pi)


def _inputs():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, D)) / np.sqrt(D)
    w_true = rng.standard_normal(D) * 2.0
    y = (rng.uniform(size=N) < 1 / (1 + np.exp(-x @ w_true))).astype(np.float64)
    loc = 0.1 * rng.standard_normal(D)
    log_scale = np.full(D, -1.0)
    return x, y, loc, log_scale


def _noise() -> np.ndarray:
    gen = np.random.default_rng(0)
    return np.stack([gen.standard_normal(D) for _ in range(PARTICLES)])


def reference() -> tuple[np.ndarray, ...]:
    """The hand-written gradient of ``-mean_p ELBO_p``."""
    x, y, loc, log_scale = _inputs()
    eps = _noise()
    s = np.exp(log_scale)
    g_loc = np.zeros(D)
    g_ls = np.zeros(D)
    for e in eps:
        w = loc + s * e
        z = x @ w
        dw = -w + x.T @ (y - 1 / (1 + np.exp(-z)))  # d log p(w, y) / dw
        g_loc += dw
        g_ls += dw * s * e + 1.0  # -log q = sum(log s) + ...: d/dlog s = 1
    return -g_loc / PARTICLES, -g_ls / PARTICLES


def _numpy() -> Thunk:
    return reference


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp
    from diffsys import prob

    x, y, loc, log_scale = _inputs()

    def model(x, y):
        w = prob.sample("w", prob.Normal(np.zeros(D), 1.0))
        prob.sample("y", prob.Bernoulli(logits=x @ w), obs=y)

    def guide(x, y):
        prob.sample("w", prob.Normal(prob.param("loc", loc), prob.param("scale", 1.0)))

    elbo = prob.Trace_ELBO(PARTICLES)

    def loss(loc, log_scale):
        params = {"loc": loc, "scale": dnp.exp(log_scale)}
        return elbo.loss(params, model, guide, x, y, rng=np.random.default_rng(0))

    grad = ds.grad(loss, argnums=(0, 1))
    return lambda: grad(loc, log_scale)


def _torch() -> Thunk:
    torch = torch_single_thread()
    from torch.distributions import Bernoulli, Normal

    x, y, loc, log_scale = _inputs()
    tx, ty, teps = torch.tensor(x), torch.tensor(y), torch.tensor(_noise())
    tloc = torch.tensor(loc, requires_grad=True)
    tls = torch.tensor(log_scale, requires_grad=True)
    prior = Normal(torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64))

    def step():
        q = Normal(tloc, torch.exp(tls))
        total = 0.0
        for e in teps:
            w = tloc + torch.exp(tls) * e
            log_joint = prior.log_prob(w).sum() + Bernoulli(logits=tx @ w).log_prob(ty).sum()
            total = total + log_joint - q.log_prob(w).sum()
        loss = -total / PARTICLES
        g = torch.autograd.grad(loss, (tloc, tls))
        return tuple(v.numpy() for v in g)

    return step


def _jax_loss():
    jax = jax_float64()
    import jax.numpy as jnp
    import numpyro.distributions as nd

    x, y, loc, log_scale = _inputs()
    jx, jy, jeps = jnp.asarray(x), jnp.asarray(y), jnp.asarray(_noise())

    def loss(loc, log_scale):
        s = jnp.exp(log_scale)
        w = loc + s * jeps  # (particles, D)
        log_joint = nd.Normal(0.0, 1.0).log_prob(w).sum(-1) + nd.Bernoulli(
            logits=w @ jx.T
        ).log_prob(jy).sum(-1)
        return -jnp.mean(log_joint - nd.Normal(loc, s).log_prob(w).sum(-1))

    return jax, jax.grad(loss, argnums=(0, 1)), jnp.asarray(loc), jnp.asarray(log_scale)


def _jax() -> Thunk:
    _, grad, loc, ls = _jax_loss()
    run = jax_blocking(grad)
    return lambda: tuple(np.asarray(g) for g in run(loc, ls))


def _jax_jit() -> Thunk:
    jax, grad, loc, ls = _jax_loss()
    run = jax_blocking(jax.jit(grad))
    run(loc, ls)
    return lambda: tuple(np.asarray(g) for g in run(loc, ls))


WORKLOAD = Workload(
    name="prob_elbo_logreg",
    title="ELBO gradient, Bayesian logistic regression",
    description=(
        f"The gradient of a {PARTICLES}-particle reparameterised ELBO of Bayesian logistic "
        f"regression ({N} points, {D} features, mean-field Gaussian guide) with respect to "
        "the guide's loc and log-scale. diffsys runs `prob` model/guide programs through "
        "`prob.Trace_ELBO` (handlers, one particle after another); PyTorch uses "
        "`torch.distributions`; JAX uses `numpyro.distributions` with the particles "
        "vectorised. Checked against the hand-written NumPy gradient."
    ),
    unit="ms",
    scale=1e3,
    # no issue sets a target: keep pace with PyTorch's eager torch.distributions
    target=40.0,
    own_target=True,
    relative_target=("prob_elbo_logreg", "torch", 1.0),
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`prob.Trace_ELBO` + `ds.grad`"),
        "numpy": Impl(_numpy, "hand-written gradient"),
        "torch": Impl(_torch, "`torch.distributions` + `torch.autograd.grad`"),
        "jax": Impl(_jax, "`numpyro.distributions` + `jax.grad`"),
        "jax-jit": Impl(_jax_jit, "`numpyro.distributions` + `jax.jit(jax.grad)`"),
    },
)
