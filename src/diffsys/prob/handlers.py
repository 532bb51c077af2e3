"""Model and guide primitives (``sample``, ``param``) and the effect handlers that give them
meaning, in the style of Pyro/NumPyro.

A *model* or *guide* is a plain Python function that calls :func:`sample` and :func:`param`.
Run bare, ``sample`` has no randomness and ``param`` returns its initial value; the
handlers, stacked around a call, decide what the sites do:

- :class:`seed` ``(fn, rng)``: unobserved sample sites draw from this generator
  (``rsample`` when the distribution has one, so values stay differentiable);
- :class:`trace` ``(fn)``: records every site (name, distribution, value) in call order;
  ``trace(fn).get_trace(*args)`` returns them as a dict;
- :class:`condition` ``(fn, data)``: the named sample sites are observed at ``data[name]``;
- :class:`replay` ``(fn, guide_trace)``: unobserved sample sites take the guide's values;
- :class:`substitute` ``(fn, params)``: the named param sites return ``params[name]``;
- :class:`scale` ``(fn, factor)``: the log-densities of the sample sites inside are multiplied
  by ``factor`` in ELBOs (minibatch rescaling, KL annealing), in model and guide alike.

Handlers are context managers too (``with seed(rng=0): model()``). The stack is a module-level
list, as in Pyro; each handler pushes itself for the duration of one call.

>>> import numpy as np
>>> from diffsys import prob
>>> def model():
...     return prob.sample("x", prob.Normal(0.0, 1.0))
>>> tr = prob.trace(prob.seed(model, rng=0)).get_trace()
>>> list(tr), tr["x"]["is_observed"]
(['x'], False)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.tracer import Tracer
from . import constraints as _constraints
from ._base import RNG, Distribution, as_generator

Site = dict[str, Any]
Trace = dict[str, Site]

_STACK: list[Messenger] = []


class Messenger:
    """Base handler: ``process`` runs before a site's default behaviour (innermost handler
    first), ``postprocess`` after it."""

    def __init__(self, fn: Callable | None = None) -> None:
        self.fn = fn

    def __enter__(self) -> Messenger:
        _STACK.append(self)
        return self

    def __exit__(self, *exc) -> None:
        if _STACK and _STACK[-1] is self:
            _STACK.pop()
        else:  # an inner handler leaked (exception inside its __enter__): drop through self
            while _STACK and _STACK.pop() is not self:
                pass

    def __call__(self, *args, **kwargs):
        if self.fn is None:
            raise TypeError(f"{type(self).__name__}: wraps no function; use it as `with` block")
        with self:
            return self.fn(*args, **kwargs)

    def process(self, site: Site) -> None:
        pass

    def postprocess(self, site: Site) -> None:
        pass


def _apply(site: Site) -> Any:
    for handler in reversed(_STACK):
        handler.process(site)
    if site["value"] is None:
        if site["type"] == "param":
            site["value"] = site["init"]
        else:
            rng = site["rng"]
            if rng is None:
                raise RuntimeError(
                    f"sample({site['name']!r}, {type(site['fn']).__name__}): no random "
                    "generator; run the model under prob.seed(model, rng=0), give obs=, or "
                    "condition it with prob.condition(model, {name: value})"
                )
            dist = site["fn"]
            site["value"] = dist.rsample(rng) if dist.has_rsample else dist.sample(rng)
    for handler in _STACK:
        handler.postprocess(site)
    return site["value"]


def sample(name: str, dist: Distribution, obs: Any = None, *, infer: dict | None = None) -> Any:
    """A named random variable drawn from ``dist`` (observed at ``obs`` when given).

    ``infer={"reparam": False}`` asks ELBO estimators for a score-function gradient even when
    ``dist`` has ``rsample``.
    """
    if not isinstance(name, str):
        raise TypeError(f"sample: the site name must be a str, got {type(name).__name__}")
    if not isinstance(dist, Distribution):
        raise TypeError(
            f"sample({name!r}): expected a prob distribution (prob.Normal, ...), got "
            f"{type(dist).__name__}"
        )
    site: Site = {
        "type": "sample",
        "name": name,
        "fn": dist,
        "value": obs,
        "is_observed": obs is not None,
        "rng": None,
        "infer": dict(infer or {}),
        "scale": 1.0,
    }
    if not _STACK:
        return _apply(site) if obs is None else obs
    return _apply(site)


def param(
    name: str,
    init_value: Any,
    constraint: _constraints.Constraint = _constraints.real,
) -> Any:
    """A named learnable parameter: an array, or any pytree of arrays (an ``nn.Module``) when
    ``constraint`` is ``real``. Bare, it returns ``init_value``; under :class:`substitute` (as
    in :class:`diffsys.prob.SVI`) the current value."""
    if not isinstance(constraint, _constraints.Constraint):
        raise TypeError(
            f"param({name!r}): constraint must be a prob.constraints value (real, positive, "
            f"unit_interval, simplex, lower_cholesky), got {constraint!r}"
        )
    if constraint is not _constraints.real:
        init_value = init_value if isinstance(init_value, Tracer) else np.asarray(init_value, float)
    site: Site = {
        "type": "param",
        "name": name,
        "init": init_value,
        "value": None,
        "constraint": constraint,
    }
    return _apply(site)


class seed(Messenger):
    """Unobserved sample sites draw from ``rng`` (a Generator or an int seed)."""

    def __init__(self, fn: Callable | None = None, rng: RNG = 0) -> None:
        super().__init__(fn)
        self.rng = as_generator(rng, "prob.seed")

    def process(self, site: Site) -> None:
        if site["type"] == "sample" and site["rng"] is None:
            site["rng"] = self.rng


class trace(Messenger):
    """Records every site; ``get_trace(*args)`` runs ``fn`` and returns ``{name: site}``."""

    def __enter__(self) -> trace:
        self.trace: Trace = {}
        return super().__enter__()

    def postprocess(self, site: Site) -> None:
        if site["name"] in self.trace:
            raise ValueError(
                f"prob.trace: site name {site['name']!r} used twice in one run; every "
                "sample/param site needs a unique name (add an index: f'z_{i}')"
            )
        self.trace[site["name"]] = dict(site)

    def get_trace(self, *args, **kwargs) -> Trace:
        self(*args, **kwargs)
        return self.trace


class condition(Messenger):
    """Observe the sample sites named in ``data`` at those values."""

    def __init__(self, fn: Callable | None = None, data: dict | None = None) -> None:
        super().__init__(fn)
        self.data = dict(data or {})

    def process(self, site: Site) -> None:
        if site["type"] == "sample" and site["name"] in self.data:
            site["value"] = self.data[site["name"]]
            site["is_observed"] = True


class replay(Messenger):
    """Unobserved sample sites take their value from ``guide_trace`` (same names)."""

    def __init__(self, fn: Callable | None = None, guide_trace: Trace | None = None) -> None:
        super().__init__(fn)
        self.guide_trace = guide_trace or {}

    def process(self, site: Site) -> None:
        if site["type"] != "sample" or site["is_observed"]:
            return
        guide_site = self.guide_trace.get(site["name"])
        if guide_site is not None and guide_site["type"] == "sample":
            site["value"] = guide_site["value"]


class substitute(Messenger):
    """The param sites named in ``params`` return ``params[name]`` (constrained values)."""

    def __init__(self, fn: Callable | None = None, params: dict | None = None) -> None:
        super().__init__(fn)
        self.params = params or {}

    def process(self, site: Site) -> None:
        if site["type"] == "param" and site["name"] in self.params:
            site["value"] = self.params[site["name"]]


class scale(Messenger):
    """Multiply the log-density of every sample site inside by ``factor`` (> 0).

    >>> from diffsys import prob
    >>> def model():
    ...     with prob.scale(factor=0.5):
    ...         prob.sample("x", prob.Normal(0.0, 1.0), obs=0.0)
    >>> round(float(prob.log_density(prob.trace(model).get_trace())), 6)  # 0.5 log N(0|0,1)
    -0.459469
    """

    def __init__(self, fn: Callable | None = None, factor: float = 1.0) -> None:
        super().__init__(fn)
        if not float(factor) > 0:
            raise ValueError(f"prob.scale: factor must be positive, got {factor!r}")
        self.factor = factor

    def process(self, site: Site) -> None:
        if site["type"] == "sample":
            site["scale"] = site["scale"] * self.factor


def site_log_prob(site: Site) -> Any:
    """The summed log-density of one sample site's value (a scalar), times its ``scale``."""
    from ..numpy import sum as _sum

    lp = _sum(site["fn"].log_prob(site["value"]))
    return lp if site.get("scale", 1.0) == 1.0 else site["scale"] * lp


def log_density(trace_: Trace) -> Any:
    """``sum log p`` over every sample site of a trace (observed and latent)."""
    total = 0.0
    for site in trace_.values():
        if site["type"] == "sample":
            total = total + site_log_prob(site)
    return total


def constrain(params: dict, constraints_: dict[str, _constraints.Constraint]) -> dict:
    """Unconstrained parameter values -> the values the model sees."""
    return {k: constraints_.get(k, _constraints.real).transform(v) for k, v in params.items()}


__all__ = [
    "Messenger",
    "condition",
    "constrain",
    "log_density",
    "param",
    "replay",
    "sample",
    "scale",
    "seed",
    "site_log_prob",
    "substitute",
    "trace",
]
