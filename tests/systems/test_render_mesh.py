"""diffsys.systems.render, 3-D: meshes, camera, soft rasterizer, z-buffer and gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffsys as ds
from diffsys.systems import render as R


def _scene(rng, subdivisions=0):
    v, f = R.icosphere(subdivisions)
    cam = R.look_at((0.3, 0.2, 4.0), focal=9.0)
    return v, f, cam, rng.random((len(v), 3)), R.Light(np.array([0.3, -0.5, 1.0]), 0.3, 0.7)


@pytest.mark.parametrize("make", [lambda: R.icosphere(2), R.box, R.torus])
def test_generated_meshes_are_closed_with_outward_normals(make):
    v, f = make()
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)  # every edge shared by exactly two faces
    n = R.face_normals(v, f)
    centroid = v[f].mean(axis=1)
    if make is R.torus:  # outward from the tube's centre circle
        ring = centroid.copy()
        ring[:, 2] = 0
        ring = ring / np.linalg.norm(ring, axis=1, keepdims=True)
        centroid = centroid - ring
    assert np.all(np.sum(n * centroid, axis=1) > 0)


def test_icosphere_sizes():
    for k, faces in [(0, 20), (1, 80), (3, 1280)]:
        v, f = R.icosphere(k)
        assert f.shape == (faces, 3) and len(v) == faces // 2 + 2
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)


def test_look_at_and_project():
    cam = R.look_at((1.0, 2.0, 5.0), target=(1.0, 2.0, 0.0), focal=10.0)
    uv, z = R.project(np.array([[1.0, 2.0, 0.0], [2.0, 3.0, 0.0]]), cam, (20, 30))
    np.testing.assert_allclose(uv[0], [15.0, 10.0])  # the target at the image centre
    np.testing.assert_allclose(z, [5.0, 5.0])
    np.testing.assert_allclose(uv[1], [15.0 + 2.0, 10.0 - 2.0])  # +x right, +y (up) upwards
    with pytest.raises(ValueError, match="parallel"):
        R.look_at((0.0, 5.0, 0.0))


def test_rotations_agree_and_differentiate(rng):
    w = rng.normal(size=3)
    r = R.rotation_matrix(w)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    angle = np.linalg.norm(w)
    q = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * w / angle])
    np.testing.assert_allclose(R.quaternion_matrix(q), r, atol=1e-12)
    for x in (w, np.zeros(3), np.array([1e-6, 0.0, 0.0])):
        ds.check_grads(lambda w: R.rotation_matrix(w) @ np.array([0.3, -1.0, 2.0]), (x,), order=2)
    ds.check_grads(lambda q: R.quaternion_matrix(q).sum(axis=0), (q,), order=2)


def _reference_zbuffer(uv, z, faces, h, w):
    """Face id per pixel (-1: none), pixel by pixel and face by face (independent code)."""
    out = -np.ones((h, w), dtype=int)
    best = np.full((h, w), -np.inf)
    for j, (a, b, c) in enumerate(faces):
        pa, pb, pc = uv[a], uv[b], uv[c]
        area = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0])
        for i in range(h):
            for k in range(w):
                p = (k + 0.5, i + 0.5)
                l0 = ((pb[0] - p[0]) * (pc[1] - p[1]) - (pb[1] - p[1]) * (pc[0] - p[0])) / area
                l1 = ((pc[0] - p[0]) * (pa[1] - p[1]) - (pc[1] - p[1]) * (pa[0] - p[0])) / area
                l2 = 1 - l0 - l1
                if min(l0, l1, l2) < 0:
                    continue
                inv_z = l0 / z[a] + l1 / z[b] + l2 / z[c]
                if inv_z > best[i, k]:
                    best[i, k], out[i, k] = inv_z, j
    return out


def test_hard_form_matches_a_reference_zbuffer(rng):
    v, f = R.box((1.2, 0.8, 1.0))
    v = R.pose(v, np.array([0.4, 0.7, 0.1]), np.zeros(3))
    cam = R.look_at((0.5, 0.8, 3.0), focal=12.0)
    # unshared vertices, each face one colour: its id
    verts = v[f].reshape(-1, 3)
    faces = np.arange(len(verts)).reshape(-1, 3)
    colors = np.repeat(np.arange(len(f), dtype=float), 3)[:, None]
    img = R.rasterize_mesh.hard(verts, faces, cam, (16, 16), colors, background=np.array([-1.0]))
    uv, z = R.project(verts, cam, (16, 16))
    want = _reference_zbuffer(uv, z, faces, 16, 16)
    np.testing.assert_allclose(img[..., 0], want, atol=1e-12)  # interpolated: rounding only
    np.testing.assert_array_equal(np.rint(img[..., 0]), want)
    np.testing.assert_array_equal(img[..., 1], want >= 0)
    # back-face culling does not change what a closed mesh shows
    culled = R.rasterize_mesh.hard(verts, faces, cam, (16, 16), colors,
                                   background=np.array([-1.0]), cull_backfaces=True)
    np.testing.assert_array_equal(culled, img)


def test_soft_approaches_hard_as_sigma_and_gamma_shrink(rng):
    v, f, cam, col, light = _scene(rng, 1)
    hard = R.rasterize_mesh.hard(v, f, cam, (16, 16), col, light)
    gaps = []
    for sigma, gamma in [(1.0, 0.1), (0.3, 0.03), (0.1, 0.01), (0.01, 1e-3), (1e-3, 1e-4)]:
        soft = R.rasterize_mesh(v, f, cam, (16, 16), col, light, sigma, gamma=gamma)
        gaps.append(np.abs(soft - hard).mean())
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 1e-3 * gaps[0]


def test_culling_matches_dense(rng):
    v, f, cam, col, light = _scene(rng, 1)
    dense = R.rasterize_mesh(v, f, cam, (16, 16), col, light, 0.5, margin=None)
    np.testing.assert_allclose(R.rasterize_mesh(v, f, cam, (16, 16), col, light, 0.5, margin=60),
                               dense, atol=1e-12)
    culled = R.rasterize_mesh(v, f, cam, (16, 16), col, light, 0.5)
    assert np.abs(culled[..., -1] - dense[..., -1]).max() < 80 / (1 + np.exp(8.0))
    cost = R.mesh_cost(v, f, cam, (16, 16), 0.5)
    assert cost.pairs < cost.dense_pairs and cost.faces == len(f)


def test_check_grads_soft_every_parameter(rng):
    v, f, cam, col, light = _scene(rng)

    def loss(v, col, light, cam, sigma, gamma, bg):
        img = R.rasterize_mesh(v, f, cam, (8, 8), col, light, sigma, gamma=gamma, background=bg,
                               margin=None)
        return (img**2).sum()

    args = (v, col, light, cam, 0.8, 0.1, np.array([0.2, 0.1, 0.3]))
    ds.check_grads(loss, args, order=1)
    grads = ds.grad(loss, argnums=tuple(range(7)))(*args)
    for leaf in ds.tree_leaves(grads):
        assert np.all(np.isfinite(leaf)) and np.abs(leaf).max() > 0


def test_check_grads_pose_order_two(rng):
    v, f, cam, col, light = _scene(rng)
    target = rng.random((8, 8, 4))

    def loss(w, t):
        img = R.rasterize_mesh(R.pose(v, w, t), f, cam, (8, 8), col, light, 0.8, gamma=0.1)
        return ((img - target) ** 2).sum()

    ds.check_grads(loss, (np.array([0.1, 0.2, 0.3]), np.array([0.0, 0.1, 0.0])), order=2)


def test_check_grads_hard_form(rng):
    v, f, cam, col, light = _scene(rng)

    def loss(v, col, light, cam):
        return (R.rasterize_mesh.hard(v, f, cam, (8, 8), col, light) ** 2).sum()

    ds.check_grads(loss, (v, col, light, cam), order=2)
    g = ds.grad(loss, argnums=(0, 1, 2))(v, col, light, cam)
    assert np.abs(g[0]).max() > 0 and np.abs(g[1]).max() > 0 and np.abs(g[2].direction).max() > 0


def test_segment_sum_and_gather_rows(rng):
    seg = np.array([0, 0, 2, 2, 2, 4])
    x = rng.normal(size=(6, 2))
    np.testing.assert_allclose(R.segment_sum(x, seg, 5)[2], x[2:5].sum(axis=0))
    ds.check_grads(lambda x: R.segment_sum(x, seg, 5) ** 2, (x,), order=2)
    idx = np.array([1, 1, 0, 3])
    y = rng.normal(size=(4, 3))
    ds.check_grads(lambda y: R.gather_rows(y, idx) ** 2, (y,), order=2)
    with pytest.raises(ValueError, match="sorted"):
        R.segment_sum(x, seg[::-1], 5)


def test_bad_meshes(rng):
    v, f, cam, col, light = _scene(rng)
    bad = v.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"non-finite values at rows \[3\]"):
        R.rasterize_mesh(bad, f, cam, (8, 8))
    with pytest.raises(ValueError, match="integer"):
        R.rasterize_mesh(v, f.astype(float), cam, (8, 8))
    # empty mesh: the background, alpha 0
    img = R.rasterize_mesh(np.zeros((0, 3)), np.zeros((0, 3), int), cam, (4, 4),
                           background=np.array([0.5]))
    assert np.all(img[..., 0] == 0.5) and np.all(img[..., 1] == 0)
    # a face crossing the near plane and a degenerate face: dropped, said once, finite gradients
    near_v = np.concatenate([v, [[0.0, 0.0, 3.95], [0.1, 0.0, 4.5], [0.0, 0.1, 3.0],
                                 [0.2, 0.2, 0.0], [0.2, 0.2, 0.0], [0.2, 0.2, 0.0]]])
    n = len(v)
    more = np.concatenate([f, [[n, n + 1, n + 2], [n + 3, n + 4, n + 5]]])
    cols = rng.random((len(near_v), 3))

    def loss(vv):
        return R.rasterize_mesh(vv, more, cam, (8, 8), cols, light, near=0.1).sum()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = ds.grad(loss)(near_v)
    said = [str(w.message) for w in caught if "dropped" in str(w.message)]
    assert said and "1 face(s) with a vertex behind" in said[0] and "1 degenerate" in said[0]
    assert np.all(np.isfinite(g)) and np.all(g[n:] == 0)


def test_cutoff_is_smooth_and_independent_of_culling(rng):
    v, f, cam, col, light = _scene(rng, 1)
    args = (v, f, cam, (16, 16), col, light, 0.5)
    culled = R.rasterize_mesh(*args, gamma=0.01)
    np.testing.assert_allclose(R.rasterize_mesh(*args, gamma=0.01, dense=True), culled,
                               atol=1e-12)
    # a short cutoff puts many pairs in the taper: still smooth
    v0, f0, cam0, col0, light0 = _scene(rng)

    def loss(v, sigma):
        img = R.rasterize_mesh(v, f0, cam0, (8, 8), col0, light0, sigma, gamma=0.1, margin=1.5)
        return (img**2).sum()

    ds.check_grads(loss, (v0, 0.8), order=2)
