"""Provenance semirings: one evaluation, many semantics (as Scallop's provenance trait).

A :class:`Semiring` is a small protocol over arrays of tags (one tag per tuple):

- ``zero`` / ``one``: the tag of "not derived" and of "certainly true";
- ``mul(a, b)``: conjunction (a rule body), elementwise;
- ``add_reduce(x, axis)``: disjunction (alternative derivations), a reduction;
- ``negate(a)``: the tag of ``not a`` (stratified negation); optional;
- ``idempotent``: ``a + a == a``, so the fixpoint is reached exactly in finitely many rounds;
  otherwise the fixpoint is iterated until it stops changing (``tol``) or a limit.

Tags are NumPy/diffsys arrays, so gradients flow to fact weights through ``mul`` and
``add_reduce``. :class:`TopKProofs` is the one semiring whose tags are sets of proofs; it is
evaluated by its own fixpoint (see :mod:`.ops`).

================  ==========  ===========  ==============  =========  ===========
semiring          tag         add          mul             negate     idempotent
================  ==========  ===========  ==============  =========  ===========
``BOOLEAN``       bool        or           and             not        yes (exact)
``MAX_PRODUCT``   [0, 1]      max          ``*``           ``1 - a``  yes (Viterbi)
``MAX_PLUS``      score       max          ``+``           --         yes
``ADD_MULT``      [0, 1]      ``+``        ``*``           ``1 - a``  no
``LOG_SUM_EXP``   log-score   T logsumexp  ``+``           --         no (smooth max-plus)
``TopKProofs(k)`` proofs      union, k     pairwise union  flips      yes
================  ==========  ===========  ==============  =========  ===========
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core import concrete
from ...relax import logsumexp

Array = Any


class Semiring:
    """The protocol (see the module docstring). Subclasses set the class attributes."""

    name = "semiring"
    zero: float = 0.0
    one: float = 1.0
    idempotent = True
    dtype = np.float64

    def mul(self, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def add_reduce(self, x: Array, axis: int) -> Array:
        raise NotImplementedError

    def negate(self, a: Array) -> Array:
        raise TypeError(
            f"logic: semiring {self.name} has no negation; use BOOLEAN, MAX_PRODUCT, "
            "ADD_MULT or TopKProofs for programs with 'not'"
        )

    def converged(self, old: np.ndarray, new: np.ndarray, tol: float) -> bool:
        if self.idempotent:
            return bool(np.array_equal(old, new))
        with np.errstate(invalid="ignore"):
            diff = np.abs(new - old)
            diff = np.where(old == new, 0.0, diff)
        return bool(np.all(diff <= tol * (1.0 + np.abs(new))))

    def __repr__(self) -> str:
        return self.name


class Boolean(Semiring):
    """Exact Datalog: or / and / not."""

    name, zero, one, dtype = "BOOLEAN", False, True, np.bool_

    def mul(self, a, b):
        return np.logical_and(a, b)

    def add_reduce(self, x, axis):
        return np.any(x, axis=axis)

    def negate(self, a):
        return np.logical_not(a)


class MaxProduct(Semiring):
    """Viterbi: the probability of the best proof."""

    name = "MAX_PRODUCT"

    def mul(self, a, b):
        return a * b

    def add_reduce(self, x, axis):
        return dnp.max(x, axis=axis)

    def negate(self, a):
        return 1.0 - a


class MaxPlus(Semiring):
    """Best total score (e.g. log-probabilities or negated lengths); diverges on positive
    cycles (the iteration limit reports it)."""

    name, zero, one = "MAX_PLUS", -np.inf, 0.0

    def mul(self, a, b):
        return a + b

    def add_reduce(self, x, axis):
        return dnp.max(x, axis=axis)


class AddMult(Semiring):
    """Sum over proofs of the product of their facts' probabilities (exact probability when
    proofs are mutually exclusive; an over-count otherwise, not clipped so that gradients
    stay exact)."""

    name, idempotent = "ADD_MULT", False

    def mul(self, a, b):
        return a * b

    def add_reduce(self, x, axis):
        return dnp.sum(x, axis=axis)

    def negate(self, a):
        return 1.0 - a


class LogSumExp(Semiring):
    """A smooth max-plus: ``add = T logsumexp(x / T)``, ``mul = +``; ``T -> 0`` gives MAX_PLUS."""

    zero, one, idempotent = -np.inf, 0.0, False

    def __init__(self, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ValueError(f"LogSumExp: temperature must be > 0, got {temperature!r}")
        self.temperature = temperature
        self.name = f"LogSumExp({temperature})"

    def mul(self, a, b):
        return a + b

    def add_reduce(self, x, axis):
        # rows with no derivation yet (all -inf) give -inf with a zero gradient, not NaN
        dead = np.all(np.isneginf(np.asarray(concrete(x))), axis=axis)
        if dead.any():
            x = dnp.where(np.expand_dims(dead, axis), 0.0, x)
        t = self.temperature
        out = t * logsumexp(x / t, axis=axis) if t != 1.0 else logsumexp(x, axis=axis)
        return dnp.where(dead, -np.inf, out) if dead.any() else out


class TopKProofs(Semiring):
    """Scallop's differentiable top-k proofs: a tag is at most ``k`` proofs (sets of fact
    literals), kept by probability; a tuple's probability is the weighted model count of its
    proofs' disjunction, a polynomial in the fact probabilities (so exact gradients). With
    ``k`` at least the number of proofs, it equals ProbLog's exact probability."""

    def __init__(self, k: int = 3) -> None:
        if int(k) < 1:
            raise ValueError(f"TopKProofs: k must be >= 1, got {k!r}")
        self.k = int(k)
        self.name = f"TopKProofs({self.k})"


BOOLEAN = Boolean()
MAX_PRODUCT = MaxProduct()
MAX_PLUS = MaxPlus()
ADD_MULT = AddMult()
LOG_SUM_EXP = LogSumExp(1.0)
