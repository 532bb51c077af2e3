"""Scan + replay: the step traced once into graphs, replayed on plain arrays at every step.

Running a step eagerly under reverse mode costs the tracing of every operation, every step.
With ``replay``, ``scan`` traces the step once (:func:`diffsys.trace`) into a *forward graph*
``(carry, x) -> (carry', y)`` and, when reverse mode differentiates the loop, once more into
one graph of the step's forward pass and VJP, ``(carry, x, ct_carry', ct_y) -> (carry', y,
ct_carry, ct_x)``. That graph is split in two (partial evaluation): the *residual graph*, the
operations that depend on ``(carry, x)`` only, which also returns the intermediate values
the VJP needs (*residuals*); and the *backward graph*, ``(residuals, ct_carry', ct_y) ->
(ct_carry, ct_x)``. The loop calls the graphs' replay (:meth:`diffsys.Graph.call_flat`) on
plain arrays: no tracer, no tape, no dispatch per operation.

The loop is still one node on the reverse trace. With ``checkpoint=None`` the forward pass
runs the residual graph and keeps every step's residuals, the backward pass runs the backward
graph: nothing is recomputed. With a policy the schedules are those of the eager loop
(:mod:`diffsys.scan.policies`): advances run the forward graph, and a recorded step is a call
of the residual graph followed by one of the backward graph.

Replay needs values a graph can replay: it is not used (the step runs eagerly, correct in
every case) when

- values below the loop's reverse trace are traced by outer transforms (grad of grad, jvp
  or vmap around the gradient): graphs would then run through ordinary dispatch anyway;
- the step reads traced values from its closure (``ds.trace`` refuses them: pass them in
  the carry, or through ``xs``);
- the step turns a traced value into a Python value (an ``if`` on it): the graph would be
  specialised to the first step's path.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from ..core import remat
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.transforms import vjp
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
    if trace is None:
        return graphs.plain_loop(vals)
    node = _ReplayNode(loop, trace, init_leaves, policy, graphs)
    reason = graphs.trace_vjp(node.xs_diff)
    if reason is not None:
        return _fallback(warn, reason)
    return node.run()


def _fallback(warn: bool, reason: str):
    if warn:
        warnings.warn(
            f"scan(replay=True): running the step eagerly instead of replaying graphs: {reason}",
            ReplayFallbackWarning,
            stacklevel=_user_stacklevel(),
        )
    return None


def _user_stacklevel() -> int:
    """The stack level of the first caller outside this package (for warnings)."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


class _Graphs:
    """The step's graphs, traced on the first step's values."""

    def __init__(self, loop, vals, xs_vals) -> None:
        self.loop = loop
        self.vals = vals
        self.x0 = [leaf[0] for leaf in xs_vals]
        self.n_c = len(vals)

    def _fwd_fun(self, c_leaves, x_leaves):
        loop = self.loop
        return loop.call(list(c_leaves), tree_unflatten(loop.xs_def, list(x_leaves)))

    def _trace(self, fun, args, name):
        from ..graph import GraphTraceError, trace

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                graph = trace(fun, name=name)(*args)
            except GraphTraceError as e:
                return None, f"the step cannot be traced into a graph ({e})"
        if graph.specializations:
            return None, (
                "the step turns a traced value into a Python value (Python control flow on "
                "it), so a graph traced on one step would not be valid for the others"
            )
        return graph.optimize(), None  # dead code, common subexpressions, constants

    def trace_forward(self) -> str | None:
        self.fwd, reason = self._trace(self._fwd_fun, (self.vals, self.x0), "scan_step")
        if self.fwd is not None:
            self.n_y = self.loop.y_def.num_leaves
        return reason

    def trace_vjp(self, x_diff) -> str | None:
        """Trace the step's forward pass and VJP as one graph and split it (see the module
        docstring)."""
        c_diff = [np.issubdtype(np.asarray(v).dtype, np.inexact) for v in self.vals]
        self.c_diff, self.x_diff = c_diff, x_diff
        c_pos = [k for k, d in enumerate(c_diff) if d]
        x_pos = [k for k, d in enumerate(x_diff) if d]
        fwd_fun = self._fwd_fun

        def step_and_vjp(c_leaves, x_leaves, ct_c, ct_y):
            c_leaves, x_leaves = list(c_leaves), list(x_leaves)

            def f(cd, xd):
                c, x = list(c_leaves), list(x_leaves)
                for k, v in zip(c_pos, cd, strict=True):
                    c[k] = v
                for k, v in zip(x_pos, xd, strict=True):
                    x[k] = v
                c_out, y = fwd_fun(c, x)
                return list(c_out), list(y)

            (c_out, y), f_vjp = vjp(f, [c_leaves[k] for k in c_pos], [x_leaves[k] for k in x_pos])
            ct_cd, ct_xd = f_vjp((list(ct_c), list(ct_y)))
            return c_out + y + list(ct_cd) + list(ct_xd)

        out = self.fwd.call_flat(list(self.vals) + list(self.x0))
        zeros = [np.zeros(np.shape(o), np.asarray(o).dtype) for o in out]
        ct_c, ct_y = zeros[: self.n_c], zeros[self.n_c :]
        self.ct_zeros = ct_c  # the cotangent of a carry leaf that receives none
        graph, reason = self._trace(step_and_vjp, (self.vals, self.x0, ct_c, ct_y), "scan_step_vjp")
        if graph is None:
            return reason
        n_known = len(self.vals) + len(self.x0)
        self.fwd_res, self.bwd, self.n_res = _split(graph, n_known, self.n_c + self.n_y)
        return None

    def plain_loop(self, vals):
        """No reverse trace: the forward graph alone, step after step."""
        loop, call, n_c = self.loop, self.fwd.call_flat, self.n_c
        xs = self.loop.xs_leaves
        c = vals
        ys_steps = []
        for i in range(loop.n):
            out = call(c + [leaf[i] for leaf in xs])
            c = out[:n_c]
            ys_steps.append(out[n_c:])
        return loop.result(c, loop.stack(ys_steps))


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
    """The loop's node with steps replayed from graphs."""

    def __init__(self, loop, trace, init_leaves, policy, graphs: _Graphs) -> None:
        super().__init__(loop, trace, init_leaves, policy)
        self.graphs = graphs

    def advance(self, c, i: int, keep_y: bool = False, discover: bool = False):
        out = self.graphs.fwd.call_flat(c + [leaf[i] for leaf in self.xs_vals])
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
        call, xs, n_c, n_cy = g.fwd_res.call_flat, self.xs_vals, g.n_c, g.n_c + g.n_y
        c = self.init_vals
        ys_steps, res = [], []
        for i in range(self.loop.n):
            out = call(c + [leaf[i] for leaf in xs])
            c = out[:n_c]
            ys_steps.append(out[n_c:n_cy])
            res.append(out[n_cy:])
        return c, ys_steps, {"res": res}

    def _pull(self, res, i: int, ct_full: list, g_ys: list) -> list:
        """The backward graph at step ``i``: updates ``ct_full`` (every carry leaf) in place
        and collects ``x_i``'s cotangents."""
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
        return ct_full

    def adjoint_at(self, c, i: int, ct_c: list, g_ys: list) -> list:
        g = self.graphs
        res = g.fwd_res.call_flat(c + [leaf[i] for leaf in self.xs_vals])[g.n_c + g.n_y :]
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
