"""The exact layer: grounding a Datalog program by semi-naive evaluation over NumPy arrays.

Constants are interned to ints; a relation is an ``(n, arity)`` int array plus its rows encoded
as one int64 key each (mixed radix, base = number of symbols), kept sorted for lookups. A rule
body is a sequence of vectorised many-to-many joins (sort + ``searchsorted`` + ``repeat``):
no per-tuple Python. Semi-naive: in each round a recursive rule is evaluated once per body
position ``j`` that holds a relation of the current stratum, with position ``j`` reading only
the previous round's new tuples (delta), earlier positions the older tuples and later ones
all tuples, so each derivation is found exactly once.

The result, :class:`Grounding`, is every derivable tuple (all facts counted as possibly true)
and every *derivation* (rule instance): its head tuple and its body tuples. Weights are then
computed on this ground program by :mod:`.ops` in any semiring, as often as needed (ground
once, train many steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .syntax import Atom, LogicError, Rule, Var, check_rule, stratify


@dataclass
class _Rel:
    arity: int
    rows: np.ndarray  # (n, arity) int64 symbol ids
    keys: np.ndarray  # (n,) int64
    order: np.ndarray = field(default=None)  # argsort of keys

    def resort(self) -> None:
        self.order = np.argsort(self.keys, kind="stable")

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Local ids of ``keys`` (-1 where absent)."""
        if len(self.keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        sk = self.keys[self.order]
        pos = np.searchsorted(sk, keys).clip(0, len(sk) - 1)
        hit = sk[pos] == keys
        return np.where(hit, self.order[pos], -1)


@dataclass
class Derivations:
    """The instances of one rule: ``head`` (m,) and ``body`` (m, positive literals) and
    ``neg`` (m, negated literals, -1 where the negated tuple does not exist) global ids."""

    rule: Rule
    head: np.ndarray
    body: np.ndarray
    neg: np.ndarray


@dataclass
class Grounding:
    """A ground program: tuples (global ids, ordered by stratum) and rule instances."""

    symbols: list
    relations: dict[str, np.ndarray]  # name -> (n, arity) symbol ids, local order
    offsets: dict[str, int]  # global id of a relation's first tuple
    n_facts: dict[str, int]  # the first n_facts tuples of a relation are its given facts
    strata: list[list[str]]  # relation names per stratum
    derivations: list[list[Derivations]]  # per stratum
    size: int  # number of tuples

    def tuples(self, relation: str) -> list[tuple]:
        """The tuples of ``relation``, with their original constants."""
        rows = self.relations[relation]
        return [tuple(self.symbols[i] for i in row) for row in rows.tolist()]

    def index(self, relation: str, tup: tuple) -> int:
        """Global id of ``relation(*tup)``; ``KeyError`` if it is not derivable."""
        if relation not in self.relations:
            raise KeyError(f"logic: unknown relation {relation!r}; known: {sorted(self.relations)}")
        sym = {s: i for i, s in enumerate(self.symbols)}
        try:
            row = [sym[s] for s in tup]
        except KeyError:
            raise KeyError(f"logic: {relation}{tup} is not derivable") from None
        rows = self.relations[relation]
        hit = np.flatnonzero((rows == np.asarray(row)).all(axis=1)) if len(rows) else []
        if len(hit) == 0:
            raise KeyError(f"logic: {relation}{tup} is not derivable")
        return self.offsets[relation] + int(hit[0])


def _join(lk: np.ndarray, rk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` with ``lk[i] == rk[j]``."""
    order = np.argsort(rk, kind="stable")
    sk = rk[order]
    lo = np.searchsorted(sk, lk, "left")
    hi = np.searchsorted(sk, lk, "right")
    counts = hi - lo
    li = np.repeat(np.arange(len(lk)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    return li, order[starts + np.arange(len(li))]


class Grounder:
    """Grounds ``rules`` on facts; see the module docstring."""

    def __init__(self, rules: list[Rule], facts: dict[str, list]) -> None:
        self.rules = list(rules)
        self.arities: dict[str, int] = {}
        for r in self.rules:
            check_rule(r, self.arities)
        syms: dict = {}
        for r in self.rules:
            for a in (r.head, *r.body):
                for c in a.args:
                    if not isinstance(c, Var):
                        syms.setdefault(c, len(syms))
        fact_rows = {}
        for name, tuples in facts.items():
            tuples = [
                tuple(t) if isinstance(t, tuple | list | np.ndarray) else (t,) for t in tuples
            ]
            n = self.arities.setdefault(name, len(tuples[0]) if tuples else 0)
            for t in tuples:
                if len(t) != n:
                    raise LogicError(
                        f"logic: fact {name}{t} has arity {len(t)} but {name} has arity {n}"
                    )
            fact_rows[name] = np.array(
                [[syms.setdefault(_symbol(c), len(syms)) for c in t] for t in tuples],
                dtype=np.int64,
            ).reshape(len(tuples), n)
        heads = {r.head.relation for r in self.rules}
        for r in self.rules:
            for a in r.body:
                if a.relation not in heads and a.relation not in facts:
                    raise LogicError(
                        f"rule {r!r}: unknown relation {a.relation!r} (no rule derives it and "
                        f"no facts were given; known: {sorted(heads | set(facts))})"
                    )
        self.symbols = list(syms)
        self.sym = syms
        self.base = max(len(syms), 1)
        for name, n in self.arities.items():
            if self.base ** max(n, 1) >= 2**62:
                raise LogicError(
                    f"logic: relation {name} of arity {n} over {self.base} symbols is too large "
                    "to key in int64"
                )
        self.rels: dict[str, _Rel] = {}
        for name, n in self.arities.items():
            rows = fact_rows.get(name, np.zeros((0, n), dtype=np.int64))
            keys = self._keys(rows)
            if len(np.unique(keys)) != len(keys):
                raise LogicError(f"logic: facts of {name} contain duplicates")
            rel = _Rel(n, rows, keys)
            rel.resort()
            self.rels[name] = rel
        self.n_facts = {name: len(rel.rows) for name, rel in self.rels.items()}
        self.stratum = stratify(self.rules) if self.rules else {}

    def _keys(self, cols) -> np.ndarray:
        cols = list(cols.T) if isinstance(cols, np.ndarray) else list(cols)
        key = np.zeros(len(cols[0]) if cols else 0, dtype=np.int64)
        for c in cols:
            key = key * self.base + c
        return key

    def _const(self, c) -> int:
        return self.sym.get(c, -1)

    # --- one rule body ---------------------------------------------------------------------

    def _atom_rows(self, atom: Atom, lo: int, hi: int):
        """Rows ``lo:hi`` of the atom's relation that match its constants and repeated
        variables: (local ids, {var: column})."""
        rel = self.rels[atom.relation]
        ids = np.arange(lo, hi)
        rows = rel.rows[lo:hi]
        keep = np.ones(len(ids), dtype=bool)
        cols: dict[Var, np.ndarray] = {}
        for k, a in enumerate(atom.args):
            if isinstance(a, Var):
                if a in cols:
                    keep &= rows[:, k] == cols[a]
                else:
                    cols[a] = rows[:, k]
            else:
                keep &= rows[:, k] == self._const(a)
        return ids[keep], {v: c[keep] for v, c in cols.items()}

    def _eval_body(self, rule: Rule, ranges: list[tuple[int, int]]):
        """Bindings and body local ids for the positive literals read over ``ranges``."""
        env: dict[Var, np.ndarray] = {}
        ids_cols: list[np.ndarray] = []
        n = None
        for atom, (lo, hi) in zip(rule.positive, ranges, strict=True):
            ids, cols = self._atom_rows(atom, lo, hi)
            shared = [v for v in cols if v in env]
            if n is None:
                env, ids_cols, n = dict(cols), [ids], len(ids)
                continue
            if shared:
                li, ri = _join(self._keys([env[v] for v in shared]),
                               self._keys([cols[v] for v in shared]))
            else:
                li = np.repeat(np.arange(n), len(ids))
                ri = np.tile(np.arange(len(ids)), n)
            env = {v: c[li] for v, c in env.items()}
            for v, c in cols.items():
                if v not in env:
                    env[v] = c[ri]
            ids_cols = [c[li] for c in ids_cols] + [ids[ri]]
            n = len(li)
            if n == 0:
                break
        return env, ids_cols, n

    def _atom_keys(self, atom: Atom, env, n) -> np.ndarray:
        cols = [env[a] if isinstance(a, Var) else np.full(n, self._const(a)) for a in atom.args]
        return self._keys(cols) if cols else np.zeros(n, dtype=np.int64)

    def _fire(self, rule: Rule, ranges, out: list) -> None:
        env, ids, n = self._eval_body(rule, ranges)
        if not n:
            return
        head = self.rels[rule.head.relation]
        cols = [env[a] if isinstance(a, Var) else np.full(n, self._const(a))
                for a in rule.head.args]
        keys = self._atom_keys(rule.head, env, n)
        neg = [self.rels[a.relation].lookup(self._atom_keys(a, env, n)) for a in rule.negative]
        local = head.lookup(keys)
        new = local < 0
        if new.any():
            uk, first, inv = np.unique(keys[new], return_index=True, return_inverse=True)
            rows = np.stack(cols, axis=1)[new][first] if cols else np.zeros((len(uk), 0), np.int64)
            start = len(head.keys)
            head.rows = np.concatenate([head.rows, rows])
            head.keys = np.concatenate([head.keys, uk])
            head.resort()
            local[new] = start + inv.ravel()
        out.append((local, np.stack(ids, 1), np.stack(neg, 1) if neg else np.zeros((n, 0), int)))

    # --- the fixpoint ----------------------------------------------------------------------

    def run(self, max_rounds: int = 100_000) -> Grounding:
        n_strata = max(self.stratum.values(), default=0) + 1
        names = sorted(self.rels, key=lambda r: (self.stratum.get(r, 0), r))
        strata = [[r for r in names if self.stratum.get(r, 0) == s] for s in range(n_strata)]
        found: dict[int, list] = {i: [] for i in range(len(self.rules))}
        for s in range(n_strata):
            here = set(strata[s])
            rules = [(i, r) for i, r in enumerate(self.rules) if r.head.relation in here]
            done = {name: 0 for name in here}  # tuples below this id are "old"
            sizes = {name: len(self.rels[name].keys) for name in here}
            for i, r in rules:  # non-recursive rules, and round 0 of recursive ones: all
                if not any(a.relation in here for a in r.positive):
                    full = [(0, len(self.rels[a.relation].keys)) for a in r.positive]
                    self._fire(r, full, found[i])
            rec = [(i, r) for i, r in rules if any(a.relation in here for a in r.positive)]
            for _ in range(max_rounds):
                sizes = {name: len(self.rels[name].keys) for name in here}
                if all(done[n] == sizes[n] for n in here):
                    break
                for i, r in rec:
                    for j, aj in enumerate(r.positive):
                        if aj.relation not in here or done[aj.relation] == sizes[aj.relation]:
                            continue
                        ranges = []
                        for k, a in enumerate(r.positive):
                            if a.relation not in here:
                                ranges.append((0, len(self.rels[a.relation].keys)))
                            elif k < j:
                                ranges.append((0, done[a.relation]))
                            elif k == j:
                                ranges.append((done[a.relation], sizes[a.relation]))
                            else:
                                ranges.append((0, sizes[a.relation]))
                        self._fire(r, ranges, found[i])
                done = sizes
            else:
                raise LogicError(f"logic: grounding did not finish in {max_rounds} rounds")
        offsets, at = {}, 0
        for name in names:
            offsets[name] = at
            at += len(self.rels[name].keys)
        derivs: list[list[Derivations]] = [[] for _ in range(n_strata)]
        for i, r in enumerate(self.rules):
            parts = found[i]
            hoff = offsets[r.head.relation]
            pos_off = np.array([offsets[a.relation] for a in r.positive], dtype=np.int64)
            neg_off = np.array([offsets[a.relation] for a in r.negative], dtype=np.int64)
            if parts:
                head = np.concatenate([p[0] for p in parts]) + hoff
                body = np.concatenate([p[1] for p in parts]) + pos_off
                negl = np.concatenate([p[2] for p in parts]).astype(np.int64)
                neg = np.where(negl >= 0, negl + neg_off, -1)
            else:
                head = np.zeros(0, np.int64)
                body = np.zeros((0, len(r.positive)), np.int64)
                neg = np.zeros((0, len(r.negative)), np.int64)
            derivs[self.stratum[r.head.relation]].append(Derivations(r, head, body, neg))
        return Grounding(
            symbols=self.symbols,
            relations={n: self.rels[n].rows for n in names},
            offsets=offsets,
            n_facts=self.n_facts,
            strata=strata,
            derivations=derivs,
            size=at,
        )


def _symbol(c):
    if isinstance(c, np.integer):
        return int(c)
    if isinstance(c, np.str_):
        return str(c)
    return c


def ground(rules: list[Rule], facts: dict[str, list]) -> Grounding:
    """Ground ``rules`` over ``facts`` (``{relation: [tuple, ...]}``)."""
    return Grounder(rules, facts).run()


def closure(rules: list[Rule], facts: dict[str, list], relation: str) -> set[tuple]:
    """The tuples of ``relation`` under the exact (boolean, all facts true) semantics."""
    from .ops import evaluate
    from .semirings import BOOLEAN

    g = ground(rules, facts)
    res = evaluate(g, {}, BOOLEAN)
    w = np.asarray(res.weights(relation))
    return {t for t, ok in zip(g.tuples(relation), w, strict=True) if ok}
