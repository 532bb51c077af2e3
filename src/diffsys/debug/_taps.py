"""Taps: look at a value, and at the cotangent or tangent flowing through it, unchanged.

``tap(x, name)`` is the identity. It records ``x``'s value when it runs, the cotangent that
reaches it in every backward pass, and the tangent that flows through it under ``jvp``, into
every :class:`Recorder` open at the time of the call and into an optional callback.
Derivatives of any order are those of the identity: the rules pass the cotangent and the
tangent through untouched.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..core.primitive import Primitive
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tracer import Tracer

__all__ = ["Recorder", "TapEvent", "tap"]


class TapEvent(NamedTuple):
    """One recording: the tap's ``name``, ``kind`` (``"value"``, ``"cotangent"`` or
    ``"tangent"``) and ``value`` (a plain array; under ``vmap``, ``jacfwd``, ``jacrev`` or
    ``hessian`` it carries the batch axis in front)."""

    name: str
    kind: str
    value: np.ndarray


_recorders: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar(
    "diffsys_debug_recorders", default=()
)


class Recorder:
    """Collects what taps see while the block is open (in this thread or task).

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> with ds.debug.Recorder() as rec:
    ...     g = ds.grad(lambda x: dnp.sum(ds.debug.tap(x * 2.0, "h") ** 2))(np.ones(2))
    >>> rec.values("h")[0], rec.cotangents("h")[0]
    (array([2., 2.]), array([4., 4.]))
    """

    def __init__(self) -> None:
        self.events: list[TapEvent] = []
        self._token: contextvars.Token | None = None

    def __enter__(self) -> Recorder:
        self._token = _recorders.set(_recorders.get() + (self,))
        return self

    def __exit__(self, *exc) -> None:
        _recorders.reset(self._token)
        self._token = None

    def __call__(self, event: TapEvent) -> None:
        self.events.append(event)

    def _of(self, name: str, kind: str) -> list[np.ndarray]:
        return [e.value for e in self.events if e.name == name and e.kind == kind]

    def values(self, name: str) -> list[np.ndarray]:
        """The values tap ``name`` saw, in order (one per call)."""
        return self._of(name, "value")

    def cotangents(self, name: str) -> list[np.ndarray]:
        """The cotangents that reached tap ``name``, in the order the backward passes ran."""
        return self._of(name, "cotangent")

    def tangents(self, name: str) -> list[np.ndarray]:
        """The tangents that flowed through tap ``name`` (forward mode)."""
        return self._of(name, "tangent")

    def names(self) -> list[str]:
        """The tap names recorded, in order of first appearance."""
        return list(dict.fromkeys(e.name for e in self.events))


def _plain_copy(x) -> np.ndarray:
    while isinstance(x, Tracer):
        x = x._value
    return np.array(x, copy=True)


def _emit(sinks, name: str, kind: str, x) -> None:
    event = TapEvent(name, kind, _plain_copy(x))
    for sink in sinks:
        sink(event)


def _tap_impl(x, name, sinks):
    _emit(sinks, name, "value", x)
    return x


def _tap_vjp(g, ans, x, name, sinks):
    _emit(sinks, name, "cotangent", g)
    return g


def _tap_jvp(t, ans, x, name, sinks):
    _emit(sinks, name, "tangent", t)
    return t


tap_p = Primitive("debug.tap", _tap_impl)
tap_p.defvjp(_tap_vjp)
tap_p.defjvp(_tap_jvp)
tap_p.defbatch(lambda args, batched, name, sinks: tap_p(args[0], name=name, sinks=sinks))
tap_p.__doc__ = "The identity that records its value, cotangent and tangent (see debug.tap)."


def _is_inexact(x) -> bool:
    v = x
    while isinstance(v, Tracer):
        v = v._value
    return isinstance(v, np.ndarray | np.generic) and v.dtype.kind in "fc"


def tap(x: Any, name: str, callback: Callable[[TapEvent], None] | None = None) -> Any:
    """``x`` unchanged; records its value, and the cotangent (backward) or tangent (``jvp``)
    that flows through it, into the open :class:`Recorder` blocks and ``callback``.

    ``x`` may be a pytree: each floating-point leaf is tapped as ``name.<path>`` (the dotted
    leaf names of :func:`diffsys.nn.named_leaves`); other leaves pass through. With no
    recorder open and no callback it records nothing.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> seen = []
    >>> y = ds.debug.tap(np.array([1.0, 2.0]), "y", callback=seen.append)
    >>> seen[0].kind, seen[0].value
    ('value', array([1., 2.]))
    """
    if not isinstance(name, str):
        raise TypeError(f"tap: name must be a str, got {type(name).__name__}")
    sinks = _recorders.get() + ((callback,) if callback is not None else ())
    if not sinks:
        return x
    leaves, treedef = tree_flatten(x)
    if treedef.node_type is None:  # a single leaf
        return tap_p(x, name=name, sinks=sinks) if _is_inexact(x) else x
    from ..nn import named_leaves

    names = [n for n, _ in named_leaves(x, name)]
    out = [
        tap_p(leaf, name=n, sinks=sinks) if _is_inexact(leaf) else leaf
        for n, leaf in zip(names, leaves, strict=True)
    ]
    return tree_unflatten(treedef, out)
