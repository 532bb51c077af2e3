"""Custom derivative rules (``custom_vjp``, ``custom_jvp``), ``stop_gradient`` and ``checkpoint``.

All three record one node on the reverse tape whose backward pass is a closure, next to the
ordinary primitives; arguments and results may be pytrees.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from . import ad_util
from .forward import JVPTrace, JVPTracer, split_tangents
from .primitive import Primitive, registry
from .pytree import same_structure, tree_flatten, tree_map, tree_unflatten
from .reverse import ReverseTrace, ReverseTracer
from .tracer import top_trace
from .transforms import vjp


def _unbox_for(trace: ReverseTrace, leaves: list):
    """Values of ``leaves`` one level down, and ``(leaf index, slot)`` of ``trace``'s tracers."""
    vals, parents = [], []
    for i, x in enumerate(leaves):
        if isinstance(x, ReverseTracer) and x._trace is trace:
            vals.append(x._value)
            parents.append((i, x._slot))
        else:
            vals.append(x)
    return vals, parents


def _registered(kind: str, fun) -> Primitive:
    """A registry entry for a function with custom rules, named after it (made unique)."""
    base = f"{kind}:{getattr(fun, '__module__', '?')}.{getattr(fun, '__qualname__', fun)}"
    name, k = base, 1
    while name in registry:
        k += 1
        name = f"{base}#{k}"
    return Primitive(name, fun)


def _record(trace, prim, vals, parents, out, bwd_leaves):
    """Put ``out`` on ``trace``'s tape with ``bwd_leaves(ct_leaves) -> per-input-leaf cts``."""
    out_leaves, out_def = tree_flatten(out)

    def bwd(g):
        gs = list(g) if len(out_leaves) != 1 else [g]
        cts = bwd_leaves(tree_unflatten(out_def, gs))
        return {i: cts[i] for i, _ in parents if cts[i] is not None}

    if len(out_leaves) == 1:
        tracer = trace.record_custom(prim, vals, out_leaves[0], parents, bwd, False)
        return tree_unflatten(out_def, [tracer])
    tracers = trace.record_custom(prim, vals, out_leaves, parents, bwd, True)
    return tree_unflatten(out_def, tracers)


class custom_vjp:
    """A function with a user-defined reverse-mode rule (JAX-style).

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> @ds.custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> def fwd(x):
    ...     return x, None
    >>> def bwd(res, g):
    ...     return (dnp.clip(g, -1.0, 1.0),)
    >>> clip_gradient.defvjp(fwd, bwd)
    >>> ds.grad(lambda x: 5.0 * clip_gradient(x))(2.0)
    array(1.)

    ``fwd(*args) -> (out, residuals)``; ``bwd(residuals, g) -> tuple`` with one cotangent per
    argument (a pytree like the argument, or ``None`` for no gradient). Under ``jvp`` and
    ``vmap`` the function itself is differentiated/batched.
    """

    def __init__(self, fun: Callable) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.primitive = _registered("custom_vjp", fun)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        self.fwd = fwd
        self.bwd = bwd

    def __call__(self, *args):
        name = getattr(self.fun, "__name__", "custom_vjp")
        if self.fwd is None:
            raise TypeError(f"custom_vjp function '{name}' has no rule: call defvjp(fwd, bwd)")
        leaves, treedef = tree_flatten(args)
        trace = top_trace(leaves)
        if not isinstance(trace, ReverseTrace):
            return self.fun(*args)
        vals, parents = _unbox_for(trace, leaves)
        if not parents:
            return self.fun(*args)
        out, residuals = self.fwd(*tree_unflatten(treedef, vals))

        def bwd_leaves(g):
            cts = self.bwd(residuals, g)
            if not isinstance(cts, tuple | list) or len(cts) != len(args):
                raise TypeError(
                    f"custom_vjp '{name}': bwd must return a tuple with one cotangent per "
                    f"argument ({len(args)}), got {type(cts).__name__}"
                    + (f" of length {len(cts)}" if isinstance(cts, tuple | list) else "")
                )
            flat = []
            for k, (arg, ct) in enumerate(zip(args, cts, strict=True)):
                arg_leaves, arg_def = tree_flatten(arg)
                if ct is None:
                    flat.extend([None] * len(arg_leaves))
                    continue
                ct_leaves, ct_def = tree_flatten(ct)
                if not same_structure(arg_def, ct_def):
                    raise TypeError(
                        f"custom_vjp '{name}': cotangent {k} from bwd has structure {ct_def}, "
                        f"but argument {k} has structure {arg_def}"
                    )
                for a, c in zip(arg_leaves, ct_leaves, strict=True):
                    if c is not None and np.shape(c) != np.shape(a):
                        raise ValueError(
                            f"custom_vjp '{name}': bwd returned a cotangent of shape "
                            f"{np.shape(c)} for argument {k} of shape {np.shape(a)}"
                        )
                flat.extend(ct_leaves)
            return flat

        return _record(trace, self.primitive, vals, parents, out, bwd_leaves)


