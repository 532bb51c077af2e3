"""Datalog programs: variables, atoms, Horn rules, a text syntax and a Python builder.

Text syntax (variables are identifiers, constants are integers or quoted strings)::

    path(x, y) :- edge(x, y).
    path(x, z) :- edge(x, y), path(y, z).
    unreachable(x, y) :- node(x), node(y), not path(x, y).
    0.3::edge(0, 1).          % a fact, optionally with a weight

Python builder, the same program::

    edge, path = relations("edge path")
    x, y, z = variables("x y z")
    rules = [path(x, y) <= edge(x, y), path(x, z) <= (edge(x, y), path(y, z))]

``~atom`` (or ``not`` in text) is a negated literal. Checks made here: safety (every head
variable, and every variable of a negated literal, appears in a positive body literal),
arity agreement and stratification; each error names the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Symbol = int | str


class LogicError(ValueError):
    """A program that cannot be evaluated; the message names the rule and the fix."""


@dataclass(frozen=True)
class Var:
    """A logic variable."""

    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Atom:
    """``relation(arg, ...)``, args variables or constants; ``negated`` for ``not``."""

    relation: str
    args: tuple
    negated: bool = False

    def __invert__(self) -> Atom:
        return Atom(self.relation, self.args, not self.negated)

    def __le__(self, body) -> Rule:
        body = (body,) if isinstance(body, Atom) else tuple(body)
        return Rule(self, body)

    def vars(self) -> list[Var]:
        return [a for a in self.args if isinstance(a, Var)]

    def __repr__(self) -> str:
        args = ", ".join(repr(a) if not isinstance(a, Var) else a.name for a in self.args)
        return f"{'not ' if self.negated else ''}{self.relation}({args})"


@dataclass(frozen=True)
class Rule:
    """A Horn clause ``head :- body``."""

    head: Atom
    body: tuple[Atom, ...]

    def __repr__(self) -> str:
        return f"{self.head!r} :- {', '.join(map(repr, self.body))}."

    @property
    def positive(self) -> tuple[Atom, ...]:
        return tuple(a for a in self.body if not a.negated)

    @property
    def negative(self) -> tuple[Atom, ...]:
        return tuple(a for a in self.body if a.negated)


class Relation:
    """A relation name for the builder: ``edge(x, y)`` is an :class:`Atom`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args) -> Atom:
        return Atom(self.name, tuple(args))

    def __repr__(self) -> str:
        return f"Relation({self.name!r})"


def variables(names: str) -> tuple[Var, ...]:
    """``variables("x y z")`` -> three :class:`Var`."""
    return tuple(Var(n) for n in names.replace(",", " ").split())


def relations(names: str) -> tuple[Relation, ...]:
    """``relations("edge path")`` -> two :class:`Relation` builders."""
    return tuple(Relation(n) for n in names.replace(",", " ").split())


# --- text syntax -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<str>\"[^\"]*\"|'[^']*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>:-|::|[(),.~]))"
)


