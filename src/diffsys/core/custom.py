"""Custom derivative rules (``custom_vjp``, ``custom_jvp``), ``stop_gradient`` and ``checkpoint``.

All three record one node on the reverse tape whose backward pass is a closure, next to the
ordinary primitives; arguments and results may be pytrees.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from . import ad_util, remat
from .forward import JVPTrace, JVPTracer, split_tangents
from .primitive import Primitive, registry
from .pytree import same_structure, tree_flatten, tree_map, tree_unflatten
from .reverse import ReverseTrace, ReverseTracer, _CustomNode
from .tracer import Tracer, top_trace
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


class _CustomCall(Primitive):
    """A ``custom_vjp``/``custom_jvp`` call recorded in a graph as one node: flat argument
    leaves in, flat result leaves out (``in_def`` rebuilds the arguments). On plain arrays it
    runs the function's body; on tracers (a transformed graph) it calls the custom function
    itself, so its rule applies under every transform."""

    __slots__ = ("owner",)

    def __call__(self, *leaves, in_def):
        for x in leaves:
            if isinstance(x, Tracer):
                return tree_flatten(self.owner(*tree_unflatten(in_def, leaves)))[0]
        return self.impl(*leaves, in_def=in_def)


def _call_primitive(obj) -> _CustomCall:
    """``obj``'s graph primitive, made on first use; named as ``obj.primitive`` (unregistered:
    its behaviour is a closure, so ``Graph.save`` refuses it by that name)."""
    prim = obj.__dict__.get("_call_primitive")
    if prim is None:

        def body(*leaves, in_def):
            return tree_flatten(obj.fun(*tree_unflatten(in_def, leaves)))[0]

        prim = _CustomCall(obj.primitive.name, body, multiple_results=True, register=False)
        prim.owner = obj
        obj._call_primitive = prim
    return prim


def _graph_call(obj, trace, leaves, treedef):
    """``obj(*args)`` on a graph-recording ``trace`` (it has ``record_custom_call``): one node.

    The result is computed by ``obj`` on the values one level down (so a transform below the
    graph applies the custom rule too); the graph records the call, not the body."""
    vals = [x._value if isinstance(x, Tracer) and x._trace is trace else x for x in leaves]
    out_leaves, out_def = tree_flatten(obj(*tree_unflatten(treedef, vals)))
    outs = trace.record_custom_call(_call_primitive(obj), leaves, {"in_def": treedef}, out_leaves)
    return tree_unflatten(out_def, outs)


def _check_nondiff_argnums(kind: str, fun, nums) -> tuple[int, ...]:
    nums = (nums,) if isinstance(nums, int) else tuple(nums)
    for i in nums:
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise TypeError(
                f"{kind} '{getattr(fun, '__name__', fun)}': nondiff_argnums must be "
                f"non-negative ints, got {nums!r}"
            )
    return tuple(sorted(set(nums)))


def _split_nondiff(obj, kind: str, args: tuple) -> tuple[list, tuple, Callable]:
    """The non-differentiable arguments (``obj.nondiff_argnums``), the others, and a function
    putting the others back among them: ``merge(diff_args) -> all args``."""
    nums = obj.nondiff_argnums
    if nums[-1] >= len(args):
        raise TypeError(
            f"{kind} '{obj.__name__}': nondiff_argnums {nums} names argument {nums[-1]}, but "
            f"the function was called with {len(args)} argument(s)"
        )
    nondiff = [args[i] for i in nums]
    for i, value in zip(nums, nondiff, strict=True):
        if any(isinstance(x, Tracer) for x in tree_flatten(value)[0]):
            raise TypeError(
                f"{kind} '{obj.__name__}': argument {i} is in nondiff_argnums but holds a "
                "traced value (it depends on a value being differentiated, batched or "
                "traced by ds.jit/ds.trace). nondiff_argnums is for values that are never "
                "traced (functions, Python numbers, configuration); pass arrays as ordinary "
                "arguments and return None as their cotangent (custom_vjp) or ignore their "
                "tangent (custom_jvp)"
            )
    skip = set(nums)
    diff = tuple(a for i, a in enumerate(args) if i not in skip)

    def merge(diff_args):
        full = list(diff_args)
        for i, v in zip(nums, nondiff, strict=True):
            full.insert(i, v)
        return full

    return nondiff, diff, merge


def _bound(obj, merge):
    """A copy of custom function ``obj`` of its differentiable arguments only (the others
    fixed by ``merge``), sharing its primitive."""
    bound = object.__new__(type(obj))
    bound.__dict__.update(
        {k: v for k, v in obj.__dict__.items() if k not in ("_call_primitive", "__wrapped__")}
    )
    bound.fun = lambda *d: obj.fun(*merge(d))
    bound.nondiff_argnums = ()
    return bound


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

    ``nondiff_argnums`` (JAX's meaning) names arguments that get no cotangent, such as a
    function or a Python number: ``fwd`` still takes every argument, ``bwd`` takes them
    first, ``bwd(*nondiff_args, residuals, g)``, and returns cotangents for the others only.

    >>> import functools
    >>> @functools.partial(ds.custom_vjp, nondiff_argnums=(0,))
    ... def apply(f, x):
    ...     return f(x)
    >>> apply.defvjp(lambda f, x: (f(x), x), lambda f, x, g: (g * 2.0,))
    >>> ds.grad(lambda x: apply(dnp.sin, x))(1.0)
    array(2.)
    """

    def __init__(self, fun: Callable, nondiff_argnums: int | tuple[int, ...] = ()) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = _check_nondiff_argnums("custom_vjp", fun, nondiff_argnums)
        self.primitive = _registered("custom_vjp", fun)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        self.fwd = fwd
        self.bwd = bwd

    def __call__(self, *args):
        name = getattr(self, "__name__", "custom_vjp")
        if self.fwd is None:
            raise TypeError(f"custom_vjp function '{name}' has no rule: call defvjp(fwd, bwd)")
        if self.nondiff_argnums:
            nondiff, diff, merge = _split_nondiff(self, "custom_vjp", args)
            bound = _bound(self, merge)
            fwd, bwd = self.fwd, self.bwd
            bound.fwd = lambda *d: fwd(*merge(d))
            bound.bwd = lambda res, g: bwd(*nondiff, res, g)
            return bound(*diff)
        leaves, treedef = tree_flatten(args)
        trace = top_trace(leaves)
        if hasattr(trace, "record_custom_call"):  # ds.trace: one node keeping the rule
            return _graph_call(self, trace, leaves, treedef)
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

    ``nondiff_argnums`` (JAX's meaning) names arguments without tangents, such as a function:
    the rule takes them first, ``rule(*nondiff_args, primals, tangents)``, and ``primals``
    and ``tangents`` hold the other arguments only.

    >>> import functools
    >>> @functools.partial(ds.custom_jvp, nondiff_argnums=(0,))
    ... def apply(f, x):
    ...     return f(x)
    >>> @apply.defjvp
    ... def apply_jvp(f, primals, tangents):
    ...     return f(primals[0]), 2.0 * tangents[0]
    >>> ds.grad(lambda x: apply(dnp.sin, x))(1.0)
    array(2.)
    """

    def __init__(self, fun: Callable, nondiff_argnums: int | tuple[int, ...] = ()) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = _check_nondiff_argnums("custom_jvp", fun, nondiff_argnums)
        self.primitive = _registered("custom_jvp", fun)
        self.rule: Callable | None = None

    def defjvp(self, rule: Callable) -> Callable:
        self.rule = rule
        return rule

    def __call__(self, *args):
        name = getattr(self, "__name__", "custom_jvp")
        if self.rule is None:
            raise TypeError(f"custom_jvp function '{name}' has no rule: call defjvp(rule)")
        if self.nondiff_argnums:
            nondiff, diff, merge = _split_nondiff(self, "custom_jvp", args)
            bound = _bound(self, merge)
            rule = self.rule
            bound.rule = lambda primals, tangents: rule(*nondiff, primals, tangents)
            return bound(*diff)
        leaves, treedef = tree_flatten(args)
        trace = top_trace(leaves)
        if hasattr(trace, "record_custom_call"):  # ds.trace: one node keeping the rule
            return _graph_call(self, trace, leaves, treedef)
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

# Products whose outputs "dots_saveable" keeps: every dot-like product in diffsys.numpy is an
# einsum or a matmul, and nn.Linear is one primitive.
DOT_PRIMITIVES = frozenset({"matmul", "einsum", "nn.linear"})


def _dots_saveable(prim, *args, **params) -> bool:
    return prim.name in DOT_PRIMITIVES


def _everything_saveable(prim, *args, **params) -> bool:
    return True


def _nothing_saveable(prim, *args, **params) -> bool:
    return False


class checkpoint_policies:
    """Named policies for :func:`checkpoint` (JAX's names). A policy is a function
    ``policy(prim, *args, **params) -> bool``: ``True`` keeps the output of that primitive
    application for the backward pass, ``False`` recomputes it there."""

    nothing_saveable = staticmethod(_nothing_saveable)
    everything_saveable = staticmethod(_everything_saveable)
    dots_saveable = staticmethod(_dots_saveable)
    checkpoint_dots = staticmethod(_dots_saveable)

    @staticmethod
    def save_only_these(*names: str):
        """Keep the outputs of the primitives with these names (``Primitive.name``)."""
        wanted = frozenset(names)
        return lambda prim, *args, **params: prim.name in wanted

    @staticmethod
    def save_anything_except(*names: str):
        """Keep every output except those of the primitives with these names."""
        unwanted = frozenset(names)
        return lambda prim, *args, **params: prim.name not in unwanted


_NAMED_POLICIES = {
    "nothing_saveable": None,
    "everything_saveable": _everything_saveable,
    "dots_saveable": _dots_saveable,
    "checkpoint_dots": _dots_saveable,
}


def _resolve_policy(policy):
    if policy is None or policy is _nothing_saveable:
        return None
    if isinstance(policy, str):
        if policy not in _NAMED_POLICIES:
            raise ValueError(
                f"checkpoint: unknown policy {policy!r}; use one of "
                f"{', '.join(repr(k) for k in _NAMED_POLICIES)}, None, or a function "
                "policy(prim, *args, **params) -> bool (True: keep that primitive's output)"
            )
        return _NAMED_POLICIES[policy]
    if callable(policy):
        return policy
    raise TypeError(
        f"checkpoint: policy must be None, a name or a function, got {type(policy).__name__}"
    )


def checkpoint(fun: Callable, policy=None) -> Callable:
    """``fun`` whose intermediate values are recomputed in the backward pass, not stored.

    Reverse mode records one node for the whole call and keeps only its inputs; the backward
    pass runs ``fun`` again and differentiates that run. Trades one extra forward pass for
    memory. ``policy`` chooses what is kept instead of recomputed (JAX's meaning):

    - ``None`` or ``"nothing_saveable"``: nothing, everything inside is recomputed;
    - ``"everything_saveable"``: everything (no recomputation: ``fun`` itself);
    - ``"dots_saveable"``: the outputs of matrix products (``matmul``, ``einsum`` and what is
      built on them, ``nn.Linear``), the rest is recomputed;
    - a function ``policy(prim, *args, **params) -> bool`` called for each primitive
      application inside (``prim.name`` names it): ``True`` keeps its output.

    With a policy that keeps something, the backward pass replays the primitives recorded in
    the forward pass (no Python code of ``fun`` runs again) and recomputes only those whose
    outputs were not kept. ``fun`` may read traced values it is not given (a closure over
    parameters): they receive their gradients too. Forward mode and ``vmap`` store nothing,
    so there ``fun`` simply runs.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> f = ds.checkpoint(lambda x: dnp.sin(dnp.sin(x)))
    >>> float(ds.grad(f)(0.0))
    1.0
    """
    saveable = _resolve_policy(policy)
    if saveable is _everything_saveable:
        return fun

    @functools.wraps(fun)
    def checkpointed(*args):
        leaves, treedef = tree_flatten(args)
        trace = remat.node_trace(leaves, fun)
        if trace is None:
            return fun(*args)
        return _checkpoint_node(trace, fun, leaves, treedef, saveable)

    return checkpointed


class _Restart(Exception):
    """The function read a value traced above the chosen trace: run again on ``trace``."""

    def __init__(self, trace):
        super().__init__()
        self.trace = trace


def _checkpoint_node(trace, fun, leaves, treedef, saveable):
    try:
        if saveable is None:
            return _recompute_node(trace, fun, leaves, treedef)
        return _replay_node(trace, fun, leaves, treedef, saveable)
    except _Restart as r:  # a traced value missed by remat.closure_tracers: start over there
        if not isinstance(r.trace, ReverseTrace):
            return fun(*tree_unflatten(treedef, leaves))
        return _checkpoint_node(r.trace, fun, leaves, treedef, saveable)


def _run_on(trace, rec, fun, treedef, args):
    """Run ``fun`` inside the recording; its flat outputs and their structure."""
    out = fun(*tree_unflatten(treedef, args))
    out_leaves, out_def = tree_flatten(out)
    higher = remat.higher_trace(out_leaves, trace)
    if higher is not None:
        raise _Restart(higher)
    return out_leaves, out_def


def _finish_node(trace, vals, parents, captured, out_leaves, out_def, bwd_leaves):
    """Record the node: inputs ``parents`` then the captured slots; ``bwd_leaves(gs)`` maps the
    output cotangents to ``{input index: cotangent}`` and ``{captured slot: cotangent}``."""
    n = len(vals)
    cap_slots = list(captured)
    all_parents = list(parents) + [(n + j, s) for j, s in enumerate(cap_slots)]
    out_vals = [remat.unbox(trace, o) for o in out_leaves]
    if not all_parents:  # nothing traced reaches the outputs
        return tree_unflatten(out_def, out_vals)
    known = set(cap_slots)

    def bwd(g):
        gs = list(g) if len(out_vals) != 1 else [g]
        in_cts, cap_cts = bwd_leaves(gs)
        extra = set(cap_cts) - known
        if extra:
            raise RuntimeError(
                "checkpoint: the recomputation read traced values the forward pass did not "
                f"(slots {sorted(extra)}); the function must take the same path both times"
            )
        result = {i: ct for i, ct in in_cts.items() if ct is not None}
        for j, s in enumerate(cap_slots):
            ct = cap_cts.get(s)
            if ct is not None:
                result[n + j] = ct
        return result

    # the node's arguments: the inputs, then the captured values (held elsewhere anyway)
    node_vals = list(vals) + [captured[s] for s in cap_slots]
    if len(out_vals) == 1:
        tracer = trace.record_custom(_checkpoint_p, node_vals, out_vals[0], all_parents, bwd, False)
        return tree_unflatten(out_def, [tracer])
    tracers = trace.record_custom(_checkpoint_p, node_vals, out_vals, all_parents, bwd, True)
    return tree_unflatten(out_def, tracers)


def _recompute_node(trace, fun, leaves, treedef):
    """Policy None: keep the inputs only; the backward pass runs ``fun`` again."""
    vals, parents = _unbox_for(trace, leaves)
    with remat.Recording(trace) as rec:
        out_leaves, out_def = _run_on(trace, rec, fun, treedef, vals)
        captured = rec.captured(out_leaves)

    def bwd_leaves(gs):
        with remat.Recording(trace) as rec:
            boxed, slots = _box_inputs(rec, vals, parents)
            outs, _ = _run_on(trace, rec, fun, treedef, boxed)
            cts: dict = {}
            remat.seed(cts, trace, outs, gs)
            remat.backprop(rec.entries, cts, trace.ops)
            in_cts = {i: cts.pop(s, None) for i, s in slots.items()}
            cap_cts = {s: ct for s, ct in cts.items() if s < rec.base}
        return in_cts, cap_cts

    return _finish_node(trace, vals, parents, captured, out_leaves, out_def, bwd_leaves)


_RECOMPUTE = object()


def _box_inputs(rec, vals, parents):
    """``vals`` with the differentiated ones boxed as inputs of the recording ``rec``, and
    the slot each of them got (by argument index)."""
    boxed = list(vals)
    slots = {}
    for i, _ in parents:
        t = rec.box(vals[i])
        boxed[i] = t
        slots[i] = t._slot
    return boxed, slots


def _replay_node(trace, fun, leaves, treedef, saveable):
    """A policy keeps some outputs: record the forward pass, keep its structure (the
    primitives, their constant arguments and the kept outputs), drop the other values; the
    backward pass replays the structure, recomputing what was dropped."""
    vals, parents = _unbox_for(trace, leaves)
    with remat.Recording(trace) as rec:
        boxed, slots = _box_inputs(rec, vals, parents)
        out_leaves, out_def = _run_on(trace, rec, fun, treedef, boxed)
        captured = rec.captured(out_leaves)
        base, end = rec.base, rec.end
        out_slots = [
            o._slot if o.__class__ is ReverseTracer and o._trace is trace else None
            for o in out_leaves
        ]
        plan = []
        for op, evals, out, eparents, slot, n in rec.entries:
            prim, params = trace.ops[op]
            internal = tuple((i, s) for i, s in enumerate(eparents) if s is not None and s >= base)
            kept = list(evals)
            for i, _ in internal:
                kept[i] = None  # recomputed or kept upstream: filled in at replay
            if prim.__class__ is _CustomNode or saveable(prim, *evals, **(params or {})):
                saved = out
            else:
                saved = _RECOMPUTE
            plan.append((op, prim, kept, params, saved, eparents, internal, slot, n))
        rec.entries.clear()
    out_vals_leaves = [remat.unbox(trace, o) for o in out_leaves]

    def bwd_leaves(gs):
        with remat.Recording(trace, reserve=end):
            env = {s: vals[i] for i, s in slots.items()}
            entries = []
            for op, prim, kept, params, saved, eparents, internal, slot, n in plan:
                args = list(kept)
                for i, s in internal:
                    args[i] = env[s]
                if saved is _RECOMPUTE:
                    out = prim(*args, **params) if params else prim(*args)
                else:
                    out = saved
                if n:
                    for k in range(n):
                        env[slot + k] = out[k]
                else:
                    env[slot] = out
                entries.append((op, args, out, eparents, slot, n))
            cts: dict = {}
            for s, g in zip(out_slots, gs, strict=True):
                if s is not None and g is not None:
                    remat.accumulate(cts, s, g)
            del env
            remat.backprop(entries, cts, trace.ops)
            in_cts = {i: cts.pop(s, None) for i, s in slots.items()}
            cap_cts = {s: ct for s, ct in cts.items() if s < base}
        return in_cts, cap_cts

    return _finish_node(trace, vals, parents, captured, out_vals_leaves, out_def, bwd_leaves)
