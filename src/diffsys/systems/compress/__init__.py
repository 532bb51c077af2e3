"""``diffsys.systems.compress``: learned compression with real entropy coding (the
``compress`` extra: constriction, Pillow).

- exact (:mod:`.exact`): range coding of integer symbols with ``constriction``
  (:func:`encode_symbols` / :func:`decode_symbols`, an escape code for values outside the
  support), :func:`pack` / :func:`unpack` to bytes, image patches, JPEG through Pillow
  (:func:`jpeg_roundtrip`, :func:`jpeg_curve`) and :func:`psnr`.
- differentiable (:mod:`.ops`): the learned factorised CDF (:func:`factorized_logits`,
  :func:`factorized_cdf`, :func:`factorized_likelihood`, :func:`factorized_quantile`), the
  quantisation proxies (:func:`quantize_latents`: uniform noise, straight-through rounding),
  :func:`rate_bits` and :func:`rate_distortion_loss`.
- modules (:mod:`.modules`): :class:`FactorizedPrior` (CompressAI's ``EntropyBottleneck``)
  and :class:`ImageCodec` (a patch autoencoder with ``relaxed``/``hard`` forms and real
  ``compress``/``decompress``); :func:`codec_stage` makes a ``pl.Stage`` of a codec.
- :mod:`.evaluate`: :func:`evaluate` (estimated vs actual bits, noise vs rounding),
  :func:`train_codec` and :func:`random_patches`.

See docs/compress.md.
"""

try:
    import constriction  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "diffsys.systems.compress needs constriction, which is the optional 'compress' extra: "
        "pip install 'diffsys[compress]' (or pip install constriction pillow)"
    ) from exc

from .evaluate import Evaluation, TrainResult, evaluate, random_patches, train_codec
from .exact import (
    CodingTables,
    decode_symbols,
    encode_symbols,
    from_patches,
    jpeg_curve,
    jpeg_roundtrip,
    pack,
    psnr,
    to_patches,
    unpack,
)
from .modules import CodecOutput, FactorizedPrior, ImageCodec
from .ops import (
    QUANTIZERS,
    factorized_cdf,
    factorized_likelihood,
    factorized_logits,
    factorized_quantile,
    quantize_latents,
    rate_bits,
    rate_distortion_loss,
)
from .stages import codec_stage

__all__ = [
    "QUANTIZERS",
    "CodecOutput",
    "CodingTables",
    "Evaluation",
    "FactorizedPrior",
    "ImageCodec",
    "TrainResult",
    "codec_stage",
    "decode_symbols",
    "encode_symbols",
    "evaluate",
    "factorized_cdf",
    "factorized_likelihood",
    "factorized_logits",
    "factorized_quantile",
    "from_patches",
    "jpeg_curve",
    "jpeg_roundtrip",
    "pack",
    "psnr",
    "quantize_latents",
    "random_patches",
    "rate_bits",
    "rate_distortion_loss",
    "to_patches",
    "train_codec",
    "unpack",
]
