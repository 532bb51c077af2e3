"""Learned compression (``diffsys.systems.compress``).

- ``compress_rate_grad``: the entropy model's training step: the rate ``-sum log2 p`` of
  4,096 x 16 latents under a learned factorised prior (one monotone CDF network per channel,
  filters 3-3-3, the sign trick), value and gradient w.r.t. the 16 x 13 parameters and the
  latents. Reference: a hand-written NumPy adjoint. Peers: PyTorch, HIPS autograd, JAX (jit)
  running the same formula (latents kept where no likelihood meets the 1e-9 floor, so the
  floor's pass-through gradient and a plain clamp agree).
- ``compress_range_coding``: range-code those latents, rounded (constriction, one
  categorical model per channel, escapes), and decode them back; the result is the decoded
  symbols, compared with the originals.
"""

from __future__ import annotations

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

N, C, FILTERS = 4096, 16, (3, 3, 3)


def _inputs():
    from diffsys.systems.compress import FactorizedPrior

    prior = FactorizedPrior(C, FILTERS, key=0)
    rng = np.random.default_rng(0)
    params = prior.params
    params = (
        tuple(m + 0.3 * rng.normal(size=m.shape) for m in params[0]),
        params[1],
        tuple(a + rng.normal(size=a.shape) for a in params[2]),
    )
    y = rng.normal(size=(N, C)) * rng.uniform(1.0, 6.0, C)
    return params, y


def _flat(params, y):
    mats, biases, factors = params
    return (*mats, *biases, *factors, y)


def _split(leaves):
    k = len(FILTERS) + 1
    groups = (tuple(leaves[:k]), tuple(leaves[k : 2 * k]), tuple(leaves[2 * k : 3 * k - 1]))
    return groups, leaves[-1]


# --- the forward formula, for any array module ---------------------------------------------------


def _logits(xp, softplus, params, y):
    mats, biases, factors = params
    x = xp.reshape(y.T, (C, 1, -1))
    for k in range(len(mats)):
        x = softplus(mats[k]) @ x + biases[k]
        if k < len(mats) - 1:
            x = x + xp.tanh(factors[k]) * xp.tanh(x)
    return xp.reshape(x, (C, -1)).T


def _rate(xp, softplus, sigmoid, params, y, s):
    lo = _logits(xp, softplus, params, y - 0.5)
    up = _logits(xp, softplus, params, y + 0.5)
    lik = s * (sigmoid(s * up) - sigmoid(s * lo))
    return -xp.sum(xp.log2(lik))


def _signs(params, y):
    lo = _logits(np, _np_softplus, params, y - 0.5)
    up = _logits(np, _np_softplus, params, y + 0.5)
    return np.where(lo + up > 0, -1.0, 1.0)


def _np_softplus(x):
    return np.logaddexp(0.0, x)


def _np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# --- hand-written adjoint -------------------------------------------------------------------------


def _logits_fwd(params, z):
    mats, biases, factors = params
    h = z.T.reshape(C, 1, -1)
    tape = []
    for k in range(len(mats)):
        hk = h
        pre = _np_softplus(mats[k]) @ hk + biases[k]
        if k < len(mats) - 1:
            t = np.tanh(pre)
            h = pre + np.tanh(factors[k]) * t
        else:
            t, h = None, pre
        tape.append((hk, t))
    return h.reshape(C, -1).T, tape


def _logits_bwd(params, tape, g_out, grads):
    mats, _, factors = params
    g = g_out.T.reshape(C, 1, -1)
    for k in reversed(range(len(mats))):
        hk, t = tape[k]
        if t is not None:
            ta = np.tanh(factors[k])
            grads[2][k] += np.sum(g * t, axis=2, keepdims=True) * (1 - ta**2)
            g = g * (1 + ta * (1 - t**2))
        grads[1][k] += np.sum(g, axis=2, keepdims=True)
        grads[0][k] += (g @ hk.transpose(0, 2, 1)) * _np_sigmoid(mats[k])
        g = _np_softplus(mats[k]).transpose(0, 2, 1) @ g
    return g.reshape(C, -1).T


def _numpy_value_and_grad(params, y):
    lo, tape_lo = _logits_fwd(params, y - 0.5)
    up, tape_up = _logits_fwd(params, y + 0.5)
    s = np.where(lo + up > 0, -1.0, 1.0)
    su, sl = _np_sigmoid(s * up), _np_sigmoid(s * lo)
    lik = s * (su - sl)
    value = -np.sum(np.log2(lik))
    g_lik = -1.0 / (lik * np.log(2.0))
    grads = tuple([np.zeros_like(a) for a in group] for group in params)
    g_y = _logits_bwd(params, tape_up, g_lik * su * (1 - su), grads)
    g_y = g_y + _logits_bwd(params, tape_lo, -g_lik * sl * (1 - sl), grads)
    return (np.asarray(value), *grads[0], *grads[1], *grads[2], g_y)


