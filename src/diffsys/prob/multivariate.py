"""Distributions over vectors: MultivariateNormal (Cholesky-parameterised) and Dirichlet."""

from __future__ import annotations

import math

import numpy as np

import diffsys.numpy as dnp

from ..core.tracer import concrete
from ..scipy import linalg as sla
from ..scipy import special as sp
from ._base import RNG, Array, Distribution, as_param, check_positive, shape_of
from ._gamma import standard_gamma

_LOG_2PI = math.log(2.0 * math.pi)


class MultivariateNormal(Distribution):
    """``N(loc, L L^T)`` with ``L = scale_tril`` lower-triangular with a positive diagonal (or
    ``L = cholesky(covariance_matrix)``). Event shape ``(k,)``; batch shapes broadcast.

    Only the lower triangle of ``scale_tril`` is read. ``rsample`` is ``loc + L eps``.

    >>> import numpy as np
    >>> d = MultivariateNormal(np.zeros(2), covariance_matrix=np.array([[4.0, 0.0], [0.0, 1.0]]))
    >>> float(d.log_prob(np.zeros(2)).round(6)), d.rsample(0, (5,)).shape
    (-2.531024, (5, 2))
    """

    has_rsample = True

    def __init__(
        self,
        loc: Array,
        scale_tril: Array | None = None,
        covariance_matrix: Array | None = None,
    ) -> None:
        name = "MultivariateNormal"
        if (scale_tril is None) == (covariance_matrix is None):
            raise ValueError(f"{name}: give exactly one of scale_tril= or covariance_matrix=")
        self.loc = as_param(name, "loc", loc)
        loc_shape = shape_of(self.loc)
        if len(loc_shape) == 0:
            raise ValueError(f"{name}: loc needs a last axis of length k (the event), got a scalar")
        k = loc_shape[-1]
        field = "scale_tril" if scale_tril is not None else "covariance_matrix"
        mat = as_param(name, field, scale_tril if scale_tril is not None else covariance_matrix)
        m_shape = shape_of(mat)
        if len(m_shape) < 2 or m_shape[-2:] != (k, k):
            raise ValueError(
                f"{name}: {field} must have shape (..., {k}, {k}) to match loc of shape "
                f"{loc_shape}, got {m_shape}"
            )
        if covariance_matrix is not None:
            try:
                mat = dnp.linalg.cholesky(mat)
            except np.linalg.LinAlgError:
                raise ValueError(
                    f"{name}: covariance_matrix (shape {m_shape}) is not positive definite"
                ) from None
        self.scale_tril = dnp.tril(mat)
        check_positive(name, "diagonal of scale_tril", np.diagonal(concrete(mat), 0, -2, -1))
        try:
            self.batch_shape = tuple(np.broadcast_shapes(loc_shape[:-1], m_shape[:-2]))
        except ValueError:
            raise ValueError(
                f"{name}: batch shapes do not broadcast: loc {loc_shape} (batch "
                f"{loc_shape[:-1]}), {field} {m_shape} (batch {m_shape[:-2]})"
            ) from None
        self.event_shape = (k,)

    def _params(self):
        return {"loc": self.loc, "scale_tril": self.scale_tril}

    def _log_diag(self) -> Array:
        return dnp.log(dnp.diagonal(self.scale_tril, 0, -2, -1))

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        eps = self._gen(rng, "rsample").standard_normal(self._shape(sample_shape))
        return self.loc + dnp.einsum("...ij,...j->...i", self.scale_tril, eps)

    def log_prob(self, value: Array) -> Array:
        diff = value - self.loc
        shape = shape_of(diff)
        k = self.event_shape[0]
        tril = dnp.broadcast_to(self.scale_tril, shape[:-1] + (k, k))
        white = sla.solve_triangular(tril, dnp.expand_dims(diff, -1), lower=True)[..., 0]
        return (
            -0.5 * dnp.sum(white * white, axis=-1)
            - dnp.sum(self._log_diag(), axis=-1)
            - 0.5 * k * _LOG_2PI
        )

    def entropy(self) -> Array:
        k = self.event_shape[0]
        h = 0.5 * k * (1.0 + _LOG_2PI) + dnp.sum(self._log_diag(), axis=-1)
        return dnp.broadcast_to(h, self.batch_shape)

    @property
    def covariance_matrix(self) -> Array:
        return dnp.matmul(self.scale_tril, dnp.swapaxes(self.scale_tril, -1, -2))

    @property
    def mean(self) -> Array:
        return dnp.broadcast_to(self.loc, self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Array:
        v = dnp.sum(self.scale_tril * self.scale_tril, axis=-1)
        return dnp.broadcast_to(v, self.batch_shape + self.event_shape)


class Dirichlet(Distribution):
    """``Dirichlet(concentration)`` over the simplex of the last axis.

    ``rsample`` normalises independent Gamma samples (implicit reparameterisation gradients).

    >>> import numpy as np
    >>> Dirichlet(np.array([1.0, 3.0])).mean
    array([0.25, 0.75])
    """

    has_rsample = True

    def __init__(self, concentration: Array) -> None:
        self.concentration = as_param("Dirichlet", "concentration", concentration)
        check_positive("Dirichlet", "concentration", self.concentration)
        shape = shape_of(self.concentration)
        if len(shape) == 0:
            raise ValueError("Dirichlet: concentration needs a last axis (the categories)")
        self.batch_shape, self.event_shape = shape[:-1], shape[-1:]

    def _params(self):
        return {"concentration": self.concentration}

    def rsample(self, rng: RNG, sample_shape: tuple[int, ...] = ()) -> Array:
        shape = self._shape(sample_shape)
        u = self._gen(rng, "rsample").uniform(np.finfo(np.float64).tiny, 1.0, size=shape)
        g = standard_gamma(dnp.broadcast_to(self.concentration, shape), u)
        return g / dnp.sum(g, axis=-1, keepdims=True)

    def _log_norm(self) -> Array:
        a = self.concentration
        return dnp.sum(sp.gammaln(a), axis=-1) - sp.gammaln(dnp.sum(a, axis=-1))

    def log_prob(self, value: Array) -> Array:
        a = self.concentration
        return dnp.sum(sp.xlogy(a - 1.0, value), axis=-1) - self._log_norm()

    def entropy(self) -> Array:
        a = self.concentration
        a0 = dnp.sum(a, axis=-1)
        k = self.event_shape[0]
        return (
            self._log_norm()
            + (a0 - k) * sp.digamma(a0)
            - dnp.sum((a - 1.0) * sp.digamma(a), axis=-1)
        )

    @property
    def mean(self) -> Array:
        a = self.concentration
        return a / dnp.sum(a, axis=-1, keepdims=True)

    @property
    def variance(self) -> Array:
        a = self.concentration
        a0 = dnp.sum(a, axis=-1, keepdims=True)
        return a * (a0 - a) / (a0 * a0 * (a0 + 1.0))
