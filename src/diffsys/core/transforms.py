"""The user-facing transforms: grad, value_and_grad, vjp, jvp, vmap, jacfwd, jacrev, hessian,
hvp, elementwise_grad.

Arguments and results may be pytrees. ``argnums`` is an int (one gradient) or a tuple (a
tuple of gradients). Only floating-point and complex leaves can be differentiated.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import numpy as np

from . import ad_util
from .batching import BatchTrace, BatchTracer
from .forward import JVPTrace, JVPTracer, split_tangents
from .owned import mutable, read_only
from .pytree import key_paths, same_structure, tree_flatten, tree_map, tree_unflatten
from .reverse import ReverseTrace, ReverseTracer
from .tracer import Tracer

# --- argument handling ---------------------------------------------------------------------


def _normalize_argnums(argnums, nargs: int, fname: str) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise ValueError(f"{fname}: argnums must name at least one argument")
    out = []
    for a in nums:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"{fname}: argnums must be ints, got {a!r}")
        if not -nargs <= a < nargs:
            raise ValueError(
                f"{fname}: argnums {argnums!r} is out of range for a call with {nargs} "
                "positional argument(s)"
            )
        out.append(a % nargs)
    return tuple(out), single


def _describe(fname: str, argnum: int, leaf_index: int, n_leaves: int) -> str:
    where = f"argument {argnum}"
    if n_leaves > 1:
        where += f" (leaf {leaf_index} of its pytree)"
    return where


def as_diff_leaf(x, fname: str, where: str):
    """Check that ``x`` can be differentiated and return it as an array (or tracer)."""
    if isinstance(x, Tracer | np.ndarray | np.generic):
        dtype = x.dtype
    elif isinstance(x, bool | int):
        raise TypeError(
            f"{fname}: cannot differentiate with respect to {where}: it is a Python "
            f"{type(x).__name__} ({x!r}); only floating-point and complex values have "
            "gradients. Pass a float (e.g. 1.0) or exclude it from argnums"
        )
    elif isinstance(x, float | complex):
        return np.asarray(x)
    else:
        raise TypeError(
            f"{fname}: cannot differentiate with respect to {where}: expected an array or a "
            f"float, got an object of type {type(x).__name__}"
        )
    if dtype.kind not in "fc":  # not inexact (np.issubdtype costs microseconds per leaf)
        raise TypeError(
            f"{fname}: cannot differentiate with respect to {where} of dtype {dtype}: only "
            "floating-point and complex arrays have gradients. Convert it "
            "(x.astype(float)) or exclude it from argnums"
        )
    return x


def _flatten_diff_args(args, argnums, fname):
    """Flatten the differentiated arguments into checked leaves, with their structures."""
    leaves, treedefs = [], []
    for a in argnums:
        arg_leaves, treedef = tree_flatten(args[a])
        n = len(arg_leaves)
        leaves.extend(
            as_diff_leaf(x, fname, _describe(fname, a, k, n)) for k, x in enumerate(arg_leaves)
        )
        treedefs.append(treedef)
    return leaves, treedefs


def _rebuild_args(args, argnums, treedefs, leaves):
    new_args = list(args)
    k = 0
    for a, treedef in zip(argnums, treedefs, strict=True):
        n = treedef.num_leaves
        new_args[a] = tree_unflatten(treedef, leaves[k : k + n])
        k += n
    return new_args


def _group(leaves, treedefs, single):
    """Split flat per-leaf results back into one pytree per differentiated argument."""
    out, k = [], 0
    for treedef in treedefs:
        n = treedef.num_leaves
        out.append(tree_unflatten(treedef, leaves[k : k + n]))
        k += n
    return out[0] if single else tuple(out)


def _split_aux(out, has_aux: bool, fname: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError(
            f"{fname}(..., has_aux=True) requires the function to return a pair "
            f"(output, aux), got {type(out).__name__}"
        )
    return out[0], out[1]


def _unbox(trace, tree):
    """Replace ``trace``'s tracers in ``tree`` by their values (lower levels stay traced)."""

    def leaf(x):
        return x._value if isinstance(x, Tracer) and x._trace is trace else x

    return tree_map(leaf, tree)


