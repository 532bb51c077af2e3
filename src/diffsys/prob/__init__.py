"""``diffsys.prob``: probability distributions, model/guide programs and variational inference.

- Distributions (``_base.Distribution``): :class:`Normal`, :class:`LogNormal`,
  :class:`Exponential`, :class:`Uniform`, :class:`Gamma`, :class:`Beta` (continuous,
  reparameterised ``rsample``; Gamma/Beta/Dirichlet by implicit gradients),
  :class:`MultivariateNormal` (Cholesky), :class:`Dirichlet`, :class:`Bernoulli`,
  :class:`Categorical`, :class:`RelaxedCategorical` (Gumbel-softmax) and
  :class:`OneHotCategorical` (straight-through Gumbel-softmax); ``sample``,
  ``log_prob``, ``entropy``, ``mean``, ``variance``; :func:`kl_divergence` in closed form.
- Programs (Pyro/NumPyro style): :func:`sample`, :func:`param` and the handlers
  :class:`seed`, :class:`trace`, :class:`condition`, :class:`replay`, :class:`substitute`,
  :class:`scale`.
- Inference: :class:`Trace_ELBO` (pathwise gradients for continuous sites, score function with
  baselines from :mod:`diffsys.relax` for discrete ones), :class:`SVI` with :mod:`diffsys.optim`.

This package sits above ``nn``/``optim``/``relax`` and below ``systems``: it is a modelling
layer (like ``nn``), not a component driving an external engine. See docs/prob.md.
"""

from . import constraints
from ._base import Distribution
from .continuous import Beta, Exponential, Gamma, LogNormal, Normal, Uniform
from .discrete import Bernoulli, Categorical, OneHotCategorical, RelaxedCategorical
from .handlers import (
    Messenger,
    condition,
    log_density,
    param,
    replay,
    sample,
    scale,
    seed,
    substitute,
    trace,
)
from .infer import SVI, SVIRunResult, SVIState, Trace_ELBO
from .kl import kl_divergence, register_kl
from .multivariate import Dirichlet, MultivariateNormal

__all__ = [
    "SVI",
    "Bernoulli",
    "Beta",
    "Categorical",
    "Dirichlet",
    "Distribution",
    "Exponential",
    "Gamma",
    "LogNormal",
    "Messenger",
    "MultivariateNormal",
    "Normal",
    "OneHotCategorical",
    "RelaxedCategorical",
    "SVIRunResult",
    "SVIState",
    "Trace_ELBO",
    "Uniform",
    "condition",
    "constraints",
    "kl_divergence",
    "log_density",
    "param",
    "register_kl",
    "replay",
    "sample",
    "scale",
    "seed",
    "substitute",
    "trace",
]
