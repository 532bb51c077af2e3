"""The batching rule of last resort: apply the primitive to each batch element and stack.

Correct for any primitive; used only for primitives that have no batching rule of their own.
"""

from __future__ import annotations

from ..core.batching import set_fallback_rule
from ._indexing import getitem_p
from ._shape import stack


def loop_over_batch(prim, size, vals, batched, **params):
    results = []
    for i in range(size):
        args = [getitem_p(v, idx=(i,)) if b else v for v, b in zip(vals, batched, strict=True)]
        results.append(prim(*args, **params))
    if prim.multiple_results:
        return [stack([r[k] for r in results]) for k in range(len(results[0]))]
    return stack(results)


set_fallback_rule(loop_over_batch)
