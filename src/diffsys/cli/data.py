"""The demo's data: scikit-learn's bundled 8x8 digits, or synthetic digits without it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Digits", "load_digits", "synthetic_digits"]

# 5x7 glyphs of 0-9 (one string of five bits per row), drawn into the 8x8 frame at random
# offsets for the synthetic stand-in.
_GLYPHS = {
    0: ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    1: ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    2: ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    3: ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    4: ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    5: ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    6: ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    7: ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    8: ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    9: ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
}


@dataclass
class Digits:
    """Images ``(N, 1, 8, 8)`` in ``[0, 1]`` (float64) and integer labels, split in two."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "scikit-learn digits" or "synthetic digits"
    note: str  # one line for the user

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "note": self.note,
            "train_images": int(len(self.y_train)),
            "test_images": int(len(self.y_test)),
            "image_shape": list(self.x_train.shape[1:]),
            "classes": int(len(np.unique(self.y_train))),
        }


def _split(x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float = 0.25):
    """A stratified split drawn from ``seed`` (the same classes in both parts)."""
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test_idx.append(idx[: round(len(idx) * test_fraction)])
    test = np.sort(np.concatenate(test_idx))
    train = np.setdiff1d(np.arange(len(y)), test)
    train = train[rng.permutation(len(train))]
    return x[train], y[train], x[test], y[test]


def synthetic_digits(n: int = 1797, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic 8x8 digits ``(n, 1, 8, 8)`` in ``[0, 1]`` with labels: glyphs at random
    offsets, with two-pixel strokes of random intensity and missing pixels."""
    rng = np.random.default_rng([seed, 8])
    glyphs = {k: np.array([[int(b) for b in row] for row in v], float) for k, v in _GLYPHS.items()}
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = np.zeros((n, 1, 8, 8))
    for i, label in enumerate(y):
        g = glyphs[int(label)]
        g = np.maximum(np.pad(g, ((0, 0), (0, 1))), np.pad(g, ((0, 0), (1, 0))))  # 2-px strokes
        g = g * (rng.random(g.shape) > 0.05)  # missing pixels
        dy, dx = rng.integers(0, 2), rng.integers(0, 3)
        x[i, 0, dy : dy + 7, dx : dx + 6] = g * rng.uniform(0.75, 1.0)
    return x, y.astype(np.int64)


def load_digits(seed: int = 0, *, synthetic: bool = False) -> Digits:
    """scikit-learn's 1797 digits (pixels / 16), or synthetic digits when scikit-learn is not
    installed (or ``synthetic=True``); 75% train, 25% test, stratified from ``seed``."""
    if not synthetic:
        try:
            from sklearn.datasets import load_digits as sk_load_digits
        except ImportError:
            note = (
                "scikit-learn is not installed: using SYNTHETIC 8x8 digits instead "
                "(pip install scikit-learn, or the 'demo' extra, for the real ones)"
            )
        else:
            bunch = sk_load_digits()
            x = (bunch.data / 16.0).reshape(-1, 1, 8, 8).astype(np.float64)
            y = bunch.target.astype(np.int64)
            note = "scikit-learn's bundled digits (1797 images, 8x8, 16 grey levels)"
            return Digits(*_split(x, y, seed), "scikit-learn digits", note)
    else:
        note = "synthetic 8x8 digits (--synthetic)"
    x, y = synthetic_digits(seed=seed)
    return Digits(*_split(x, y, seed), "synthetic digits", note)
