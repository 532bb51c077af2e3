"""Soft rasterization of 2-D shapes: :func:`rasterize` (a relaxation) and its cost.

Coverage of pixel centre ``p`` by a shape with signed distance ``d(p)`` (positive inside) is
``sigmoid(d(p) / temperature)``: ``temperature`` is the blur width ``sigma`` in pixels (about
88% of the sigmoid's rise happens within ``+- 2 sigma`` of the edge). The hard form is the
step (1 inside, 1/2 on the edge, 0 outside: centre sampling). Shapes are composited in draw
order with ``over``: ``out = out * (1 - a) + a * colour``, ``a = opacity * coverage``.

Cost: only the pixels inside each shape's bounding box grown by ``margin * temperature`` are
touched (:func:`bbox_pairs`); outside it the coverage is below ``sigmoid(-margin)`` (3.4e-4 for
the default ``margin=8``) and is taken as 0. ``margin=None`` touches every pixel (the dense
``pixels x shapes`` algorithm, for comparison). Compositing runs over the pairs grouped by
depth rank (:func:`layer_plan`), so work and memory grow with the pairs, not with
``pixels x shapes``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core.tracer import concrete
from ...relax import relaxation, sigmoid
from .exact import bbox_pairs, layer_plan, pixel_centres
from .prims import gather_rows
from .shapes import Circles, Polygons, Shape, Strokes

Array = Any

__all__ = ["RasterCost", "rasterize", "raster_cost"]

_KINDS = (Circles, Polygons, Strokes)


def _check(shapes: Sequence[Shape], size: tuple[int, int]) -> tuple[int, int, int]:
    if isinstance(shapes, _KINDS):
        shapes = [shapes]
    if not isinstance(size, tuple | list) or len(size) != 2 or min(size) < 1:
        raise ValueError(f"rasterize: size must be (height, width) >= 1, got {size!r}")
    channels = None
    for n, s in enumerate(shapes):
        if not isinstance(s, _KINDS):
            raise TypeError(
                f"rasterize: shapes[{n}] is a {type(s).__name__}; expected Circles, Polygons or "
                "Strokes (wrap arrays in one of them)"
            )
        c = s.channels
        if np.ndim(s.color) != 2 or np.shape(s.color)[0] != s.count:
            raise ValueError(
                f"rasterize: shapes[{n}] ({type(s).__name__}) color must be (N, C) with "
                f"N = {s.count}, got shape {np.shape(s.color)}"
            )
        if channels is not None and c != channels:
            raise ValueError(
                f"rasterize: shapes[{n}] has {c} colour channels, earlier shapes {channels}"
            )
        channels = c
        for name, value in [*s.geometry().items(), ("color", s.color), ("opacity", s.opacity)]:
            if value is None:
                continue
            v = np.asarray(concrete(value))
            if not np.all(np.isfinite(v)):
                raise ValueError(
                    f"rasterize: shapes[{n}] ({type(s).__name__}).{name} has non-finite values "
                    f"(shape {v.shape}, dtype {v.dtype})"
                )
            if name == "opacity" and (v.min(initial=0) < 0 or v.max(initial=0) > 1):
                raise ValueError(
                    f"rasterize: shapes[{n}] ({type(s).__name__}).opacity must lie in [0, 1], got "
                    f"[{v.min():.3g}, {v.max():.3g}]; parametrize it as sigmoid(logit)"
                )
    return int(size[0]), int(size[1]), channels or 1


def _as_list(shapes) -> list[Shape]:
    return [shapes] if isinstance(shapes, _KINDS) else list(shapes)


@dataclass(frozen=True)
class RasterCost:
    """What one :func:`rasterize` call touches: ``pairs`` (pixel-shape pairs evaluated),
    ``dense_pairs`` (``pixels x shapes``), ``depth`` (most shapes over one pixel),
    ``touched`` (pixels with at least one pair) and ``bytes`` (an estimate of the float64
    arrays per pair and per touched pixel the forward pass keeps for the backward pass)."""

    pairs: int
    dense_pairs: int
    depth: int
    touched: int
    bytes: int


def _pairs(shapes: list[Shape], h: int, w: int, grow: float):
    """Per batch, ``(shape index, pixel)`` of its pairs, and the global pixel list."""
    out = []
    for s in shapes:
        lo, hi = s.bounds()
        if math.isinf(grow):
            n = s.count
            shape = np.repeat(np.arange(n), h * w)
            pixel = np.tile(np.arange(h * w), n)
        else:
            shape, pixel = bbox_pairs(lo - grow, hi + grow, h, w)
        out.append((shape, pixel))
    return out


def _draw_order(pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs in draw order (batch, then shape): batch id, index in batch, pixel."""
    batch = np.concatenate([np.full(len(s), b) for b, (s, _) in enumerate(pairs)] or [[]])
    index = np.concatenate([s for s, _ in pairs] or [[]])
    pixel = np.concatenate([p for _, p in pairs] or [[]])
    # pairs of one batch are grouped by shape already; batches are drawn in list order
    return batch.astype(np.int64), index.astype(np.int64), pixel.astype(np.int64)


