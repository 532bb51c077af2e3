"""2-D shapes for the soft rasterizer, and their signed distances (positive inside).

Each shape kind is a frozen dataclass of arrays (a pytree, so ``ds.grad`` returns one of the
same kind): a batch of ``N`` shapes drawn in index order, each with a colour ``(N, C)`` and
an opacity ``(N,)`` in ``[0, 1]``. Positions are in pixel units (``x`` right, ``y`` down;
pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``).

- :class:`Circles`: ``center (N, 2)``, ``radius (N,)``.
- :class:`Polygons`: ``vertices (N, V, 2)``, any simple or self-intersecting polygon (even-odd
  inside rule).
- :class:`Strokes`: polylines ``points (N, V, 2)`` with a ``width (N,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core.tracer import concrete
from .exact import even_odd_inside
from .prims import gather_rows

Array = Any

__all__ = ["Circles", "Polygons", "Shape", "Strokes"]

# keeps sqrt differentiable where a distance is exactly 0 (shifts distances by <= 1e-6 px)
_TINY = 1e-12


def _norm(v: Array) -> Array:
    return dnp.sqrt(dnp.sum(v * v, axis=-1) + _TINY)


def _segment_distance(p: np.ndarray, a: Array, b: Array) -> Array:
    """Distances ``(P, S)`` from points ``p`` ``(P, 2)`` to segments ``a -> b`` ``(P, S, 2)``."""
    e = b - a
    d = p[:, None, :] - a
    ee = dnp.sum(e * e, axis=-1) + _TINY
    t = dnp.clip(dnp.sum(d * e, axis=-1) / ee, 0.0, 1.0)
    return _norm(d - t[..., None] * e)


@dataclass(frozen=True)
class Circles:
    """Filled discs: ``center (N, 2)``, ``radius (N,)``, ``color (N, C)``, ``opacity (N,)``.

    >>> import numpy as np
    >>> c = Circles(np.array([[4.0, 4.0]]), np.array([2.0]), np.array([[1.0, 0.0, 0.0]]))
    >>> c.count, c.channels
    (1, 3)
    """

    center: Array
    radius: Array
    color: Array
    opacity: Array | None = None

    kind = "circle"

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, r = np.asarray(concrete(self.center)), np.asarray(concrete(self.radius))
        return c - r[:, None], c + r[:, None]

    def signed_distance(self, index: np.ndarray, p: np.ndarray) -> Array:
        dx = p[:, 0] - gather_rows(self.center[:, 0], index)  # columns: no tiny-axis sums
        dy = p[:, 1] - gather_rows(self.center[:, 1], index)
        return gather_rows(self.radius, index) - dnp.sqrt(dx * dx + dy * dy + _TINY)

    def geometry(self) -> dict[str, Array]:
        return {"center": self.center, "radius": self.radius}

    def one(self, k: int) -> dict:
        return {"center": self.center[k], "radius": self.radius[k]}

    count = property(lambda self: int(np.shape(self.radius)[0]))
    channels = property(lambda self: int(np.shape(self.color)[-1]))


@dataclass(frozen=True)
class Polygons:
    """Filled polygons: ``vertices (N, V, 2)``, ``color (N, C)``, ``opacity (N,)``.

    The inside is the even-odd rule; the signed distance is the distance to the nearest edge,
    positive inside.
    """

    vertices: Array
    color: Array
    opacity: Array | None = None

    kind = "polygon"

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        v = np.asarray(concrete(self.vertices))
        return v.min(axis=1), v.max(axis=1)

    def signed_distance(self, index: np.ndarray, p: np.ndarray) -> Array:
        v = gather_rows(self.vertices, index)
        dist = dnp.min(_segment_distance(p, v, dnp.roll(v, -1, axis=1)), axis=-1)
        inside = even_odd_inside(p[:, 0], p[:, 1], np.asarray(concrete(v)))
        return dnp.where(inside, dist, -dist)

    def geometry(self) -> dict[str, Array]:
        return {"vertices": self.vertices}

    def one(self, k: int) -> dict:
        return {"vertices": self.vertices[k]}

    count = property(lambda self: int(np.shape(self.vertices)[0]))
    channels = property(lambda self: int(np.shape(self.color)[-1]))


@dataclass(frozen=True)
class Strokes:
    """Polylines of a given width: ``points (N, V, 2)`` (``V >= 2``), ``width (N,)``,
    ``color (N, C)``, ``opacity (N,)``; the signed distance is ``width / 2 - distance``."""

    points: Array
    width: Array
    color: Array
    opacity: Array | None = None

    kind = "stroke"

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        v, w = np.asarray(concrete(self.points)), np.asarray(concrete(self.width))
        return v.min(axis=1) - w[:, None] / 2, v.max(axis=1) + w[:, None] / 2

    def signed_distance(self, index: np.ndarray, p: np.ndarray) -> Array:
        v = gather_rows(self.points, index)
        dist = dnp.min(_segment_distance(p, v[:, :-1], v[:, 1:]), axis=-1)
        return gather_rows(self.width, index) / 2 - dist

    def geometry(self) -> dict[str, Array]:
        return {"points": self.points, "width": self.width}

    def one(self, k: int) -> dict:
        return {"points": self.points[k], "width": self.width[k]}

    count = property(lambda self: int(np.shape(self.width)[0]))
    channels = property(lambda self: int(np.shape(self.color)[-1]))


Shape = Circles | Polygons | Strokes
