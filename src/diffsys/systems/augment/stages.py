"""Ready ``pl.Stage`` builders for learned augmentation.

>>> from diffsys.systems.augment import AugmentPolicy, policy_stage
>>> policy_stage("augment", AugmentPolicy(1)).kind
'relaxed'
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import pipeline as pl
from .modules import AugmentPolicy

__all__ = ["policy_stage"]


def policy_stage(name: str, policy: AugmentPolicy, *, inputs: Sequence[str] = ("x",)) -> pl.Stage:
    """A relaxed stage of ``policy``: the relaxed policy in ``train()`` (the pipeline passes
    each step's key), no augmentation in ``infer()``; ``pipe.mismatch(batch, key=k)``
    compares the relaxed policy with the exact sampled one on the same noise."""
    if not isinstance(policy, AugmentPolicy):
        raise TypeError(
            f"policy_stage {name!r}: expected an AugmentPolicy, got {type(policy).__name__}"
        )
    return pl.Stage(name, policy, inputs=tuple(inputs), kind="relaxed")