class custom_jvp:
    """A function with a user-defined forward-mode rule (JAX-style).

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> @ds.custom_jvp
    ... def log1pexp(x):
    ...     return dnp.log1p(dnp.exp(x))
    >>> @log1pexp.defjvp
    ... def log1pexp_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return log1pexp(x), t * (1.0 - 1.0 / (1.0 + dnp.exp(x)))
    >>> float(ds.grad(log1pexp)(1000.0))
    1.0

    ``rule(primals, tangents) -> (out, tangent_out)``. Reverse mode uses the same rule: the
    tangent map is linear, so its transpose is the VJP of the rule's tangent output.
    """

    def __init__(self, fun: Callable) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.primitive = _registered("custom_jvp", fun)
        self.rule: Callable | None = None

    def defjvp(self, rule: Callable) -> Callable:
        self.rule = rule
        return rule

    def __call__(self, *args):
        name = getattr(self.fun, "__name__", "custom_jvp")
        if self.rule is None:
            raise TypeError(f"custom_jvp function '{name}' has no rule: call defjvp(rule)")
        leaves, treedef = tree_flatten(args)
        trace = top_trace(leaves)
        if isinstance(trace, JVPTrace):
            return self._jvp(trace, leaves, treedef)
        if not isinstance(trace, ReverseTrace):
            return self.fun(*args)
        vals, parents = _unbox_for(trace, leaves)
        if not parents:
            return self.fun(*args)
        out = self(*tree_unflatten(treedef, vals))
        diff = [i for i, _ in parents]

        def bwd_leaves(g):
            def tangent_map(*ts):
                full = [ad_util.zeros_like_value(v) for v in vals]
                for i, t in zip(diff, ts, strict=True):
                    full[i] = t
                primals = tuple(tree_unflatten(treedef, vals))
                return self.rule(primals, tuple(tree_unflatten(treedef, full)))[1]

            _, lin_vjp = vjp(tangent_map, *[ad_util.zeros_like_value(vals[i]) for i in diff])
            cts = [None] * len(vals)
            for i, ct in zip(diff, lin_vjp(g), strict=True):
                cts[i] = ct
            return cts

        return _record(trace, self.primitive, vals, parents, out, bwd_leaves)

    def _jvp(self, trace, leaves, treedef):
        primals, tangents = split_tangents(trace, leaves)
        out, t_out = self.rule(
            tuple(tree_unflatten(treedef, primals)), tuple(tree_unflatten(treedef, tangents))
        )
        return tree_map(lambda o, t: JVPTracer(trace, o, t), out, t_out)


# --- stop_gradient ----------------------------------------------------------------------------

_stop_gradient = Primitive("stop_gradient", lambda x: x, zero_derivative=True)
_stop_gradient.defbatch(lambda args, batched: args[0])


def stop_gradient(x):
    """``x`` as a constant: no derivative flows through it (in every mode, at every order).

    >>> import diffsys as ds
    >>> ds.grad(lambda x: x * ds.stop_gradient(x))(3.0)
    array(3.)
    """
    return tree_map(_stop_gradient, x)


# --- checkpoint ----------------------------------------------------------------------------


_checkpoint_p = Primitive("checkpoint", lambda fun, *args: fun(*args))


def checkpoint(fun: Callable, policy: str | None = None) -> Callable:
    """``fun`` whose intermediate values are recomputed in the backward pass, not stored.

    Reverse mode records one node for the whole call and keeps only its inputs; the backward
    pass runs ``fun`` again under a fresh VJP. Trades one extra forward pass for memory.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> f = ds.checkpoint(lambda x: dnp.sin(dnp.sin(x)))
    >>> float(ds.grad(f)(0.0))
    1.0
    """
    if policy is not None:
        raise NotImplementedError(
            f"checkpoint: policy {policy!r} is not supported yet; use policy=None "
            "(recompute everything inside)"
        )

    @functools.wraps(fun)
    def checkpointed(*args):
        leaves, treedef = tree_flatten(args)
        trace = top_trace(leaves)
        if not isinstance(trace, ReverseTrace):
            return fun(*args)
        vals, parents = _unbox_for(trace, leaves)
        if not parents:
            return fun(*args)
        out = fun(*tree_unflatten(treedef, vals))
        diff = [i for i, _ in parents]

        def bwd_leaves(g):
            def f_diff(*xs):
                full = list(vals)
                for i, x in zip(diff, xs, strict=True):
                    full[i] = x
                return fun(*tree_unflatten(treedef, full))

            _, f_vjp = vjp(f_diff, *[vals[i] for i in diff])
            cts = [None] * len(vals)
            for i, ct in zip(diff, f_vjp(g), strict=True):
                cts[i] = ct
            return cts

        return _record(trace, _checkpoint_p, vals, parents, out, bwd_leaves)

    return checkpointed
