"""systems.logic against ProbLog's exact inference (optional: skipped without problog)."""

from __future__ import annotations

import numpy as np
import pytest

from diffsys.systems import logic

problog = pytest.importorskip("problog")


def _problog(text: str) -> dict[str, float]:
    from problog import get_evaluatable
    from problog.program import PrologString

    res = get_evaluatable().create_from(PrologString(text)).evaluate()
    return {str(k): float(v) for k, v in res.items()}


RULES = """
path(X, Y) :- edge(X, Y).
path(X, Z) :- edge(X, Y), path(Y, Z).
"""


@pytest.mark.parametrize("seed", range(3))
def test_topk_proofs_equals_problog_on_a_cyclic_graph(seed):
    rng = np.random.default_rng(seed)
    edges = sorted({tuple(int(v) for v in rng.choice(5, 2, replace=False)) for _ in range(8)})
    p = rng.uniform(0.1, 0.9, len(edges)).round(3)
    facts = "".join(f"{q}::edge({a},{b}).\n" for (a, b), q in zip(edges, p, strict=True))
    queries = [(0, b) for b in range(1, 5)]
    want = _problog(facts + RULES + "".join(f"query(path({a},{b})).\n" for a, b in queries))
    prog = logic.Program.parse(RULES.replace("X", "x").replace("Y", "y").replace("Z", "z"))
    res = prog.run({"edge": edges}, {"edge": p}, logic.TopKProofs(64))
    for a, b in queries:
        assert float(res.weight("path", (a, b))) == pytest.approx(want[f"path({a},{b})"], abs=1e-10)


def test_add_mult_equals_problog_when_proofs_are_exclusive():
    # a tree: one proof per tuple, so sum over proofs is the probability
    edges, p = [(0, 1), (1, 2), (1, 3), (3, 4)], np.array([0.3, 0.6, 0.9, 0.5])
    facts = "".join(f"{q}::edge({a},{b}).\n" for (a, b), q in zip(edges, p, strict=True))
    want = _problog(facts + RULES + "query(path(0,4)).\nquery(path(0,2)).\n")
    prog = logic.Program.parse(RULES.replace("X", "x").replace("Y", "y").replace("Z", "z"))
    res = prog.run({"edge": edges}, {"edge": p}, logic.ADD_MULT)
    for q in ((0, 4), (0, 2)):
        assert float(res.weight("path", q)) == pytest.approx(want[f"path{q}".replace(" ", "")])


def test_negation_equals_problog():
    text = """0.6::e(1). 0.3::e(2). 0.8::f(1).
              g(x) :- dom(x), not e(x).
              h(x) :- g(x), f(x).
              h(x) :- e(x), not f(x)."""
    prog = logic.Program.parse(text)
    res = prog.run({"dom": [(1,), (2,)]}, None, logic.TopKProofs(16))
    pl = text.replace("x", "X").replace("not ", "\\+ ")
    pl += "\ndom(1). dom(2). query(h(1)). query(h(2))."
    want = _problog(pl)
    for i in (1, 2):
        assert float(res.weight("h", (i,))) == pytest.approx(want[f"h({i})"], abs=1e-12)
