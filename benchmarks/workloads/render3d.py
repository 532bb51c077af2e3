"""3-D soft rasterization (``diffsys.systems.render.rasterize_mesh``): the issue's workload.

An icosphere (1,280 faces, per-vertex colours, a directional light) seen at 128 x 128 px
(``sigma = 0.5`` px, ``gamma = 0.01``, back faces culled): silhouette + shaded colour, then
the gradient of ``sum((image - target)^2)`` to vertices, colours and light. Beside it: the
z-buffer (hard) forward pass alone, and the dense algorithm (every pixel against every face,
``dense=True``, the one SoftRas runs) at 64 px and 320 faces with its peak memory, next to
the culled version of the same smaller scene.

References: no independent 3-D soft rasterizer is installed. Faces beyond 8 sigma count 0
(tapered), so the culled and the dense evaluation give the same result: the 64 px rows are
checked against each other; the 128 px soft row against itself (the unit tests hold it to
the dense evaluation and to finite differences); the hard row against a face-by-face z-buffer
written separately in NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._spec import Impl, Thunk, Workload

SIGMA, GAMMA = 0.5, 0.01


def _scene(subdivisions: int, size: int):
    from diffsys.systems import render as R

    v, f = R.icosphere(subdivisions)
    rng = np.random.default_rng(0)
    cam = R.look_at((0.2, 0.1, 3.0), focal=size * 100 / 128)
    light = R.Light(np.array([0.3, -0.5, 1.0]), 0.3, 0.7)
    return R, v, f, cam, rng.random((len(v), 3)), light, rng.random((size, size, 4))


def _soft(subdivisions: int, size: int, dense: bool = False, cull: bool = True) -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp

    R, v, f, cam, col, light, target = _scene(subdivisions, size)

    def loss(v, col, light):
        img = R.rasterize_mesh(v, f, cam, (size, size), col, light, SIGMA, gamma=GAMMA,
                               dense=dense, cull_backfaces=cull)
        return dnp.sum((img - target) ** 2), img

    fn = ds.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)

    def run() -> Any:
        (_, img), (gv, gc, gl) = fn(v, col, light)
        return img, gv, gc, gl.direction, gl.ambient, gl.diffuse

    return run


def _hard(size: int) -> Thunk:
    R, v, f, cam, col, light, _ = _scene(3, size)
    return lambda: R.rasterize_mesh.hard(v, f, cam, (size, size), col, light,
                                         cull_backfaces=True)


def _zbuffer_reference(size: int) -> tuple[np.ndarray, ...]:
    """The hard image by a face-at-a-time z-buffer in NumPy (independent of the renderer)."""
    R, v, f, cam, col, light, _ = _scene(3, size)
    uv, z = R.project(v, cam, (size, size))
    d = light.direction / np.linalg.norm(light.direction)
    shade = light.ambient + light.diffuse * np.maximum(R.face_normals(v, f) @ d, 0)
    best = np.full(size * size, -np.inf)
    out = np.zeros((size * size, 4))
    for j, (a, b, c) in enumerate(f):
        pa, pb, pc = uv[a], uv[b], uv[c]
        area = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0])
        if area >= 0:  # back face (culled)
            continue
        lo = np.floor(np.minimum(np.minimum(pa, pb), pc)).astype(int)
        hi = np.ceil(np.maximum(np.maximum(pa, pb), pc)).astype(int)
        ys, xs = np.mgrid[max(lo[1], 0):min(hi[1], size), max(lo[0], 0):min(hi[0], size)]
        px, py = xs.ravel() + 0.5, ys.ravel() + 0.5
        l0 = ((pb[0] - px) * (pc[1] - py) - (pb[1] - py) * (pc[0] - px)) / area
        l1 = ((pc[0] - px) * (pa[1] - py) - (pc[1] - py) * (pa[0] - px)) / area
        l2 = 1 - l0 - l1
        ok = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        q = np.stack([l0, l1, l2], 1)[ok] / z[[a, b, c]]
        zi = q.sum(1)
        pix = (ys.ravel() * size + xs.ravel())[ok]
        win = zi > best[pix]
        pix, q, zi = pix[win], q[win], zi[win]
        best[pix] = zi
        out[pix, :3] = (q @ col[[a, b, c]]) / zi[:, None] * shade[j]
        out[pix, 3] = 1
    return (out.reshape(size, size, 4),)


WORKLOAD = Workload(
    name="render3d_128",
    title="3-D soft rasterizer 128x128, 1,280-face icosphere, forward + backward",
    description=(
        "`rasterize_mesh` of an icosphere (1,280 faces, 640 after back-face culling) with "
        "per-vertex colours and a directional light at 128 x 128 (sigma 0.5 px, gamma 0.01, "
        "margin 8 sigma): silhouette and shaded colour, then the gradient of "
        "`sum((image - target)^2)` to the vertices, colours and light. No reference here (no "
        "independent 3-D soft rasterizer is installed; the 64 px rows check culled against "
        "dense, and the unit tests check gradients against finite differences)."
    ),
    unit="ms",
    scale=1e3,
    target=100.0,
    reference=lambda: _soft(3, 128)(),
    impls={"diffsys": Impl(lambda: _soft(3, 128), "`ds.value_and_grad(rasterize_mesh)`")},
    tolerance=1e-9,
    memory=True,
)

WORKLOAD_HARD = Workload(
    name="render3d_hard_128",
    title="3-D z-buffer (hard) 128x128, 1,280-face icosphere, forward",
    description=(
        "`rasterize_mesh.hard`: the nearest face per pixel centre, perspective-correct colours, "
        "Lambert + ambient, back faces culled. The reference is a face-at-a-time z-buffer "
        "written separately in NumPy."
    ),
    unit="ms",
    scale=1e3,
    target=30.0,
    reference=lambda: _zbuffer_reference(128),
    impls={"diffsys": Impl(lambda: _hard(128), "`rasterize_mesh.hard`")},
    tolerance=1e-9,
)

WORKLOAD_SMALL = Workload(
    name="render3d_64",
    title="3-D soft rasterizer 64x64, 320-face icosphere, forward + backward (culled)",
    description=(
        "The scene of `render3d_128` with 320 faces at 64 x 64, both sides of the mesh "
        "rendered (no back-face culling), bounding-box culling only: for comparison with the "
        "dense row below, which it must equal."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    reference=lambda: _soft(2, 64, dense=True, cull=False)(),
    impls={"diffsys": Impl(lambda: _soft(2, 64, cull=False), "`rasterize_mesh`, margin 8")},
    tolerance=1e-9,
    own_target=True,
    memory=True,
)

WORKLOAD_DENSE = Workload(
    name="render3d_dense_64",
    title="3-D soft rasterizer 64x64, 320 faces, dense (every pixel x every face)",
    description=(
        "`render3d_64` with `dense=True`: all 320 x 4,096 = 1,310,720 pixel-face pairs "
        "evaluated, then those beyond 8 sigma zeroed (the algorithm SoftRas runs), with its "
        "peak memory. Checked against the culled version."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    reference=lambda: _soft(2, 64, cull=False)(),
    impls={"diffsys": Impl(lambda: _soft(2, 64, dense=True, cull=False), "`dense=True`")},
    tolerance=1e-9,
    own_target=True,
    memory=True,
)

WORKLOADS = [WORKLOAD, WORKLOAD_HARD, WORKLOAD_SMALL, WORKLOAD_DENSE]
