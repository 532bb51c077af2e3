"""Soft rasterization of triangle meshes (SoftRas-style) and its z-buffer hard form.

For a pixel centre ``p`` and a face ``j`` projected to the screen:

- coverage ``D_j = sigmoid(d_j(p) / sigma)``, ``d_j`` the signed distance (pixels, positive
  inside) to the projected triangle;
- depth: perspective-correct from the (clipped) screen barycentrics ``b``:
  ``1/z = sum_i b_i / z_i``; normalized inverse depth ``s_j = (1/z - 1/far) / (1/near - 1/far)``
  (1 at the near plane, 0 at the far one);
- colour: per-vertex colours interpolated perspective-correctly, times the face's shading
  ``ambient + diffuse * max(0, n . l)`` (Lambert, directional light ``l``);
- aggregation (softmax over depth, temperature ``gamma``):
  ``I = (sum_j D_j e_j C_j + e_b B) / (sum_j D_j e_j + e_b)`` with ``e_j = exp(s_j / gamma)``,
  ``e_b = exp(eps / gamma)``; silhouette ``A = 1 - prod_j (1 - D_j)``.

The output is ``(H, W, C + 1)``: colour channels and the silhouette (alpha) last. The hard
form (``rasterize_mesh.hard``) is the z-buffer: each pixel shows the nearest face covering its
centre (alpha 1), or the background (alpha 0).

Cost: pairs only inside each face's screen bounding box grown by ``margin * sigma``, summed
per pixel by :func:`segment_sum` (``O(pairs)``).

Bad input: non-finite vertices raise ``ValueError``; faces with a vertex behind the near plane
and degenerate faces (screen area below 1e-9 px^2) are dropped, with one warning per call
naming how many; an empty mesh renders the background.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core.tracer import concrete
from ...relax import relaxation, sigmoid, softplus
from .exact import bbox_pairs
from .mesh import Camera, face_normals, project
from .prims import gather_rows, segment_sum

Array = Any

__all__ = ["Light", "MeshCost", "mesh_cost", "rasterize_mesh"]


# --- scene pieces --------------------------------------------------------------------------


@dataclass(frozen=True)
class Light:
    """A directional light: ``direction (3,)`` (towards the light, world frame; normalized
    here), ``ambient`` and ``diffuse`` strengths. All differentiable."""

    direction: Array
    ambient: Array = 0.3
    diffuse: Array = 0.7


@dataclass(frozen=True)
class MeshCost:
    """Pairs evaluated vs ``pixels x faces``, faces kept/dropped, an estimate of the bytes
    kept for the backward pass."""

    pairs: int
    dense_pairs: int
    faces: int
    dropped: int
    bytes: int


_EPS_BG = 1e-3


def _check_mesh(vertices, faces, colors):
    v = np.asarray(concrete(vertices))
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"rasterize_mesh: vertices must be (V, 3), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        bad = np.flatnonzero(~np.all(np.isfinite(v), axis=1))
        raise ValueError(
            f"rasterize_mesh: vertices has non-finite values at rows {bad[:5].tolist()} "
            f"(shape {v.shape}, dtype {v.dtype})"
        )
    f = np.asarray(faces)
    if f.size and (f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer)):
        raise ValueError(
            f"rasterize_mesh: faces must be integer (F, 3), got shape {f.shape}, dtype {f.dtype}"
        )
    f = f.reshape(-1, 3).astype(np.int64)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"rasterize_mesh: faces index vertices 0..{len(v) - 1}, got {f.max()}")
    if colors is not None and (np.ndim(colors) != 2 or np.shape(colors)[0] != len(v)):
        raise ValueError(
            f"rasterize_mesh: colors must be per vertex (V, C) with V = {len(v)}, got shape "
            f"{np.shape(colors)}"
        )
    return f


def _visible_faces(uv, z, faces, near, who, cull_backfaces=False):
    """Faces in front of the near plane with a non-degenerate screen triangle (and, with
    ``cull_backfaces``, facing the camera: counter-clockwise faces turn clockwise on the
    y-down screen, negative ``area`` below)."""
    zc = np.asarray(concrete(z))[faces]
    t = np.asarray(concrete(uv))[faces]
    area = (t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1]) - (
        t[:, 1, 1] - t[:, 0, 1]) * (t[:, 2, 0] - t[:, 0, 0])
    front = np.all(zc > near, axis=1)
    ok = front & (np.abs(area) > 1e-9)
    behind, degenerate = int(np.sum(~front)), int(np.sum(front & ~ok))
    if behind or degenerate:
        warnings.warn(
            f"{who}: dropped {behind} face(s) with a vertex behind the near plane "
            f"(z <= {near}) and {degenerate} degenerate face(s) (screen area <= 1e-9 px^2); "
            "they contribute nothing",
            RuntimeWarning,
            stacklevel=4,
        )
    if cull_backfaces:
        ok &= area < 0
    return np.flatnonzero(ok)


def _pairs(uv, keep, faces, size, grow):
    t = np.asarray(concrete(uv))[faces[keep]]
    face, pixel = bbox_pairs(t.min(axis=1) - grow, t.max(axis=1) + grow, *size)
    order = np.argsort(pixel, kind="stable")
    return keep[face[order]], pixel[order]


def _shade(vertices, faces, light):
    """Per-face Lambert + ambient factor ``(F,)``, or None without a light."""
    if light is None:
        return None
    direction = light.direction / dnp.sqrt(dnp.sum(light.direction * light.direction))
    n = face_normals(vertices, faces)
    return light.ambient + light.diffuse * dnp.maximum(n @ direction, 0.0)


class _Pairs:
    """Per pixel-face pair: the projected triangle's corners ``(u_i, v_i)``, inverse depths
    and (shaded) vertex colours, each gathered from per-face arrays as flat ``(P,)`` columns
    (columns, not ``(P, 3, 2)`` blocks: NumPy reduces tiny trailing axes slowly)."""

    def __init__(self, vertices, faces, uv, z, colors, light, face, pixel, width):
        self.px = (pixel % width) + 0.5
        self.py = (pixel // width) + 0.5
        tri = uv[faces]  # (F, 3, 2), per face: cheap
        iz = 1 / z[faces]
        self.u = [gather_rows(tri[:, i, 0], face) for i in range(3)]
        self.v = [gather_rows(tri[:, i, 1], face) for i in range(3)]
        self.iz = [gather_rows(iz[:, i], face) for i in range(3)]
        shade = _shade(vertices, faces, light)
        if colors is None:
            self.colors = None if shade is None else gather_rows(shade, face)[:, None]
        else:
            c = colors[faces]  # (F, 3, C)
            if shade is not None:
                c = c * shade[:, None, None]
            self.colors = [gather_rows(c[:, i], face) for i in range(3)]

    def barycentric(self):
        u, v, px, py = self.u, self.v, self.px, self.py
        area = (u[1] - u[0]) * (v[2] - v[0]) - (v[1] - v[0]) * (u[2] - u[0])
        w0 = ((u[1] - px) * (v[2] - py) - (v[1] - py) * (u[2] - px)) / area
        w1 = ((u[2] - px) * (v[0] - py) - (v[2] - py) * (u[0] - px)) / area
        return [w0, w1, 1 - w0 - w1]

    def edge_distance(self):
        out = None
        for i in range(3):
            j = (i + 1) % 3
            ex, ey = self.u[j] - self.u[i], self.v[j] - self.v[i]
            dx, dy = self.px - self.u[i], self.py - self.v[i]
            t = dnp.clip((dx * ex + dy * ey) / (ex * ex + ey * ey + 1e-30), 0.0, 1.0)
            qx, qy = dx - t * ex, dy - t * ey
            d = dnp.sqrt(qx * qx + qy * qy + 1e-12)
            out = d if out is None else dnp.minimum(out, d)
        return out

    def colour(self, bary, channels):
        """Perspective-correct colour ``(P, C)`` and inverse depth ``(P,)``."""
        q = [b * iz for b, iz in zip(bary, self.iz, strict=True)]
        zinv = q[0] + q[1] + q[2]
        if isinstance(self.colors, list):
            col = (q[0][:, None] * self.colors[0] + q[1][:, None] * self.colors[1]
                   + q[2][:, None] * self.colors[2]) / zinv[:, None]
        elif self.colors is not None:  # shaded white
            col = self.colors * np.ones((1, channels))
        else:
            col = np.ones((len(self.px), channels))
        return col, zinv


def _coverage(x: Array, margin: float | None) -> tuple[Array, Array]:
    """``D = sigmoid(x) * taper`` and ``-log(1 - D)``. The taper (a smoothstep from 0 at
    ``x = -margin`` to 1 at ``x = -margin + 1``) makes faces beyond ``margin * sigma`` count
    exactly 0, smoothly, so the result does not depend on which pairs the culling kept (as
    SoftRas's threshold on ``D``, without its jump)."""
    if margin is None:
        return sigmoid(x), softplus(x)
    t = dnp.clip(x + margin, 0.0, 1.0)
    taper = t * t * (3 - 2 * t)
    full = np.asarray(concrete(x)) >= 1 - margin
    tail = dnp.minimum(x, 1.0 - margin)  # the tapered branch, kept finite where unused
    d_tail = sigmoid(tail) * taper
    cov = dnp.where(full, sigmoid(x), d_tail)
    return cov, dnp.where(full, softplus(x), -dnp.log1p(-d_tail))


def _inputs(vertices, faces, camera, size, colors, near):
    faces = _check_mesh(vertices, faces, colors)
    if not isinstance(camera, Camera):
        raise TypeError(f"rasterize_mesh: camera must be a Camera, got {type(camera).__name__}")
    h, w = int(size[0]), int(size[1])
    uv, z = project(vertices, camera, (h, w))
    return faces, h, w, uv, z


def _empty(bg_rows, h, w, channels):
    return dnp.concatenate([bg_rows, np.zeros((h * w, 1))], axis=1).reshape(h, w, channels + 1)


def _soft(vertices, faces, camera, size, colors, light, temperature, gamma, background,
          near, far, margin, cull_backfaces, dense=False):
    who = "rasterize_mesh"
    faces, h, w, uv, z = _inputs(vertices, faces, camera, size, colors, near)
    channels = 1 if colors is None else int(np.shape(colors)[1])
    bg = np.zeros(channels) if background is None else background
    sigma = temperature
    if not float(concrete(sigma)) > 0 or not float(concrete(gamma)) > 0:
        raise ValueError(f"{who}: temperature (sigma) and gamma must be > 0")
    keep = (_visible_faces(uv, z, faces, near, who, cull_backfaces) if len(faces)
            else np.zeros(0, np.int64))
    grow = math.inf if margin is None or dense else margin * float(concrete(sigma))
    if math.isinf(grow):
        face = np.tile(keep, h * w)
        pixel = np.repeat(np.arange(h * w), len(keep))
    else:
        face, pixel = _pairs(uv, keep, faces, (h, w), grow)
    n = h * w
    bg_rows = dnp.reshape(bg, (1, channels)) * np.ones((n, 1))
    if len(face) == 0:
        return _empty(bg_rows, h, w, channels)
    pairs = _Pairs(vertices, faces, uv, z, colors, light, face, pixel, w)
    bary = pairs.barycentric()
    inside = np.all([np.asarray(concrete(b)) >= 0 for b in bary], axis=0)
    dist = pairs.edge_distance()
    x = dnp.where(inside, dist, -dist) / sigma
    cov, neg_log_uncovered = _coverage(x, margin)
    clipped = [dnp.clip(b, 0.0, 1.0) for b in bary]
    total = clipped[0] + clipped[1] + clipped[2]
    col, zinv = pairs.colour([c / total for c in clipped], channels)
    s = (zinv - 1 / far) / (1 / near - 1 / far)
    # per-pixel max of s (a constant: the softmax does not depend on it)
    s_np = np.asarray(concrete(s))
    starts = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
    m = np.full(n, _EPS_BG)
    m[pixel[starts]] = np.maximum(np.maximum.reduceat(s_np, starts), _EPS_BG)
    e = cov * dnp.exp((s - m[pixel]) / gamma)
    stacked = dnp.concatenate([e[:, None], e[:, None] * col, neg_log_uncovered[:, None]], axis=1)
    sums = segment_sum(stacked, pixel, n)
    e_bg = dnp.exp((_EPS_BG - m) / gamma)
    den = sums[:, 0] + e_bg
    image = (sums[:, 1 : 1 + channels] + e_bg[:, None] * bg_rows) / den[:, None]
    alpha = 1 - dnp.exp(-sums[:, 1 + channels])
    return dnp.concatenate([image, alpha[:, None]], axis=1).reshape(h, w, channels + 1)


def _hard(vertices, faces, camera, size, colors=None, light=None, *, gamma=1e-2,
          background=None, near=0.1, far=100.0, margin=8.0, cull_backfaces=False,
          dense=False):
    who = "rasterize_mesh.hard"
    faces, h, w, uv, z = _inputs(vertices, faces, camera, size, colors, near)
    channels = 1 if colors is None else int(np.shape(colors)[1])
    bg = np.zeros(channels) if background is None else background
    n = h * w
    keep = (_visible_faces(uv, z, faces, near, who, cull_backfaces) if len(faces)
            else np.zeros(0, np.int64))
    face, pixel = _pairs(uv, keep, faces, (h, w), 0.0)
    bg_rows = dnp.reshape(bg, (1, channels)) * np.ones((n, 1))
    if len(face):
        plain = _Pairs(None, faces, np.asarray(concrete(uv)), np.asarray(concrete(z)), None,
                       None, face, pixel, w)
        bary = plain.barycentric()
        inside = np.all([b >= 0 for b in bary], axis=0)
        zinv = sum(b * iz for b, iz in zip(bary, plain.iz, strict=True))
        face, pixel, zinv = face[inside], pixel[inside], zinv[inside]
        # the nearest face per pixel (largest 1/z; ties: the lowest face index)
        order = np.lexsort((face, -zinv, pixel))
        face, pixel = face[order], pixel[order]
        first = np.r_[True, pixel[1:] != pixel[:-1]] if len(pixel) else np.zeros(0, bool)
        face, pixel = face[first], pixel[first]
    if len(face) == 0:
        return _empty(bg_rows, h, w, channels)
    pairs = _Pairs(vertices, faces, uv, z, colors, light, face, pixel, w)
    col, _ = pairs.colour(pairs.barycentric(), channels)
    where = np.full(n, len(face))
    where[pixel] = np.arange(len(face))
    rows = dnp.concatenate([col, dnp.reshape(bg, (1, channels)) * 1.0])[where]
    alpha = (where < len(face)).astype(float)
    return dnp.concatenate([rows, alpha[:, None]], axis=1).reshape(h, w, channels + 1)


@relaxation(hard=_hard)
def rasterize_mesh(
    vertices: Array,
    faces: np.ndarray,
    camera: Camera,
    size: tuple[int, int],
    colors: Array | None = None,
    light: Light | None = None,
    temperature: float | Array = 0.5,
    *,
    gamma: float | Array = 1e-2,
    background: Array | None = None,
    near: float = 0.1,
    far: float = 100.0,
    margin: float | None = 8.0,
    cull_backfaces: bool = False,
    dense: bool = False,
) -> Array:
    """Soft-rasterize a triangle mesh into ``(H, W, C + 1)``: shaded colour, then silhouette.

    ``vertices (V, 3)`` in the world frame, ``faces (F, 3)``, per-vertex ``colors (V, C)``
    (default white, one channel), an optional :class:`Light` (none: unshaded colours).
    ``temperature`` is SoftRas's ``sigma`` in pixels, ``gamma`` the depth softmax
    temperature. Differentiable in vertices, camera (rotation, translation, focal), colours,
    light, background, ``temperature`` and ``gamma``. ``rasterize_mesh.hard(...)`` is the
    z-buffer (gradients to colours, light and, through the barycentrics of the visible
    face, vertices). ``cull_backfaces=True`` drops the faces turned away from the camera
    (closed meshes: about half the work, the same silhouette). Faces farther than
    ``margin * sigma`` from a pixel centre do not count (their coverage is tapered smoothly to
    0 over the last sigma), so only pixels in each face's bounding box grown by that much are
    evaluated; ``dense=True`` evaluates every pixel-face pair anyway (the SoftRas algorithm,
    the same result), ``margin=None`` has no cutoff (and is dense).

    >>> import numpy as np
    >>> from diffsys.systems.render import icosphere, look_at
    >>> v, f = icosphere(1)
    >>> img = rasterize_mesh(v, f, look_at((0.0, 0.0, 4.0), focal=20.0), (16, 16))
    >>> img.shape, round(float(img[8, 8, -1]), 3), round(float(img[0, 0, -1]), 3)
    ((16, 16, 2), 0.994, 0.0)
    """
    return _soft(vertices, faces, camera, size, colors, light, temperature, gamma, background,
                 near, far, margin, cull_backfaces, dense)


def mesh_cost(vertices, faces, camera: Camera, size: tuple[int, int], temperature: float = 0.5,
              *, near: float = 0.1, margin: float | None = 8.0,
              cull_backfaces: bool = False) -> MeshCost:
    """The :class:`MeshCost` of a :func:`rasterize_mesh` call (nothing is rendered)."""
    import warnings as _w

    faces = _check_mesh(vertices, faces, None)
    h, w = int(size[0]), int(size[1])
    uv, z = project(np.asarray(concrete(vertices)), camera, (h, w))
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        keep = _visible_faces(uv, z, faces, near, "mesh_cost", cull_backfaces)
    if margin is None:
        pairs = len(keep) * h * w
    else:
        pairs = len(_pairs(uv, keep, faces, (h, w), margin * temperature)[0])
    return MeshCost(pairs=pairs, dense_pairs=len(faces) * h * w, faces=len(keep),
                    dropped=len(faces) - len(keep), bytes=8 * 40 * pairs + 8 * 8 * h * w)
