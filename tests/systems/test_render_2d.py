"""diffsys.systems.render, 2-D: soft rasterization, its hard form, culling and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys.systems import render as R
from diffsys.systems.render.exact import pixel_centres, segment_distance


def _scene(rng, channels=3):
    c = R.Circles(
        rng.uniform(1, 7, (2, 2)), rng.uniform(1.0, 2.5, 2), rng.random((2, channels)),
        rng.uniform(0.3, 0.9, 2),
    )
    p = R.Polygons(
        np.array([[[1.0, 1.0], [7.0, 2.0], [3.0, 7.5]]]) + rng.uniform(-0.3, 0.3, (1, 3, 2)),
        rng.random((1, channels)), np.array([0.6]),
    )
    s = R.Strokes(
        np.array([[[0.5, 6.0], [4.0, 3.0], [7.5, 7.0]]]) + rng.uniform(-0.3, 0.3, (1, 3, 2)),
        np.array([1.2]), rng.random((1, channels)), np.array([0.8]),
    )
    return [c, p, s]


def _sd_numpy(shape, k, x, y):
    """Signed distances written independently of the renderer (plain NumPy)."""
    if isinstance(shape, R.Circles):
        return shape.radius[k] - np.hypot(x - shape.center[k, 0], y - shape.center[k, 1])
    pts = shape.vertices[k] if isinstance(shape, R.Polygons) else shape.points[k]
    segs = list(zip(pts, np.roll(pts, -1, 0), strict=True)) if isinstance(shape, R.Polygons) else \
        list(zip(pts[:-1], pts[1:], strict=True))
    n = len(x)
    dist = np.min(
        [segment_distance(x, y, np.broadcast_to(a, (n, 2)), np.broadcast_to(b, (n, 2)))
         for a, b in segs], axis=0,
    )
    if isinstance(shape, R.Strokes):
        return shape.width[k] / 2 - dist
    inside = R.even_odd_inside(x, y, np.broadcast_to(pts, (n, *pts.shape)))
    return np.where(inside, dist, -dist)


def _dense_soft(shapes, h, w, sigma, background):
    x, y = pixel_centres(h, w)
    out = np.broadcast_to(background, (h * w, len(background))).copy()
    for s in shapes:
        for k in range(s.count):
            a = s.opacity[k] / (1 + np.exp(-_sd_numpy(s, k, x, y) / sigma))
            out = out * (1 - a[:, None]) + a[:, None] * s.color[k]
    return out.reshape(h, w, -1)


def _as_exact(shapes):
    out = []
    for s in shapes:
        for k in range(s.count):
            params = {**s.one(k), "color": s.color[k], "opacity": s.opacity[k]}
            out.append((s.kind, params))
    return out


@pytest.mark.parametrize("sigma", [0.3, 1.0])
def test_soft_matches_an_independent_dense_rasterizer(rng, sigma):
    shapes = _scene(rng)
    bg = np.array([0.2, 0.1, 0.4])
    want = _dense_soft(shapes, 8, 9, sigma, bg)
    dense = R.rasterize(shapes, (8, 9), sigma, background=bg, margin=None)
    np.testing.assert_allclose(dense, want, atol=1e-9)
    # culled: within a few sigmoid(-margin) of the dense result
    culled = R.rasterize(shapes, (8, 9), sigma, background=bg, margin=6.0)
    assert np.abs(culled - want).max() < 4 / (1 + np.exp(6.0))


def test_hard_form_matches_the_exact_reference(rng):
    for _ in range(5):
        shapes = _scene(rng)
        bg = rng.random(3)
        hard = R.rasterize.hard(shapes, (8, 8), background=bg)
        np.testing.assert_array_equal(hard, R.rasterize_exact_2d(_as_exact(shapes), 8, 8, bg))


def test_gap_to_the_hard_form_shrinks_with_temperature(rng):
    c = R.Circles(np.array([[8.25, 8.25]]), np.array([5.1]), np.array([[1.0]]))
    x, y = pixel_centres(16, 16)
    nearest = np.abs(np.hypot(x - 8.25, y - 8.25) - 5.1).min()  # the pixel closest to the edge
    temps = (1.0, 0.3, 0.1, 0.03, 0.01)
    gaps = [R.rasterize.gap(c, (16, 16), t) for t in temps]
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False))
    # the gap is the sigmoid's tail at the pixel centre nearest to the edge
    np.testing.assert_allclose(gaps, [1 / (1 + np.exp(nearest / t)) for t in temps], rtol=1e-9)


def test_pairs_grow_with_shape_area_not_image_size(rng):
    c = R.Circles(np.array([[20.0, 20.0], [30.0, 24.0]]), np.array([5.0, 3.0]), np.ones((2, 1)))
    small = R.raster_cost(c, (64, 64), temperature=0.5)
    large = R.raster_cost(c, (512, 512), temperature=0.5)
    assert small.pairs == large.pairs
    assert large.dense_pairs == 64 * small.dense_pairs
    assert small.depth == 2
    assert small.pairs < 0.1 * small.dense_pairs


def test_bbox_pairs_match_brute_force(rng):
    lo = rng.uniform(-3, 10, (6, 2))
    hi = lo + rng.uniform(0, 6, (6, 2))
    shape, pixel = R.bbox_pairs(lo, hi, 9, 11)
    x, y = pixel_centres(9, 11)
    for k in range(6):
        inside = (x >= lo[k, 0]) & (x <= hi[k, 0]) & (y >= lo[k, 1]) & (y <= hi[k, 1])
        assert sorted(pixel[shape == k].tolist()) == np.flatnonzero(inside).tolist()


def test_layer_plan_groups_pairs_by_depth_rank():
    pixel = np.array([3, 1, 3, 0, 3, 1])  # draw order
    plan = R.layer_plan(pixel, 5)
    assert plan.depth == 3
    assert plan.pixels.tolist() == [3, 1, 0]
    b = plan.bounds
    groups = [plan.order[b[k] : b[k + 1]].tolist() for k in range(plan.depth)]
    assert groups == [[0, 1, 3], [2, 5], [4]]
    assert plan.where.tolist() == [2, 1, 3, 0, 3]


def test_order_decides_what_is_on_top():
    red = R.Circles(np.array([[4.0, 4.0]]), np.array([3.0]), np.array([[1.0, 0.0, 0.0]]))
    blue = R.Circles(np.array([[4.0, 4.0]]), np.array([3.0]), np.array([[0.0, 0.0, 1.0]]))
    assert R.rasterize([red, blue], (8, 8), 0.05)[4, 4].tolist() == [0.0, 0.0, 1.0]
    assert R.rasterize([blue, red], (8, 8), 0.05)[4, 4].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("kind", ["circles", "polygons", "strokes"])
def test_check_grads_every_parameter(rng, kind):
    shapes = _scene(rng, channels=2)
    shape = {"circles": shapes[0], "polygons": shapes[1], "strokes": shapes[2]}[kind]
    target = rng.random((6, 7, 2))

    def loss(shape, sigma, bg):
        image = R.rasterize([shape], (6, 7), sigma, background=bg, margin=None)
        return ((image - target) ** 2).sum()

    ds.check_grads(loss, (shape, 0.8, np.array([0.1, 0.3])), order=2)
    # every field gets a nonzero gradient
    g = ds.grad(loss)(shape, 0.8, np.array([0.1, 0.3]))
    for leaf in ds.tree_leaves(g):
        assert np.abs(leaf).max() > 0


def test_check_grads_culled_and_mixed_scene(rng):
    shapes = _scene(rng)
    ds.check_grads(lambda s, t: (R.rasterize(s, (8, 8), t, margin=12.0) ** 2).sum(),
                   (shapes, 0.7), order=1)


def test_hard_form_gradients_reach_colours_and_opacities(rng):
    shapes = _scene(rng)
    f = lambda s, bg: (R.rasterize.hard(s, (8, 8), background=bg) ** 2).sum()  # noqa: E731
    ds.check_grads(f, (shapes, np.array([0.5, 0.2, 0.1])), order=2)
    g = ds.grad(f)(shapes, np.array([0.5, 0.2, 0.1]))
    assert np.abs(g[0].color).max() > 0 and np.abs(g[0].opacity).max() > 0
    assert np.all(g[0].center == 0)  # coverage is a step: no gradient to geometry


def test_degenerate_polygon_gives_finite_gradients():
    p = R.Polygons(np.full((1, 4, 2), 3.5), np.ones((1, 1)), np.ones(1))
    g = ds.grad(lambda p: R.rasterize(p, (6, 6), 0.5).sum())(p)
    assert np.all(np.isfinite(g.vertices))


def test_bad_input_is_a_clear_error():
    c = R.Circles(np.array([[1.0, np.nan]]), np.array([1.0]), np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"shapes\[0\] \(Circles\)\.center has non-finite"):
        R.rasterize(c, (4, 4))
    c = R.Circles(np.array([[1.0, 1.0]]), np.array([1.0]), np.ones((1, 3)), np.array([1.5]))
    with pytest.raises(ValueError, match="opacity must lie in"):
        R.rasterize(c, (4, 4))
    c3 = R.Circles(np.array([[1.0, 1.0]]), np.array([1.0]), np.ones((1, 3)))
    c1 = R.Circles(np.array([[1.0, 1.0]]), np.array([1.0]), np.ones((1, 1)))
    with pytest.raises(ValueError, match="colour channels"):
        R.rasterize([c3, c1], (4, 4))
    with pytest.raises(TypeError, match="expected Circles"):
        R.rasterize([np.ones(3)], (4, 4))
    with pytest.raises(ValueError, match="temperature"):
        R.rasterize(c3, (4, 4), 0.0)
