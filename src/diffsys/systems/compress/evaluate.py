"""Training a codec on the rate-distortion loss, and measuring it with real coding.

:func:`evaluate` reports, for one image, the three rates a learned codec has:

- ``bpp_noise``: the training estimate, ``-log2`` likelihoods of ``y + u`` (noise proxy);
- ``bpp_estimated``: ``-log2`` likelihoods of the rounded latents (what the entropy model
  predicts the coder will spend);
- ``bpp_actual``: ``8 * len(bytes) / pixels`` of the real range-coded stream, header
  included; the stream is decoded and checked symbol for symbol.

and the distortions of the relaxed and hard forms, so the train/inference mismatch is
visible on both axes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ... import optim
from ...core.transforms import value_and_grad
from . import exact
from .modules import ImageCodec
from .ops import quantize_latents, rate_bits

__all__ = ["Evaluation", "TrainResult", "evaluate", "random_patches", "train_codec"]


def random_patches(images, patch: int, count: int, *, rng) -> np.ndarray:
    """``count`` random ``patch x patch`` crops (flattened, float in ``[0, 1]``) from a list
    of grey-scale ``uint8`` or float images."""
    gen = np.random.default_rng(rng)
    imgs = [np.asarray(im, np.float64) / (255.0 if im.dtype == np.uint8 else 1.0) for im in images]
    which = gen.integers(0, len(imgs), count)
    out = np.empty((count, patch * patch))
    for i, k in enumerate(which):
        h, w = imgs[k].shape
        r, c = gen.integers(0, h - patch + 1), gen.integers(0, w - patch + 1)
        out[i] = imgs[k][r : r + patch, c : c + patch].ravel()
    return out


@dataclass
class TrainResult:
    """The trained codec and its per-step history (relaxed loss, bpp, MSE)."""

    codec: ImageCodec
    loss: list = field(default_factory=list)
    bpp: list = field(default_factory=list)
    mse: list = field(default_factory=list)
    seconds: float = 0.0


def train_codec(
    codec: ImageCodec,
    patches: np.ndarray,
    lmbda: float,
    *,
    steps: int = 500,
    batch: int = 256,
    learning_rate: float = 2e-3,
    seed: int = 0,
) -> TrainResult:
    """Adam on ``codec.loss`` (rate + ``lmbda`` * distortion) over random batches of
    ``patches``; the noise of each step is drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    opt = optim.adam(learning_rate)
    state = opt.init(codec)
    step = value_and_grad(lambda m, x, k: m.loss(x, lmbda, key=k), has_aux=True)
    result = TrainResult(codec)
    t = time.perf_counter()
    for _ in range(int(steps)):
        x = patches[rng.integers(0, len(patches), batch)]
        (loss, (bpp, mse)), g = step(codec, x, rng)
        updates, state = opt.update(g, state, codec)
        codec = optim.apply_updates(codec, updates)
        result.loss.append(float(loss))
        result.bpp.append(float(bpp))
        result.mse.append(float(mse))
    result.codec, result.seconds = codec, time.perf_counter() - t
    return result


@dataclass(frozen=True)
class Evaluation:
    """One image through a codec: rates in bits per pixel, distortions as PSNR (dB)."""

    bpp_noise: float
    bpp_estimated: float
    bpp_actual: float
    psnr_noise: float
    psnr_hard: float
    nbytes: int
    exact_roundtrip: bool
    escapes: int
    encode_seconds: float
    decode_seconds: float

    def summary(self) -> str:
        gap = 100.0 * (self.bpp_actual / self.bpp_estimated - 1.0)
        return (
            f"bpp: noise estimate {self.bpp_noise:.4f}, rounded estimate "
            f"{self.bpp_estimated:.4f}, actual {self.bpp_actual:.4f} ({gap:+.2f}%); PSNR: "
            f"noisy latents {self.psnr_noise:.2f} dB, rounded {self.psnr_hard:.2f} dB; "
            f"decoded exactly: {self.exact_roundtrip}"
        )


def evaluate(codec: ImageCodec, image: np.ndarray, *, noise_draws: int = 4, seed: int = 0):
    """Code ``image`` (grey-scale, ``uint8`` or float in ``[0, 1]``) for real and measure the
    estimated and actual rates and the distortions (see the module docstring)."""
    img = np.asarray(image)
    img = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    x = exact.to_patches(img, codec.patch)
    y = np.asarray(codec.encode(x))
    med = codec.prior.medians()
    rng = np.random.default_rng(seed)
    noise_bits, noise_psnr = [], []
    for _ in range(noise_draws):
        y_tilde, _ = quantize_latents(y, med, "noise", rng=rng)
        noise_bits.append(float(rate_bits(codec.prior.likelihood(y_tilde))))
        rec = np.clip(np.asarray(codec.decode(y_tilde)), 0, 1)
        noise_psnr.append(exact.psnr(x, rec))
    tables = codec.prior.tables()
    symbols = codec.prior.symbols(y, tables)
    y_hat = symbols + tables.medians
    est = float(rate_bits(codec.prior.likelihood(y_hat)))
    t0 = time.perf_counter()
    data = codec.compress(img)
    t1 = time.perf_counter()
    rec = codec.decompress(data)
    t2 = time.perf_counter()
    words, _ = exact.unpack(data)
    decoded = exact.decode_symbols(words, tables, len(symbols))
    lo = tables.offsets
    hi = lo + np.array([len(p) - 2 for p in tables.pmfs])
    return Evaluation(
        bpp_noise=float(np.mean(noise_bits)) / img.size,
        bpp_estimated=est / img.size,
        bpp_actual=8.0 * len(data) / img.size,
        psnr_noise=float(np.mean(noise_psnr)),
        psnr_hard=exact.psnr(img, rec),
        nbytes=len(data),
        exact_roundtrip=bool(np.array_equal(decoded, symbols))
        and bool(np.array_equal(rec, codec.reconstruct(img))),
        escapes=int(np.sum((symbols < lo) | (symbols > hi))),
        encode_seconds=t1 - t0,
        decode_seconds=t2 - t1,
    )
