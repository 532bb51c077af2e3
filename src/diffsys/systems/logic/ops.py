"""The differentiable layer: tags of every tuple of a ground program, in a semiring.

Per stratum, the tags are the least fixpoint of ``v[h] = fact[h] + sum_{d -> h} prod_{b in d}
v[b]`` (semiring ``+``/``*``), iterated from the facts: each round gathers the body tags of
every rule instance (one vectorised gather and ``mul`` per body position), and reduces the
alternatives of each tuple with one ``add_reduce`` over a padded ``(tuples, derivations)``
index matrix. Rounds are ordinary diffsys operations, so gradients reach every fact weight,
through every round. Idempotent semirings stop when the tags stop changing (exactly, in at
most the number of tuples rounds); the others when the change is below ``tol``, or raise
after ``max_iter`` rounds naming the recursive rules (a divergent series).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core import concrete
from .exact import Grounding
from .semirings import Semiring, TopKProofs
from .syntax import LogicError

Array = Any


class Result:
    """Tags of every tuple of a ground program: ``weights(rel)``, ``weight(rel, tup)``."""

    def __init__(self, grounding: Grounding, values: Array, semiring: Semiring) -> None:
        self.grounding = grounding
        self.values = values
        self.semiring = semiring

    def tuples(self, relation: str) -> list[tuple]:
        """Every derivable tuple of ``relation`` (facts counted as possible)."""
        return self.grounding.tuples(relation)

    def weights(self, relation: str) -> Array:
        """The tags of ``relation``'s tuples, in the order of :meth:`tuples`."""
        g = self.grounding
        if relation not in g.relations:
            raise KeyError(f"logic: unknown relation {relation!r}; known: {sorted(g.relations)}")
        a = g.offsets[relation]
        return self.values[a : a + len(g.relations[relation])]

    def weight(self, relation: str, tup: tuple) -> Array:
        """The tag of ``relation(*tup)``; the semiring's zero if it is not derivable."""
        try:
            return self.values[self.grounding.index(relation, tuple(tup))]
        except KeyError:
            if relation not in self.grounding.relations:
                raise
            return np.asarray(self.semiring.zero, dtype=self.semiring.dtype)

    def as_dict(self, relation: str) -> dict[tuple, float]:
        """``{tuple: tag}`` with plain values."""
        w = np.asarray(concrete(self.weights(relation)))
        return dict(zip(self.tuples(relation), w.tolist(), strict=True))


def _base(g: Grounding, weights: dict, semiring: Semiring) -> Array:
    """The fact tags of every tuple (``zero`` for derived-only tuples)."""
    parts = []
    for name, rows in g.relations.items():
        n, nf = len(rows), g.n_facts.get(name, 0)
        w = weights.get(name)
        if w is None:
            w = np.full(nf, semiring.one, dtype=semiring.dtype)
        elif tuple(np.shape(w)) != (nf,):
            raise LogicError(
                f"logic: weights of {name} have shape {tuple(np.shape(w))} but {name} has {nf} "
                f"facts; give one weight per fact, in the order of the facts"
            )
        parts.append(w)
        if n > nf:
            parts.append(np.full(n - nf, semiring.zero, dtype=semiring.dtype))
    if not parts:
        return np.zeros(0, dtype=semiring.dtype)
    if any(not isinstance(p, np.ndarray) for p in parts):
        return dnp.concatenate([dnp.asarray(p) for p in parts])
    return np.concatenate(parts).astype(semiring.dtype, copy=False)


def _stratum_plan(g: Grounding, s: int):
    """Block ``[a, b)`` of the stratum's tuples and the padded alternative-index matrix."""
    names = g.strata[s]
    a = min((g.offsets[n] for n in names), default=0)
    b = max((g.offsets[n] + len(g.relations[n]) for n in names), default=0)
    derivs = g.derivations[s]
    heads = np.concatenate([d.head for d in derivs]) if derivs else np.zeros(0, np.int64)
    n = b - a
    # candidates = [base block (n), contributions (len(heads)), zero sentinel]
    counts = np.bincount(heads - a, minlength=n) if len(heads) else np.zeros(n, np.int64)
    width = 1 + (int(counts.max()) if n else 0)
    index = np.full((n, width), n + len(heads), dtype=np.int64)
    index[:, 0] = np.arange(n)
    if len(heads):
        order = np.argsort(heads, kind="stable")
        hs = heads[order] - a
        first = np.searchsorted(hs, hs, "left")
        slot = 1 + np.arange(len(hs)) - first
        index[hs, slot] = n + order
    return a, b, derivs, index


