"""NeuralSort (Grover et al. 2019), n = 256: forward alone, and forward + backward.

``P[i, :] = softmax(((n + 1 - 2i) s - A_s 1) / tau)`` with ``A_s[j, k] = |s_j - s_k|``, for a
(32, 256) batch of scores, tau = 1. The issue's target: forward + backward within 1.3x the
plain NumPy forward pass (the paper's formula; the ``numpy`` row of ``neuralsort_forward``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

ROWS, N, TAU = 32, 256, 1.0


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((ROWS, N)), rng.standard_normal((ROWS, N, N))


def _formula(s: Any, xp: Any) -> Any:
    """The paper's formula in any NumPy-like namespace (NumPy, autograd.numpy, jax.numpy)."""
    n = s.shape[-1]
    row_sums = xp.sum(xp.abs(s[..., :, None] - s[..., None, :]), axis=-1)
    coef = (n + 1 - 2 * (np.arange(n) + 1)).astype(np.float64)
    logits = (coef[:, None] * s[..., None, :] - row_sums[..., None, :]) / TAU
    logits = logits - xp.max(logits, axis=-1, keepdims=True)
    p = xp.exp(logits)
    return p / xp.sum(p, axis=-1, keepdims=True)


def numpy_forward(s: np.ndarray) -> np.ndarray:
    return _formula(s, np)