def reference() -> tuple[np.ndarray, ...]:
    return _numpy_value_and_grad(*_inputs())


def _numpy() -> Thunk:
    params, y = _inputs()
    return lambda: _numpy_value_and_grad(params, y)


def _diffsys() -> Thunk:
    import diffsys as ds
    from diffsys.systems.compress import factorized_likelihood, rate_bits

    params, y = _inputs()
    f = ds.value_and_grad(lambda p, y: rate_bits(factorized_likelihood(p, y)), argnums=(0, 1))

    def run():
        value, (gp, gy) = f(params, y)
        return (value, *gp[0], *gp[1], *gp[2], gy)

    return run


def _torch() -> Thunk:
    torch = torch_single_thread()
    params, y = _inputs()
    s = torch.tensor(_signs(params, y))
    leaves = [torch.tensor(a, requires_grad=True) for a in _flat(params, y)]
    sp, sig = torch.nn.functional.softplus, torch.sigmoid

    class _XP:
        reshape, tanh, sum, log2 = staticmethod(torch.reshape), torch.tanh, torch.sum, torch.log2

    def run():
        p, ty = _split(leaves)
        value = _rate(_XP, sp, sig, p, ty, s)
        grads = torch.autograd.grad(value, leaves)
        return (value.detach().numpy(), *(g.numpy() for g in grads))

    return run


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    params, y = _inputs()
    s = _signs(params, y)
    sp = lambda x: anp.logaddexp(0.0, x)
    sig = lambda x: 0.5 * (1.0 + anp.tanh(0.5 * x))
    f = autograd.value_and_grad(lambda leaves: _rate(anp, sp, sig, *_split(leaves), s))
    leaves = list(_flat(params, y))

    def run():
        value, grads = f(leaves)
        return (value, *grads)

    return run


def _jax() -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    params, y = _inputs()
    s = jnp.asarray(_signs(params, y))
    f = jax_blocking(
        jax.jit(jax.value_and_grad(
            lambda leaves: _rate(jnp, jax.nn.softplus, jax.nn.sigmoid, *_split(leaves), s)
        ))
    )  # fmt: skip
    leaves = [jnp.asarray(a) for a in _flat(params, y)]

    def run():
        value, grads = f(leaves)
        return (value, *grads)

    return run


# --- range coding ---------------------------------------------------------------------------------


def _coding_inputs():
    from diffsys.systems.compress import FactorizedPrior

    prior = FactorizedPrior(C, FILTERS, key=0)
    _, y = _inputs()
    tables = prior.tables()
    return tables, prior.symbols(y, tables)


def _coding_reference() -> tuple[np.ndarray, ...]:
    return (_coding_inputs()[1].astype(np.float64),)


def _coding_diffsys() -> Thunk:
    from diffsys.systems.compress import decode_symbols, encode_symbols

    tables, symbols = _coding_inputs()
    return lambda: decode_symbols(encode_symbols(symbols, tables), tables, len(symbols))


WORKLOADS = (
    Workload(
        name="compress_rate_grad",
        title=f"Learned entropy model: rate of {N} x {C} latents, value and gradient",
        description=__doc__.split("\n\n", 1)[1].split("\n- ``compress_range")[0].replace("\n", " "),
        unit="ms",
        scale=1e3,
        target=float("inf"),
        relative_target=("compress_rate_grad", "torch", 1.5),
        reference=reference,
        impls={
            "diffsys": Impl(_diffsys, "`factorized_likelihood`, `rate_bits`, `ds.value_and_grad`"),
            "numpy": Impl(_numpy, "hand-written adjoint"),
            "autograd": Impl(_autograd, "`autograd.value_and_grad`"),
            "torch": Impl(_torch, "`torch.autograd.grad`"),
            "jax-jit": Impl(_jax, "`jax.value_and_grad` under `jax.jit`"),
        },
        own_target=True,
    ),
    Workload(
        name="compress_range_coding",
        title=f"Range coding {N} x {C} latents with a learned prior: encode + decode",
        description="Round the latents on the prior's median grid, range-code them with "
        "constriction (one categorical model per channel, escapes), decode, compare.",
        unit="ms",
        scale=1e3,
        target=float("inf"),
        reference=_coding_reference,
        impls={
            "diffsys": Impl(_coding_diffsys, "`encode_symbols`, `decode_symbols` (constriction)"),
        },
        tolerance=0.0,
        own_target=True,
    ),
)
