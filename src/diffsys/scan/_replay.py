"""Scan + replay: the step traced once into graphs, replayed on plain arrays at every step.

Running a step eagerly under reverse mode costs the tracing of every operation, every step.
With ``replay``, ``scan`` traces the step once (:func:`diffsys.trace`) into a *forward graph*
``(carry, x, captured) -> (carry', y)`` and, when reverse mode differentiates the loop, traces
that graph's forward pass and VJP into one graph, ``(carry, x, captured, ct_carry', ct_y) ->
(carry', y, ct_carry, ct_x, ct_captured)``. That graph is split in two (partial evaluation):
the *residual graph*, the operations that depend on ``(carry, x, captured)`` only, which also
returns the intermediate values the VJP needs (*residuals*); and the *backward graph*,
``(residuals, ct_carry', ct_y) -> (ct_carry, ct_x, ct_captured)``. The loop calls the graphs'
replay (:meth:`diffsys.Graph.call_flat`) on plain arrays: no tracer, no tape, no dispatch per
operation.

*Captured* values are closure conversion: the traced values the step reads from its closure
(parameters of an outer ``grad``) are lifted into extra inputs of the forward graph
(``trace(..., lift_closures=True)``) and given their plain values at every step. They are
extra inputs of the loop's node too, as for the eager loop (:mod:`diffsys.core.remat`): the
backward pass sums their cotangents over the steps and hands them to the reverse trace.

The loop is still one node on the reverse trace. With ``checkpoint=None`` the forward pass
runs the residual graph and keeps every step's residuals, the backward pass runs the backward
graph: nothing is recomputed. With a policy the schedules are those of the eager loop
(:mod:`diffsys.scan.policies`): advances run the forward graph, and a recorded step is a call
of the residual graph followed by one of the backward graph.

Replay needs values a graph can replay: it is not used (the step runs eagerly, correct in
every case) when

- values below the loop's reverse trace are traced by outer transforms (grad of grad, jvp
  or vmap around the gradient), as arguments or through the step's closure: graphs would
  then run through ordinary dispatch anyway;
- the step turns a traced value into a Python value (an ``if`` on it): the graph would be
  specialised to the first step's path.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..core import remat
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.reverse import ReverseTracer
from ..core.transforms import vjp
from ..core.warn import user_stacklevel
from ._scan import _Node


class ReplayFallbackWarning(UserWarning):
    """``scan(..., replay=True)`` ran the step eagerly instead (the message says why)."""


def _plain(x) -> bool:
    return isinstance(x, np.ndarray | np.generic)


def try_replay(loop, trace, init_leaves, policy, warn: bool):
    """Run the loop with replayed graphs, or return ``None`` when replay does not apply."""
    vals = [remat.unbox(trace, x) if trace is not None else x for x in init_leaves]
    xs_vals = [remat.unbox(trace, x) if trace is not None else x for x in loop.xs_leaves]
    if not all(_plain(v) for v in vals + xs_vals):
        return _fallback(warn, "values traced by outer transforms reach the loop")
    graphs = _Graphs(loop, vals, xs_vals)
    reason = graphs.trace_forward()
    if reason is not None:
        return _fallback(warn, reason)
    if graphs.captured:
        trace = trace or _trace_of(graphs.captured)
        if not _captured_by(graphs.captured, trace):
            return _fallback(
                warn,
                "the step reads values traced by outer transforms from its closure (grad of "
                "grad, jvp or vmap around the loop)",
            )
    if trace is None:
        return graphs.plain_loop(vals)
    node = _ReplayNode(loop, trace, init_leaves, policy, graphs)
    reason = graphs.trace_vjp(node.xs_diff)
    if reason is not None:
        return _fallback(warn, reason)
    return node.run()


def _trace_of(captured: list):
    """The reverse trace of the first captured value, if it is one (``None`` otherwise)."""
    first = captured[0]
    return first._trace if isinstance(first, ReverseTracer) else None


def _captured_by(captured: list, trace) -> bool:
    """Whether every captured value is traced by ``trace`` (and by nothing below it): then
    the graphs run on their plain values and their cotangents go to ``trace``'s slots."""
    return trace is not None and all(
        t.__class__ is ReverseTracer and t._trace is trace and _plain(t._value) for t in captured
    )


def _fallback(warn: bool, reason: str):
    if warn:
        warnings.warn(
            f"scan(replay=True): running the step eagerly instead of replaying graphs: {reason}",
            ReplayFallbackWarning,
            stacklevel=user_stacklevel(),
        )
    return None


