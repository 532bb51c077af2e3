"""``diffsys.numpy.random``: NumPy's random API as plain values, never traced.

Random draws are not differentiable functions of their parameters here. To differentiate
through a sample, reparameterize: draw standard noise as a plain value and transform it with
differentiable operations::

    import diffsys as ds
    import diffsys.numpy as dnp

    def sample(loc, scale):
        eps = dnp.random.default_rng(0).standard_normal(3)  # a plain array
        return loc + scale * eps                              # differentiable in loc, scale

    ds.grad(lambda s: dnp.sum(sample(1.0, s)))(2.0)

Passing a traced value as a parameter (``dnp.random.normal(loc=tracer)``, or to a
``Generator`` method) raises a ``TypeError`` that says so.
"""

from __future__ import annotations

import functools

import numpy as _np

from ..core.tracer import Tracer as _Tracer


def _has_tracer(values) -> bool:
    for v in values:
        if isinstance(v, _Tracer):
            return True
        if isinstance(v, list | tuple) and _has_tracer(v):
            return True
    return False


def _refuse(name: str) -> None:
    raise TypeError(
        f"diffsys.numpy.random.{name}: a traced value (a diffsys.Tracer) was passed as a "
        "parameter; random draws are plain values and are not differentiable in their "
        "parameters. Reparameterize instead, e.g. loc + scale * "
        "dnp.random.default_rng(0).standard_normal(shape) for normal(loc, scale), or pass "
        "ds.stop_gradient(x) (or x.concrete()) if the parameter should be a constant"
    )


def _guard(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _has_tracer(args) or _has_tracer(kwargs.values()):
            _refuse(name)
        return fn(*args, **kwargs)

    return wrapper


class Generator(_np.random.Generator):
    """``numpy.random.Generator`` (a subclass: ``isinstance`` checks and SciPy's
    ``random_state=`` accept it) whose methods refuse traced parameters."""

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if name[0] != "_" and callable(attr) and name != "spawn":
            return _guard(f"Generator.{name}", attr)
        return attr

    def spawn(self, n_children: int) -> list[Generator]:
        """Independent child generators (``numpy.random.Generator.spawn``)."""
        return [Generator(g.bit_generator) for g in super().spawn(n_children)]


def default_rng(seed=None) -> Generator:
    """A new :class:`Generator` (``numpy.random.default_rng``); ``seed`` may not be traced."""
    if isinstance(seed, _Tracer):
        _refuse("default_rng")
    if isinstance(seed, Generator):
        return seed
    return Generator(_np.random.default_rng(seed).bit_generator)


# The legacy module-level functions (global RandomState), each refusing traced parameters.
_FUNCTIONS = [
    "beta",
    "binomial",
    "bytes",
    "chisquare",
    "choice",
    "dirichlet",
    "exponential",
    "f",
    "gamma",
    "geometric",
    "get_state",
    "gumbel",
    "hypergeometric",
    "laplace",
    "logistic",
    "lognormal",
    "logseries",
    "multinomial",
    "multivariate_normal",
    "negative_binomial",
    "noncentral_chisquare",
    "noncentral_f",
    "normal",
    "pareto",
    "permutation",
    "poisson",
    "power",
    "rand",
    "randint",
    "randn",
    "random",
    "random_integers",
    "random_sample",
    "ranf",
    "rayleigh",
    "sample",
    "seed",
    "set_state",
    "shuffle",
    "standard_cauchy",
    "standard_exponential",
    "standard_gamma",
    "standard_normal",
    "standard_t",
    "triangular",
    "uniform",
    "vonmises",
    "wald",
    "weibull",
    "zipf",
]

for _name in _FUNCTIONS:
    if hasattr(_np.random, _name):
        globals()[_name] = _guard(_name, getattr(_np.random, _name))

RandomState = _np.random.RandomState
SeedSequence = _np.random.SeedSequence
BitGenerator = _np.random.BitGenerator
PCG64 = _np.random.PCG64
PCG64DXSM = _np.random.PCG64DXSM
MT19937 = _np.random.MT19937
Philox = _np.random.Philox
SFC64 = _np.random.SFC64

__all__ = [n for n in _FUNCTIONS if n in globals()] + [
    "BitGenerator",
    "Generator",
    "MT19937",
    "PCG64",
    "PCG64DXSM",
    "Philox",
    "RandomState",
    "SFC64",
    "SeedSequence",
    "default_rng",
]
