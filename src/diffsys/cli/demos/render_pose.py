"""The 3-D half of ``diffsys demo render``: recover a mesh's pose from one image.

A box with distinct corner colours under a directional light is rendered (hard, z-buffer) at
its true rotation and translation. From random starts (the true rotation turned by 20-45
degrees about a random axis, the translation moved by ~0.1), Adam fits the axis-angle
rotation and the translation through :func:`diffsys.systems.render.rasterize_mesh` (colour and
silhouette, ``sigma`` annealed 1 -> 0.1 px, ``gamma = sigma / 20``; the colour composited
over black with the silhouette, as the target). Success: angle error below 5 degrees.
"""

from __future__ import annotations

import numpy as np

from ... import numpy as dnp
from ... import optim, value_and_grad
from ...systems import render as R

SIZE = (40, 40)


def _setup():
    v, f = R.box((1.4, 1.0, 0.7))
    colors = 0.15 + 0.7 * (v - v.min(0)) / np.ptp(v, axis=0)
    camera = R.look_at((0.0, 0.0, 4.0), focal=34.0)
    light = R.Light(np.array([0.4, -0.6, 1.0]), 0.4, 0.6)
    return v, f, colors, camera, light


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """The angle (degrees) of the rotation taking matrix ``b`` to matrix ``a``."""
    c = (np.trace(a @ b.T) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _random_turn(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    axis = rng.normal(size=3)
    return axis / np.linalg.norm(axis) * np.radians(rng.uniform(lo, hi))


def _to_axis_angle(rot: np.ndarray) -> np.ndarray:
    angle = np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))
    if angle < 1e-8:
        return np.zeros(3)
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    return axis / (2 * np.sin(angle)) * angle


def recover_poses(rng: np.random.Generator, starts: int, steps: int) -> dict:
    """Fit ``starts`` random initial poses to one target image; errors and a sample run."""
    v, f, colors, camera, light = _setup()
    w_true = _random_turn(rng, 20, 60)
    t_true = np.array([0.1, -0.05, 0.0])
    r_true = R.rotation_matrix(w_true)
    target = R.rasterize_mesh.hard(R.pose(v, w_true, t_true), f, camera, SIZE, colors, light)

    def loss(p, sigma):
        img = R.rasterize_mesh(R.pose(v, p["w"], p["t"]), f, camera, SIZE, colors, light,
                               sigma, gamma=sigma / 20)
        rgb = img[..., :3] * img[..., 3:]  # over a black background, as the target
        alpha_err = dnp.mean((img[..., 3] - target[..., 3]) ** 2)
        return dnp.mean((rgb - target[..., :3]) ** 2) + alpha_err

    step_fn = value_and_grad(loss)
    errors, first = [], None
    for k in range(starts):
        w0 = _to_axis_angle(R.rotation_matrix(_random_turn(rng, 20, 45)) @ r_true)
        params = {"w": w0, "t": t_true + rng.normal(0, 0.1, 3)}
        opt = optim.adam(0.03)
        state = opt.init(params)
        frames = []
        for i in range(steps):
            sigma = 1.0 * 0.1 ** (i / max(steps - 1, 1))
            _, g = step_fn(params, sigma)
            updates, state = opt.update(g, state, params)
            params = optim.apply_updates(params, updates)
            if k == 0 and i % max(steps // 12, 1) == 0:
                frames.append(np.asarray(R.rasterize_mesh.hard(
                    R.pose(v, params["w"], params["t"]), f, camera, SIZE, colors, light)))
        err = angle_between(np.asarray(R.rotation_matrix(params["w"])), r_true)
        errors.append(err)
        if k == 0:
            initial = R.rasterize_mesh.hard(R.pose(v, w0, t_true), f, camera, SIZE, colors,
                                            light)
            fitted = R.rasterize_mesh.hard(R.pose(v, params["w"], params["t"]), f, camera,
                                           SIZE, colors, light)
            first = {"initial": np.asarray(initial), "fitted": np.asarray(fitted),
                     "frames": frames}
    return {"errors": errors, "target": np.asarray(target), "first": first}
