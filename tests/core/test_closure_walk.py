"""The walk that finds traced values held by a loop's step (``remat.closure_tracers``) stays
cheap whatever it meets: a tuple subclass whose ``len()`` is far more than it holds (a
primitive's ``VariadicRules``) once made it preallocate 8 GiB and take seconds per call."""

from __future__ import annotations

import tracemalloc

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.core import remat
from diffsys.core.primitive import VariadicRules


def test_walk_over_a_tuple_whose_len_lies_allocates_nothing_big():
    rules = VariadicRules(lambda k: (lambda g: g))
    assert len(rules) > 10**8 and list(iter(rules)) == []

    def step(c):
        return rules, c

    tracemalloc.start()
    try:
        assert remat.closure_tracers(step) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_scan_over_a_step_that_reaches_primitives_stays_small():
    prims = [p for p in vars(dnp).values() if isinstance(getattr(p, "vjp_rules", None), tuple)]
    held = {"rules": [getattr(p, "vjp_rules", None) for p in prims] + [VariadicRules(abs)]}

    def step(c, _):
        assert held  # the step holds every primitive's rule tuple
        return dnp.sin(c), None

    tracemalloc.start()
    try:
        g = ds.grad(lambda c0: dnp.sum(ds.scan(step, c0, length=5, checkpoint="sqrt")[0]))(
            np.ones(3)
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.all(np.isfinite(g)) and peak < 4 << 20, peak
