"""Tracing a function into a :class:`~diffsys.graph.Graph`.

Tracing is eager in diffsys, as every transform is: :class:`GraphTrace` is one more trace
level whose tracers carry concrete values. Each primitive applied to them is computed at once
and recorded as a node (primitive, input variables, parameters, output variables with their
shapes and dtypes). Transforms run inside the traced function (``grad``, ``vjp``, ``jvp``...)
have higher levels, so the primitives their rules call on our tracers are recorded too: the
graph of ``ds.value_and_grad(f)`` holds the forward and the backward pass.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence

import numpy as np

from ..core.owned import frozen
from ..core.pytree import tree_flatten, tree_named_leaves, tree_unflatten
from ..core.tracer import _NO_PARAMS, Trace, Tracer
from ..core.warn import warn_user
from ._graph import ArgSpec, Graph, Node, VarInfo, spec_of

_new = object.__new__

INPUT, PARAM, CONST, OP = "input", "param", "const", "op"


class GraphSpecializationWarning(UserWarning):
    """A traced value was turned into a Python value: the graph keeps the path it took."""


class GraphTraceError(TypeError):
    """The function cannot be traced into a graph (see the message)."""


class GraphTracer(Tracer):
    """A value being recorded into a graph; ``_var`` is its variable number."""

    __slots__ = ("_var",)
    records_graph = True

    def concrete(self):
        self._trace.specialized(self)
        value = self._value
        while isinstance(value, Tracer):
            value = value.concrete()
        return value


class GraphTrace(Trace):
    """Records every primitive applied to its tracers, computing values as it goes."""

    __slots__ = (
        "vars",
        "nodes",
        "consts",
        "_const_keys",
        "_keep",
        "specializations",
        "_warned",
        "captured",
        "_lifted",
    )

    def __init__(self, lift_closures: bool = False) -> None:
        super().__init__()
        self.vars: list[VarInfo] = []
        self.nodes: list[Node] = []
        self.consts: dict[int, object] = {}
        self._const_keys: dict = {}
        self._keep: list = []  # objects whose id() keys a constant stay alive while tracing
        self.specializations: list[tuple[int, object]] = []
        self._warned = False
        # Closure conversion: outer tracers the function reads become lifted inputs.
        self.captured: list[Tracer] | None = [] if lift_closures else None
        self._lifted: dict[int, GraphTracer] = {}

    # --- variables ---------------------------------------------------------------------------
    def new_var(self, kind: str, value, name: str | None = None) -> int:
        vid = len(self.vars)
        self.vars.append(VarInfo(kind, _shape(value), _dtype(value), name))
        return vid

    def new_input(self, kind: str, value, name: str) -> GraphTracer:
        return self._tracer(value, self.new_var(kind, value, name))

    def _tracer(self, value, vid: int) -> GraphTracer:
        t = _new(GraphTracer)
        t._trace = self
        t._value = value
        t._var = vid
        return t

    def const(self, value) -> int:
        """The variable of a constant (an array or Python number reaching a primitive)."""
        if isinstance(value, Tracer):
            return self.lift(value)._var
        if isinstance(value, bool | int | float | complex):
            key = (type(value), repr(value))
        else:
            key = id(value)
        vid = self._const_keys.get(key)
        if vid is None:
            vid = self.new_var(CONST, value)
            self.consts[vid] = frozen(value)  # the caller may change its array later
            self._const_keys[key] = vid
            self._keep.append(value)
        return vid

    def lift(self, outer: Tracer) -> GraphTracer:
        """The lifted input standing for ``outer``, a value traced by an outer transform that
        the function reads without getting it as an argument (a closure): with
        ``lift_closures`` it becomes an extra placeholder holding its plain value (the value
        under every trace level, when it has ``outer``'s shape and dtype; else ``outer``
        itself); otherwise it is an error (the graph would bake it in as a constant)."""
        lifted = self._lifted.get(id(outer))
        if lifted is not None:
            return lifted
        if self.captured is None:
            raise GraphTraceError(
                "ds.trace: the traced function uses a value traced by an outer transform "
                f"({type(outer).__name__}, shape {outer.shape}, dtype {outer.dtype}) that is "
                "not one of its arguments (a closure?); the graph would bake it in as a "
                "constant. Pass it to the traced function as an argument instead, or trace "
                "with ds.trace(fun, lift_closures=True) to make it an extra input"
            )
        value = _plain(outer)
        if _shape(value) != tuple(outer.shape) or _dtype(value) != outer.dtype:
            value = outer  # e.g. a batched value (vmap): traced through, as an argument is
        lifted = self._tracer(value, self.new_var(INPUT, value))
        self._lifted[id(outer)] = lifted
        self.captured.append(outer)  # keeps ``outer`` alive, so its id() stays unique
        return lifted

    def specialized(self, tracer: GraphTracer) -> None:
        """Called when user code turns ``tracer`` into a Python value (bool, int, float...)."""
        value = tracer._value
        while isinstance(value, Tracer):
            value = value.concrete()
        self.specializations.append((tracer._var, value))
        if not self._warned:
            self._warned = True
            info = self.vars[tracer._var]
            warn_user(
                f"ds.trace: a traced value (%{tracer._var}, {info.describe()}) was converted "
                "to a Python value (bool/int/float/index/.item(), e.g. by an `if` on it); the "
                f"graph is specialised to the value it had while tracing ({_short(value)}) and "
                "replays the same path for every input. Use dnp.where for data-dependent "
                "choices, or pass the value as a static Python int/bool argument",
                GraphSpecializationWarning,
            )

    # --- recording -----------------------------------------------------------------------------
    def _operands(self, args) -> tuple[tuple, list]:
        """The variables of ``args`` (constants and lifted closures get theirs) and the
        values beneath them."""
        refs = []
        vals = []
        for a in args:
            if a.__class__ is not GraphTracer or a._trace is not self:
                if not isinstance(a, Tracer):
                    refs.append(self.const(a))
                    vals.append(a)
                    continue
                a = self.lift(a)
            refs.append(a._var)
            vals.append(a._value)
        return tuple(refs), vals

    def process(self, prim, args, params):
        refs, vals = self._operands(args)
        if params:
            _check_params(prim, params)
        if any(isinstance(v, Tracer) for v in vals):  # values of outer transforms
            out = prim(*vals, **params)
        else:
            out = prim.impl(*vals, **params)
        return self._record(prim, refs, params, out, vals)

    def record_custom_call(self, prim, args, params, outs) -> list:
        """Record ``prim(*args, **params)`` whose flat results ``outs`` the caller computed
        (``custom_vjp``/``custom_jvp`` calls: the node keeps their rule; see core/custom.py)."""
        refs, vals = self._operands(args)
        return self._record(prim, refs, params, outs, vals)

    def process1(self, prim, a):
        return self.process(prim, (a,), _NO_PARAMS)

    def process2(self, prim, a, b, params=_NO_PARAMS):
        return self.process(prim, (a, b), params)

    def _record(self, prim, refs, params, out, vals):
        if prim.multiple_results:
            outs = list(out)
            vids = tuple(self.new_var(OP, o) for o in outs)
            views = tuple(_view_of(o, vals) for o in outs)
            self.nodes.append(Node(prim, refs, dict(params), vids, views))
            return [self._tracer(o, v) for o, v in zip(outs, vids, strict=True)]
        vid = self.new_var(OP, out)
        self.nodes.append(Node(prim, refs, dict(params), (vid,), (_view_of(out, vals),)))
        return self._tracer(out, vid)


def _check_params(prim, params) -> None:
    for k, v in params.items():
        if _holds_tracer(v):
            raise GraphTraceError(
                f"ds.trace: primitive '{prim.name}' got a traced value in its keyword "
                f"parameter {k!r}; parameters are recorded as constants, so the graph could "
                "not replay it. Pass traced values as positional arguments of primitives"
            )


def _holds_tracer(v) -> bool:
    if isinstance(v, Tracer):
        return True
    if isinstance(v, tuple | list):
        return any(_holds_tracer(x) for x in v)
    if isinstance(v, dict):
        return any(_holds_tracer(x) for x in v.values())
    return False


def _plain(x):
    while isinstance(x, Tracer):
        x = x._value
    return x


def _view_of(out, vals) -> int | None:
    """The index of the input whose memory ``out`` shares (a view), if any (for memory plans)."""
    out = _plain(out)
    if not isinstance(out, np.ndarray) or out.flags.owndata or out.nbytes == 0:
        return None
    for i, v in enumerate(vals):
        v = _plain(v)
        if isinstance(v, np.ndarray) and np.may_share_memory(out, v):
            return i
    return None


def _shape(x) -> tuple[int, ...]:
    s = getattr(x, "shape", None)
    return tuple(np.shape(x) if s is None else s)


def _dtype(x) -> np.dtype:
    d = getattr(x, "dtype", None)
    if isinstance(d, np.dtype):
        return d
    if d is None:
        try:
            return np.result_type(x)
        except TypeError:
            return np.dtype(object)
    return np.dtype(d)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- the entry point ---


def _is_traced_leaf(x) -> bool:
    """Leaves that become placeholders: arrays, tracers, Python floats and complex numbers."""
    return isinstance(x, np.ndarray | np.generic | Tracer) or (
        isinstance(x, float | complex) and not isinstance(x, bool)
    )


def _arg_names(fun, n: int) -> list[str]:
    names: list[str] = []
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind is p.VAR_POSITIONAL:
                base = p.name
                names.extend(f"{base}{i}" for i in range(n - len(names)))
                break
    names = names[:n]
    names.extend(f"arg{i}" for i in range(len(names), n))
    seen: set[str] = set()
    out = []
    for i, nm in enumerate(names):
        if nm in seen:
            nm = f"arg{i}"
        seen.add(nm)
        out.append(nm)
    return out


def _is_module(x) -> bool:
    mod = sys.modules.get("diffsys.nn.module")
    return mod is not None and isinstance(x, mod.Module)


def _named(arg, prefix: str) -> list[str]:
    return [name for name, _ in tree_named_leaves(arg, prefix)]


def trace(
    fun: Callable,
    *,
    param_argnums: int | Sequence[int] | None = None,
    name: str | None = None,
    lift_closures: bool = False,
) -> Callable[..., Graph | tuple[Graph, list[Tracer]]]:
    """``trace(fun)(*example_args)`` records ``fun`` on the example arguments as a
    :class:`Graph`, a function with ``fun``'s signature that replays the recording.

    Leaves of the arguments (pytrees are flattened) that are arrays, tracers or Python
    floats/complex numbers become *placeholders*; other leaves (Python ints, bools, strings,
    ``None``...) are *static*: baked into the graph and checked for equality at every call.
    Placeholders of the arguments named by ``param_argnums`` (default: the arguments that are
    :class:`diffsys.nn.Module` instances) are *parameters*: placeholders too (the graph is still
    called with them), named by their pytree path (``model.layers.0.weight``), whose example
    values the graph keeps (:attr:`Graph.params`) and :meth:`Graph.save` writes.

    Python control flow is recorded along the path the example values take (as
    ``torch.jit.trace`` does); turning a traced value into a Python value (``bool``, ``int``,
    ``float``, indexing with it) warns once with :class:`GraphSpecializationWarning`.

    Values traced by an outer transform that ``fun`` reads without getting them as arguments
    (closures) are refused with :class:`GraphTraceError`. With ``lift_closures=True`` they
    become *lifted inputs* instead (closure conversion): ``trace(fun, lift_closures=True)(*args)``
    returns ``(graph, captured)``, where ``captured`` lists those outer tracers in order and
    ``graph`` takes one more, last argument: the list of their values
    (``graph(*args, captured)`` under the outer transform differentiates through them).

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> g = ds.trace(lambda x: dnp.sum(dnp.sin(x) * 2.0))(dnp.ones(3))
    >>> float(g(dnp.zeros(3)))
    0.0
    """
    if not callable(fun):
        raise TypeError(f"ds.trace: expected a function, got {type(fun).__name__}")

    def traced(*args, **kwargs) -> Graph | tuple[Graph, list[Tracer]]:
        if kwargs:
            raise TypeError(
                "ds.trace: the traced function takes positional arguments only (a graph's "
                f"signature is positional); got keyword(s) {sorted(kwargs)}. Bind them first, "
                "e.g. with functools.partial"
            )
        nargs = len(args)
        if param_argnums is None:
            pnums = {i for i, a in enumerate(args) if _is_module(a)}
        else:
            nums = (param_argnums,) if isinstance(param_argnums, int) else param_argnums
            pnums = set()
            for i in nums:
                if not isinstance(i, int) or not -nargs <= i < nargs:
                    raise ValueError(
                        f"ds.trace: param_argnums {param_argnums!r} is out of range for "
                        f"{nargs} argument(s)"
                    )
                pnums.add(i % nargs)
        trace_ = GraphTrace(lift_closures)
        arg_names = _arg_names(fun, nargs)
        specs: list[ArgSpec] = []
        boxed_args = []
        examples: dict[int, object] = {}
        for i, arg in enumerate(args):
            leaves, treedef = tree_flatten(arg)
            names = _named(arg, arg_names[i])
            kind = PARAM if i in pnums else INPUT
            entries = []
            boxed = []
            for leaf, lname in zip(leaves, names, strict=True):
                if _is_traced_leaf(leaf):
                    # a parameter's value is the graph's own (Graph.params, save): a copy
                    value = frozen(leaf) if kind == PARAM else leaf
                    if isinstance(leaf, float | complex):
                        value = np.asarray(leaf)
                    t = trace_.new_input(kind, value, lname)
                    examples[t._var] = value
                    entries.append(("var", t._var))
                    boxed.append(t)
                else:
                    entries.append(("static", leaf))
                    boxed.append(leaf)
            specs.append(ArgSpec(arg_names[i], treedef, spec_of(arg), tuple(entries)))
            boxed_args.append(tree_unflatten(treedef, boxed))
        out = fun(*boxed_args)
        out_leaves, out_def = tree_flatten(out)
        out_refs = []
        for leaf in out_leaves:
            if leaf.__class__ is GraphTracer and leaf._trace is trace_:
                out_refs.append(leaf._var)
            else:
                out_refs.append(trace_.const(leaf))
        if lift_closures:
            specs.append(_lifted_arg(trace_, arg_names, examples))
        gname = name or getattr(fun, "__name__", None) or type(fun).__name__
        graph = Graph(
            name=gname,
            vars=trace_.vars,
            nodes=trace_.nodes,
            consts=trace_.consts,
            args=specs,
            outputs=tuple(out_refs),
            out_treedef=out_def,
            out_spec=spec_of(out),
            examples=examples,
            specializations=trace_.specializations,
        )
        return (graph, list(trace_.captured)) if lift_closures else graph

    return traced


def _lifted_arg(trace_: GraphTrace, arg_names: list[str], examples: dict) -> ArgSpec:
    """The graph's last argument: the list of the lifted inputs (named ``closure.0``...),
    in the order ``trace_.captured`` lists the outer tracers they stand for."""
    name = "closure"
    while name in arg_names:
        name = "_" + name
    lifted = [trace_.lift(outer) for outer in trace_.captured]
    values = []
    for j, t in enumerate(lifted):
        trace_.vars[t._var] = trace_.vars[t._var]._replace(name=f"{name}.{j}")
        examples[t._var] = t._value
        values.append(t._value)
    _, treedef = tree_flatten(values)
    return ArgSpec(name, treedef, spec_of(values), tuple(("var", t._var) for t in lifted))