def _contributions(derivs, v: Array, semiring: Semiring) -> list:
    out = []
    for d in derivs:
        if not len(d.head):
            continue
        c = v[d.body[:, 0]]
        for j in range(1, d.body.shape[1]):
            c = semiring.mul(c, v[d.body[:, j]])
        for j in range(d.neg.shape[1]):
            idx = d.neg[:, j]
            t = semiring.negate(v[np.maximum(idx, 0)])
            t = dnp.where(idx >= 0, t, semiring.one) if semiring.dtype != np.bool_ else (
                np.where(idx >= 0, t, True))
            c = semiring.mul(c, t)
        out.append(c)
    return out


def _cat(parts, dtype):
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts).astype(dtype, copy=False)
    return dnp.concatenate([dnp.asarray(p) for p in parts])


def evaluate(
    g: Grounding,
    weights: dict[str, Array] | None,
    semiring: Semiring,
    *,
    max_iter: int = 1000,
    tol: float = 1e-12,
) -> Result:
    """Tags of every tuple of ``g`` with fact weights ``weights`` (``{relation: (n_facts,)}``,
    traced or not; relations left out get ``semiring.one``)."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(g.relations))
    if unknown:
        raise LogicError(
            f"logic: weights given for unknown relation(s) {unknown}; known: {sorted(g.relations)}"
        )
    if isinstance(semiring, TopKProofs):
        return _topk(g, weights, semiring, max_iter)
    base = _base(g, weights, semiring)
    blocks = []
    for s in range(len(g.strata)):
        a, b, derivs, index = _stratum_plan(g, s)
        lower = blocks[:]
        block = base[a:b]
        zero = np.full(1, semiring.zero, dtype=semiring.dtype)
        for _ in range(max_iter):
            v = _cat([*lower, block], semiring.dtype) if lower else block
            cand = _cat([base[a:b], *_contributions(derivs, v, semiring), zero], semiring.dtype)
            new = semiring.add_reduce(cand[index], axis=1)
            done = semiring.converged(
                np.asarray(concrete(block)), np.asarray(concrete(new)), tol
            )
            block = new
            if done:
                break
        else:
            rec = [repr(d.rule) for d in derivs if any(
                a.relation in g.strata[s] for a in d.rule.positive)]
            raise LogicError(
                f"logic: the fixpoint in semiring {semiring.name} did not converge in {max_iter} "
                f"rounds; recursive rules: {rec}. A non-idempotent semiring sums over ever longer "
                "derivations through cycles: lower the weights below 1, raise max_iter, or use an "
                "idempotent semiring (MAX_PRODUCT, TopKProofs)"
            )
        blocks.append(block)
    values = _cat(blocks, semiring.dtype) if blocks else base
    return Result(g, values, semiring)


def neural_facts(ids: Any, probs: Array, labels: Any = None) -> tuple[list[tuple], Array]:
    """Facts ``(id, label)`` for every row of ``probs`` ``(n, C)`` and every class, with the
    model's probabilities as their weights (a neural predicate, as in DeepProbLog).

    >>> facts, w = neural_facts(["a", "b"], np.array([[0.9, 0.1], [0.2, 0.8]]))
    >>> facts[:3], w.shape
    ([('a', 0), ('a', 1), ('b', 0)], (4,))
    """
    n, c = np.shape(probs)
    if len(ids) != n:
        raise LogicError(f"neural_facts: {len(ids)} ids but probs has {n} rows (shape {(n, c)})")
    labels = list(range(c)) if labels is None else list(labels)
    if len(labels) != c:
        raise LogicError(f"neural_facts: {len(labels)} labels but probs has {c} columns")
    facts = [(i, lab) for i in ids for lab in labels]
    return facts, dnp.reshape(probs, (n * c,))


# --- top-k proofs ----------------------------------------------------------------------------


def _conj(x: list, y: list, prob, k: int) -> list:
    out = set()
    for p in x:
        for q in y:
            u = p | q
            if not any(-lit in u for lit in u):
                out.add(u)
    return _top(out, prob, k)


def _top(proofs, prob, k: int) -> list:
    return sorted(proofs, key=lambda p: (-prob(p), sorted(p)))[:k]


def _negate_dnf(x: list, prob, k: int) -> list:
    out = [frozenset()]
    for p in x:
        out = _conj(out, [frozenset([-lit]) for lit in p], prob, k)
    return out


def _topk(g: Grounding, weights: dict, sr: TopKProofs, max_iter: int) -> Result:
    p = _base(g, weights, sr)
    pc = np.asarray(concrete(p), dtype=np.float64)
    k = sr.k

    def prob(proof) -> float:
        out = 1.0
        for lit in proof:
            out *= pc[lit - 1] if lit > 0 else 1.0 - pc[-lit - 1]
        return out

    tags: list[list] = [[] for _ in range(g.size)]
    certain = {n: name not in weights for n, name in enumerate(g.relations)}
    for i, name in enumerate(g.relations):
        a = g.offsets[name]
        for j in range(g.n_facts.get(name, 0)):
            tags[a + j] = [frozenset()] if certain[i] else [frozenset([a + j + 1])]
    for s in range(len(g.strata)):
        derivs = [(d, d.head.tolist(), d.body.tolist(), d.neg.tolist()) for d in g.derivations[s]]
        for _ in range(max_iter):
            changed = False
            new = {}
            for _d, heads, bodies, negs in derivs:
                for h, body, neg in zip(heads, bodies, negs, strict=True):
                    c = [frozenset()]
                    for t in body:
                        c = _conj(c, tags[t], prob, k)
                    for t in neg:
                        c = _conj(c, _negate_dnf(tags[t], prob, k) if t >= 0 else
                                  [frozenset()], prob, k)
                    new.setdefault(h, set(tags[h])).update(c)
            for h, proofs in new.items():
                top = _top(proofs, prob, k)
                if top != tags[h]:
                    tags[h], changed = top, True
            if not changed:
                break
        else:
            raise LogicError(f"logic: top-k proofs did not converge in {max_iter} rounds")
    return Result(g, wmc(tags, p), sr)


def wmc(dnfs: list[list[frozenset]], p: Array) -> Array:
    """Probability of each DNF (a list of proofs, each a set of literals ``+(i+1)`` for fact
    ``i`` true, ``-(i+1)`` for false) under independent facts of probability ``p``: exact and
    differentiable in ``p``. Per DNF, the cheaper of inclusion-exclusion over its proofs
    (``2^proofs`` terms) and a sum over the assignments of its facts (``2^facts`` terms)."""
    terms: list[tuple[int, int, list]] = []  # (tuple, sign, literals)
    for t, proofs in enumerate(dnfs):
        facts = sorted({abs(lit) for proof in proofs for lit in proof})
        if len(proofs) <= len(facts):
            for r in range(1, len(proofs) + 1):
                for sub in itertools.combinations(proofs, r):
                    u = frozenset().union(*sub)
                    if not any(-lit in u for lit in u):
                        terms.append((t, 1 if r % 2 else -1, sorted(u)))
            continue
        for bits in itertools.product((1, -1), repeat=len(facts)):
            world = {b * f for b, f in zip(bits, facts, strict=True)}
            if any(proof <= world for proof in proofs):
                terms.append((t, 1, sorted(world)))
    n = len(p)
    width = max((len(lits) for _, _, lits in terms), default=0)
    lit = np.full((len(terms), max(width, 1)), n, dtype=np.int64)  # index n: the constant 1
    neg = np.zeros_like(lit, dtype=bool)
    for r, (_, _, lits) in enumerate(terms):
        for c, x in enumerate(lits):
            lit[r, c], neg[r, c] = abs(x) - 1, x < 0
    pe = dnp.concatenate([dnp.asarray(p, dtype=np.float64), np.ones(1)])
    f = pe[lit]
    f = dnp.where(neg, 1.0 - f, f)
    prod = dnp.prod(f, axis=1) if len(terms) else np.zeros(0)
    sign = np.array([s for _, s, _ in terms], dtype=np.float64)
    owner = np.array([t for t, _, _ in terms], dtype=np.int64)
    # sum the signed terms per tuple with a padded matrix (sentinel: 0)
    counts = np.bincount(owner, minlength=len(dnfs)) if len(terms) else np.zeros(len(dnfs), int)
    width = max(int(counts.max()) if len(dnfs) else 0, 1)
    index = np.full((len(dnfs), width), len(terms), dtype=np.int64)
    if len(terms):
        first = np.searchsorted(owner, owner, "left")  # owner is sorted by construction
        index[owner, np.arange(len(owner)) - first] = np.arange(len(owner))
    vals = dnp.concatenate([prod * sign, np.zeros(1)])
    return dnp.sum(vals[index], axis=1)
