"""``nn.Module`` wrappers: the learned entropy model and a patch autoencoder codec.

- :class:`FactorizedPrior`: one learned monotone CDF per latent channel (the parameters of
  :func:`~diffsys.systems.compress.factorized_logits`); ``likelihood`` for training,
  ``tables`` / ``compress`` / ``decompress`` for real coding.
- :class:`ImageCodec`: analysis transform (patch -> latents), the prior, synthesis transform
  (latents -> patch). ``relaxed(x, key=)`` is the training form (uniform noise and/or
  straight-through rounding, see ``quantizer``), ``hard(x)`` the inference form (rounding);
  both return a :class:`CodecOutput`, so a ``pl.Stage`` of the codec is a relaxed stage.
  ``compress(image)`` returns real bytes, ``decompress(bytes)`` the reconstruction.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ... import nn
from ...core.tracer import concrete
from ...numpy import clip
from . import exact
from .ops import (
    QUANTIZERS,
    factorized_likelihood,
    factorized_logits,
    factorized_quantile,
    quantize_latents,
    rate_distortion_loss,
)

__all__ = ["CodecOutput", "FactorizedPrior", "ImageCodec"]

Array = Any


class FactorizedPrior(nn.Module):
    """A learned factorised entropy model over ``channels`` latent channels (Balle et al.
    2018; CompressAI's ``EntropyBottleneck``): per channel a monotone CDF network with hidden
    widths ``filters``.

    ``tail_mass``: the probability left outside each channel's coded support (the escape
    symbol covers it); ``likelihood_bound``: the floor of training likelihoods.

    >>> import numpy as np
    >>> prior = FactorizedPrior(4, key=0)
    >>> y = np.random.default_rng(0).normal(size=(100, 4)) * 3
    >>> data = prior.compress(y)                  # bytes: rounded latents, range-coded
    >>> y_hat = prior.decompress(data)            # round(y - median) + median, exactly
    >>> bool(np.all(np.abs(y_hat - y) <= 0.5)), len(data) < y.size
    (True, True)
    """

    matrices: list
    biases: list
    factors: list
    channels: int
    filters: tuple
    tail_mass: float
    likelihood_bound: float

    def __init__(
        self,
        channels: int,
        filters: tuple[int, ...] = (3, 3, 3),
        *,
        init_scale: float = 10.0,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
        key: np.random.Generator | int,
    ) -> None:
        if int(channels) < 1 or any(int(f) < 1 for f in filters):
            raise ValueError(
                f"FactorizedPrior: channels and filters must be >= 1, got {channels}, {filters}"
            )
        rng = nn.init.as_generator(key, "FactorizedPrior")
        widths = (1, *map(int, filters), 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices, self.biases, self.factors = [], [], []
        for k in range(len(widths) - 1):
            # softplus(raw) = 1 / (scale * fan_out): the initial CDF is a wide logistic.
            raw = np.log(np.expm1(1.0 / scale / widths[k + 1]))
            self.matrices.append(np.full((channels, widths[k + 1], widths[k]), raw))
            self.biases.append(rng.uniform(-0.5, 0.5, size=(channels, widths[k + 1], 1)))
            if k < len(widths) - 2:
                self.factors.append(np.zeros((channels, widths[k + 1], 1)))
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.tail_mass = float(tail_mass)
        self.likelihood_bound = float(likelihood_bound)

    def __repr__(self) -> str:
        return f"FactorizedPrior(channels={self.channels}, filters={self.filters})"

    @property
    def params(self) -> tuple:
        """``(matrices, biases, factors)`` as :func:`factorized_logits` takes them."""
        return (tuple(self.matrices), tuple(self.biases), tuple(self.factors))

    def likelihood(self, y: Array) -> Array:
        """Bin probabilities of ``y`` (shape ``(N, C)``), floored at ``likelihood_bound``."""
        return factorized_likelihood(self.params, y, bound=self.likelihood_bound)

    def medians(self) -> np.ndarray:
        """Each channel's median (no derivative): the centre of its quantisation grid."""
        return factorized_quantile(self.params, 0.5)

    def tables(self) -> exact.CodingTables:
        """The coding tables: per channel the integer support where the CDF leaves
        ``tail_mass`` outside, the bin probabilities there, and the escape's mass."""
        params = tuple(tuple(np.asarray(concrete(a), np.float64) for a in g) for g in self.params)
        med = factorized_quantile(params, 0.5)
        lo = np.floor(factorized_quantile(params, self.tail_mass / 2) - med).astype(np.int64)
        hi = np.ceil(factorized_quantile(params, 1 - self.tail_mass / 2) - med).astype(np.int64)
        width = int(np.max(hi - lo)) + 1
        grid = med[None, :] + lo[None, :] + np.arange(width)[:, None]  # (width, C)
        pmf = np.asarray(factorized_likelihood(params, grid, bound=None))
        left = np.asarray(factorized_logits(params, (med + lo - 0.5)[None, :]))[0]
        right = np.asarray(factorized_logits(params, (med + hi + 0.5)[None, :]))[0]
        tail = 1.0 / (1.0 + np.exp(-left)) + 1.0 / (1.0 + np.exp(right))
        pmfs = tuple(
            np.append(pmf[: hi[c] - lo[c] + 1, c], tail[c]) for c in range(self.channels)
        )
        return exact.CodingTables(med, lo, pmfs)

    def symbols(self, y: np.ndarray, tables: exact.CodingTables | None = None) -> np.ndarray:
        """The integer symbols of latents ``y``: ``round(y - median)`` per channel."""
        med = (tables or self.tables()).medians
        return np.rint(np.asarray(y, np.float64) - med).astype(np.int64)

    def compress(self, y: np.ndarray) -> bytes:
        """Round latents ``y`` (shape ``(N, C)``) on the median grid and range-code them."""
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[1] != self.channels:
            raise ValueError(
                f"{self!r}.compress: latents must have shape (N, {self.channels}), got {y.shape}"
            )
        tables = self.tables()
        return exact.pack(exact.encode_symbols(self.symbols(y, tables), tables), y.shape)

    def decompress(self, data: bytes) -> np.ndarray:
        """The dequantised latents (``symbols + median``) from :meth:`compress`'s bytes."""
        words, shape = exact.unpack(data)
        if len(shape) != 2 or shape[1] != self.channels:
            raise ValueError(
                f"{self!r}.decompress: the stream holds latents of shape {shape}, this prior "
                f"codes (N, {self.channels})"
            )
        tables = self.tables()
        return exact.decode_symbols(words, tables, shape[0]) + tables.medians


