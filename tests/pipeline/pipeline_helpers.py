"""Small stages and pipelines shared by the diffsys.pipeline tests (registered, so the
serialization tests can save and load them)."""

from __future__ import annotations

import numpy as np

import diffsys.numpy as dnp
from diffsys import nn
from diffsys import pipeline as pl
from diffsys.relax import sigmoid


@pl.register(name="tests.SoftThreshold")
class SoftThreshold(nn.Module):
    """``x * sigmoid(sharpness * (x - t))`` in training; ``x * (x > t)`` at inference."""

    threshold: np.ndarray
    sharpness: float

    def __init__(self, threshold: float = 0.0, sharpness: float = 5.0) -> None:
        self.threshold = np.array(float(threshold))
        self.sharpness = float(sharpness)

    def __call__(self, x, *, key=None):
        return self.relaxed(x)

    def relaxed(self, x):
        return x * sigmoid(self.sharpness * (x - self.threshold))

    def hard(self, x):
        return x * (x > self.threshold)


@pl.register(name="tests.Scale")
class Scale(nn.Module):
    """``x * weight`` (one learnable scale)."""

    weight: np.ndarray

    def __init__(self, value: float = 1.0) -> None:
        self.weight = np.array(float(value))

    def __call__(self, x, *, key=None):
        return x * self.weight


@pl.register(name="tests.add")
def add(a, b):
    return a + b


@pl.register(name="tests.affine")
def affine(params, x):
    return x * params["w"] + params["b"]


@pl.register(name="tests.mean_sq")
def mean_sq(x):
    return dnp.mean(x * x)


def make_classifier(*, seed: int = 0, frozen_threshold: bool = False) -> pl.Pipeline:
    """x (B, 4) -> SoftThreshold -> Linear(4, 8) -> tanh -> Linear(8, 3), cross-entropy."""
    return pl.Pipeline(
        [
            pl.Stage("thr", SoftThreshold(0.2, 4.0), input_spec=("B", 4), frozen=frozen_threshold),
            pl.Stage("enc", nn.Linear(4, 8, key=seed)),
            pl.Stage("act", nn.tanh),
            pl.Stage("head", nn.Linear(8, 3, key=seed + 1), output_spec=("B", 3)),
        ],
        losses=[pl.Loss("ce", nn.cross_entropy, inputs=("head", "y"))],
        metrics=[pl.Metric("accuracy", pl.accuracy, inputs=("head", "y"))],
    )


def classifier_batch(rng: np.random.Generator, n: int = 12) -> dict:
    x = rng.normal(size=(n, 4))
    return {"x": x, "y": (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)}
