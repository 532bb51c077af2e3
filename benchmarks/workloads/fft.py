"""Gradient through rfft2/irfft2 of a 512 x 512 image: a spectral filter's squared output."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import jax_blocking, jax_float64, torch_single_thread
from ._spec import Impl, Thunk, Workload

N = 512


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, N))
    f1 = np.fft.fftfreq(N)[:, None]
    f2 = np.fft.rfftfreq(N)[None, :]
    h = np.exp(-40.0 * (f1**2 + f2**2))  # a real, even Gaussian low-pass on the half spectrum
    return x, h


def _numpy_grad(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The filter is real and even, so the operator is symmetric: grad = 2 A^T A x = 2 A A x."""
    return 2.0 * np.fft.irfft2(np.fft.rfft2(x) * (h * h), s=x.shape)


def reference() -> tuple[np.ndarray, ...]:
    return (_numpy_grad(*_inputs()),)


def _numpy() -> Thunk:
    x, h = _inputs()
    return lambda: _numpy_grad(x, h)


def _diffsys() -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp

    x, h = _inputs()
    g = ds.grad(lambda v: dnp.sum(dnp.fft.irfft2(dnp.fft.rfft2(v) * h, s=v.shape) ** 2))
    return lambda: g(x)


def _autograd() -> Thunk:
    import autograd
    import autograd.numpy as anp

    x, h = _inputs()
    g = autograd.grad(lambda v: anp.sum(anp.fft.irfft2(anp.fft.rfft2(v) * h, s=v.shape) ** 2))
    return lambda: g(x)


def _torch() -> Thunk:
    torch = torch_single_thread()
    x, h = (torch.tensor(v, dtype=torch.float64) for v in _inputs())
    x.requires_grad_(True)

    def run() -> Any:
        y = torch.fft.irfft2(torch.fft.rfft2(x) * h, s=x.shape)
        (g,) = torch.autograd.grad(torch.sum(y**2), x)
        return g

    return run


def _jax(jit: bool) -> Thunk:
    jax = jax_float64()
    import jax.numpy as jnp

    x, h = (jnp.asarray(v) for v in _inputs())
    g = jax.grad(lambda v: jnp.sum(jnp.fft.irfft2(jnp.fft.rfft2(v) * h, s=v.shape) ** 2))
    f = jax_blocking(jax.jit(g) if jit else g)
    return lambda: f(x)


WORKLOAD = Workload(
    name="fft",
    title="FFT gradient",
    description=(
        "`grad_x sum(irfft2(rfft2(x) * H) ** 2)` for a 512 x 512 standard-normal image x and a "
        "real Gaussian low-pass H on the half spectrum, float64, seed 0. The hand-written NumPy "
        "version uses that the filter is symmetric (one rfft2/irfft2 pair). The issue sets no "
        "number: the target is ours, 2.5 x that hand-written version (the backward pass needs "
        "two transform pairs)."
    ),
    unit="ms",
    scale=1e3,
    target=15.0,
    own_target=True,
    reference=reference,
    impls={
        "diffsys": Impl(_diffsys, "`ds.grad(f)` with `dnp.fft.rfft2`, `dnp.fft.irfft2`"),
        "numpy": Impl(_numpy, "`2 irfft2(rfft2(x) H^2)` (symmetric filter)"),
        "autograd": Impl(_autograd, "`autograd.grad(f)`"),
        "torch": Impl(_torch, "`torch.autograd.grad`, `torch.fft`"),
        "jax": Impl(lambda: _jax(jit=False), "`jax.grad(f)`"),
        "jax-jit": Impl(lambda: _jax(jit=True), "the same under `jax.jit`"),
    },
)
