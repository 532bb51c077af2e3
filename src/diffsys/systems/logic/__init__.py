"""``diffsys.systems.logic``: Datalog with provenance semirings, differentiable in fact weights.

>>> from diffsys.systems import logic
>>> prog = logic.Program.parse('''
...     path(x, y) :- edge(x, y).
...     path(x, z) :- edge(x, y), path(y, z).
... ''')
>>> res = prog.run({"edge": [(0, 1), (1, 2)]}, {"edge": [0.5, 0.8]}, logic.MAX_PRODUCT)
>>> float(res.weight("path", (0, 2)))
0.4

- :mod:`.syntax`: rules (text syntax and Python builder), safety/arity/stratification checks.
- :mod:`.exact`: grounding by semi-naive evaluation with vectorised NumPy joins.
- :mod:`.semirings`: BOOLEAN, MAX_PRODUCT, MAX_PLUS, ADD_MULT, LogSumExp(T), TopKProofs(k).
- :mod:`.ops`: the tags of every tuple as diffsys values (gradients to every fact weight),
  :func:`neural_facts` (a model's probabilities as fact weights).
- :mod:`.stages`: a query as a relaxed pipeline stage (semiring / exact Datalog).

See docs/logic.md.
"""

from __future__ import annotations

from typing import Any

from .exact import Grounding, closure, ground
from .ops import Result, evaluate, neural_facts, wmc
from .semirings import (
    ADD_MULT,
    BOOLEAN,
    LOG_SUM_EXP,
    MAX_PLUS,
    MAX_PRODUCT,
    AddMult,
    Boolean,
    LogSumExp,
    MaxPlus,
    MaxProduct,
    Semiring,
    TopKProofs,
)
from .stages import query_functions, query_stage
from .syntax import Atom, LogicError, Relation, Rule, Var, parse, relations, variables


class Program:
    """Rules (and facts written in the text) of a Datalog program.

    ``Program(rules)`` from the builder, ``Program.parse(text)`` from text. ``ground(facts)``
    runs the exact layer once; ``run(facts, weights, semiring)`` grounds and evaluates.
    """

    def __init__(self, rules: list[Rule], facts: list[tuple[Atom, float | None]] = ()) -> None:
        self.rules = list(rules)
        self.facts = list(facts)
        arities: dict[str, int] = {}
        from .syntax import check_rule, stratify

        for r in self.rules:
            check_rule(r, arities)
        stratify(self.rules)

    @classmethod
    def parse(cls, text: str) -> Program:
        """A program from its text (rules and ``[p::]fact.`` clauses)."""
        rules, facts = parse(text)
        return cls(rules, facts)

    def _facts(self, facts: dict | None, weights: dict | None):
        facts = {k: list(v) for k, v in (facts or {}).items()}
        weights = dict(weights or {})
        text: dict[str, list] = {}
        for atom, w in self.facts:
            text.setdefault(atom.relation, []).append((tuple(atom.args), w))
        for name, items in text.items():
            if name in facts:
                raise LogicError(
                    f"logic: facts of {name} are both in the program text and given to run/ground"
                )
            facts[name] = [t for t, _ in items]
            if name not in weights and any(w is not None for _, w in items):
                weights[name] = [1.0 if w is None else w for _, w in items]
        import numpy as np

        weights = {k: (np.asarray(v, dtype=float) if isinstance(v, list) else v)
                   for k, v in weights.items()}
        return facts, weights

    def ground(self, facts: dict | None = None) -> Grounding:
        """The ground program (every derivable tuple and rule instance) over ``facts``."""
        facts, _ = self._facts(facts, None)
        return ground(self.rules, facts)

    def run(
        self,
        facts: dict | None = None,
        weights: dict | None = None,
        semiring: Semiring = BOOLEAN,
        **options: Any,
    ) -> Result:
        """Ground over ``facts`` and evaluate with fact ``weights`` in ``semiring``."""
        facts, weights = self._facts(facts, weights)
        return evaluate(ground(self.rules, facts), weights, semiring, **options)

    def __repr__(self) -> str:
        return "Program(\n" + "\n".join(f"  {r!r}" for r in self.rules) + "\n)"


__all__ = [
    "ADD_MULT",
    "BOOLEAN",
    "LOG_SUM_EXP",
    "MAX_PLUS",
    "MAX_PRODUCT",
    "AddMult",
    "Atom",
    "Boolean",
    "Grounding",
    "LogSumExp",
    "LogicError",
    "MaxPlus",
    "MaxProduct",
    "Program",
    "Relation",
    "Result",
    "Rule",
    "Semiring",
    "TopKProofs",
    "Var",
    "closure",
    "evaluate",
    "ground",
    "neural_facts",
    "parse",
    "query_functions",
    "query_stage",
    "relations",
    "variables",
    "wmc",
]
