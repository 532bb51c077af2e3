"""Finite-difference checks of derivatives, in forward and reverse mode, to any order.

``check_grads(fun, args)`` compares, along a random direction ``v``:

- forward mode: ``jvp(fun, args, v)`` with the central difference
  ``(fun(x + eps v) - fun(x - eps v)) / (2 eps)``;
- reverse mode: ``<vjp(u), v>`` with ``<u, central difference>`` for a random cotangent ``u``;

in float64, then checks the derivative functions themselves (``x -> jvp(...)`` and
``x -> vjp(...)(u)``) the same way, recursively, up to ``order``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .core.pytree import tree_flatten, tree_unflatten
from .core.tracer import Tracer
from .core.transforms import jvp, vjp


class GradientCheckError(AssertionError):
    """A derivative disagrees with finite differences."""


def _to_float64(x):
    if isinstance(x, Tracer):
        return x
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.complexfloating):
        return arr.astype(np.complex128)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64)
    return x


def _is_diff(x) -> bool:
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.inexact)


def _random_like(rng, x):
    x = np.asarray(x)
    v = rng.standard_normal(x.shape)
    if np.issubdtype(x.dtype, np.complexfloating):
        v = v + 1j * rng.standard_normal(x.shape)
    return v.astype(x.dtype) if np.issubdtype(x.dtype, np.inexact) else v


def _inner(a_leaves, b_leaves) -> complex:
    total = 0.0
    for a, b in zip(a_leaves, b_leaves, strict=True):
        total = total + np.sum(np.asarray(a) * np.asarray(b))
    return total


def check_grads(
    fun: Callable,
    args: Sequence | object,
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Raise :class:`GradientCheckError` if ``fun``'s derivatives up to ``order`` disagree
    with central finite differences (in float64) in any of ``modes``.

    ``args`` is a tuple of positional arguments (a single non-tuple value is one argument).
    Integer and boolean leaves are held fixed.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.check_grads(dnp.sin, (dnp.array([0.1, 0.2]),), order=2)
    """
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"check_grads: modes must be 'fwd' and/or 'rev', got {mode!r}")
    if order < 1:
        raise ValueError(f"check_grads: order must be at least 1, got {order}")
    flat_fun, xs = _float64_leaves(fun, args, "check_grads")
    name = getattr(fun, "__name__", type(fun).__name__)
    rng = np.random.default_rng(seed)
    _check(flat_fun, xs, order, tuple(modes), eps, rtol, atol, rng, name, 1)


def gradient_errors(
    fun: Callable,
    args: Sequence | object,
    *,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float = 1e-6,
    atol: float = 1e-6,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """First-order relative errors ``(forward, reverse)`` of ``fun``'s JVP and VJP against
    central finite differences in float64, along one random direction (``None`` for a mode
    not in ``modes``). :func:`check_grads` raises on a disagreement; this measures it, for
    reports that compare many functions.

    >>> import diffsys.numpy as dnp
    >>> fwd, rev = gradient_errors(dnp.sin, (dnp.array([0.1, 0.2]),))
    >>> fwd < 1e-8 and rev < 1e-8
    True
    """
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"gradient_errors: modes must be 'fwd' and/or 'rev', got {mode!r}")
    flat, xs = _float64_leaves(fun, args, "gradient_errors")
    rng = np.random.default_rng(seed)
    vs = [_random_like(rng, x) for x in xs]
    numeric = _central_difference(flat, xs, vs, eps)
    fwd = rev = None
    if "fwd" in modes:
        _, t_out = jvp(flat, tuple(xs), tuple(vs))
        t_leaves, _ = tree_flatten(t_out)
        t = np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in t_leaves])
        n = np.concatenate([np.ravel(a) for a in numeric])
        fwd = float(np.max(np.abs(t - n), initial=0.0) / max(np.max(np.abs(n), initial=0.0), atol))
    if "rev" in modes:
        out, vjp_fn = vjp(flat, *xs)
        out_leaves, out_def = tree_flatten(out)
        us = [_random_like(rng, o) for o in out_leaves]
        cts = vjp_fn(tree_unflatten(out_def, us))
        a = float(np.real(_inner(cts, vs)))
        n = float(np.real(_inner(us, numeric)))
        rev = abs(a - n) / max(abs(n), atol)
    return fwd, rev


