"""systems.logic.stages: a Datalog query as a relaxed pipeline stage."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys.systems import logic

PROG = logic.Program.parse("path(x, y) :- edge(x, y). path(x, z) :- edge(x, y), path(y, z).")
EDGES = [(0, 1), (1, 2), (0, 2), (2, 3)]
QUERIES = [(0, 3), (1, 3), (3, 0)]


def test_relaxed_and_hard_forms():
    relaxed, hard = logic.query_functions(PROG, {"edge": EDGES}, "edge", "path", QUERIES)
    w = np.array([0.9, 0.8, 0.2, 0.1])
    np.testing.assert_allclose(relaxed(w), [0.9 * 0.8 * 0.1 + 0.2 * 0.1 - 0.9 * 0.8 * 0.2 * 0.1,
                                            0.08, 0.0])
    np.testing.assert_array_equal(hard(w), [0.0, 0.0, 0.0])  # edge 2->3 is off at 0.5
    w2 = np.array([0.99, 0.99, 0.01, 0.99])
    np.testing.assert_array_equal(hard(w2), [1.0, 1.0, 0.0])
    assert np.abs(relaxed(w2) - hard(w2)).max() < 0.03  # near-certain facts: small mismatch
    ds.check_grads(relaxed, (w,), order=2)


def test_query_stage_is_relaxed():
    pytest.importorskip("diffsys.pipeline")
    stage = logic.query_stage("reach", PROG, {"edge": EDGES}, "edge", "path", QUERIES)
    assert stage.kind == "relaxed"


def test_query_functions_bad_input():
    with pytest.raises(logic.LogicError, match="no facts given for the weighted relation 'e'"):
        logic.query_functions(PROG, {"edge": EDGES}, "e", "path", QUERIES)
    with pytest.raises(logic.LogicError, match="unknown relation 'reach'"):
        logic.query_functions(PROG, {"edge": EDGES}, "edge", "reach", QUERIES)