def _tokens(text: str, where: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise LogicError(f"{where}: cannot read {text[pos:pos + 20]!r} at column {pos}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "num":
            value = float(value) if any(c in value for c in ".eE") else int(value)
        elif kind == "str":
            value = value[1:-1]
        out.append((kind, value))
        pos = m.end()
    return out


def _parse_atom(toks, i, where):
    negated = False
    if toks[i] == ("op", "~") or toks[i] == ("name", "not"):
        negated, i = True, i + 1
    kind, name = toks[i]
    if kind != "name":
        raise LogicError(f"{where}: expected a relation name, got {name!r}")
    if toks[i + 1] != ("op", "("):
        raise LogicError(f"{where}: expected '(' after {name!r}")
    i += 2
    args: list = []
    while toks[i] != ("op", ")"):
        kind, value = toks[i]
        if kind == "name":
            args.append(Var(value))
        elif kind == "str" or (kind == "num" and isinstance(value, int)):
            args.append(value)
        else:
            raise LogicError(f"{where}: bad argument {value!r} of {name}")
        i += 1
        if toks[i] == ("op", ","):
            i += 1
    return Atom(name, tuple(args), negated), i + 1


def parse(text: str) -> tuple[list[Rule], list[tuple[Atom, float | None]]]:
    """Rules and facts (with their weights or ``None``) of a program text. ``%`` comments."""
    text = "\n".join(line.split("%")[0] for line in text.splitlines())
    rules, facts = [], []
    clauses: list[list] = [[]]
    for tok in _tokens(text, "logic: program text"):
        if tok == ("op", "."):
            clauses.append([])
        else:
            clauses[-1].append(tok)
    for toks in clauses:
        if not toks:
            continue
        where = f"logic: clause {' '.join(str(v) for _, v in toks)!r}"
        toks = toks + [("end", None)]
        weight = None
        i = 0
        if toks[0][0] == "num" and toks[1] == ("op", "::"):
            weight, i = float(toks[0][1]), 2
        try:
            head, i = _parse_atom(toks, i, where)
            if toks[i] == ("end", None):
                if head.vars():
                    raise LogicError(f"{where}: a fact must be ground, it has variables")
                facts.append((head, weight))
                continue
            if toks[i] != ("op", ":-") or weight is not None:
                raise LogicError(f"{where}: expected ':-' or '.' after the head")
            i += 1
            body = []
            while toks[i] != ("end", None):
                atom, i = _parse_atom(toks, i, where)
                body.append(atom)
                if toks[i] == ("op", ","):
                    i += 1
        except IndexError:
            raise LogicError(f"{where}: unexpected end of clause") from None
        rules.append(Rule(head, tuple(body)))
    return rules, facts


# --- checks ------------------------------------------------------------------------------------


def check_rule(rule: Rule, arities: dict[str, int]) -> None:
    """Safety and arity checks of one rule; records arities seen."""
    if not rule.positive:
        raise LogicError(f"rule {rule!r}: the body needs at least one positive literal")
    bound = {v for a in rule.positive for v in a.vars()}
    for atom in (rule.head, *rule.body):
        n = arities.setdefault(atom.relation, len(atom.args))
        if n != len(atom.args):
            raise LogicError(
                f"rule {rule!r}: {atom.relation} has arity {n} elsewhere but "
                f"{len(atom.args)} in {atom!r}"
            )
    free = [v for v in rule.head.vars() if v not in bound]
    if free:
        raise LogicError(
            f"rule {rule!r} is unsafe: head variable(s) {free} do not appear in a positive "
            "body literal; bind them in the body (e.g. with a domain relation)"
        )
    for atom in rule.negative:
        free = [v for v in atom.vars() if v not in bound]
        if free:
            raise LogicError(
                f"rule {rule!r} is unsafe: variable(s) {free} of the negated {atom!r} do not "
                "appear in a positive body literal"
            )


def stratify(rules: list[Rule]) -> dict[str, int]:
    """Stratum of every relation (0 for those without rules); an error names a rule whose
    negation goes through recursion."""
    rels = {r.head.relation for r in rules} | {a.relation for r in rules for a in r.body}
    stratum = dict.fromkeys(rels, 0)
    for _ in range(len(rels) + 1):
        changed = False
        for r in rules:
            h = r.head.relation
            for a in r.body:
                need = stratum[a.relation] + (1 if a.negated else 0)
                if stratum[h] < need:
                    stratum[h], changed = need, True
        if not changed:
            return stratum
        if any(s > len(rels) for s in stratum.values()):
            break
    depends: dict[str, set[str]] = {}
    for r in rules:
        depends.setdefault(r.head.relation, set()).update(a.relation for a in r.body)

    def reaches(src: str, dst: str) -> bool:
        seen, todo = set(), [src]
        while todo:
            n = todo.pop()
            if n == dst:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(depends.get(n, ()))
        return False

    bad = next(
        r for r in rules for a in r.negative if reaches(a.relation, r.head.relation)
    )
    raise LogicError(
        f"rule {bad!r}: negation through recursion cannot be stratified (the negated relation "
        "depends on the head); rewrite the program so negated relations are computed first"
    )
