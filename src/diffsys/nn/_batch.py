"""A batching rule of last resort for the primitives of :mod:`diffsys.nn`."""

from __future__ import annotations

from .. import numpy as dnp


def loop_batch(prim, args, batched, **params):
    """Apply ``prim`` to each element of the batch (axis 0 of batched arguments) and stack."""
    n = next(dnp.shape(a)[0] for a, b in zip(args, batched, strict=True) if b)
    outs = [
        prim(*[a[i] if b else a for a, b in zip(args, batched, strict=True)], **params)
        for i in range(n)
    ]
    return dnp.stack(outs)
