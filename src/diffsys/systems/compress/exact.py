"""The exact layer: real entropy coding with ``constriction``, image patches, JPEG.

No tracers here: integer symbols in, 32-bit words out, and back, bit for bit.

**Coding tables** (:class:`CodingTables`). Channel ``c`` codes the integers
``offsets[c] .. offsets[c] + K_c - 1`` (its *support*, chosen where the learned CDF leaves a
tail mass of about 1e-9 outside) with the probabilities ``pmfs[c][:K_c]``, plus one *escape*
symbol (``pmfs[c][K_c]``, the mass of both tails). A value outside the support is coded as
the escape followed by its distance past the edge in a few uniform-coded fields (side, bit
length, bits), so every integer can be coded and the escape costs what its rarity says.

**Order.** A range coder is a queue (first in, first out). Channels are coded one after the
other, all ``N`` symbols of a channel in one call (one categorical model per channel), each
channel's escape payloads right after it; :func:`decode_symbols` reads in the same order.

**Bytes** (:func:`pack` / :func:`unpack`): a header (magic ``DSC1``, the latent shape) and
the coder's words, little-endian; the actual rate is ``8 * len(bytes)`` bits.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np

from ..data.metrics import psnr

__all__ = [
    "CodingTables",
    "decode_symbols",
    "encode_symbols",
    "from_patches",
    "jpeg_curve",
    "jpeg_roundtrip",
    "pack",
    "psnr",
    "to_patches",
    "unpack",
]

_MAGIC = b"DSC1"
_CHUNK = 16  # escape payload bits per uniform-coded field (constriction's Uniform < 2**24)


def _constriction():
    try:
        import constriction
    except ImportError as exc:  # pragma: no cover - the package __init__ checks first
        raise ImportError(
            "diffsys.systems.compress needs constriction (the 'compress' extra): "
            "pip install 'diffsys[compress]'"
        ) from exc
    return constriction


@dataclass(frozen=True)
class CodingTables:
    """Per-channel integer supports and their probabilities (last entry: the escape).

    ``medians[c]`` centres channel ``c``'s quantisation grid: latent ``v`` is coded as the
    symbol ``round(v - medians[c])``.
    """

    medians: np.ndarray
    offsets: np.ndarray
    pmfs: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        c = len(self.pmfs)
        if np.shape(self.medians) != (c,) or np.shape(self.offsets) != (c,):
            raise ValueError(
                f"CodingTables: medians {np.shape(self.medians)} and offsets "
                f"{np.shape(self.offsets)} must both have shape ({c},), one per pmf"
            )
        for k, p in enumerate(self.pmfs):
            p = np.asarray(p)
            if p.ndim != 1 or p.size < 2 or not np.all(np.isfinite(p)) or np.any(p < 0):
                raise ValueError(
                    f"CodingTables: pmfs[{k}] must be a 1-D array of >= 2 finite non-negative "
                    f"probabilities (support then escape), got shape {p.shape}"
                )

    @property
    def channels(self) -> int:
        return len(self.pmfs)

    def support(self, c: int) -> tuple[int, int]:
        """The integers channel ``c`` codes without escape, ``(low, high)`` inclusive."""
        lo = int(self.offsets[c])
        return lo, lo + len(self.pmfs[c]) - 2

    def ideal_bits(self, symbols: np.ndarray) -> float:
        """``-sum log2 p`` under these tables (escapes: the escape's probability only)."""
        symbols = _check_symbols(symbols, self, "CodingTables.ideal_bits")
        total = 0.0
        for c in range(self.channels):
            p = np.asarray(self.pmfs[c], dtype=np.float64)
            p = p / p.sum()
            idx = symbols[:, c] - int(self.offsets[c])
            idx = np.where((idx < 0) | (idx > len(p) - 2), len(p) - 1, idx)
            total -= float(np.sum(np.log2(p[idx])))
        return total


def _check_symbols(symbols, tables: CodingTables, op: str) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.ndim != 2 or arr.shape[1] != tables.channels:
        raise ValueError(
            f"{op}: symbols must have shape (N, {tables.channels}) (one column per channel), "
            f"got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{op}: symbols must be integers (quantised latents), got dtype {arr.dtype}; "
            f"round first, e.g. np.rint(y).astype(np.int64)"
        )
    if arr.size and np.max(np.abs(arr.astype(np.int64))) >= 2**31:
        raise ValueError(f"{op}: symbols must lie in the int32 range, got max |s| = "
                         f"{int(np.max(np.abs(arr.astype(np.int64))))}")
    return arr.astype(np.int64)


def _models(tables: CodingTables):
    model = _constriction().stream.model
    return [model.Categorical(np.asarray(p, np.float64), perfect=False) for p in tables.pmfs]


def encode_symbols(
    symbols: np.ndarray, tables: CodingTables, *, escape: bool = True
) -> np.ndarray:
    """Range-code integer ``symbols`` of shape ``(N, C)``; the compressed ``uint32`` words.

    With ``escape=False`` a symbol outside its channel's support is an error (naming the
    channel, the value and the support) instead of an escape.

    >>> import numpy as np
    >>> t = CodingTables(np.zeros(1), np.array([-1]), (np.array([0.25, 0.5, 0.25, 1e-6]),))
    >>> s = np.array([[0], [1], [-1], [0], [7]])
    >>> words = encode_symbols(s, t)
    >>> np.array_equal(decode_symbols(words, t, 5), s)
    True
    """
    symbols = _check_symbols(symbols, tables, "encode_symbols")
    cs = _constriction()
    uniform = cs.stream.model.Uniform
    encoder = cs.stream.queue.RangeEncoder()
    for c, model in enumerate(_models(tables)):
        lo, hi = tables.support(c)
        col = symbols[:, c]
        out = (col < lo) | (col > hi)
        if out.any() and not escape:
            bad = int(col[out][0])
            raise ValueError(
                f"encode_symbols: channel {c} has symbol {bad} outside its support "
                f"[{lo}, {hi}] ({int(out.sum())} such symbols); use escape=True (the default) "
                f"to code them, or widen the support (a smaller tail_mass)"
            )
        idx = np.where(out, hi - lo + 1, col - lo).astype(np.int32)
        encoder.encode(idx, model)
        for v in col[out]:
            _encode_escape(encoder, uniform, int(v), lo, hi)
    return encoder.get_compressed()


def _encode_escape(encoder, uniform, v: int, lo: int, hi: int) -> None:
    above = v > hi
    d = v - hi - 1 if above else lo - v - 1  # >= 0
    n = d.bit_length()
    encoder.encode(int(above), uniform(2))
    encoder.encode(n, uniform(34))
    rest, bits = d - (1 << (n - 1)) if n else 0, max(n - 1, 0)
    while bits > 0:
        k = min(bits, _CHUNK)
        encoder.encode((rest >> (bits - k)) & ((1 << k) - 1), uniform(max(1 << k, 2)))
        bits -= k


def _decode_escape(decoder, uniform, lo: int, hi: int) -> int:
    above = int(decoder.decode(uniform(2)))
    n = int(decoder.decode(uniform(34)))
    rest, bits = 0, max(n - 1, 0)
    while bits > 0:
        k = min(bits, _CHUNK)
        rest = (rest << k) | int(decoder.decode(uniform(max(1 << k, 2))))
        bits -= k
    d = (1 << (n - 1)) + rest if n else 0
    return hi + 1 + d if above else lo - 1 - d


def decode_symbols(words: np.ndarray, tables: CodingTables, n: int) -> np.ndarray:
    """Decode ``n`` rows of symbols, shape ``(n, C)`` int64, from :func:`encode_symbols`'s
    words with the same tables."""
    words = np.asarray(words)
    if words.ndim != 1 or words.dtype != np.uint32:
        raise TypeError(
            f"decode_symbols: words must be a 1-D uint32 array (encode_symbols' output), got "
            f"dtype {words.dtype} and shape {words.shape}"
        )
    cs = _constriction()
    uniform = cs.stream.model.Uniform
    decoder = cs.stream.queue.RangeDecoder(words)
    out = np.empty((int(n), tables.channels), dtype=np.int64)
    for c, model in enumerate(_models(tables)):
        lo, hi = tables.support(c)
        idx = np.asarray(decoder.decode(model, int(n)), dtype=np.int64)
        col = idx + lo
        for i in np.flatnonzero(idx == hi - lo + 1):
            col[i] = _decode_escape(decoder, uniform, lo, hi)
        out[:, c] = col
    return out


def pack(words: np.ndarray, shape: tuple[int, ...]) -> bytes:
    """The byte string of a coded tensor: magic, ``shape`` (uint32s), the words."""
    head = _MAGIC + struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
    return head + np.asarray(words, dtype="<u4").tobytes()


def unpack(data: bytes) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(words, shape)`` from :func:`pack`'s bytes."""
    if not isinstance(data, bytes | bytearray) or data[:4] != _MAGIC or len(data) < 5:
        raise ValueError(
            "unpack: not a diffsys compressed stream (expected bytes starting with b'DSC1', as "
            "written by pack / ImageCodec.compress)"
        )
    ndim = data[4]
    end = 5 + 4 * ndim
    if len(data) < end or (len(data) - end) % 4:
        raise ValueError(f"unpack: truncated stream ({len(data)} bytes for a rank-{ndim} shape)")
    shape = struct.unpack(f"<{ndim}I", data[5:end])
    return np.frombuffer(data[end:], dtype="<u4").astype(np.uint32), tuple(shape)


# --- images ------------------------------------------------------------------------------------


def _check_image(image, op: str) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(
            f"{op}: expected a grey-scale image of shape (H, W), got shape {img.shape}; "
            f"for colour use skimage.color.rgb2gray(image)"
        )
    return img


def to_patches(image: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping ``size x size`` patches of a 2-D image, row-major, shape
    ``(H/size * W/size, size*size)``; ``H`` and ``W`` must be multiples of ``size``.

    >>> to_patches(np.arange(16.0).reshape(4, 4), 2)[1]
    array([2., 3., 6., 7.])
    """
    img = _check_image(image, "to_patches")
    h, w = img.shape
    if h % size or w % size:
        raise ValueError(
            f"to_patches: image shape {img.shape} is not a multiple of the patch size {size}; "
            f"crop it, e.g. image[:{h - h % size}, :{w - w % size}]"
        )
    p = img.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3)
    return p.reshape(-1, size * size)


def from_patches(patches: np.ndarray, shape: tuple[int, int], size: int) -> np.ndarray:
    """The inverse of :func:`to_patches`."""
    h, w = shape
    p = np.asarray(patches).reshape(h // size, w // size, size, size).transpose(0, 2, 1, 3)
    return p.reshape(h, w)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """JPEG-compress a grey-scale ``uint8`` image with Pillow (optimised Huffman tables);
    ``(bytes, decoded image)``."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "jpeg_roundtrip needs Pillow (the 'compress' extra): pip install 'diffsys[compress]'"
        ) from exc
    img = _check_image(image, "jpeg_roundtrip")
    if img.dtype != np.uint8:
        raise TypeError(f"jpeg_roundtrip: image must be uint8, got {img.dtype}")
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="JPEG", quality=int(quality), optimize=True)
    data = buf.getvalue()
    return len(data), np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def jpeg_curve(image: np.ndarray, qualities=range(5, 96, 5)) -> tuple[np.ndarray, np.ndarray]:
    """``(bits per pixel, PSNR dB)`` of JPEG at each quality, sorted by rate."""
    img = _check_image(image, "jpeg_curve")
    rows = []
    for q in qualities:
        nbytes, dec = jpeg_roundtrip(img, q)
        rows.append((8.0 * nbytes / img.size, psnr(img, dec, 255.0)))
    rows.sort()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
