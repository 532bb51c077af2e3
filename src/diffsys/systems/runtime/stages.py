"""Ready ``pl.Stage`` builders (kind ``relaxed``): the relaxed simulator in ``train()``, the
exact one in ``infer()``, ``mismatch()`` for the gap.

>>> from diffsys.systems.runtime import DispatchPolicy, dispatch_stage
>>> dispatch_stage("dispatch", DispatchPolicy((1.0, 2.0))).kind
'relaxed'
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import pipeline as pl
from .modules import DispatchPolicy, EvictionPolicy

__all__ = ["cache_stage", "dispatch_stage"]


def dispatch_stage(
    name: str, policy: DispatchPolicy, *, inputs: Sequence[str] = ("arrivals", "sizes")
) -> pl.Stage:
    """A relaxed stage of ``policy``: inputs job ``arrivals`` and ``sizes``, output latencies."""
    return pl.Stage(name, policy, inputs=tuple(inputs), kind="relaxed")


def cache_stage(
    name: str, policy: EvictionPolicy, *, inputs: Sequence[str] = ("items",)
) -> pl.Stage:
    """A relaxed stage of ``policy``: input the requested ``items``, output the miss costs."""
    return pl.Stage(name, policy, inputs=tuple(inputs), kind="relaxed")
