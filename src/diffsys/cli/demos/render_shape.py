"""Shape from silhouettes (part of ``diffsys demo render``): deform an icosphere until its
silhouettes from 8 views match those of a target shape; IoU on 4 held-out views.

Each step renders the soft silhouette (``rasterize_mesh``'s alpha channel) from every
training view and adds a uniform-Laplacian smoothness term ``|v - mean(neighbours)|^2`` on
the vertices; Adam moves the vertex offsets.
"""

from __future__ import annotations

import numpy as np

from ... import numpy as dnp
from ... import optim, value_and_grad
from ...systems import render as R

SIZE = (32, 32)


def _views(n: int, elevation: float, phase: float) -> list:
    out = []
    for k in range(n):
        a = phase + 2 * np.pi * k / n
        eye = 3.5 * np.array([np.cos(elevation) * np.sin(a), np.sin(elevation),
                              np.cos(elevation) * np.cos(a)])
        out.append(R.look_at(eye, focal=26.0))
    return out


def _neighbour_mean(faces: np.ndarray, n: int) -> np.ndarray:
    """The uniform-Laplacian averaging matrix ``(V, V)``: row i averages i's neighbours."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.sort(np.concatenate([edges, edges[:, ::-1]]), axis=1), axis=0)
    a = np.zeros((n, n))
    a[edges[:, 0], edges[:, 1]] = 1
    a[edges[:, 1], edges[:, 0]] = 1
    return a / a.sum(axis=1, keepdims=True)


def _silhouettes(vertices, faces, cameras) -> list[np.ndarray]:
    return [np.asarray(R.rasterize_mesh.hard(vertices, faces, c, SIZE)[..., -1]) for c in cameras]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks."""
    a, b = a > 0.5, b > 0.5
    return float(np.sum(a & b) / max(np.sum(a | b), 1))


def fit_shape(steps: int, train_views: int = 8, smooth: float = 0.5) -> dict:
    """Fit the icosphere to the target's silhouettes; IoU before and after on held-out views."""
    v0, f = R.icosphere(2)
    target_v = v0 * np.array([1.35, 0.75, 0.95])  # an ellipsoid
    target_v = target_v + 0.25 * np.maximum(target_v[:, [0]], 0) * np.array([0.0, 1.0, 0.0])
    train = _views(train_views, 0.35, 0.0)
    held = _views(4, -0.3, np.pi / 4)
    targets = _silhouettes(target_v, f, train)
    lap = np.eye(len(v0)) - _neighbour_mean(f, len(v0))

    def loss(offset, sigma):
        v = v0 + offset
        fit = 0.0
        for cam, tgt in zip(train, targets, strict=True):
            alpha = R.rasterize_mesh(v, f, cam, SIZE, None, None, sigma, cull_backfaces=True)
            fit = fit + dnp.mean((alpha[..., -1] - tgt) ** 2)
        return fit / len(train) + smooth * dnp.mean((lap @ v) ** 2)

    step_fn = value_and_grad(loss)
    offset = np.zeros_like(v0)
    opt = optim.adam(0.01)
    state = opt.init(offset)
    losses, frames = [], []
    for i in range(steps):
        sigma = 1.0 * 0.3 ** (i / max(steps - 1, 1))
        value, g = step_fn(offset, sigma)
        losses.append(float(value))
        if i % max(steps // 12, 1) == 0:
            frames.append(_silhouettes(v0 + offset, f, held[:1])[0])
        updates, state = opt.update(g, state, offset)
        offset = optim.apply_updates(offset, updates)
    held_target = _silhouettes(target_v, f, held)
    before = [iou(a, b) for a, b in zip(_silhouettes(v0, f, held), held_target, strict=True)]
    after = [iou(a, b) for a, b in zip(_silhouettes(v0 + offset, f, held), held_target,
                                        strict=True)]
    return {"iou_before": before, "iou_after": after, "losses": losses,
            "target": held_target[0], "initial": _silhouettes(v0, f, held[:1])[0],
            "fitted": _silhouettes(v0 + offset, f, held[:1])[0], "frames": frames}