class _Graphs:
    """The step's graphs, traced on the first step's values.

    The forward graph takes the carry's leaves, ``x``'s leaves and then the *captured*
    values: outer tracers the step reads from its closure, lifted into inputs
    (``ds.trace(..., lift_closures=True)``) and passed their plain values at every step.
    """

    def __init__(self, loop, vals, xs_vals) -> None:
        self.loop = loop
        self.vals = vals
        self.x0 = [leaf[0] for leaf in xs_vals]
        self.n_c = len(vals)

    def _fwd_fun(self, c_leaves, x_leaves):
        loop = self.loop
        return loop.call(list(c_leaves), tree_unflatten(loop.xs_def, list(x_leaves)))

    def _trace(self, fun, args, name, lift_closures: bool = False):
        """``(graph, captured, None)``, or ``(None, None, reason)`` when replay cannot use it."""
        from ..graph import GraphTraceError, trace

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                traced = trace(fun, name=name, lift_closures=lift_closures)(*args)
            except GraphTraceError as e:
                return None, None, f"the step cannot be traced into a graph ({e})"
        graph, captured = traced if lift_closures else (traced, [])
        if graph.specializations:
            return (
                None,
                None,
                (
                    "the step turns a traced value into a Python value (Python control flow on "
                    "it), so a graph traced on one step would not be valid for the others"
                ),
            )
        return graph.optimize(), captured, None  # dead code, common subexpressions, constants

    def trace_forward(self) -> str | None:
        """Trace the forward graph ``(carry, x, captured) -> (carry', y)``."""
        self.fwd, captured, reason = self._trace(
            self._fwd_fun, (self.vals, self.x0), "scan_step", lift_closures=True
        )
        if self.fwd is not None:
            self.n_y = self.loop.y_def.num_leaves
            self.captured = captured
            self.cap_vals = [t._value for t in captured]
        return reason

    def trace_vjp(self, x_diff) -> str | None:
        """Trace the forward graph's VJP as one graph and split it (see the module
        docstring). The forward graph, not the step, is differentiated: its captured values
        are inputs there, so their cotangents are outputs of the VJP."""
        c_diff = [_inexact(v) for v in self.vals]
        cap_diff = [_inexact(v) for v in self.cap_vals]
        self.c_diff, self.x_diff, self.cap_diff = c_diff, x_diff, cap_diff
        positions = [[k for k, d in enumerate(mask) if d] for mask in (c_diff, x_diff, cap_diff)]
        fwd, n_c = self.fwd.call_flat, self.n_c

        def step_and_vjp(c_leaves, x_leaves, cap, ct_c, ct_y):
            known = [list(c_leaves), list(x_leaves), list(cap)]

            def f(*diff):
                parts = [list(p) for p in known]
                for part, pos, d in zip(parts, positions, diff, strict=True):
                    for k, v in zip(pos, d, strict=True):
                        part[k] = v
                out = fwd(parts[0] + parts[1] + parts[2])
                return out[:n_c], out[n_c:]

            primals = [[part[k] for k in pos] for part, pos in zip(known, positions, strict=True)]
            (c_out, y), f_vjp = vjp(f, *primals)
            cts = f_vjp((list(ct_c), list(ct_y)))
            return list(c_out) + list(y) + [ct for group in cts for ct in group]

        out = self.fwd.call_flat(self.vals + self.x0 + self.cap_vals)
        zeros = [np.zeros(np.shape(o), np.asarray(o).dtype) for o in out]
        ct_c, ct_y = zeros[: self.n_c], zeros[self.n_c :]
        self.ct_zeros = ct_c  # the cotangent of a carry leaf that receives none
        args = (self.vals, self.x0, self.cap_vals, ct_c, ct_y)
        graph, _, reason = self._trace(step_and_vjp, args, "scan_step_vjp")
        if graph is None:
            return reason
        n_known = len(self.vals) + len(self.x0) + len(self.cap_vals)
        self.fwd_res, self.bwd, self.n_res = _split(graph, n_known, self.n_c + self.n_y)
        return None

    def plain_loop(self, vals):
        """No reverse trace: the forward graph alone, step after step."""
        loop, call, n_c = self.loop, self.fwd.call_flat, self.n_c
        xs, cap = self.loop.xs_leaves, self.cap_vals
        c = vals
        ys_steps = []
        for i in range(loop.n):
            out = call(c + [leaf[i] for leaf in xs] + cap)
            c = out[:n_c]
            ys_steps.append(out[n_c:])
        return loop.result(c, loop.stack(ys_steps))


def _inexact(v) -> bool:
    return np.issubdtype(np.asarray(v).dtype, np.inexact)