def numpy_vjp(s: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P and the VJP of ``g``, hand-written (O(n^2) per row, like the forward)."""
    n = s.shape[-1]
    p = numpy_forward(s)
    glog = p * (g - np.sum(g * p, axis=-1, keepdims=True)) / TAU  # d logits
    coef = (n + 1 - 2 * (np.arange(n) + 1)).astype(np.float64)
    g_direct = np.einsum("i,...ij->...j", coef, glog)
    g_rows = -glog.sum(axis=-2)  # cotangent of A_s 1
    sgn = np.sign(s[..., :, None] - s[..., None, :])
    grad = g_direct + g_rows * sgn.sum(-1) + np.einsum("...jk,...j->...k", sgn, g_rows) * -1
    return p, grad


def _reference_fb() -> tuple[np.ndarray, ...]:
    return numpy_vjp(*_inputs())


def _diffsys_fb() -> Thunk:
    import diffsys as ds
    from diffsys.relax import neural_sort

    s, g = _inputs()

    def run() -> Any:
        p, pull = ds.vjp(lambda s: neural_sort(s, TAU), s)
        return p, pull(g)[0]

    return run


def _numpy_fb() -> Thunk:
    s, g = _inputs()
    return lambda: numpy_vjp(s, g)


def _autograd_fb() -> Thunk:
    import autograd
    import autograd.numpy as anp

    s, g = _inputs()

    def run() -> Any:
        pull, p = autograd.make_vjp(lambda s: _formula(s, anp))(s)
        return p, pull(g)

    return run


def _torch_graph(s: Any, torch: Any) -> Any:
    """Grover et al.'s PyTorch code (row sums by a product with a ones matrix, as published)."""
    n = s.size()[1]
    s = s.unsqueeze(-1)
    one = torch.ones((n, 1), dtype=s.dtype)
    a_s = torch.abs(s - s.permute(0, 2, 1))
    b = torch.matmul(a_s, torch.matmul(one, torch.transpose(one, 0, 1)))
    scaling = (n + 1 - 2 * (torch.arange(n) + 1)).type(s.dtype)
    c = torch.matmul(s, scaling.unsqueeze(0))
    p_max = (c - b).permute(0, 2, 1)
    return torch.nn.functional.softmax(p_max / TAU, dim=-1)


def _torch_fb() -> Thunk:
    torch = torch_single_thread()
    s, g = (torch.tensor(a) for a in _inputs())
    s.requires_grad_(True)

    def run() -> Any:
        p = _torch_graph(s, torch)
        (grad,) = torch.autograd.grad(p, s, g)
        return p, grad

    return run


def _jax_fb(jit: bool) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    def fb(s: Any, g: Any) -> Any:
        p, pull = jax.vjp(lambda s: _formula(s, jnp), s)
        return p, pull(g)[0]

    f = jax_blocking(jax.jit(fb) if jit else fb)
    s, g = (jnp.asarray(a) for a in _inputs())
    return lambda: f(s, g)


WORKLOAD = Workload(
    name="neuralsort",
    title="NeuralSort n = 256, forward + backward",
    description=(
        f"`diffsys.relax.neural_sort(s, tau=1)` on a ({ROWS}, {N}) float64 batch of scores "
        f"(standard normal, seed 0): the ({ROWS}, {N}, {N}) relaxed permutation matrices and the "
        "VJP of a fixed cotangent. diffsys runs one fused primitive (row sums of |s_j - s_k| "
        "from a sort, exact row maxima from the sort, a one-pass VJP). The others run the "
        "paper's formula (PyTorch: the authors' code, whose row sums are a product with an "
        "n x n ones matrix); NumPy's derivatives are hand-written. The issue measured NumPy "
        "forward alone 50.8 ms, PyTorch 364 ms and autograd 272 ms at a batch size it did not "
        "state: compare ratios, not times."
    ),
    unit="ms",
    scale=1e3,
    target=66.0,  # fallback: 1.3 x the issue's 50.8 ms
    reference=_reference_fb,
    impls={
        "diffsys": Impl(_diffsys_fb, "`ds.vjp(relax.neural_sort)`, pullback"),
        "numpy": Impl(_numpy_fb, "the formula + hand-written VJP"),
        "autograd": Impl(_autograd_fb, "`autograd.make_vjp` of the formula"),
        "torch": Impl(_torch_fb, "the authors' code + `autograd.grad`"),
        "jax": Impl(lambda: _jax_fb(jit=False), "`jax.vjp` of the formula"),
        "jax-jit": Impl(lambda: _jax_fb(jit=True), "the same under `jax.jit`"),
    },
    issue_refs={"torch": 364.0, "autograd": 272.0},
    relative_target=("neuralsort_forward", "numpy", 1.3),
)


def _diffsys_fwd() -> Thunk:
    from diffsys.relax import neural_sort

    s, _ = _inputs()
    return lambda: neural_sort(s, TAU)


def _numpy_fwd() -> Thunk:
    s, _ = _inputs()
    return lambda: numpy_forward(s)


def _torch_fwd() -> Thunk:
    torch = torch_single_thread()
    s = torch.tensor(_inputs()[0])

    def run() -> Any:
        with torch.no_grad():
            return _torch_graph(s, torch)

    return run


def _jax_fwd(jit: bool) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    fwd = lambda s: _formula(s, jnp)
    f = jax_blocking(jax.jit(fwd) if jit else fwd)
    s = jnp.asarray(_inputs()[0])
    return lambda: f(s)


WORKLOAD_FORWARD = Workload(
    name="neuralsort_forward",
    title="NeuralSort n = 256, forward only",
    description=(
        f"The forward pass alone, ({ROWS}, {N}) scores: the ({ROWS}, {N}, {N}) matrices. The "
        "NumPy row (the paper's formula, O(n^2) per row) is the yardstick of the `neuralsort` "
        "target. diffsys's target here is ours: no slower than that NumPy forward."
    ),
    unit="ms",
    scale=1e3,
    target=50.8,  # fallback: the issue's NumPy forward
    own_target=True,
    reference=lambda: (numpy_forward(_inputs()[0]),),
    impls={
        "diffsys": Impl(_diffsys_fwd, "`relax.neural_sort(s)`"),
        "numpy": Impl(_numpy_fwd, "the paper's formula"),
        "torch": Impl(_torch_fwd, "the authors' code, `no_grad`"),
        "jax": Impl(lambda: _jax_fwd(jit=False), "the formula in `jax.numpy`"),
        "jax-jit": Impl(lambda: _jax_fwd(jit=True), "the same under `jax.jit`"),
    },
    issue_refs={"numpy": 50.8},
    relative_target=("neuralsort_forward", "numpy", 1.0),
)