def _finish_cotangent(ct, leaf):
    """The gradient for one input leaf: zeros if unreached, cast to the leaf's dtype."""
    if ct is None:
        return ad_util.zeros_like_value(leaf)
    if np.shape(ct) != np.shape(leaf):
        raise RuntimeError(
            f"internal error: a cotangent of shape {np.shape(ct)} reached an input of shape "
            f"{np.shape(leaf)}; a VJP rule returned the wrong shape"
        )
    dtype = leaf.dtype
    ct_dtype = getattr(ct, "dtype", None)
    if ct_dtype != dtype:
        if np.issubdtype(ct_dtype, np.complexfloating) and dtype.kind != "c":
            ct = ad_util.real_part(ct)
        ct = ad_util.cast(ct, dtype=dtype)
    if isinstance(ct, np.generic):  # a gradient is an array, like its primal: 0-d too
        ct = np.asarray(ct)
    return ct


# --- reverse mode ---------------------------------------------------------------------------


def _reverse_pass(fun, args, kwargs, argnums, has_aux, fname, own=False):
    """Run ``fun`` under a new reverse trace; return what the VJP needs.

    With ``own`` (the tape outlives the call: ``vjp``), input leaves that the caller could
    change afterwards are copied first, and so are the constants the tape reads
    (:meth:`ReverseTrace.own_constants`): a later backward pass sees the forward pass's
    values whatever the caller does to its arrays.
    """
    leaves, treedefs = _flatten_diff_args(args, argnums, fname)
    if own:
        leaves = [x.copy() if mutable(x) else x for x in leaves]
    trace = ReverseTrace()
    boxed = [trace.new_input(x) for x in leaves]
    out = fun(*_rebuild_args(args, argnums, treedefs, boxed), **kwargs)
    out, aux = _split_aux(out, has_aux, fname)
    if own:
        trace.own_constants()
    return trace, leaves, treedefs, out, aux


def _handed_out(trace, tree):
    """``tree`` with ``trace``'s tracers replaced by their values, for the caller. The tape
    holds these values too, so arrays are handed out as read-only views: ``y -= 1`` on a
    ``vjp`` output raises instead of changing what its ``vjp_fn`` computes (no copy, no
    memory: a ``vjp`` under ``checkpoint`` still holds only its output)."""

    def leaf(x):
        if isinstance(x, Tracer) and x._trace is trace:
            return read_only(x._value)
        return x

    return tree_map(leaf, tree)


def _check_scalar_output(out, fname: str):
    if out is None or isinstance(out, tuple | list | dict):
        if out is None:
            what = "None"
        else:
            items = out.values() if isinstance(out, dict) else out
            shapes = ", ".join(_shape_or_type(x) for x in items)
            what = f"a {type(out).__name__} of {len(out)} item(s) ({shapes})"
        raise TypeError(
            f"{fname} requires a function that returns a scalar, but it returned {what}"
            + (" (a missing `return`?)" if out is None else "")
            + f". To return auxiliary data beside the value, use {fname}(fun, has_aux=True) "
            "and return a pair (value, aux); to differentiate several outputs use "
            "diffsys.jacrev or diffsys.vjp"
        )
    shape = np.shape(out)
    if shape != ():
        raise TypeError(
            f"{fname} requires a function with a scalar output, got an output of shape "
            f"{shape}. For the full Jacobian use diffsys.jacrev (or jacfwd); for the gradient "
            "of sum(f(x)) use diffsys.elementwise_grad; for a vector-Jacobian product with "
            "your own cotangent use diffsys.vjp"
        )
    dtype = getattr(out, "dtype", None)
    if dtype is None:
        dtype = np.result_type(out)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"{fname} requires a real floating-point scalar output, got dtype {dtype}"
            + (
                "; for complex outputs differentiate the real part (dnp.real) or use vjp"
                if np.issubdtype(dtype, np.complexfloating)
                else ""
            )
        )


