"""What travels between the driver and the workers each round: flat arrays as safetensors bytes.

Parameters go out and gradients come back as the bytes of a safetensors file whose tensors are
the pytree's leaves in flatten order (``"0"``, ``"1"``, ...) plus named float64 scalars (the
loss, aux values, timings). No pickle is involved in a round: the tree structure (which holds
the user's classes) reaches each worker once, at setup, and both sides rebuild the tree from
it. The bytes are exact (dtype and every bit kept), so a data-parallel run can be compared
bit for bit with a single-process one.

>>> import numpy as np
>>> data = pack([np.arange(3.0)], {"loss": 0.5})
>>> leaves, scalars = unpack(data)
>>> leaves[0].tolist(), scalars
([0.0, 1.0, 2.0], {'loss': 0.5})
"""

from __future__ import annotations

import numpy as np

__all__ = ["add_packed", "pack", "unpack"]

_SCALAR = "s:"


def _st():
    from safetensors import numpy as st

    return st


def pack(leaves: list, scalars: dict[str, float] | None = None) -> bytes:
    """The safetensors bytes of ``leaves`` (arrays) and ``scalars`` (name -> float)."""
    # np.array(order="C"), not ascontiguousarray: that one makes 0-d arrays 1-d
    tensors = {str(i): np.array(x, order="C") for i, x in enumerate(leaves)}
    for name, value in (scalars or {}).items():
        tensors[_SCALAR + name] = np.asarray(value, dtype=np.float64)
    return _st().save(tensors)


def unpack(data: bytes) -> tuple[list[np.ndarray], dict[str, float]]:
    """``(leaves, scalars)`` back from :func:`pack`'s bytes."""
    tensors = _st().load(data)
    scalars = {k[len(_SCALAR) :]: float(v) for k, v in tensors.items() if k.startswith(_SCALAR)}
    n = len(tensors) - len(scalars)
    return [tensors[str(i)] for i in range(n)], scalars


def add_packed(a: bytes, b: bytes, *, keep_max: tuple[str, ...] = ()) -> bytes:
    """Leafwise ``a + b`` (in that order); scalars add too, except ``keep_max`` (the larger)."""
    la, sa = unpack(a)
    lb, sb = unpack(b)
    if len(la) != len(lb):
        raise ValueError(f"add_packed: {len(la)} leaves vs {len(lb)}")
    scalars = {}
    for k in sa.keys() | sb.keys():
        x, y = sa.get(k, 0.0), sb.get(k, 0.0)
        scalars[k] = max(x, y) if k in keep_max else x + y
    return pack([x + y for x, y in zip(la, lb, strict=True)], dict(sorted(scalars.items())))
