"""The exact layer of the renderer: plain NumPy, no tracers.

- Pixel conventions (stated once): an image is ``(H, W, C)``; pixel ``(i, j)`` (row, column)
  has its centre at ``x = j + 0.5``, ``y = i + 0.5``; ``x`` grows to the right and ``y``
  downwards. Shape positions are in these pixel units.
- :func:`bbox_pairs`: the pixel-shape pairs inside each shape's bounding box, the culling
  that makes the soft rasterizer's work and memory grow with the pairs that matter, not
  with pixels x shapes.
- :func:`even_odd_inside`: the point-in-polygon test (even-odd rule).
- :func:`rasterize_exact_2d`: the reference hard rasterizer (dense, one shape at a time,
  centre sampling, ``over`` compositing) the differentiable hard form is tested against.
- :func:`layer_plan`: groups pairs by their depth rank in each pixel so compositing runs in
  ``O(pairs)`` work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LayerPlan",
    "bbox_pairs",
    "even_odd_inside",
    "layer_plan",
    "pixel_centres",
    "rasterize_exact_2d",
    "segment_distance",
]


def pixel_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of every pixel centre, each of shape ``(H * W,)``, row-major."""
    y, x = np.divmod(np.arange(height * width), width)
    return x + 0.5, y + 0.5


