"""Array specs of stage contracts: shapes with symbolic dimensions, dtypes, and the errors
raised when a value breaks them.

A :class:`Spec` is a shape and a dtype. Shape entries are ints (that size exactly), strings
(a symbol such as ``"B"``: bound at its first use in a pipeline call, the same everywhere
after), ``None`` (any size) or ``...`` (any number of axes, at most once).

>>> import numpy as np
>>> from diffsys.pipeline import Spec
>>> spec = Spec(("B", 3), "float64")
>>> bindings = {}
>>> spec.check(np.zeros((4, 3)), bindings, where="stage 'f' input 'x'")
>>> bindings
{'B': (4, "stage 'f' input 'x'")}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tracer import Tracer

__all__ = ["ContractError", "Spec", "as_spec"]

_KINDS = {"floating": np.floating, "integer": np.integer, "inexact": np.inexact, "bool": np.bool_}


class ContractError(ValueError):
    """A value breaks a stage's contract (shape, dtype, array-ness, or in-place mutation)."""


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray | np.generic | Tracer)


class Spec:
    """The contract of one array: ``shape`` (ints, symbols, ``None``, one ``...``) and
    ``dtype`` (a NumPy dtype, a kind ``"floating"``/``"integer"``/``"inexact"``/``"bool"``, or
    ``None`` for any).

    >>> from diffsys.pipeline import Spec
    >>> Spec(("B", 1, 8, 8), "float32")
    Spec(('B', 1, 8, 8), 'float32')
    """

    __slots__ = ("dtype", "shape", "_ellipsis")

    def __init__(self, shape: Any = None, dtype: Any = None) -> None:
        if shape is not None:
            shape = tuple(shape)
            for d in shape:
                ok = d is None or d is Ellipsis or isinstance(d, str)
                ok = ok or (isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0)
                if not ok:
                    raise TypeError(
                        f"Spec: shape entries are ints >= 0, symbol strings, None or ..., "
                        f"got {d!r} in {shape}"
                    )
            if sum(d is Ellipsis for d in shape) > 1:
                raise TypeError(f"Spec: at most one ... in a shape, got {shape}")
            shape = tuple(int(d) if isinstance(d, int | np.integer) else d for d in shape)
        self.shape = shape
        self._ellipsis = shape is not None and Ellipsis in shape
        if dtype is not None and dtype not in _KINDS:
            dtype = np.dtype(dtype)
        self.dtype = dtype

    # --- checking --------------------------------------------------------------------------
    def check(self, value, bindings: dict, where: str) -> None:
        """Raise :class:`ContractError` unless ``value`` is an array meeting this spec; bind
        the symbols of its shape in ``bindings`` (``symbol -> (size, where bound)``)."""
        if not _is_array(value):
            raise ContractError(
                f"{where}: expected an array {self}, got a {type(value).__name__}"
                + (f" ({_describe(value)})" if value is not None else "")
            )
        shape = tuple(value.shape)
        if self.shape is not None:
            self._check_shape(shape, bindings, where)
        if self.dtype is not None:
            dtype = np.dtype(value.dtype)
            ok = (
                np.issubdtype(dtype, _KINDS[self.dtype])
                if isinstance(self.dtype, str)
                else dtype == self.dtype
            )
            if not ok:
                raise ContractError(
                    f"{where}: expected dtype {_dtype_name(self.dtype)}, got {dtype} "
                    f"(shape {shape}; spec {self})"
                )

    def _check_shape(self, shape: tuple, bindings: dict, where: str) -> None:
        spec = self.shape
        if self._ellipsis:
            k = spec.index(Ellipsis)
            head, tail = spec[:k], spec[k + 1 :]
            if len(shape) < len(head) + len(tail):
                raise ContractError(
                    f"{where}: expected shape {_fmt(spec)} (at least {len(head) + len(tail)} "
                    f"axes), got {shape} ({len(shape)} axes)"
                )
            pairs = list(zip(head, shape[: len(head)], strict=True))
            pairs += list(zip(tail, shape[len(shape) - len(tail) :], strict=True))
            axes = list(range(len(head))) + list(range(len(shape) - len(tail), len(shape)))
        else:
            if len(shape) != len(spec):
                raise ContractError(
                    f"{where}: expected shape {_fmt(spec)} ({len(spec)} axes), got {shape} "
                    f"({len(shape)} axes)"
                )
            pairs = list(zip(spec, shape, strict=True))
            axes = list(range(len(shape)))
        for axis, (want, got) in zip(axes, pairs, strict=True):
            if want is None:
                continue
            if isinstance(want, str):
                bound = bindings.get(want)
                if bound is None:
                    bindings[want] = (got, where)
                elif bound[0] != got:
                    raise ContractError(
                        f"{where}: symbolic dimension {want!r} is {got} here (axis {axis} of "
                        f"shape {shape}, spec {_fmt(spec)}), but {bound[1]} bound it to "
                        f"{bound[0]}"
                    )
            elif want != got:
                raise ContractError(
                    f"{where}: expected shape {_fmt(spec)}, got {shape}: axis {axis} is {got}, "
                    f"expected {want}"
                )

    # --- serialization and display ----------------------------------------------------------
    def to_json(self) -> dict:
        shape = None
        if self.shape is not None:
            shape = ["..." if d is Ellipsis else d for d in self.shape]
        dtype = None
        if self.dtype is not None:
            dtype = self.dtype if isinstance(self.dtype, str) else self.dtype.name
        return {"shape": shape, "dtype": dtype}

    @classmethod
    def from_json(cls, doc: dict) -> Spec:
        shape = doc.get("shape")
        if shape is not None:
            shape = tuple(Ellipsis if d == "..." else d for d in shape)
        return cls(shape, doc.get("dtype"))

    def __eq__(self, other) -> bool:
        return isinstance(other, Spec) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self) -> int:
        return hash((self.shape, str(self.dtype)))

    def __repr__(self) -> str:
        parts = [_fmt(self.shape)]
        if self.dtype is not None:
            parts.append(repr(_dtype_name(self.dtype)))
        return f"Spec({', '.join(parts)})"


def _dtype_name(dtype) -> str:
    return dtype if isinstance(dtype, str) else dtype.name


def _fmt(shape) -> str:
    if shape is None:
        return "None"
    inner = ", ".join("..." if d is Ellipsis else repr(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _describe(value) -> str:
    if isinstance(value, list | tuple):
        return f"length {len(value)}"
    if isinstance(value, dict):
        return f"keys {sorted(map(str, value))[:5]}"
    return repr(value)[:60]


def as_spec(x) -> Spec | None:
    """``None``, a :class:`Spec`, a shape tuple (``("B", 3)``) or a dict ``{"shape":...,
    "dtype":...}`` as a Spec (or None)."""
    if x is None or isinstance(x, Spec):
        return x
    if isinstance(x, dict):
        return Spec(x.get("shape"), x.get("dtype"))
    if isinstance(x, tuple | list):
        return Spec(tuple(x))
    raise TypeError(
        f"expected a Spec, a shape tuple or None, got {type(x).__name__} ({x!r}); write "
        "Spec(('B', 3), 'float64')"
    )