def _float64_leaves(fun, args, caller: str):
    """``fun`` as a function of its floating-point leaves only (cast to float64), and those
    leaves; integer and boolean leaves stay fixed."""
    args = tuple(args) if isinstance(args, tuple | list) else (args,)
    leaves, treedef = tree_flatten(args)
    leaves = [_to_float64(x) for x in leaves]
    diff_pos = [i for i, x in enumerate(leaves) if _is_diff(x)]
    if not diff_pos:
        raise ValueError(f"{caller}: no floating-point argument to differentiate")

    def flat_fun(*diff_leaves):
        full = list(leaves)
        for i, x in zip(diff_pos, diff_leaves, strict=True):
            full[i] = x
        return fun(*tree_unflatten(treedef, full))

    return flat_fun, [leaves[i] for i in diff_pos]


def _central_difference(fun, xs, vs, eps):
    plus = fun(*[x + eps * v for x, v in zip(xs, vs, strict=True)])
    minus = fun(*[x - eps * v for x, v in zip(xs, vs, strict=True)])
    p_leaves, _ = tree_flatten(plus)
    m_leaves, _ = tree_flatten(minus)
    return [
        (
            np.asarray(p, dtype=np.result_type(p, np.float64))
            - np.asarray(m, dtype=np.result_type(m, np.float64))
        )
        / (2 * eps)
        for p, m in zip(p_leaves, m_leaves, strict=True)
    ]


def _compare(analytic, numeric, rtol, atol, name, mode, order):
    a = (
        np.concatenate(
            [np.ravel(np.asarray(x, dtype=np.result_type(x, np.float64))) for x in analytic]
        )
        if analytic
        else np.zeros(0)
    )
    n = np.concatenate([np.ravel(x) for x in numeric]) if numeric else np.zeros(0)
    if a.shape != n.shape:
        raise GradientCheckError(
            f"check_grads({name}): {mode}-mode derivative of order {order} has "
            f"{a.size} values, finite differences have {n.size}"
        )
    if np.allclose(a, n, rtol=rtol, atol=atol, equal_nan=False):
        return
    abs_err = np.abs(a - n)
    rel_err = abs_err / np.maximum(np.abs(n), np.finfo(float).tiny)
    worst_abs = float(np.nanmax(abs_err)) if abs_err.size else 0.0
    worst_rel = float(np.nanmax(rel_err)) if rel_err.size else 0.0
    raise GradientCheckError(
        f"check_grads({name}): {mode}-mode derivative of order {order} disagrees with "
        f"finite differences: largest absolute error {worst_abs:.3e}, "
        f"largest relative error {worst_rel:.3e} "
        f"(rtol={rtol}, atol={atol}); analytic {a[:6]}..., numeric {n[:6]}..."
    )


def _check(fun, xs, order, modes, eps, rtol, atol, rng, name, current):
    vs = [_random_like(rng, x) for x in xs]
    numeric = _central_difference(fun, xs, vs, eps)
    if "fwd" in modes:
        _, t_out = jvp(fun, tuple(xs), tuple(vs))
        _compare(tree_flatten(t_out)[0], numeric, rtol, atol, name, "forward", current)
    if "rev" in modes:
        out, vjp_fn = vjp(fun, *xs)
        out_leaves, out_def = tree_flatten(out)
        us = [_random_like(rng, o) for o in out_leaves]
        # The VJP is the adjoint of the JVP under the real pairing Re(sum(a * b)) (JAX's
        # convention for complex values); for complex outputs, pairing with u and with i*u
        # together checks the whole complex identity. A real output's cotangent stays real
        # (an imaginary cotangent does not pair with a real value).
        complex_out = [np.iscomplexobj(o) for o in out_leaves]
        scales = [1.0, 1j] if any(complex_out) else [1.0]
        for scale in scales:
            u_scaled = [scale * u if c else u for u, c in zip(us, complex_out, strict=True)]
            cts = vjp_fn(tree_unflatten(out_def, u_scaled))
            analytic = np.real(_inner(cts, vs))
            expected = np.real(_inner(u_scaled, numeric))
            _compare(
                [np.atleast_1d(analytic)],
                [np.atleast_1d(expected)],
                rtol,
                atol,
                name,
                "reverse",
                current,
            )
    if current >= order:
        return
    if "fwd" in modes:

        def jvp_fun(*ys):
            return jvp(fun, tuple(ys), tuple(vs))[1]

        jvp_fun.__name__ = f"jvp({name})"
        _check(jvp_fun, xs, order, modes, eps, rtol, atol, rng, name, current + 1)
    if "rev" in modes:
        out_leaves, out_def = tree_flatten(fun(*xs))
        us = [_random_like(rng, o) for o in out_leaves]

        def vjp_fun(*ys):
            return vjp(fun, *ys)[1](tree_unflatten(out_def, us))

        _check(vjp_fun, xs, order, modes, eps, rtol, atol, rng, name, current + 1)