class CodecOutput(NamedTuple):
    """What a codec returns: the reconstruction, the latents' bin probabilities (their
    ``-log2`` sum is the estimated rate) and the quantised latents."""

    x_hat: Array
    likelihoods: Array
    latents: Array


class ImageCodec(nn.Module):
    """A learned transform codec on ``patch x patch`` grey-scale patches in ``[0, 1]``:
    ``Linear -> GELU -> Linear`` to ``latents`` channels, a :class:`FactorizedPrior`, and the
    mirror image back. ``quantizer`` (one of ``"noise"``, ``"ste"``, ``"mixed"``) is the
    training proxy of rounding (:func:`~diffsys.systems.compress.quantize_latents`).

    >>> import numpy as np
    >>> codec = ImageCodec(patch=4, latents=3, hidden=8, key=0)
    >>> out = codec.relaxed(np.full((5, 16), 0.5), key=0)
    >>> out.x_hat.shape, out.likelihoods.shape
    ((5, 16), (5, 3))
    """

    analysis: nn.Sequential
    synthesis: nn.Sequential
    prior: FactorizedPrior
    patch: int
    latents: int
    quantizer: str

    def __init__(
        self,
        patch: int = 8,
        latents: int = 16,
        hidden: int = 128,
        *,
        quantizer: str = "mixed",
        key: np.random.Generator | int,
    ) -> None:
        if quantizer not in QUANTIZERS or quantizer == "round":
            raise ValueError(
                f"ImageCodec: quantizer must be 'noise', 'ste' or 'mixed' (training proxies of "
                f"rounding), got {quantizer!r}"
            )
        rng = nn.init.as_generator(key, "ImageCodec")
        d = int(patch) ** 2
        self.analysis = nn.Sequential(
            [nn.Linear(d, hidden, key=rng), nn.gelu, nn.Linear(hidden, latents, key=rng)]
        )
        self.synthesis = nn.Sequential(
            [nn.Linear(latents, hidden, key=rng), nn.gelu, nn.Linear(hidden, d, key=rng)]
        )
        self.prior = FactorizedPrior(latents, key=rng)
        self.patch, self.latents, self.quantizer = int(patch), int(latents), quantizer

    def __repr__(self) -> str:
        return f"ImageCodec(patch={self.patch}, latents={self.latents}, {self.quantizer!r})"

    def _check(self, x, op: str) -> None:
        shape, d = tuple(x.shape), self.patch**2
        if len(shape) != 2 or shape[1] != d:
            raise ValueError(
                f"{self!r}.{op}: expected patches of shape (N, {d}) (flattened "
                f"{self.patch}x{self.patch}), got {shape}; cut an image with "
                f"diffsys.systems.compress.to_patches(image, {self.patch})"
            )
        if not np.issubdtype(np.dtype(x.dtype), np.floating):
            raise TypeError(
                f"{self!r}.{op}: patches must be floating point in [0, 1], got {x.dtype}; "
                f"e.g. image.astype(np.float64) / 255"
            )

    def encode(self, x: Array) -> Array:
        """The continuous latents ``y`` of patches ``x``, shape ``(N, latents)``."""
        self._check(x, "encode")
        return self.analysis(x - 0.5)

    def decode(self, y_hat: Array) -> Array:
        """Patches from (quantised) latents."""
        return self.synthesis(y_hat) + 0.5

    def _run(self, x, mode: str, key) -> CodecOutput:
        y = self.encode(x)
        medians = 0.0 if mode == "noise" else self.prior.medians()  # noise needs no grid
        for_rate, for_decoder = quantize_latents(y, medians, mode, rng=key)
        return CodecOutput(self.decode(for_decoder), self.prior.likelihood(for_rate), for_rate)

    def relaxed(self, x: Array, *, key=None) -> CodecOutput:
        """Training form: ``quantizer``'s proxy of rounding (``key`` seeds the noise)."""
        if key is None and self.quantizer != "ste":
            raise ValueError(
                f"{self!r}.relaxed: the {self.quantizer!r} quantizer draws uniform noise; pass "
                f"key= (an int seed or a numpy Generator)"
            )
        return self._run(x, self.quantizer, key)

    def hard(self, x: Array, *, key=None) -> CodecOutput:
        """Inference form: latents rounded on the median grid (what is really coded)."""
        return self._run(x, "round", None)

    def __call__(self, x: Array, *, key=None) -> CodecOutput:
        return self.relaxed(x, key=key)

    def loss(self, x: Array, lmbda: float, *, key=None) -> tuple[Array, tuple[Array, Array]]:
        """``(bpp + lmbda * 255^2 * MSE, (bpp, MSE))`` of the relaxed form, for
        ``ds.value_and_grad(..., has_aux=True)``."""
        out = self.relaxed(x, key=key)
        loss, bpp, mse = rate_distortion_loss(x, out.x_hat, out.likelihoods, lmbda)
        return loss, (bpp, mse)

    def compress(self, image: np.ndarray) -> bytes:
        """Really code a grey-scale image in ``[0, 1]`` (``H``, ``W`` multiples of ``patch``)."""
        img = np.asarray(image, dtype=np.float64)
        y = np.asarray(self.encode(exact.to_patches(img, self.patch)))
        tables = self.prior.tables()
        words = exact.encode_symbols(self.prior.symbols(y, tables), tables)
        return exact.pack(words, img.shape)

    def decompress(self, data: bytes) -> np.ndarray:
        """The reconstruction (clipped to ``[0, 1]``) from :meth:`compress`'s bytes."""
        words, shape = exact.unpack(data)
        if len(shape) != 2 or shape[0] % self.patch or shape[1] % self.patch:
            raise ValueError(
                f"{self!r}.decompress: the stream holds an image of shape {shape}, not a 2-D "
                f"image cut in {self.patch}x{self.patch} patches"
            )
        n = (shape[0] // self.patch) * (shape[1] // self.patch)
        tables = self.prior.tables()
        y_hat = exact.decode_symbols(words, tables, n) + tables.medians
        patches = np.asarray(clip(self.decode(y_hat), 0.0, 1.0))
        return exact.from_patches(patches, shape, self.patch)

    def reconstruct(self, image: np.ndarray) -> np.ndarray:
        """What :meth:`decompress` returns, without coding (the hard form on the patches)."""
        img = np.asarray(image, dtype=np.float64)
        out = self.hard(exact.to_patches(img, self.patch))
        return exact.from_patches(np.clip(np.asarray(out.x_hat), 0, 1), img.shape, self.patch)

