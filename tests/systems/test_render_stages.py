"""diffsys.systems.render stages: relaxed in training, exact at inference, mismatch reported."""

from __future__ import annotations

import numpy as np

import diffsys as ds
from diffsys import pipeline as pl
from diffsys.systems import render as R


def test_raster_stage_switches_forms_and_reports_mismatch():
    c = R.Circles(np.array([[4.0, 4.0]]), np.array([2.5]), np.ones((1, 1)))
    stage = R.raster_stage("draw", (8, 8), 0.5)
    assert stage.kind == "relaxed"
    pipe = pl.Pipeline([stage], batch_keys=("x",))
    np.testing.assert_array_equal(pipe({"x": [c]}), R.rasterize([c], (8, 8), 0.5))
    with pipe.inference():
        np.testing.assert_array_equal(pipe({"x": [c]}), R.rasterize.hard([c], (8, 8)))
    row = pipe.mismatch({"x": [c]})["draw"]
    gap = np.abs(R.rasterize([c], (8, 8), 0.5) - R.rasterize.hard([c], (8, 8)))
    np.testing.assert_allclose(row.max_abs, gap.max())


def test_mesh_stage_switches_forms_and_differentiates():
    v, f = R.icosphere(1)
    cam = R.look_at((0.3, 0.2, 4.0), focal=10.0)
    pipe = pl.Pipeline([R.mesh_stage("render", f, cam, (8, 8))], batch_keys=("x",))
    np.testing.assert_array_equal(pipe({"x": v}), R.rasterize_mesh(v, f, cam, (8, 8)))
    with pipe.inference():
        np.testing.assert_array_equal(pipe({"x": v}), R.rasterize_mesh.hard(v, f, cam, (8, 8)))
    g = ds.grad(lambda v: pipe({"x": v})[..., -1].sum())(v)
    assert np.abs(g).max() > 0
