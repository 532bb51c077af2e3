"""scikit-learn's bundled 8x8 digits, split and scaled the same way for every example."""

from __future__ import annotations

import numpy as np


def load_digits_split(seed: int = 0, test_size: float = 0.25):
    """``(x_train, y_train, x_test, y_test)``: pixels scaled to [0, 1], images ``(N, 64)``,
    a stratified split drawn from ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float64)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    return x_tr, y_tr, x_te, y_te
