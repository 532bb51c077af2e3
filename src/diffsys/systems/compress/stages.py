"""Ready ``pl.Stage`` builders: a codec as a relaxed stage (the quantisation proxy in
``train()``, rounding in ``infer()``, ``mismatch()`` for the gap between them).

>>> from diffsys.systems.compress import ImageCodec, codec_stage
>>> codec_stage("codec", ImageCodec(patch=4, latents=2, hidden=8, key=0)).kind
'relaxed'
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import pipeline as pl
from .modules import ImageCodec

__all__ = ["codec_stage"]


def codec_stage(name: str, codec: ImageCodec, *, inputs: Sequence[str] = ("patches",)) -> pl.Stage:
    """A stage of ``codec`` on flattened patches: output a
    :class:`~diffsys.systems.compress.CodecOutput` (later stages read ``name.0`` for the
    reconstruction, ``name.1`` for the likelihoods, ``name.2`` for the latents). Kind
    ``straight_through`` for the ``"ste"`` quantizer (the hard values, a surrogate's
    derivative), else ``relaxed``."""
    kind = "straight_through" if codec.quantizer == "ste" else "relaxed"
    return pl.Stage(name, codec, inputs=tuple(inputs), kind=kind, output_spec=(None, None, None))