def _split(graph, n_known: int, n_fwd_out: int):
    """Partial evaluation of ``graph`` whose first ``n_known`` placeholders are known and
    whose first ``n_fwd_out`` outputs depend on them only: ``(known graph, rest, n_res)``.

    The known graph computes the operations that depend on known placeholders only and
    returns the first ``n_fwd_out`` outputs, then the *residuals* (known values the other
    operations read); the other graph takes the residuals, then the unknown placeholders,
    and returns the remaining outputs.
    """
    from ..graph._graph import ArgSpec, Graph

    known = set(graph.placeholders[:n_known]) | set(graph.consts)
    fwd_nodes, bwd_nodes = [], []
    for node in graph.nodes:
        if all(v in known for v in node.inputs):
            fwd_nodes.append(node)
            known.update(node.outputs)
        else:
            bwd_nodes.append(node)
    needed = {v for node in bwd_nodes for v in node.inputs}
    needed.update(graph.outputs[n_fwd_out:])
    residuals = sorted(v for v in needed if v in known and v not in graph.consts)
    res_set = set(residuals)
    bwd_vars = [
        info._replace(kind="input") if v in res_set else info for v, info in enumerate(graph.vars)
    ]

    def flat(name, vars_, nodes, inputs, outputs):
        _, in_def = tree_flatten(list(range(len(inputs))))
        _, out_def = tree_flatten(list(range(len(outputs))))
        leaf = ("leaf",)
        arg = ArgSpec(
            "inputs", in_def, ("list", (leaf,) * len(inputs)), tuple(("var", v) for v in inputs)
        )
        return Graph(
            name=name,
            vars=list(vars_),
            nodes=nodes,
            consts=dict(graph.consts),
            args=[arg],
            outputs=tuple(outputs),
            out_treedef=out_def,
            out_spec=("list", (leaf,) * len(outputs)),
        )

    fwd_res = flat(
        graph.name + "_residuals",
        graph.vars,
        fwd_nodes,
        graph.placeholders[:n_known],
        graph.outputs[:n_fwd_out] + tuple(residuals),
    )
    bwd = flat(
        graph.name + "_backward",
        bwd_vars,
        bwd_nodes,
        tuple(residuals) + graph.placeholders[n_known:],
        graph.outputs[n_fwd_out:],
    )
    return fwd_res, bwd, len(residuals)


class _ReplayNode(_Node):
    """The loop's node with steps replayed from graphs. The values the step captured are
    extra inputs of the node (as for the eager loop's node): their cotangents, summed over
    the steps, go to their slots on the trace."""

    def __init__(self, loop, trace, init_leaves, policy, graphs: _Graphs) -> None:
        super().__init__(loop, trace, init_leaves, policy)
        self.graphs = graphs
        self.captured = {t._slot: t._value for t in graphs.captured}
        self.cap_slots = [t._slot for t in graphs.captured]  # in the graphs' input order

    def _inputs(self, c, i: int) -> list:
        """The forward graphs' inputs at step ``i``: carry, ``x_i``, captured values."""
        return c + [leaf[i] for leaf in self.xs_vals] + self.graphs.cap_vals

    def advance(self, c, i: int, keep_y: bool = False, discover: bool = False):
        out = self.graphs.fwd.call_flat(self._inputs(c, i))
        n_c = self.graphs.n_c
        return (out[:n_c], out[n_c:]) if keep_y else out[:n_c]

    def last_step(self, c):
        c_new, y = self.advance(c, self.loop.n - 1, keep_y=True)
        return c_new, y, None

    def forward(self):
        if self.policy is not None:
            return super().forward()
        # No checkpointing: every step's residuals are kept.
        g = self.graphs
        call, xs, cap = g.fwd_res.call_flat, self.xs_vals, g.cap_vals
        n_c, n_cy = g.n_c, g.n_c + g.n_y
        c = self.init_vals
        ys_steps, res = [], []
        for i in range(self.loop.n):
            out = call(c + [leaf[i] for leaf in xs] + cap)
            c = out[:n_c]
            ys_steps.append(out[n_c:n_cy])
            res.append(out[n_cy:])
        return c, ys_steps, {"res": res}

    def _pull(self, res, i: int, ct_full: list, g_ys: list) -> list:
        """The backward graph at step ``i``: updates ``ct_full`` (every carry leaf) in place,
        collects ``x_i``'s cotangents and adds the captured values' to their sums."""
        g = self.graphs
        out = g.bwd.call_flat(res + ct_full + [gy[i] for gy in g_ys])
        k = 0
        for j, d in enumerate(g.c_diff):
            if d:
                ct_full[j] = out[k]
                k += 1
        for j, d in enumerate(g.x_diff):
            if d:
                self.ct_xs[j][i] = out[k]
                k += 1
        sums = self.cap_cts
        for slot, d in zip(self.cap_slots, g.cap_diff, strict=True):
            if d:
                total = sums.get(slot)
                if total is None:
                    sums[slot] = np.array(out[k])  # a copy this sum owns
                else:
                    total += out[k]
                k += 1
        return ct_full

    def adjoint_at(self, c, i: int, ct_c: list, g_ys: list) -> list:
        g = self.graphs
        res = g.fwd_res.call_flat(self._inputs(c, i))[g.n_c + g.n_y :]
        ct_full = [z if ct is None else ct for ct, z in zip(ct_c, g.ct_zeros, strict=True)]
        self._pull(res, i, ct_full, g_ys)
        return [ct if d else None for ct, d in zip(ct_full, g.c_diff, strict=True)]

    def sweep(self, state, ct_c: list, g_ys: list) -> list:
        if self.policy is not None:
            return super().sweep(state, ct_c, g_ys)
        g = self.graphs
        ct_full = [z if ct is None else ct for ct, z in zip(ct_c, g.ct_zeros, strict=True)]
        res = state["res"]
        for i in range(self.loop.n - 1, -1, -1):
            self._pull(res[i], i, ct_full, g_ys)
        return [ct if d else None for ct, d in zip(ct_full, g.c_diff, strict=True)]
