"""Reading and writing triangle meshes (OBJ, PLY, and the other formats trimesh reads).

The parsing is trimesh's (the ``mesh`` extra: ``pip install 'diffsys[mesh]'``), not a
hand-written one; this module turns what it reads into the arrays :func:`rasterize_mesh`
takes and checks them, so a malformed or hostile file is a ``ValueError`` naming the file and
what is wrong, never a mesh with out-of-range indices or NaN vertices.

A mesh read here is a :class:`MeshData`: ``vertices (V, 3)`` float64, ``faces (F, 3)`` int64
(polygons are split into triangles by trimesh; vertex order is kept as in the file),
``normals (V, 3)`` (the file's per-vertex normals when trimesh reads them, else computed from
the faces, area-weighted) and ``colors (V, 3)`` in ``[0, 1]`` when the file gives per-vertex
colours (else ``None``; textures and per-face colours are not read).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...fileio import atomic_write

__all__ = ["MeshData", "load_mesh", "save_mesh"]

_EXTRA = (
    "reading and writing mesh files needs trimesh: install the 'mesh' extra "
    "(pip install 'diffsys[mesh]')"
)


def _trimesh():
    try:
        import trimesh
    except ImportError as exc:
        raise ImportError(f"diffsys.systems.render: {_EXTRA}") from exc
    return trimesh


@dataclass(frozen=True)
class MeshData:
    """A triangle mesh read from a file: arrays ready for :func:`rasterize_mesh`.

    >>> from diffsys.systems import render as R
    >>> v, f = R.box()
    >>> mesh = R.MeshData(v, f)
    >>> mesh.vertices.shape, mesh.faces.shape, mesh.colors is None
    ((8, 3), (12, 3), True)
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None


def _fail(path, why: str) -> ValueError:
    return ValueError(f"load_mesh({os.fspath(path)!r}): {why}")


def load_mesh(path: str | os.PathLike, *, file_type: str | None = None) -> MeshData:
    """Read a triangle mesh from ``path`` (OBJ, PLY, STL, OFF, glTF ...; the type from the
    extension unless ``file_type`` is given), checked: finite vertices, face indices in range,
    at least one triangle.

    >>> import tempfile, os
    >>> from diffsys.systems import render as R
    >>> path = os.path.join(tempfile.mkdtemp(), "ball.obj")
    >>> R.save_mesh(path, *R.icosphere(1))
    >>> mesh = R.load_mesh(path)
    >>> mesh.vertices.shape, mesh.faces.shape
    ((42, 3), (80, 3))
    """
    trimesh = _trimesh()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_mesh: no file {os.fspath(path)!r}")
    kind = (file_type or os.path.splitext(os.fspath(path))[1].lstrip(".")).lower()
    if not kind:
        raise _fail(path, "no file extension: pass file_type='obj' (or 'ply', 'stl', ...)")
    try:
        mesh = trimesh.load(os.fspath(path), file_type=kind, force="mesh", process=False)
    except Exception as exc:  # trimesh raises whatever its parser hit (IndexError, OSError...)
        raise _fail(
            path, f"trimesh could not read it as {kind.upper()} ({type(exc).__name__}: {exc})"
        ) from exc
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))))
    if faces.size == 0 or vertices.size == 0:
        raise _fail(
            path,
            f"no triangles in it ({len(vertices)} vertices, {len(faces)} faces): not a "
            f"{kind.upper()} mesh, or an empty one",
        )
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise _fail(
            path, f"vertices {vertices.shape} and faces {faces.shape}, expected (V, 3), (F, 3)"
        )
    faces = faces.astype(np.int64)
    bad = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if bad.size:
        raise _fail(path, f"{bad.size} non-finite vertices (rows {bad[:5].tolist()})")
    out = np.flatnonzero(((faces < 0) | (faces >= len(vertices))).any(axis=1))
    if out.size:
        raise _fail(
            path,
            f"{out.size} faces index vertices outside 0..{len(vertices) - 1} (faces "
            f"{out[:5].tolist()})",
        )
    normals = None
    try:
        normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    except Exception:  # pragma: no cover - trimesh computes them for any valid mesh
        normals = None
    colors = None
    visual = getattr(mesh, "visual", None)
    if getattr(visual, "kind", None) == "vertex":
        colors = np.asarray(visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
    return MeshData(vertices, faces, normals, colors)


def save_mesh(
    path: str | os.PathLike,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray | None = None,
    *,
    file_type: str | None = None,
) -> None:
    """Write ``vertices (V, 3)``, ``faces (F, 3)`` and optional per-vertex ``colors (V, 3)``
    in ``[0, 1]`` (stored as 8-bit) to ``path`` atomically, the format from the extension
    unless ``file_type`` is given. OBJ keeps
    coordinates to 17 significant digits (float64 round trip); PLY as trimesh writes it, in
    float32."""
    trimesh = _trimesh()
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(
            f"save_mesh: vertices {vertices.shape} and faces {faces.shape}, expected (V, 3) "
            "and (F, 3)"
        )
    if not np.isfinite(vertices).all():
        raise ValueError("save_mesh: non-finite vertices")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"save_mesh: face indices outside 0..{len(vertices) - 1}")
    kw = {}
    if colors is not None:
        colors = np.asarray(colors, dtype=np.float64)
        if colors.shape != (len(vertices), 3):
            raise ValueError(f"save_mesh: colors {colors.shape}, expected ({len(vertices)}, 3)")
        kw["vertex_colors"] = np.round(np.clip(colors, 0, 1) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices, faces, process=False, **kw)
    kind = (file_type or os.path.splitext(os.fspath(path))[1].lstrip(".")).lower()
    options = {"digits": 17} if kind == "obj" else {}
    data = mesh.export(file_type=kind, **options)
    atomic_write(path, data if isinstance(data, bytes) else data.encode())
