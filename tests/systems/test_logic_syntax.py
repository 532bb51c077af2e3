"""systems.logic: the text syntax, the builder, and bad input (each error names the rule)."""

from __future__ import annotations

import numpy as np
import pytest

from diffsys.systems import logic

TEXT = """
% transitive closure
path(x, y) :- edge(x, y).
path(x, z) :- edge(x, y), path(y, z).
"""


def test_text_and_builder_give_the_same_rules():
    edge, path = logic.relations("edge path")
    x, y, z = logic.variables("x y z")
    built = logic.Program([path(x, y) <= edge(x, y), path(x, z) <= (edge(x, y), path(y, z))])
    assert built.rules == logic.Program.parse(TEXT).rules
    assert repr(built.rules[1]) == "path(x, z) :- edge(x, y), path(y, z)."


def test_facts_with_weights_constants_and_strings_in_text():
    prog = logic.Program.parse(
        TEXT + '0.5::edge("a", "b"). 0.8::edge("b", "c"). edge("c", "d").'
        'from_a(y) :- path("a", y).'
    )
    res = prog.run(semiring=logic.MAX_PRODUCT)
    assert res.as_dict("from_a") == pytest.approx({("b",): 0.5, ("c",): 0.4, ("d",): 0.4})
    assert float(res.weight("path", ("d", "a"))) == 0.0  # not derivable: the zero


def test_repeated_variables_and_constants_filter():
    prog = logic.Program.parse("loop(x) :- edge(x, x). out1(y) :- edge(1, y).")
    res = prog.run({"edge": [(1, 1), (1, 2), (2, 3), (3, 3)]})
    assert set(res.tuples("loop")) == {(1,), (3,)}
    assert set(res.tuples("out1")) == {(1,), (2,)}


def test_cross_product_and_three_way_join():
    prog = logic.Program.parse(
        "pair(x, y) :- a(x), b(y). tri(x, y, z) :- e(x, y), e(y, z), e(z, x)."
    )
    res = prog.run({"a": [(1,), (2,)], "b": [(3,)], "e": [(0, 1), (1, 2), (2, 0), (2, 3)]})
    assert set(res.tuples("pair")) == {(1, 3), (2, 3)}
    assert set(res.tuples("tri")) == {(0, 1, 2), (1, 2, 0), (2, 0, 1)}


@pytest.mark.parametrize(
    ("text", "facts", "match"),
    [
        ("p(x, y) :- e(x).", {"e": [(1,)]}, r"unsafe: head variable\(s\) \[y\]"),
        ("p(x) :- e(x), not q(y).", {"e": [(1,)], "q": [(1,)]}, r"unsafe: variable\(s\) \[y\]"),
        ("p(x) :- e(x, y). q(x) :- e(x).", {}, r"rule q\(x\) :- e\(x\)\.: e has arity 2"),
        ("p(x) :- e(x), r(x).", {"e": [(1,)]}, r"unknown relation 'r'"),
        ("p(x) :- e(x), not q(x). q(x) :- e(x), not p(x).", {"e": [(1,)]}, "stratified"),
        ("p(x) :- e(x).", {"e": [(1, 2)]}, "arity"),
        ("p(x) :- .", {}, "positive literal"),
        ("p(x) :- e(x)", {"e": [(1,)]}, None),  # no final period: still one clause
    ],
)
def test_bad_programs_name_the_rule(text, facts, match):
    if match is None:
        assert logic.Program.parse(text).run(facts).tuples("p") == [(1,)]
        return
    with pytest.raises(logic.LogicError, match=match):
        logic.Program.parse(text).run(facts)


def test_divergent_fixpoint_in_a_non_idempotent_semiring_names_the_rule():
    prog = logic.Program.parse(TEXT)
    with pytest.raises(logic.LogicError, match=r"did not converge in 50 rounds.*path\(x, z\)"):
        prog.run({"edge": [(0, 1), (1, 0)]}, {"edge": np.array([1.0, 1.0])}, logic.ADD_MULT,
                 max_iter=50)
    # the same cycle in an idempotent semiring terminates
    res = prog.run({"edge": [(0, 1), (1, 0)]}, {"edge": np.array([1.0, 1.0])}, logic.MAX_PRODUCT)
    assert res.as_dict("path")[(0, 0)] == 1.0


def test_weights_of_the_wrong_shape_and_negation_without_negate():
    prog = logic.Program.parse(TEXT)
    with pytest.raises(logic.LogicError, match=r"weights of edge have shape \(3,\) but edge has 2"):
        prog.run({"edge": [(0, 1), (1, 2)]}, {"edge": np.ones(3)}, logic.ADD_MULT)
    with pytest.raises(logic.LogicError, match=r"unknown relation\(s\) \[.edges.\]"):
        prog.run({"edge": [(0, 1)]}, {"edges": np.ones(1)}, logic.ADD_MULT)
    neg = logic.Program.parse("p(x) :- e(x), not q(x).")
    with pytest.raises(TypeError, match="MAX_PLUS has no negation"):
        neg.run({"e": [(1,)], "q": [(1,)]}, None, logic.MAX_PLUS)


def test_ground_once_evaluate_many():
    prog = logic.Program.parse(TEXT)
    g = prog.ground({"edge": [(0, 1), (1, 2)]})
    a = logic.evaluate(g, {"edge": np.array([0.5, 0.5])}, logic.ADD_MULT).weight("path", (0, 2))
    b = logic.evaluate(g, {"edge": np.array([0.9, 0.5])}, logic.ADD_MULT).weight("path", (0, 2))
    assert (float(a), float(b)) == pytest.approx((0.25, 0.45))


@pytest.mark.parametrize("name", ["", ".syntax", ".exact", ".semirings", ".ops"])
def test_docstring_examples(name):
    import doctest
    import importlib

    module = importlib.import_module("diffsys.systems.logic" + name)
    assert doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0