def raster_cost(
    shapes: Shape | Sequence[Shape],
    size: tuple[int, int],
    temperature: float = 0.5,
    margin: float | None = 8.0,
) -> RasterCost:
    """The :class:`RasterCost` of ``rasterize(shapes, size, temperature, margin=margin)``.

    >>> import numpy as np
    >>> c = Circles(np.array([[16.0, 16.0]]), np.array([4.0]), np.ones((1, 3)))
    >>> cost = raster_cost(c, (64, 64), temperature=0.5)
    >>> cost.pairs, cost.dense_pairs
    (256, 4096)
    """
    shapes = _as_list(shapes)
    h, w, c = _check(shapes, size)
    grow = math.inf if margin is None else margin * float(concrete(temperature))
    _, _, pixel = _draw_order(_pairs(shapes, h, w, grow))
    plan = layer_plan(pixel, h * w)
    touched = len(plan.pixels)
    # per pair: coverage, alpha and C colour values, a few geometry temporaries
    per_pair = 8 * (6 + c)
    per_pixel = 8 * (2 * c + 1)
    return RasterCost(
        pairs=len(pixel),
        dense_pairs=h * w * sum(s.count for s in shapes),
        depth=plan.depth,
        touched=touched,
        bytes=per_pair * len(pixel) + per_pixel * touched + 8 * h * w * c,
    )


def _coverage_hard(d: Array) -> Array:
    d = np.asarray(concrete(d))
    return np.where(d > 0, 1.0, np.where(d == 0, 0.5, 0.0))


def _render(shapes, size, temperature, background, margin, hard: bool) -> Array:
    shapes = _as_list(shapes)
    h, w, c = _check(shapes, size)
    if not hard:
        t = concrete(temperature)
        if not np.all(np.asarray(t) > 0):
            raise ValueError(f"rasterize: temperature (sigma) must be > 0, got {t!r}")
    grow = 0.0 if hard else (math.inf if margin is None else margin * float(concrete(temperature)))
    batch, index, pixel = _draw_order(_pairs(shapes, h, w, grow))
    plan = layer_plan(pixel, h * w)
    if background is None:
        background = np.zeros(c)
    cx, cy = pixel_centres(h, w)
    pieces = []
    for k in range(plan.depth):
        sel = plan.order[plan.bounds[k] : plan.bounds[k + 1]]
        alphas, colours, rows = [], [], []
        for b, s in enumerate(shapes):
            mine = sel[batch[sel] == b]
            if len(mine) == 0:
                continue
            idx = index[mine]
            p = np.stack([cx[pixel[mine]], cy[pixel[mine]]], axis=-1)
            d = s.signed_distance(idx, p)
            cov = _coverage_hard(d) if hard else sigmoid(d / temperature)
            alphas.append(cov if s.opacity is None else gather_rows(s.opacity, idx) * cov)
            colours.append(gather_rows(s.color, idx))
            rows.append(mine)
        if len(alphas) == 1:
            a, col = alphas[0], colours[0]
        else:  # back to pixel order (the order of ``sel``)
            got = np.concatenate(rows)
            sorter = np.argsort(got)
            perm = sorter[np.searchsorted(got[sorter], sel)]  # concatenation -> ``sel`` order
            a = dnp.concatenate(alphas)[perm]
            col = dnp.concatenate(colours)[perm]
        n_k = len(sel)
        n_next = plan.bounds[k + 2] - plan.bounds[k + 1] if k + 1 < plan.depth else 0
        if k == 0:
            cur = dnp.reshape(background, (1, c)) * np.ones((n_k, 1))
        a = a[:, None]
        new = cur * (1 - a) + a * col
        pieces.append(new[n_next:])
        cur = new[:n_next]
    rows_out = dnp.concatenate([*reversed(pieces), dnp.reshape(background, (1, c)) * 1.0])
    return dnp.reshape(rows_out[plan.where], (h, w, c))


def _rasterize_hard(shapes, size, *, background=None, margin=8.0):
    return _render(shapes, size, None, background, margin, hard=True)


@relaxation(hard=_rasterize_hard)
def rasterize(
    shapes: Shape | Sequence[Shape],
    size: tuple[int, int],
    temperature: float | Array = 0.5,
    *,
    background: Array | None = None,
    margin: float | None = 8.0,
) -> Array:
    """Soft-rasterize ``shapes`` (drawn in order) into an ``(H, W, C)`` image.

    Differentiable in every shape field (positions, radii, vertices, widths, colours,
    opacities), ``background`` (``(C,)``, default black) and ``temperature`` (``sigma``, in
    pixels). ``rasterize.hard(...)`` is centre sampling (exact coverage; gradients reach
    colours, opacities and background only); ``rasterize.gap(...)`` the largest pixel
    difference between the two.

    >>> import numpy as np
    >>> disc = Circles(np.array([[4.0, 4.0]]), np.array([2.5]), np.array([[1.0]]))
    >>> img = rasterize(disc, (8, 8), temperature=0.1)
    >>> img.shape, round(float(img[4, 4, 0]), 6), round(float(img[0, 0, 0]), 6)
    ((8, 8, 1), 1.0, 0.0)
    >>> rasterize.gap(disc, (8, 8), temperature=0.001) < 1e-12  # soft -> hard as sigma -> 0
    True
    """
    return _render(shapes, size, temperature, background, margin, hard=False)