def _shape_or_type(x) -> str:
    if isinstance(x, Tracer | np.ndarray | np.generic | float | int | complex):
        return f"shape {np.shape(x)}"
    return type(x).__name__


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """A function returning ``(fun(*args), gradient)``; with ``has_aux``,
    ``((value, aux), gradient)``.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.value_and_grad(lambda x: dnp.sum(x ** 2))(dnp.array([1.0, 2.0]))
    (np.float64(5.0), array([2., 4.]))
    """

    @functools.wraps(fun)
    def value_and_grad_fun(*args, **kwargs):
        nums, single = _normalize_argnums(argnums, len(args), "grad")
        trace, leaves, treedefs, out, aux = _reverse_pass(fun, args, kwargs, nums, has_aux, "grad")
        _check_scalar_output(out, "grad")
        if isinstance(out, ReverseTracer) and out._trace is trace:
            seed = ad_util.ones_like_value(out)
            cts = trace.backward([(out._slot, seed)], len(leaves), consume=True)
            value = out._value
        else:
            cts = [None] * len(leaves)
            value = out
        grads = [_finish_cotangent(ct, leaf) for ct, leaf in zip(cts, leaves, strict=True)]
        grads = _group(grads, treedefs, single)
        if has_aux:
            return (value, _unbox(trace, aux)), grads
        return value, grads

    return value_and_grad_fun


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """The gradient of a scalar-valued function.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.grad(dnp.sin)(0.0)
    array(1.)
    """
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def grad_fun(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_fun


def vjp(fun: Callable, *primals, has_aux: bool = False):
    """``(fun(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` returns one cotangent per primal.

    ``vjp_fn`` computes with the values of this call whatever the caller does to its arrays
    afterwards: primals the caller can still change (writeable arrays) are copied, and the
    outputs (and aux) are returned read-only. A cotangent must have its output's shape and
    convert to its dtype without loss (Python numbers and lower precisions are cast).

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> out, f_vjp = ds.vjp(lambda x: x * 3.0, dnp.ones(2))
    >>> f_vjp(dnp.array([1.0, 2.0]))
    (array([3., 6.]),)
    >>> out.flags.writeable  # out -= 1 would raise instead of changing f_vjp
    False
    """
    nums = tuple(range(len(primals)))
    trace, leaves, treedefs, out, aux = _reverse_pass(
        fun, primals, {}, nums, has_aux, "vjp", own=True
    )
    out_leaves, out_def = tree_flatten(out)

    def vjp_fn(cotangent):
        ct_leaves, ct_def = tree_flatten(cotangent)
        if not same_structure(ct_def, out_def):
            raise ValueError(
                f"vjp_fn: the cotangent's structure {ct_def} does not match the output's "
                f"structure {out_def}"
            )
        seeds = []
        for k, (o, c) in enumerate(zip(out_leaves, ct_leaves, strict=True)):
            c = _as_cotangent(c, o, k)
            if isinstance(o, ReverseTracer) and o._trace is trace:
                seeds.append((o._slot, c))
        cts = trace.backward(seeds, len(leaves)) if seeds else [None] * len(leaves)
        grads = [_finish_cotangent(ct, leaf) for ct, leaf in zip(cts, leaves, strict=True)]
        return _group(grads, treedefs, single=False)

    primal_out = _handed_out(trace, out)
    if has_aux:
        return primal_out, vjp_fn, _handed_out(trace, aux)
    return primal_out, vjp_fn


def _as_cotangent(c, out, k: int):
    """The cotangent ``c`` for output leaf ``k`` (``out``) as a seed of the backward pass:
    an array of the output's shape and dtype. Python numbers and dtypes that convert
    without loss (a lower precision) are cast; anything else is refused. A plain array is
    copied: the pass then holds nothing the caller can change (caches keyed by identity)."""
    shape = np.shape(out)
    dtype = _dtype_of(out)
    if isinstance(c, int | float | complex) and not isinstance(c, bool):
        # weakly typed, as in NumPy: only a complex number into a real output loses
        c_dtype = np.dtype(complex) if isinstance(c, complex) and dtype.kind != "c" else dtype
    elif isinstance(c, Tracer | np.ndarray | np.generic):
        c_dtype = c.dtype
    else:
        raise TypeError(
            f"vjp_fn: cotangent {k} must be a numeric array or a Python int, float or "
            f"complex, got {type(c).__name__} ({_short(c)}), for the function's output {k} of "
            f"shape {shape} and dtype {dtype}"
        )
    if np.shape(c) != shape:
        raise ValueError(
            f"vjp_fn: cotangent {k} has shape {np.shape(c)}, but the function's output {k} has "
            f"shape {shape}; they must match"
        )
    if dtype.kind not in "fc":  # an integer or boolean output: its cotangent is unused
        return c
    if c_dtype != dtype:
        _check_lossless(
            c_dtype, dtype, f"vjp_fn: cotangent {k} has dtype {c_dtype}, but the function's "
            f"output {k} has dtype {dtype}", "a cotangent is a number or an array of numbers"
        )
    if isinstance(c, Tracer):
        return c if c_dtype == dtype else ad_util.cast(c, dtype=dtype)
    return np.array(c, dtype=dtype)  # a private copy


def _check_lossless(given: np.dtype, wanted: np.dtype, what: str, non_numeric: str) -> None:
    """Refuse a seed (cotangent or tangent) of dtype ``given`` for a value of dtype
    ``wanted`` unless it converts without loss; ``what`` says which seed, for the error."""
    if given.kind in "biufc" and np.can_cast(given, wanted):
        return
    if given.kind == "c":
        fix = "take its real part (np.real) if the function is real"
    elif given.kind in "biuf":
        fix = f"convert it with .astype(np.{wanted.name}) if the loss is intended"
    else:
        fix = non_numeric
    raise TypeError(f"{what}, and {given} does not convert to {wanted} without loss: {fix}")


def _dtype_of(x) -> np.dtype:
    dtype = getattr(x, "dtype", None)
    return np.result_type(x) if dtype is None else dtype


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def elementwise_grad(fun: Callable, argnums: int | Sequence[int] = 0):
    """The gradient of ``sum(fun(x))``: the derivative of an elementwise function, elementwise.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.elementwise_grad(dnp.square)(dnp.array([1.0, 2.0]))
    array([2., 4.])
    """

    @functools.wraps(fun)
    def egrad_fun(*args, **kwargs):
        nums, single = _normalize_argnums(argnums, len(args), "elementwise_grad")
        trace, leaves, treedefs, out, _ = _reverse_pass(
            fun, args, kwargs, nums, False, "elementwise_grad"
        )
        if out is None:
            raise TypeError(
                "elementwise_grad requires a function that returns an array, but it returned "
                "None (a missing `return`?)"
            )
        seeds = [
            (o._slot, ad_util.ones_like_value(o))
            for o in tree_flatten(out)[0]
            if isinstance(o, ReverseTracer) and o._trace is trace
        ]
        cts = trace.backward(seeds, len(leaves), consume=True) if seeds else [None] * len(leaves)
        grads = [_finish_cotangent(ct, leaf) for ct, leaf in zip(cts, leaves, strict=True)]
        return _group(grads, treedefs, single)

    return egrad_fun


# --- forward mode ---------------------------------------------------------------------------


def jvp(fun: Callable, primals: Sequence, tangents: Sequence):
    """``(fun(*primals), tangent_out)``: the Jacobian-vector product, in one forward pass.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.jvp(dnp.sin, (0.0,), (2.0,))
    (np.float64(0.0), np.float64(2.0))
    """
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError(
            "jvp: primals and tangents must be tuples (one entry per argument of fun), got "
            f"{type(primals).__name__} and {type(tangents).__name__}"
        )
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primal(s) but {len(tangents)} tangent(s) were given")
    trace = JVPTrace()
    boxed_args = []
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        p_leaves, p_def = tree_flatten(p)
        t_leaves, t_def = tree_flatten(t)
        if not same_structure(p_def, t_def):
            raise ValueError(f"jvp: tangent {i} has structure {t_def}, but primal {i} has {p_def}")
        boxed = []
        for k, (pl, tl) in enumerate(zip(p_leaves, t_leaves, strict=True)):
            where = _describe("jvp", i, k, len(p_leaves))
            pl = as_diff_leaf(pl, "jvp", where)
            tl = _as_tangent(tl, pl, where)
            boxed.append(JVPTracer(trace, pl, tl))
        boxed_args.append(tree_unflatten(p_def, boxed))
    out = fun(*boxed_args)
    out_leaves, out_def = tree_flatten(out)
    values, tans = split_tangents(trace, out_leaves)
    return tree_unflatten(out_def, values), tree_unflatten(out_def, tans)


def _as_tangent(t, primal, where: str):
    if isinstance(t, float | int | complex) and not isinstance(t, bool):
        t = np.asarray(t, dtype=primal.dtype)
    if not isinstance(t, Tracer | np.ndarray | np.generic):
        raise TypeError(f"jvp: the tangent for {where} must be an array, got {type(t).__name__}")
    if np.shape(t) != np.shape(primal):
        raise ValueError(
            f"jvp: the tangent for {where} has shape {np.shape(t)}, but the primal has shape "
            f"{np.shape(primal)}; they must match"
        )
    dtype, t_dtype = _dtype_of(primal), t.dtype
    if t_dtype == dtype:
        return t
    _check_lossless(
        t_dtype, dtype, f"jvp: the tangent for {where} has dtype {t_dtype}, but the primal has "
        f"dtype {dtype}", "a tangent is an array of numbers"
    )
    # a lossless cast (a lower precision, an integer array): the tangent takes the primal's
    # dtype, so the output tangents have the outputs' dtypes
    return ad_util.cast(t, dtype=dtype) if isinstance(t, Tracer) else t.astype(dtype)


def hvp(fun: Callable, primals: Sequence, tangents: Sequence):
    """Hessian-vector product(s) of a scalar function, forward-over-reverse.

    Returns one array per primal (a single array when there is one primal).

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.hvp(lambda x: dnp.sum(x ** 3), (dnp.array([1.0, 2.0]),), (dnp.ones(2),))
    array([ 6., 12.])
    """
    n = len(primals)
    g = grad(fun, argnums=tuple(range(n)))
    _, t_out = jvp(g, tuple(primals), tuple(tangents))
    return t_out[0] if n == 1 else t_out


# --- batching ---------------------------------------------------------------------------------


def vmap(
    fun: Callable,
    in_axes: int | None | Sequence = 0,
    out_axes: int | None | Sequence = 0,
    *,
    axis_size: int | None = None,
):
    """Map ``fun`` over an axis of its arguments, computing the whole batch at once.

    As in JAX, ``in_axes`` is an int, ``None`` (not mapped), or a tuple with one entry per
    positional argument, each entry a *prefix* of that argument's pytree: an int or ``None``
    applies to every leaf below it, a container (dict, tuple, list...) of the argument's
    structure gives axes to its parts. Keyword arguments are mapped over axis 0.
    ``out_axes`` is a prefix of the output's pytree the same way (``None``: an output that
    does not depend on the mapped values, returned as is). ``axis_size`` gives the size when
    no argument is mapped (the outputs are then broadcast), and is checked otherwise.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.vmap(lambda row: dnp.sum(row ** 2))(dnp.array([[1.0, 2.0], [3.0, 4.0]]))
    array([ 5., 25.])
    >>> f = ds.vmap(lambda p, x: p["w"] * x + p["b"], in_axes=({"w": 0, "b": None}, 0))
    >>> f({"w": dnp.array([1.0, 2.0]), "b": 10.0}, dnp.array([3.0, 4.0]))
    array([13., 18.])
    """
    if isinstance(in_axes, dict) or not (
        _is_axis(in_axes) or isinstance(in_axes, tuple | list)
    ):
        raise TypeError(
            "vmap: in_axes must be an int, None, or a tuple with one entry per positional "
            f"argument, got {type(in_axes).__name__} {_short(in_axes)}. For a function of one "
            "dict argument write in_axes=({...},)"
        )
    if axis_size is not None and (
        not isinstance(axis_size, int) or isinstance(axis_size, bool) or axis_size < 0
    ):
        raise ValueError(f"vmap: axis_size must be a non-negative int, got {axis_size!r}")

    @functools.wraps(fun)
    def vmapped(*args, **kwargs):
        if isinstance(in_axes, tuple | list):
            if len(in_axes) != len(args):
                raise ValueError(
                    f"vmap: in_axes has {len(in_axes)} entries but the function got "
                    f"{len(args)} positional argument(s); give one entry per argument (an int, "
                    "None, or a pytree of them matching the argument)"
                )
            prefixes = tuple(in_axes)
        else:
            prefixes = (in_axes,) * len(args)
        entries = [(a, p, i) for i, (a, p) in enumerate(zip(args, prefixes, strict=True))]
        entries += [(v, 0, k) for k, v in kwargs.items()]
        flat = []
        mapped = []  # (where, leaf index, shape, axis, size), for the size check
        for arg, prefix, which in entries:
            leaves, treedef = tree_flatten(arg)
            axes = _axes_for(prefix, arg, len(leaves), lambda w=which: _where(fun, w, "in_axes"))
            moved = []
            for k, (leaf, axis) in enumerate(zip(leaves, axes, strict=True)):
                if axis is None:
                    moved.append(leaf)
                    continue
                shape = np.shape(leaf)
                if not -len(shape) <= axis < len(shape):
                    raise ValueError(
                        f"vmap: in_axes {axis} is out of range for "
                        f"{_where(fun, which, 'leaf', arg, k)} of shape {shape}"
                        + (" (a scalar has no axis to map)" if not shape else "")
                    )
                ax = axis % len(shape)
                mapped.append((which, k, shape, axis, shape[ax], arg))
                moved.append(_move_axis(leaf, ax, 0))
            flat.append((moved, treedef, axes))
        size = _batch_size(fun, mapped, axis_size)
        trace = BatchTrace(size)
        boxed = [
            tree_unflatten(
                td, [x if a is None else trace.box(x) for x, a in zip(xs, axs, strict=True)]
            )
            for xs, td, axs in flat
        ]
        out = fun(*boxed[: len(args)], **dict(zip(kwargs, boxed[len(args) :], strict=True)))
        out_leaves, out_def = tree_flatten(out)
        axes = _axes_for(out_axes, out, len(out_leaves), lambda: "out_axes (the output)")
        results = []
        for k, (o, axis) in enumerate(zip(out_leaves, axes, strict=True)):
            batched = isinstance(o, BatchTracer) and o._trace is trace
            if axis is None:
                if batched:
                    raise ValueError(
                        f"vmap: out_axes is None for {_where(fun, None, 'output', out, k)}, "
                        "but it depends on the mapped arguments (it has a batch axis); give "
                        "it an out_axes axis, or return a value that does not depend on them"
                    )
                results.append(o)
                continue
            v = o._value if batched else ad_util.broadcast_axis(_asarray(o), n=size, axis=0)
            nd = len(np.shape(v))
            if not -nd <= axis < nd:
                raise ValueError(
                    f"vmap: out_axes {axis} is out of range for "
                    f"{_where(fun, None, 'output', out, k)}, which has {nd - 1} dimension(s) "
                    f"before batching (so axes -{nd}..{nd - 1} with the batch axis)"
                )
            results.append(_move_axis(v, 0, axis % nd) if axis % nd else v)
        return tree_unflatten(out_def, results)

    return vmapped


def _is_axis(a) -> bool:
    return a is None or (isinstance(a, int | np.integer) and not isinstance(a, bool))


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _axes_for(prefix, tree, n_leaves: int, where: Callable[[], str]) -> list:
    """One axis (or ``None``) per leaf of ``tree``: ``prefix`` broadcast over the subtrees
    it stops at (JAX's pytree prefixes)."""
    if _is_axis(prefix):
        return [None if prefix is None else int(prefix)] * n_leaves
    p_kids, p_def = tree_flatten(prefix, is_leaf=lambda y: y is not prefix)
    if p_def.node_type is None:
        raise TypeError(
            f"vmap: {where()}: an axis must be an int or None, got {type(prefix).__name__} "
            f"{_short(prefix)}"
        )
    t_kids, t_def = tree_flatten(tree, is_leaf=lambda y: y is not tree)
    same = t_def.node_type is p_def.node_type or (
        t_def.node_type in (tuple, list) and p_def.node_type in (tuple, list)
    )
    if same and p_def.node_type is not None:
        try:
            same = len(p_kids) == len(t_kids) and bool(p_def.aux[1] == t_def.aux[1])
        except Exception:  # noqa: BLE001 - auxiliary data whose == is not a bool
            same = False
    if not same:
        got = type(tree).__name__
        if isinstance(tree, dict):
            got = f"dict with keys {sorted(map(str, tree))}"
        elif isinstance(tree, tuple | list):
            got = f"{got} of {len(tree)} items"
        raise ValueError(
            f"vmap: {where()} is {_short(prefix)}, which does not match the value's "
            f"structure ({got}); an axis spec is an int, None, or a container of the value's "
            "own structure (same keys / length) holding them"
        )
    out = []
    for j, (p, t) in enumerate(zip(p_kids, t_kids, strict=True)):
        n = len(tree_flatten(t)[0])
        out.extend(_axes_for(p, t, n, lambda j=j: f"{where()}, part {j}"))
    return out


def _where(fun, which, what: str, tree=None, leaf: int | None = None) -> str:
    """Names a place for an error message: an argument (by position and parameter name, or
    keyword), and when ``leaf`` is given, the leaf's path inside ``tree``."""
    if which is None:
        text = "the output"
    elif isinstance(which, str):
        text = f"keyword argument {which!r}"
    else:
        text = f"argument {which}"
        try:
            params = [
                p.name
                for p in inspect.signature(fun).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            params = []
        if which < len(params):
            text += f" ({params[which]!r})"
    if what == "in_axes":
        return f"in_axes for {text}"
    if leaf is not None and tree is not None:
        paths = key_paths(tree)
        if len(paths) > 1 or paths[0]:
            text += f" at {paths[leaf]}"
    return text


def _batch_size(fun, mapped: list, axis_size: int | None) -> int:
    sizes = {m[4] for m in mapped}
    if axis_size is not None:
        sizes.add(axis_size)
    if len(sizes) > 1:
        seen: dict = {}
        for which, k, shape, axis, n, arg in mapped:
            seen.setdefault(n, f"{_where(fun, which, 'leaf', arg, k)} has size {n} along "
                               f"axis {axis} (shape {shape})")
        parts = list(seen.values())
        if axis_size is not None:
            parts.insert(0, f"axis_size is {axis_size}")
        raise ValueError(
            "vmap: the mapped axes have different sizes: " + "; ".join(parts) + ". Every "
            "mapped axis must have the same size: fix the shapes or in_axes (None: not mapped)"
        )
    if not sizes:
        raise ValueError(
            "vmap: no argument is mapped (every in_axes is None) and axis_size is not given; "
            "map at least one argument or pass axis_size=n"
        )
    return sizes.pop()


def _asarray(x):
    return x if isinstance(x, Tracer | np.ndarray) else np.asarray(x)


def _move_axis(x, src: int, dst: int):
    if src == dst:
        return x
    order = [a for a in range(len(np.shape(x))) if a != src]
    order.insert(dst, src)
    return ad_util.transpose(x, axes=tuple(order))


# --- Jacobians ------------------------------------------------------------------------------


def _flat_fun(fun, args, kwargs, argnums, treedefs):
    def f(*leaves):
        return fun(*_rebuild_args(args, argnums, treedefs, list(leaves)), **kwargs)

    return f


def _basis(sizes, shapes, dtype):
    """Rows of the identity, split into per-leaf blocks shaped like the leaves."""
    n = sum(sizes)
    eye = np.eye(n, dtype=dtype)
    blocks, off = [], 0
    for size, shape in zip(sizes, shapes, strict=True):
        blocks.append(eye[:, off : off + size].reshape((n,) + tuple(shape)))
        off += size
    return blocks


def _rows(x, start: int, stop: int):
    """Rows ``start:stop`` of ``x`` (``x`` itself when that is all of it)."""
    if start == 0 and stop == np.shape(x)[0]:
        return x
    return ad_util.slice_axis(x, start=start, stop=stop, axis=0)


def _reshaped(x, shape: tuple[int, ...]):
    """``x`` reshaped (``x`` itself when it already has that shape)."""
    if tuple(np.shape(x)) == tuple(shape):
        return x
    return ad_util.reshape(x, shape=tuple(shape))


def _leaf_dtype(leaves):
    return np.result_type(*[getattr(x, "dtype", np.float64) for x in leaves])


def _assemble(blocks_by_out, out_def, treedefs, single):
    """``blocks_by_out[k][j]``: Jacobian block of output leaf k w.r.t. input leaf j."""
    per_out = [_group(row, treedefs, single) for row in blocks_by_out]
    return tree_unflatten(out_def, per_out)


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """The Jacobian by forward mode, all basis tangents pushed through at once (``vmap``).

    The result has shape ``out.shape + in.shape`` (nested by output, then by input pytree).

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.jacfwd(lambda x: x ** 2)(dnp.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """

    @functools.wraps(fun)
    def jacfwd_fun(*args, **kwargs):
        nums, single = _normalize_argnums(argnums, len(args), "jacfwd")
        leaves, treedefs = _flatten_diff_args(args, nums, "jacfwd")
        f = _flat_fun(fun, args, kwargs, nums, treedefs)
        sizes = [int(np.size(x)) for x in leaves]
        shapes = [np.shape(x) for x in leaves]
        basis = _basis(sizes, shapes, _leaf_dtype(leaves))
        aux_box = []

        def pushforward(*tangents):
            out, t_out = jvp(f, tuple(leaves), tangents)
            out, aux = _split_aux(out, has_aux, "jacfwd")
            if has_aux:
                aux_box.append((out, aux))
                t_out = t_out[0]
            return t_out

        t_batched = vmap(pushforward)(*basis)
        t_leaves, out_def = tree_flatten(t_batched)
        blocks_by_out = []
        for t in t_leaves:  # t: (n, *out_shape)
            out_shape = tuple(np.shape(t)[1:])
            row, off = [], 0
            for size, shape in zip(sizes, shapes, strict=True):
                block = _move_axis(_rows(t, off, off + size), 0, len(out_shape))
                row.append(_reshaped(block, out_shape + tuple(shape)))
                off += size
            blocks_by_out.append(row)
        jac = _assemble(blocks_by_out, out_def, treedefs, single)
        return (jac, aux_box[0][1]) if has_aux else jac

    return jacfwd_fun


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """The Jacobian by reverse mode: one forward pass, all basis cotangents pulled back at once.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.jacrev(lambda x: x ** 2)(dnp.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """

    @functools.wraps(fun)
    def jacrev_fun(*args, **kwargs):
        nums, single = _normalize_argnums(argnums, len(args), "jacrev")
        leaves, treedefs = _flatten_diff_args(args, nums, "jacrev")
        f = _flat_fun(fun, args, kwargs, nums, treedefs)
        if has_aux:
            out, vjp_fn, aux = vjp(f, *leaves, has_aux=True)
        else:
            out, vjp_fn = vjp(f, *leaves)
        out_leaves, out_def = tree_flatten(out)
        out_shapes = [tuple(np.shape(o)) for o in out_leaves]
        out_sizes = [int(np.prod(s, dtype=int)) for s in out_shapes]
        dtype = _leaf_dtype(out_leaves)
        if sum(out_sizes) == 1:  # a scalar function: one plain VJP, no batching needed
            cts = [np.ones(s, dtype=dtype) for s in out_shapes]
            grads = vjp_fn(tree_unflatten(out_def, cts))
            batched = [_reshaped(g, (1,) + tuple(np.shape(g))) for g in grads]
        else:
            basis = _basis(out_sizes, out_shapes, dtype)
            batched = vmap(lambda *cts: vjp_fn(tree_unflatten(out_def, list(cts))))(*basis)
        blocks_by_out, off = [], 0
        for size, shape in zip(out_sizes, out_shapes, strict=True):
            row = []
            for g, leaf in zip(batched, leaves, strict=True):  # g: (m, *leaf_shape)
                block = _rows(g, off, off + size)
                row.append(_reshaped(block, shape + tuple(np.shape(leaf))))
            blocks_by_out.append(row)
            off += size
        jac = _assemble(blocks_by_out, out_def, treedefs, single)
        return (jac, aux) if has_aux else jac

    return jacrev_fun


jacobian = jacrev


def hessian(fun: Callable, argnums: int | Sequence[int] = 0):
    """The Hessian of a scalar function: ``jacfwd(jacrev(fun))``, batched forward-over-reverse.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> ds.hessian(lambda x: dnp.sum(x ** 3))(dnp.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacfwd(jacrev(fun, argnums), argnums)
