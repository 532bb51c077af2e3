"""Variational inference: the ELBO estimator and the SVI loop.

For a model ``p(x, z)`` (observed ``x``) and a guide ``q(z)`` the evidence lower bound is
``ELBO = E_q[log p(x, z) - log q(z)] <= log p(x)``. :class:`Trace_ELBO` estimates it with
``num_particles`` runs of the guide; the model is replayed on the guide's values. Its
``loss`` is ``-ELBO`` as a surrogate whose gradient is an unbiased estimate of ``-grad ELBO``:

- continuous sites whose distribution has ``rsample`` are reparameterised: the gradient flows
  through the sample (pathwise);
- the other guide sites (discrete ones, or ``infer={"reparam": False}``) add the score-function
  term ``(cost - b) grad log q(z)`` with ``cost = -(log p - log q)`` of the particle and a
  baseline ``b`` from :func:`diffsys.relax.baseline_values` (``None``, a number, ``"loo"`` or a
  :class:`diffsys.relax.MovingAverageBaseline`): the value is unchanged, the gradient gains it.
- ``analytic_kl=True`` replaces ``log p(z) - log q(z)`` of a latent site by ``-KL(q || p)``
  where :func:`diffsys.prob.kl_divergence` has the pair (valid for mean-field guides, whose
  site distributions do not depend on later samples).

:class:`SVI` keeps the parameters unconstrained (``param(..., constraint=positive)`` is stored
as a log) and steps them with any :mod:`diffsys.optim` transformation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import diffsys.numpy as dnp

from ..core.custom import stop_gradient
from ..core.pytree import tree_map
from ..core.tracer import concrete
from ..core.transforms import value_and_grad
from ..optim import GradientTransformation, apply_updates
from ..relax import MovingAverageBaseline, baseline_values
from . import constraints as _constraints
from .handlers import Trace, constrain, replay, seed, site_log_prob, substitute, trace
from .kl import _KL, kl_divergence

Array = Any


def _has_kl(p, q) -> bool:
    return any((a, b) in _KL for a in type(p).__mro__ for b in type(q).__mro__)


def _is_reparam(site) -> bool:
    return site["fn"].has_rsample and site["infer"].get("reparam", True)


class Trace_ELBO:
    """The ELBO of a model/guide pair, estimated from ``num_particles`` guide runs.

    ``loss(params, model, guide, *args, rng=...)`` returns the surrogate ``-ELBO`` (differentiate
    it with ``ds.grad``); ``elbo(...)`` returns the plain ELBO estimate.
    """

    def __init__(
        self,
        num_particles: int = 1,
        *,
        baseline: None | float | str | MovingAverageBaseline = None,
        analytic_kl: bool = False,
    ) -> None:
        if int(num_particles) < 1:
            raise ValueError(f"Trace_ELBO: num_particles must be >= 1, got {num_particles!r}")
        if baseline == "loo" and int(num_particles) < 2:
            raise ValueError("Trace_ELBO: the 'loo' baseline needs num_particles >= 2")
        self.num_particles = int(num_particles)
        self.baseline = baseline
        self.analytic_kl = bool(analytic_kl)

    def traces(self, params: dict, model: Callable, guide: Callable, rng, *args, **kwargs):
        """One particle: ``(model_trace, guide_trace)``, the model replayed on the guide."""
        gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        guide_tr = trace(seed(substitute(guide, params), gen)).get_trace(*args, **kwargs)
        model_tr = trace(seed(replay(substitute(model, params), guide_tr), gen)).get_trace(
            *args, **kwargs
        )
        return model_tr, guide_tr

    def _particle(self, model_tr: Trace, guide_tr: Trace):
        """``(elbo, sum of log q over score-function sites)`` of one particle (traced)."""
        elbo, score = 0.0, 0.0
        kl_sites = set()
        for name, site in model_tr.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                elbo = elbo + site_log_prob(site)
                continue
            g = guide_tr.get(name)
            if g is None or g["type"] != "sample":
                raise ValueError(
                    f"Trace_ELBO: the model's latent sample site {name!r} has no guide site of "
                    f"that name; the guide must sample every unobserved model site (guide sites: "
                    f"{sorted(k for k, s in guide_tr.items() if s['type'] == 'sample')})"
                )
            if self.analytic_kl and _is_reparam(g) and _has_kl(g["fn"], site["fn"]):
                elbo = elbo - g["scale"] * dnp.sum(kl_divergence(g["fn"], site["fn"]))
                kl_sites.add(name)
            else:
                elbo = elbo + site_log_prob(site)
        for name, site in guide_tr.items():
            if site["type"] != "sample" or site["is_observed"]:
                continue
            if name not in model_tr:
                raise ValueError(
                    f"Trace_ELBO: the guide's sample site {name!r} is not in the model"
                )
            if name in kl_sites:
                continue
            lq = site_log_prob(site)
            elbo = elbo - lq
            if not _is_reparam(site):
                score = score + lq
        return elbo, score

    def loss(self, params: dict, model: Callable, guide: Callable, *args, rng, **kwargs) -> Array:
        """The surrogate ``-ELBO`` (mean over particles); differentiable in ``params``."""
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        elbos, scores = [], []
        for _ in range(self.num_particles):
            elbo, score = self._particle(*self.traces(params, model, guide, gen, *args, **kwargs))
            elbos.append(elbo)
            scores.append(score)
        costs = dnp.negative(dnp.stack([dnp.asarray(e) for e in elbos]))
        total = dnp.mean(costs)
        if all(isinstance(s, float) for s in scores):  # every site reparameterised
            return total
        plain = np.asarray(concrete(costs), dtype=np.float64)
        weights = plain - baseline_values(self.baseline, plain, "Trace_ELBO")
        logq = dnp.stack([dnp.asarray(s) for s in scores])
        surrogate = dnp.mean(weights * logq)
        if isinstance(self.baseline, MovingAverageBaseline):
            self.baseline.update(plain)
        return total + (surrogate - stop_gradient(surrogate))

    def elbo(self, params: dict, model: Callable, guide: Callable, *args, rng, **kwargs) -> float:
        """The ELBO estimate (a float, no derivative)."""
        return -float(concrete(self.loss(params, model, guide, *args, rng=rng, **kwargs)))


class SVIState(NamedTuple):
    """SVI's state: unconstrained parameters, optimizer state, step count, seed."""

    params: dict
    opt_state: Any
    step: int
    seed: int


