"""Gradient reports: per named input leaf, how big the gradient is and whether it is healthy."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from ..core.pytree import tree_leaves
from ..core.tracer import Tracer
from ..core.transforms import _normalize_argnums, value_and_grad

__all__ = ["GradReport", "LeafGrad", "grad_report"]


class LeafGrad(NamedTuple):
    """The gradient summary of one input leaf."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    norm: float  # Euclidean norm (of |g| for complex gradients); nan when g holds NaN
    max_abs: float
    nan: bool  # the gradient holds a NaN
    inf: bool  # the gradient holds an Inf
    zero: bool  # every entry is exactly zero (e.g. a dead branch)

    @property
    def finite(self) -> bool:
        return not (self.nan or self.inf)


def _summarize(name: str, g) -> LeafGrad:
    g = np.asarray(g)
    a = np.abs(g)
    nan = bool(np.isnan(a).any())
    inf = bool(np.isinf(a).any())
    if g.size == 0:
        norm = max_abs = 0.0
    elif nan:
        norm = max_abs = float("nan")
    else:
        max_abs = float(a.max())
        norm = float("inf") if inf else float(np.sqrt(np.sum(a * a)))
        if not inf and norm == float("inf"):  # overflowed squares: scale first
            norm = max_abs * float(np.sqrt(np.sum((a / max_abs) ** 2)))
    zero = not nan and g.size > 0 and not a.any()
    return LeafGrad(name, tuple(g.shape), str(g.dtype), norm, max_abs, nan, inf, zero)


class GradReport:
    """What :func:`grad_report` found: ``value`` (and ``aux``), ``grads`` (shaped like the
    differentiated arguments, ``None`` at leaves that were not differentiated) and one
    :class:`LeafGrad` per named leaf in ``leaves``. ``str(report)`` is a table; ``to_dict()``
    is JSON-ready."""

    def __init__(self, value, grads, leaves: list[LeafGrad], aux=None) -> None:
        self.value = value
        self.grads = grads
        self.leaves = leaves
        self.aux = aux

    def __getitem__(self, name: str) -> LeafGrad:
        for leaf in self.leaves:
            if leaf.name == name:
                return leaf
        raise KeyError(f"grad_report: no leaf named {name!r} (names: {self.names})")

    def __iter__(self):
        return iter(self.leaves)

    def __len__(self) -> int:
        return len(self.leaves)

    @property
    def names(self) -> list[str]:
        return [leaf.name for leaf in self.leaves]

    @property
    def zero(self) -> list[str]:
        """Names of leaves whose gradient is exactly zero."""
        return [leaf.name for leaf in self.leaves if leaf.zero]

    @property
    def nonfinite(self) -> list[str]:
        """Names of leaves whose gradient holds NaN or Inf."""
        return [leaf.name for leaf in self.leaves if not leaf.finite]

    @property
    def ok(self) -> bool:
        """No leaf has a zero or non-finite gradient."""
        return not (self.zero or self.nonfinite)

    def to_dict(self) -> dict:
        """Plain Python types only (NaN/Inf norms become ``None``, with their flags set)."""

        def num(x: float):
            return x if np.isfinite(x) else None

        return {
            "value": num(float(np.real(self.value))),
            "leaves": [
                {
                    "name": leaf.name,
                    "shape": list(leaf.shape),
                    "dtype": leaf.dtype,
                    "norm": num(leaf.norm),
                    "max_abs": num(leaf.max_abs),
                    "nan": leaf.nan,
                    "inf": leaf.inf,
                    "zero": leaf.zero,
                }
                for leaf in self.leaves
            ],
            "zero": self.zero,
            "nonfinite": self.nonfinite,
        }

    def __str__(self) -> str:
        header = ("leaf", "shape", "dtype", "grad norm", "max |g|", "flags")
        rows = []
        for leaf in self.leaves:
            flags = [
                f for f, on in (("NaN", leaf.nan), ("Inf", leaf.inf), ("ZERO", leaf.zero)) if on
            ]
            rows.append(
                (
                    leaf.name,
                    str(leaf.shape),
                    leaf.dtype,
                    f"{leaf.norm:.4g}",
                    f"{leaf.max_abs:.4g}",
                    " ".join(flags),
                )
            )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        right = {3, 4}

        def line(cells):
            parts = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        out = [line(header), line(["-" * w for w in widths]), *[line(r) for r in rows]]
        summary = f"{len(self.leaves)} leaves"
        if self.zero:
            summary += f"; zero gradient: {', '.join(self.zero)}"
        if self.nonfinite:
            summary += f"; NaN/Inf gradient: {', '.join(self.nonfinite)}"
        return "\n".join([*out, f"value {float(np.real(self.value)):.6g}; {summary}"])

    def __repr__(self) -> str:
        return (
            f"GradReport({len(self.leaves)} leaves, zero={self.zero}, nonfinite={self.nonfinite})"
        )


def _is_diff_leaf(x) -> bool:
    v = x
    while isinstance(v, Tracer):
        v = v._value
    if isinstance(v, float | complex) and not isinstance(v, bool):
        return True
    return isinstance(v, np.ndarray | np.generic) and v.dtype.kind in "fc"


def _arg_names(fun, nargs: int) -> list[str]:
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(nargs):
        p = params[i] if i < len(params) else None
        if p is not None and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        else:
            names.append(f"arg{i}")
    return names


def grad_report(
    fun: Callable,
    *args,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    **kwargs,
) -> GradReport:
    """Differentiate scalar ``fun`` at ``args`` and summarize the gradient per named leaf.

    Leaves are named by dotted path (``encoder.conv1.weight`` for :mod:`diffsys.nn` modules,
    dict keys, list indices); with several ``argnums`` each path starts with the argument's
    parameter name. Only floating-point leaves are differentiated; the others are held fixed.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> params = {"w": np.ones(3), "unused": np.ones(2)}
    >>> report = ds.debug.grad_report(lambda p: dnp.sum(p["w"] ** 2), params)
    >>> report.zero
    ['unused']
    >>> report["w"].norm == float(np.linalg.norm(2 * np.ones(3)))
    True
    """
    from ..nn import combine, named_leaves, partition

    nums, single = _normalize_argnums(argnums, len(args), "grad_report")
    arg_names = _arg_names(fun, len(args))
    # Differentiate the floating-point leaves of each chosen argument, the rest held fixed.
    selected, rest = zip(*[partition(args[a], _is_diff_leaf) for a in nums], strict=True)
    names = []
    for a, tree in zip(nums, selected, strict=True):
        prefix = "" if single else arg_names[a]
        names += [
            ".".join(p for p in (prefix, n) if p) or arg_names[a] for n, _ in named_leaves(tree)
        ]
    if not names:
        raise TypeError(
            f"grad_report: no floating-point leaf to differentiate in the argument(s) {list(nums)}"
        )

    def with_selected(*trees):
        new_args = list(args)
        for a, tree, fixed in zip(nums, trees, rest, strict=True):
            new_args[a] = combine(tree, fixed)
        return fun(*new_args, **kwargs)

    diff_argnums = tuple(range(len(nums)))
    value, grads = value_and_grad(with_selected, diff_argnums, has_aux=has_aux)(*selected)
    value, aux = value if has_aux else (value, None)
    leaves = [_summarize(n, g) for n, g in zip(names, tree_leaves(grads), strict=True)]
    # grads are shaped like the arguments, with None where a leaf was not differentiated
    return GradReport(value, grads[0] if single else grads, leaves, aux)
