"""Triangle meshes and the perspective camera: generated meshes, poses, projection.

Conventions (stated once): world and camera frames are right-handed; the camera looks along
its ``+z`` with ``x`` to the right and ``y`` down (the OpenCV convention), so a camera point
``(x, y, z)`` lands on pixel coordinates ``u = f x / z + W / 2``, ``v = f y / z + H / 2``
(the image conventions of :mod:`.exact`). ``camera = R (world - eye)``: :func:`look_at` gives
``R`` and ``t = -R eye``. Faces are ``(F, 3)`` vertex indices, counter-clockwise seen from
outside (outward normals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core.tracer import concrete

Array = Any

__all__ = [
    "Camera",
    "box",
    "face_normals",
    "icosphere",
    "look_at",
    "pose",
    "project",
    "quaternion_matrix",
    "rotation_matrix",
    "torus",
]


def icosphere(subdivisions: int = 2, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A unit-sphere triangulation: ``20 * 4**subdivisions`` faces.

    >>> v, f = icosphere(3)
    >>> v.shape, f.shape
    ((642, 3), (1280, 3))
    """
    t = (1 + 5**0.5) / 2
    v = np.array(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=float
    )
    f = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    )
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = len(v) + inverse.reshape(3, -1).T  # (F, 3): midpoints of edges 01, 12, 20
        v = np.concatenate([v, (v[unique[:, 0]] + v[unique[:, 1]]) / 2])
        a, b, c = f.T
        ab, bc, ca = mid.T
        f = np.concatenate([np.stack(x, 1) for x in
                            ([a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca])])
    v = v / np.linalg.norm(v, axis=1, keepdims=True) * radius
    return v, f


def box(size: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box centred at the origin: 8 vertices, 12 faces."""
    s = np.asarray(size, dtype=float) / 2
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * s
    f = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )
    return v, f


def torus(
    major: float = 1.0, minor: float = 0.35, n_major: int = 24, n_minor: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """A torus around the ``z`` axis: ``n_major * n_minor`` vertices, twice as many faces."""
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a, b = 2 * np.pi * i / n_major, 2 * np.pi * j / n_minor
    ring = major + minor * np.cos(b)
    v = np.stack([ring * np.cos(a), ring * np.sin(a), minor * np.sin(b)], -1).reshape(-1, 3)
    k = lambda ii, jj: (ii % n_major) * n_minor + jj % n_minor  # noqa: E731
    q00, q10, q11, q01 = k(i, j), k(i + 1, j), k(i + 1, j + 1), k(i, j + 1)
    f = np.concatenate([np.stack([q00, q10, q11], -1).reshape(-1, 3),
                        np.stack([q00, q11, q01], -1).reshape(-1, 3)])
    return v, f


def _cross(a: Array, b: Array) -> Array:
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return dnp.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def rotation_matrix(axis_angle: Array) -> Array:
    """Rodrigues: the rotation by ``|w|`` radians about ``w / |w|`` (``w`` of shape ``(3,)``).

    Smooth at ``w = 0`` (the identity, with the right derivative).

    >>> np.round(rotation_matrix(np.array([0.0, 0.0, np.pi / 2])) @ [1.0, 0.0, 0.0], 6)
    array([0., 1., 0.])
    """
    w = axis_angle
    theta2 = dnp.sum(w * w)
    if float(concrete(theta2)) < 1e-8:  # series, exact to float64 below 1e-4 rad
        a = 1 - theta2 / 6 + theta2 * theta2 / 120
        b = 0.5 - theta2 / 24 + theta2 * theta2 / 720
    else:
        theta = dnp.sqrt(theta2)
        a = dnp.sin(theta) / theta
        b = (1 - dnp.cos(theta)) / theta2
    zero = w[0] * 0
    k = dnp.stack([
        dnp.stack([zero, -w[2], w[1]]),
        dnp.stack([w[2], zero, -w[0]]),
        dnp.stack([-w[1], w[0], zero]),
    ])
    return np.eye(3) + a * k + b * (k @ k)


def quaternion_matrix(q: Array) -> Array:
    """The rotation of quaternion ``q = (w, x, y, z)`` (normalized here)."""
    q = q / dnp.sqrt(dnp.sum(q * q))
    w, x, y, z = q[0], q[1], q[2], q[3]
    return dnp.stack([
        dnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)]),
        dnp.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)]),
        dnp.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]),
    ])


def pose(vertices: Array, axis_angle: Array, translation: Array) -> Array:
    """``R(axis_angle) v + translation`` for every vertex ``(V, 3)``."""
    return vertices @ dnp.transpose(rotation_matrix(axis_angle)) + translation


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``rotation (3, 3)`` and ``translation (3,)`` take world points to
    camera points (``R x + t``), ``focal`` in pixels. All three are differentiable."""

    rotation: Array
    translation: Array
    focal: Array = 64.0


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), focal: float = 64.0) -> Camera:
    """The camera at ``eye`` looking at ``target`` with world ``up`` drawn upwards.

    >>> cam = look_at((0.0, 0.0, 5.0))
    >>> np.round(cam.rotation @ np.array([0.0, 0.0, 0.0]) + cam.translation, 6)
    array([0., 0., 5.])
    """
    eye, target, up = (np.asarray(a, dtype=float) for a in (eye, target, up))
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-12:
        raise ValueError(f"look_at: up {up.tolist()} is parallel to the view direction")
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    return Camera(rot, -rot @ eye, float(focal))


def project(vertices: Array, camera: Camera, size: tuple[int, int]) -> tuple[Array, Array]:
    """Pixel coordinates ``(V, 2)`` and camera depths ``(V,)`` of world ``vertices``."""
    cam = vertices @ dnp.transpose(camera.rotation) + camera.translation
    z = cam[:, 2]
    u = camera.focal * cam[:, 0] / z + size[1] / 2
    v = camera.focal * cam[:, 1] / z + size[0] / 2
    return dnp.stack([u, v], axis=-1), z


def face_normals(vertices: Array, faces: np.ndarray) -> Array:
    """Unit outward normals ``(F, 3)`` (counter-clockwise faces); degenerate faces give 0."""
    v = vertices[faces]
    n = _cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / dnp.sqrt(dnp.sum(n * n, axis=-1, keepdims=True) + 1e-30)
