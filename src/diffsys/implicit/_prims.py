"""Primitives with one VJP rule per operand, for any number of operands.

A solve's operands are the differentiable leaves of its parameter pytree, so their number
varies. Each count gets its own primitive (made once, kept in a cache), with exactly that
many VJP rules; rule ``k`` returns the cotangent of operand ``k``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.primitive import Primitive


class PrimitiveFamily:
    """``family(n)`` is the primitive for ``n`` operands."""

    def __init__(self, name: str, impl: Callable, vjp: Callable, jvp_all: Callable) -> None:
        # vjp(k) -> the rule for operand k: rule(g, ans, *operands, **params)
        self.name, self.impl, self.vjp, self.jvp_all = name, impl, vjp, jvp_all
        self._cache: dict[int, Primitive] = {}

    def __call__(self, n: int) -> Primitive:
        prim = self._cache.get(n)
        if prim is None:
            prim = Primitive(f"{self.name}/{n}", self.impl)
            prim.defvjp(*[self.vjp(k) for k in range(n)])
            prim.defjvp_all(self.jvp_all)
            self._cache[n] = prim
        return prim
