"""The batching rule of last resort: apply the primitive to each batch element and stack.

Correct for any primitive; used only for primitives that have no batching rule of their own.
"""

from __future__ import annotations

import numpy as np

from ..core.batching import set_fallback_rule
from ._indexing import getitem_p
from ._shape import stack
from ._util import dtype_of, shape_of


def loop_over_batch(prim, size, vals, batched, **params):
    if size == 0:
        return _empty_batch(prim, vals, batched, params)
    results = []
    for i in range(size):
        args = [getitem_p(v, idx=(i,)) if b else v for v, b in zip(vals, batched, strict=True)]
        results.append(prim(*args, **params))
    if prim.multiple_results:
        return [stack([r[k] for r in results]) for k in range(len(results[0]))]
    return stack(results)


set_fallback_rule(loop_over_batch)


def _empty_batch(prim, vals, batched, params):
    """An empty batch: run the primitive once on zeros shaped like one element, to learn the
    shapes and dtypes of its results, and return them with a batch axis of length 0."""
    args = [
        np.zeros(shape_of(v)[1:], dtype=dtype_of(v)) if b else v
        for v, b in zip(vals, batched, strict=True)
    ]
    out = prim(*args, **params)
    outs = out if prim.multiple_results else [out]
    empty = [np.zeros((0,) + shape_of(o), dtype=dtype_of(o)) for o in outs]
    return empty if prim.multiple_results else empty[0]