def bbox_pairs(
    lo: np.ndarray, hi: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels whose centres lie in each box ``[lo, hi]`` (``(N, 2)`` as ``(x, y)``).

    Returns ``(shape, pixel)``: int64 arrays of equal length, the shape's index and the
    row-major pixel index, grouped by shape in shape order. Boxes off the image give none.

    >>> s, p = bbox_pairs(np.array([[0.0, 0.0]]), np.array([[1.9, 0.9]]), 2, 3)
    >>> s.tolist(), p.tolist()
    ([0, 0], [0, 1])
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    # pixel j is inside when lo <= j + 0.5 <= hi
    j0 = np.clip(np.ceil(lo[:, 0] - 0.5), 0, width).astype(np.int64)
    j1 = np.clip(np.floor(hi[:, 0] - 0.5) + 1, 0, width).astype(np.int64)
    i0 = np.clip(np.ceil(lo[:, 1] - 0.5), 0, height).astype(np.int64)
    i1 = np.clip(np.floor(hi[:, 1] - 0.5) + 1, 0, height).astype(np.int64)
    w = np.maximum(j1 - j0, 0)
    h = np.maximum(i1 - i0, 0)
    counts = w * h
    shape = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    ww = np.maximum(w[shape], 1)
    di, dj = np.divmod(local, ww)
    pixel = (i0[shape] + di) * width + j0[shape] + dj
    return shape, pixel


def even_odd_inside(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Whether points ``(px, py)`` (``(P,)``) are inside polygons ``verts`` (``(P, V, 2)``),
    by the even-odd rule (a ray to ``+x`` crosses the boundary an odd number of times)."""
    a = verts
    b = np.roll(verts, -1, axis=1)
    ax, ay, bx, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    y = py[:, None]
    straddles = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = ax + (y - ay) * (bx - ax) / (by - ay)
    crosses = straddles & (px[:, None] < x_cross)
    return (np.count_nonzero(crosses, axis=1) % 2) == 1


def segment_distance(px, py, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from points ``(P,)`` to segments ``a -> b`` (``(P, 2)`` each), in NumPy."""
    e = b - a
    d = np.stack([px, py], axis=-1) - a
    ee = np.sum(e * e, axis=-1)
    t = np.clip(np.sum(d * e, axis=-1) / np.where(ee > 0, ee, 1.0), 0.0, 1.0)
    q = d - t[:, None] * e
    return np.sqrt(np.sum(q * q, axis=-1))


def _inside_exact(kind: str, px, py, params: dict) -> np.ndarray:
    """Hard coverage (1, 1/2 on the boundary, 0) of one shape at pixel centres."""
    if kind == "circle":
        cx, cy = params["center"]
        d2 = (px - cx) ** 2 + (py - cy) ** 2
        r2 = params["radius"] ** 2
        return np.where(d2 < r2, 1.0, np.where(d2 == r2, 0.5, 0.0))
    if kind == "polygon":
        v = np.broadcast_to(params["vertices"], (len(px), *params["vertices"].shape))
        return even_odd_inside(px, py, v).astype(np.float64)
    if kind == "stroke":
        pts = params["points"]
        dist = np.full(len(px), np.inf)
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            aa = np.broadcast_to(a, (len(px), 2))
            bb = np.broadcast_to(b, (len(px), 2))
            dist = np.minimum(dist, segment_distance(px, py, aa, bb))
        half = params["width"] / 2
        return np.where(dist < half, 1.0, np.where(dist == half, 0.5, 0.0))
    raise ValueError(f"rasterize_exact_2d: unknown shape kind {kind!r}")


def rasterize_exact_2d(
    shapes: list[tuple[str, dict]], height: int, width: int, background: np.ndarray
) -> np.ndarray:
    """The reference hard rasterizer: every pixel centre against every shape, in order.

    ``shapes`` is a list of ``(kind, params)`` with kind ``"circle"`` (``center``,
    ``radius``), ``"polygon"`` (``vertices``), ``"stroke"`` (``points``, ``width``), each with
    ``color`` ``(C,)`` and ``opacity``. Returns ``(H, W, C)``.
    """
    px, py = pixel_centres(height, width)
    image = np.broadcast_to(np.asarray(background, dtype=np.float64), (px.size, len(background)))
    image = image.copy()
    for kind, params in shapes:
        a = params["opacity"] * _inside_exact(kind, px, py, params)
        image = image * (1 - a[:, None]) + a[:, None] * np.asarray(params["color"])[None]
    return image.reshape(height, width, -1)


@dataclass(frozen=True)
class LayerPlan:
    """How to composite pairs in ``O(pairs)``: pixels ordered by how many shapes cover them
    (most first), and the pairs grouped by depth rank in draw order.

    ``order`` permutes the pairs so that group ``k`` (``order[bounds[k]:bounds[k+1]]``) holds
    the pairs that are the ``k``-th shape (bottom first) of their pixel, in pixel order; the
    pixels of group ``k`` are exactly ``pixels[:n_k]``. ``where`` maps each image pixel to
    its row in ``pixels``, or ``len(pixels)`` when no shape touches it.
    """

    order: np.ndarray
    bounds: np.ndarray
    pixels: np.ndarray
    where: np.ndarray

    @property
    def depth(self) -> int:
        """The most shapes over one pixel (the number of compositing steps)."""
        return len(self.bounds) - 1


def layer_plan(pixel: np.ndarray, n_pixels: int) -> LayerPlan:
    """The :class:`LayerPlan` of pairs given by their pixel index, listed in draw order."""
    pixel = np.asarray(pixel, dtype=np.int64)
    by_pixel = np.argsort(pixel, kind="stable")  # draw order kept within a pixel
    sp = pixel[by_pixel]
    first = np.ones(len(sp), dtype=bool)
    first[1:] = sp[1:] != sp[:-1]
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(sp)))
    rank_sorted = np.arange(len(sp)) - np.repeat(starts, counts)
    rank = np.empty(len(sp), dtype=np.int64)
    rank[by_pixel] = rank_sorted
    unique = sp[starts]
    by_depth = np.argsort(-counts, kind="stable")
    pixels = unique[by_depth]
    where = np.full(n_pixels, len(pixels), dtype=np.int64)
    where[pixels] = np.arange(len(pixels))
    pos = where[pixel]
    order = np.argsort(rank * (len(pixels) + 1) + pos, kind="stable")  # by rank, then pos
    depth = int(counts.max()) if len(counts) else 0
    bounds = np.searchsorted(rank[order], np.arange(depth + 1))
    return LayerPlan(order=order, bounds=bounds, pixels=pixels, where=where)
