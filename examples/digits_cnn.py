"""Train a small CNN on scikit-learn's digits (>= 98% test accuracy).

    pip install -e ".[data]"      # scikit-learn
    python examples/digits_cnn.py

A model is a class whose fields are its layers; ``ds.value_and_grad`` differentiates with
respect to the whole object.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _digits import load_digits_split  # noqa: E402


class DigitsCNN(nn.Module):
    conv1: nn.Conv2d
    conv2: nn.Conv2d
    pool: nn.MaxPool2d
    fc1: nn.Linear
    fc2: nn.Linear
    drop: nn.Dropout

    def __init__(self, key) -> None:
        rng = np.random.default_rng(key)
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, key=rng)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, key=rng)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 4 * 4, 64, key=rng)
        self.fc2 = nn.Linear(64, 10, key=rng)
        self.drop = nn.Dropout(0.25)

    def __call__(self, x, *, key=None):
        x = dnp.reshape(x, (-1, 1, 8, 8))
        x = nn.relu(self.conv1(x))
        x = self.pool(nn.relu(self.conv2(x)))  # (N, 32, 4, 4)
        x = dnp.reshape(x, (dnp.shape(x)[0], -1))
        x = self.drop(nn.relu(self.fc1(x)), key=key)
        return self.fc2(x)


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(nn.eval_mode(model)(x), axis=1) == y))


def run(epochs: int = 15, seed: int = 0, verbose: bool = True) -> tuple[nn.Module, float]:
    x_tr, y_tr, x_te, y_te = load_digits_split(seed)
    model = DigitsCNN(seed)
    steps = epochs * -(-len(x_tr) // 32)
    opt = optim.adam(optim.warmup_cosine_decay(3e-3, 50, steps, end_value=1e-4))
    opt_state = opt.init(model)

    def loss_fn(model, x, y, rng):
        return nn.cross_entropy(model(x, key=rng), y)

    step = ds.value_and_grad(loss_fn)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch, 1])
        total = 0.0
        for xb, yb in train.iterate_batches((x_tr, y_tr), 32, seed=seed, epoch=epoch):
            loss, grads = step(model, xb, yb, rng)
            updates, opt_state = opt.update(grads, opt_state, model)
            model = optim.apply_updates(model, updates)
            total += float(loss) * len(xb)
        if verbose:
            print(
                f"epoch {epoch + 1:3d}  loss {total / len(x_tr):.4f}  "
                f"test accuracy {accuracy(model, x_te, y_te):.4f}  "
                f"({time.perf_counter() - t0:.2f} s/epoch)"
            )
    acc = accuracy(model, x_te, y_te)
    if verbose:
        print(f"CNN test accuracy: {acc:.4f} on {len(y_te)} images")
    return model, acc


if __name__ == "__main__":
    run()
