"""The exact policy, image by image in plain NumPy and SciPy: the reference that the hard
form of :func:`.ops.apply_policy` is tested against.

:func:`sample_decisions` turns the noise into the discrete choices (the Gumbel-max trick:
``argmax(logits + G)`` is a sample of ``Categorical(softmax(logits))``; ``logit + L > 0``
with logistic ``L`` of ``Bernoulli(sigmoid(logit))``). :func:`transform_image` applies one
operation to one image ``(C, H, W)`` with a scalar loop for the bilinear resampling
(PyTorch's ``grid_sample`` rule, zero padding, ``align_corners=False``) and
``scipy.ndimage.gaussian_filter`` for the blur.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ops import LIMITS, OPERATIONS, PolicyNoise

__all__ = ["apply_policy_exact", "sample_decisions", "transform_image"]


def sample_decisions(logits, prob_logits, noise: PolicyNoise) -> tuple[np.ndarray, np.ndarray]:
    """``(choice, applied)``, each ``(S, B)``: the operation index each image draws in each
    stage, and whether it is applied.

    >>> import numpy as np
    >>> from diffsys.systems.augment import draw_noise
    >>> noise = draw_noise(0, 1, 10000, 2)
    >>> choice, applied = sample_decisions(np.log([[0.25, 0.75]]), np.zeros((1, 2)), noise)
    >>> round(float(choice.mean()), 2), round(float(applied.mean()), 2)
    (0.75, 0.5)
    """
    logits, prob_logits = np.asarray(logits), np.asarray(prob_logits)
    choice = np.argmax(logits[:, None, :] + noise.gumbel, axis=2)
    gates = prob_logits[:, None, :] + noise.logistic > 0
    applied = np.take_along_axis(gates, choice[..., None], axis=2)[..., 0]
    return choice, applied


def _theta(op: str, v: float) -> np.ndarray:
    if op == "rotate":
        t = np.deg2rad(v)
        return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0]])
    if op == "shear":
        return np.array([[1.0, v, 0.0], [0.0, 1.0, 0.0]])
    if op == "translate_x":
        return np.array([[1.0, 0.0, 2 * v], [0.0, 1.0, 0.0]])
    if op == "translate_y":
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2 * v]])
    s = 1.0 / (1.0 + v)  # scale
    return np.array([[s, 0.0, 0.0], [0.0, s, 0.0]])


def _resample(img: np.ndarray, theta: np.ndarray) -> np.ndarray:
    c, h, w = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            xn, yn = (2 * j + 1) / w - 1, (2 * i + 1) / h - 1
            sx, sy = theta @ np.array([xn, yn, 1.0])
            px, py = ((sx + 1) * w - 1) / 2, ((sy + 1) * h - 1) / 2
            x0, y0 = int(np.floor(px)), int(np.floor(py))
            for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                    if 0 <= yy < h and 0 <= xx < w:
                        out[:, i, j] += wy * wx * img[:, yy, xx]
    return out


def transform_image(img: np.ndarray, op: str, magnitude: float, u: float) -> np.ndarray:
    """Operation ``op`` on one image ``(C, H, W)`` at ``magnitude`` with draw ``u``."""
    if op not in LIMITS:
        raise ValueError(f"transform_image: unknown operation {op!r}; expected one of {OPERATIONS}")
    v = magnitude * LIMITS[op] * u
    if op == "blur":
        from scipy.ndimage import gaussian_filter

        sigma = 0.05 + magnitude * LIMITS["blur"]
        return np.stack([gaussian_filter(ch, sigma, mode="mirror", truncate=3 / sigma)
                         for ch in img])
    if op == "brightness":
        return img * (1 + v)
    if op == "contrast":
        return (img - img.mean()) * (1 + v) + img.mean()
    return _resample(img, _theta(op, v))


def apply_policy_exact(
    x: np.ndarray,
    logits,
    prob_logits,
    magnitude_logits,
    noise: PolicyNoise,
    ops: Sequence[str] = OPERATIONS,
) -> np.ndarray:
    """The sampled policy, image by image: in each stage the image's drawn operation when
    its gate is open, else the image unchanged."""
    choice, applied = sample_decisions(logits, prob_logits, noise)
    mags = 1.0 / (1.0 + np.exp(-np.asarray(magnitude_logits, dtype=np.float64)))
    out = np.array(x, dtype=np.float64)
    for b in range(out.shape[0]):
        for s in range(choice.shape[0]):
            if applied[s, b]:
                k = choice[s, b]
                out[b] = transform_image(out[b], ops[k], mags[s, k], noise.u[s, b, k])
    return out