class SVIRunResult(NamedTuple):
    params: dict  #: constrained parameter values (what the model sees)
    losses: np.ndarray  #: the loss (-ELBO estimate) at every step
    state: SVIState


class SVI:
    """Stochastic variational inference: gradient steps on ``loss`` (default
    :class:`Trace_ELBO`) over the parameters that ``model`` and ``guide`` declare with
    :func:`diffsys.prob.param`.

    >>> import numpy as np
    >>> from diffsys import prob, optim
    >>> def model(x):
    ...     mu = prob.sample("mu", prob.Normal(0.0, 10.0))
    ...     prob.sample("x", prob.Normal(mu, 1.0), obs=x)
    >>> def guide(x):
    ...     m = prob.param("m", 0.0)
    ...     s = prob.param("s", 1.0, prob.constraints.positive)
    ...     prob.sample("mu", prob.Normal(m, s))
    >>> svi = prob.SVI(model, guide, optim.adam(optim.exponential_decay(0.05, 0.01, 1000)))
    >>> res = svi.run(0, 1000, np.array([1.0, 2.0, 3.0]))  # exact posterior mean: 1.993
    >>> round(float(res.params["m"]), 2)
    1.99
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optimizer: GradientTransformation,
        loss: Trace_ELBO | None = None,
    ) -> None:
        if not isinstance(optimizer, GradientTransformation):
            raise TypeError(
                "SVI: optimizer must be a diffsys.optim GradientTransformation (optim.adam(1e-2)"
                f", ...), got {type(optimizer).__name__}"
            )
        self.model, self.guide, self.optimizer = model, guide, optimizer
        self.loss = loss if loss is not None else Trace_ELBO()
        self.constraints: dict[str, _constraints.Constraint] = {}

    def init(self, seed_: int, *args, **kwargs) -> SVIState:
        """Run guide and model once to collect their param sites (initial values)."""
        gen = np.random.default_rng([int(seed_), 2**31])
        guide_tr = trace(seed(self.guide, gen)).get_trace(*args, **kwargs)
        model_tr = trace(seed(replay(self.model, guide_tr), gen)).get_trace(*args, **kwargs)
        params = {}
        for tr in (guide_tr, model_tr):
            for name, site in tr.items():
                if site["type"] == "param" and name not in params:
                    c = site["constraint"]
                    self.constraints[name] = c
                    init = site["value"]
                    params[name] = init if c is _constraints.real else c.inverse(init)
        if not params:
            raise ValueError("SVI.init: neither the model nor the guide declares a prob.param")
        return SVIState(params, self.optimizer.init(params), 0, int(seed_))

    def _loss(self, params: dict, rng, *args, **kwargs) -> Array:
        constrained = constrain(params, self.constraints)
        return self.loss.loss(constrained, self.model, self.guide, *args, rng=rng, **kwargs)

    def update(self, state: SVIState, *args, **kwargs) -> tuple[SVIState, float]:
        """One gradient step; returns the new state and the loss before the step."""
        rng = np.random.default_rng([state.seed, state.step])
        loss, grads = value_and_grad(self._loss)(state.params, rng, *args, **kwargs)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = apply_updates(state.params, updates)
        return SVIState(params, opt_state, state.step + 1, state.seed), float(loss)

    def evaluate(self, state: SVIState, *args, **kwargs) -> float:
        """The loss at ``state`` (a fresh estimate, no step)."""
        rng = np.random.default_rng([state.seed, state.step, 1])
        return float(concrete(self._loss(state.params, rng, *args, **kwargs)))

    def get_params(self, state: SVIState) -> dict:
        """The constrained parameter values (plain arrays)."""
        return tree_map(
            lambda v: np.asarray(concrete(v)), constrain(state.params, self.constraints)
        )

    def run(self, seed_: int, num_steps: int, *args, **kwargs) -> SVIRunResult:
        """``init`` then ``num_steps`` updates; the final params and the loss history."""
        state = self.init(seed_, *args, **kwargs)
        losses = np.empty(int(num_steps))
        for i in range(int(num_steps)):
            state, losses[i] = self.update(state, *args, **kwargs)
        return SVIRunResult(self.get_params(state), losses, state)
