"""Ready ``pl.Stage`` builders for architecture search.

>>> from diffsys.systems.nas import Supernet, supernet_stage
>>> supernet_stage("cell", Supernet(4, nodes=1, key=0)).kind
'relaxed'
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import pipeline as pl
from .modules import DiscreteNet, Supernet

__all__ = ["network_stage", "supernet_stage"]


def supernet_stage(name: str, net: Supernet, *, inputs: Sequence[str] = ("x",)) -> pl.Stage:
    """A relaxed stage of ``net``: the mixed supernet in ``train()``, the discretised
    network (argmax operation per edge) in ``infer()``; ``pipe.mismatch`` reports the gap
    (the relaxed-vs-discretised mismatch of DARTS)."""
    if not isinstance(net, Supernet):
        raise TypeError(f"supernet_stage {name!r}: expected a Supernet, got {type(net).__name__}")
    return pl.Stage(name, net, inputs=tuple(inputs), kind="relaxed")


def network_stage(name: str, net: DiscreteNet, *, inputs: Sequence[str] = ("x",)) -> pl.Stage:
    """An exact stage of a discrete network."""
    if not isinstance(net, DiscreteNet):
        raise TypeError(f"network_stage {name!r}: expected a DiscreteNet, got {type(net).__name__}")
    return pl.Stage(name, net, inputs=tuple(inputs), kind="exact")
