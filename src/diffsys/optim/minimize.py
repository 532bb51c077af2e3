"""``minimize``: ``scipy.optimize.minimize`` over pytrees, with exact gradients (and
Hessian-vector products) from diffsys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.pytree import tree_flatten, tree_unflatten
from ..core.transforms import hvp, value_and_grad

__all__ = ["MinimizeResult", "minimize"]

_HESSP_METHODS = {"newton-cg", "trust-ncg", "trust-krylov", "trust-constr"}


@dataclass
class MinimizeResult:
    """The outcome of :func:`minimize`; ``x`` has the structure of ``x0``."""

    x: Any
    fun: float
    success: bool
    message: str
    nit: int
    nfev: int
    njev: int
    raw: Any  # scipy's OptimizeResult

    def __repr__(self) -> str:
        return (
            f"MinimizeResult(fun={self.fun!r}, success={self.success}, nit={self.nit}, "
            f"nfev={self.nfev}, message={self.message!r})"
        )


class _Packer:
    """Flat float64 vector <-> pytree of floating-point arrays (shapes and dtypes kept)."""

    def __init__(self, tree) -> None:
        leaves, self.treedef = tree_flatten(tree)
        self.shapes, self.dtypes, self.sizes = [], [], []
        for i, leaf in enumerate(leaves):
            a = np.asarray(leaf)
            if not np.issubdtype(a.dtype, np.floating):
                raise TypeError(
                    f"minimize: leaf {i} of x0 has dtype {a.dtype}; only real floating-point "
                    "leaves can be optimized"
                )
            self.shapes.append(a.shape)
            self.dtypes.append(a.dtype)
            self.sizes.append(a.size)
        self.offsets = np.cumsum([0, *self.sizes])

    def pack(self, tree) -> np.ndarray:
        leaves = tree_flatten(tree)[0]
        if not leaves:
            return np.zeros(0)
        return np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in leaves])

    def unpack(self, v: np.ndarray):
        leaves = [
            v[a:b].reshape(s).astype(d, copy=False)
            for a, b, s, d in zip(
                self.offsets[:-1], self.offsets[1:], self.shapes, self.dtypes, strict=True
            )
        ]
        return tree_unflatten(self.treedef, leaves)

    def bounds(self, bounds) -> list | None:
        if bounds is None:
            return None
        lower, upper = bounds
        lo = self._expand(lower, -np.inf)
        hi = self._expand(upper, np.inf)
        return [
            (None if np.isinf(a) else a, None if np.isinf(b) else b)
            for a, b in zip(lo, hi, strict=True)
        ]

    def _expand(self, bound, default: float) -> np.ndarray:
        if bound is None:
            return np.full(self.offsets[-1], default)
        if np.isscalar(bound):
            return np.full(self.offsets[-1], float(bound))
        leaves = tree_flatten(bound, is_leaf=lambda x: x is None)[0]
        if len(leaves) != len(self.shapes):
            raise ValueError(
                f"minimize: bounds must be scalars or pytrees like x0 ({len(self.shapes)} "
                f"leaves), got {len(leaves)} leaves"
            )
        parts = [
            np.full(n, default) if b is None else np.broadcast_to(np.asarray(b, float), s).ravel()
            for b, s, n in zip(leaves, self.shapes, self.sizes, strict=True)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)


def minimize(
    fun: Callable[..., Any],
    x0: Any,
    method: str = "L-BFGS-B",
    *,
    args: Sequence = (),
    bounds: tuple[Any, Any] | None = None,
    tol: float | None = None,
    options: dict | None = None,
    callback: Callable[[Any], None] | None = None,
) -> MinimizeResult:
    """Minimize a scalar ``fun(x, *args)`` over a pytree ``x`` with ``scipy.optimize``.

    Gradients come from ``ds.value_and_grad`` (one pass for value and gradient); methods
    that use Hessian-vector products (Newton-CG, trust-ncg, trust-krylov, trust-constr) get
    exact ones from ``ds.hvp``. ``bounds`` is ``(lower, upper)``, each a scalar, ``None``
    or a pytree like ``x0`` (with ``None`` leaves for unbounded). Leaves keep their dtype.

    >>> import numpy as np, diffsys.numpy as dnp
    >>> from diffsys import optim
    >>> def rosen(p):
    ...     return (1 - p["a"]) ** 2 + 100 * (p["b"] - p["a"] ** 2) ** 2
    >>> res = optim.minimize(rosen, {"a": np.array(-1.0), "b": np.array(2.0)})
    >>> bool(res.success), round(float(res.x["a"]), 4), round(float(res.x["b"]), 4)
    (True, 1.0, 1.0)
    """
    from scipy import optimize

    packer = _Packer(x0)
    vg = value_and_grad(fun)

    def f(v):
        value, g = vg(packer.unpack(v), *args)
        return float(value), packer.pack(g)

    kwargs: dict[str, Any] = {}
    if method.lower() in _HESSP_METHODS:

        def hessp(v, p):
            out = hvp(lambda x: fun(x, *args), (packer.unpack(v),), (packer.unpack(p),))
            return packer.pack(out)

        kwargs["hessp"] = hessp
    cb = None
    if callback is not None:

        def cb(v, *rest):
            callback(packer.unpack(np.asarray(v)))

    raw = optimize.minimize(
        f,
        packer.pack(x0),
        method=method,
        jac=True,
        bounds=packer.bounds(bounds),
        tol=tol,
        options=options,
        callback=cb,
        **kwargs,
    )
    return MinimizeResult(
        x=packer.unpack(np.asarray(raw.x)),
        fun=float(raw.fun),
        success=bool(raw.success),
        message=str(raw.message),
        nit=int(getattr(raw, "nit", 0)),
        nfev=int(getattr(raw, "nfev", 0)),
        njev=int(getattr(raw, "njev", 0)),
        raw=raw,
    )
