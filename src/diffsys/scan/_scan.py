"""``scan``: a loop carrying a state, differentiable in both modes, with checkpointing.

How it is differentiated
------------------------
With ``checkpoint=None`` the loop simply runs: every transform records every step as it
would record a Python loop (reverse mode keeps every intermediate value; forward mode and
``vmap`` keep nothing anyway). Derivatives of any order follow.

With a checkpointing policy, and when the innermost transform differentiating the loop is
reverse mode (trace ``T``), the whole loop is one node on ``T``'s tape whose inputs are
``init``, ``xs`` and the traced values the step reads from its closure (found while it runs,
see :mod:`diffsys.core.remat`), and whose outputs are the final carry and the stacked ``ys``.
The forward pass runs the steps on values one level below ``T`` (nothing is recorded on
``T``) and keeps the carries the policy asks for (:mod:`diffsys.scan.policies`). The backward
pass follows the policy's schedule: it restores snapshots, advances from them, and for each
step from last to first records that step on ``T`` (a private tape) and walks it back with
the step's VJP rules, which are :mod:`diffsys.numpy` operations: an outer transform records
them, so higher derivatives (grad of grad, jvp of grad, hessian) work under every policy.
Under forward mode or ``vmap`` as the innermost transform the loop runs as with ``None``.

With ``replay``, the step's forward pass and its VJP are traced once each into graphs
(:func:`diffsys.trace`) and replayed on plain arrays at every step: see :mod:`._replay`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core import remat
from ..core.primitive import Primitive
from ..core.pytree import PyTreeDef, same_structure, tree_flatten, tree_unflatten
from ..core.reverse import ReverseTrace, ReverseTracer
from ..core.tracer import Tracer
from . import policies

# The loop's node on a reverse tape (named "scan"; not registered: it is never applied by name).
_scan_p = Primitive(
    "scan", lambda step, init, xs, length: scan(step, init, xs, length), register=False
)


def scan(
    step: Callable,
    init,
    xs=None,
    length: int | None = None,
    *,
    checkpoint=None,
    replay: bool | str = False,
    reverse: bool = False,
):
    """Loop ``carry, y = step(carry, x)`` over the leading axis of ``xs``, like
    ``jax.lax.scan``; returns ``(final_carry, ys)`` with the ``y``'s stacked on a new leading
    axis.

    ``init``, ``xs`` and ``y`` may be pytrees; the carry ``step`` returns must have the
    structure, shapes and dtypes of ``init``. With ``xs=None``, ``length`` gives the number of
    steps and ``step`` receives ``x=None``.

    ``checkpoint`` chooses what reverse mode keeps for the backward pass
    (:mod:`diffsys.scan.policies`): ``None`` (default) or ``"all"`` keeps every intermediate
    value of every step, like a Python loop; ``("every_k", k)`` keeps every ``k``-th carry;
    ``"sqrt"`` keeps about ``2 sqrt(length)`` carries; ``("binomial", s)`` keeps ``s``
    carries and recomputes the fewest steps possible (Revolve). Policy objects from
    ``diffsys.scan_policies`` (``every(k)``, ``sqrt()``, ``binomial(s)``) work too.

    ``replay=True`` traces the step (and its VJP) once into graphs and replays them on
    plain arrays, so the per-step cost of tracing is paid once; traced values the step reads
    from its closure become extra inputs of the graphs. It falls back to running the step
    (with a :class:`diffsys.scan.ReplayFallbackWarning`) when values traced by an outer
    transform are present (grad of grad, vmap, jvp) or when the step turns a traced value
    into a Python value. ``replay="auto"`` is the same without a warning when it falls back.

    ``reverse=True`` runs the steps from the last ``x`` to the first (``ys`` keep the order of
    ``xs``), like ``jax.lax.scan``.

    Gradients reach ``init``, ``xs`` and traced values the step reads from its closure.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> def step(c, x):
    ...     c = 0.9 * c + x
    ...     return c, c ** 2
    >>> c, ys = ds.scan(step, 0.0, np.arange(3.0))
    >>> float(c), ys.tolist()
    (2.9, [0.0, 1.0, 8.41])
    >>> g = ds.grad(lambda c0: ds.scan(step, c0, np.arange(3.0), checkpoint="sqrt")[0])(1.0)
    >>> round(float(g), 6)
    0.729
    """
    if reverse:
        flipped = _tree_map_leaves(lambda a: a[::-1], xs)
        carry, ys = scan(
            step, init, flipped, length, checkpoint=checkpoint, replay=replay, reverse=False
        )
        return carry, _tree_map_leaves(lambda a: a[::-1], ys)
    policy = policies.resolve(checkpoint)
    if replay not in (False, True, "auto"):
        raise ValueError(f"scan: replay must be True, False or 'auto', got {replay!r}")
    if not callable(step):
        raise TypeError(f"scan: step must be a function, got {type(step).__name__}")
    xs_leaves, xs_def = tree_flatten(xs)
    n = _length(xs_leaves, length)
    init_leaves, carry_def = tree_flatten(init)
    init_leaves = [_as_value(x) for x in init_leaves]
    loop = _Loop(step, carry_def, xs_leaves, xs_def, n)
    if n == 0:
        return loop.empty(init_leaves)
    trace = remat.node_trace(init_leaves + xs_leaves, step)
    if replay:
        from ._replay import try_replay

        done = try_replay(loop, trace, init_leaves, policy, warn=replay is True)
        if done is not None:
            return done
    if trace is None or policy is None:
        return loop.eager(init_leaves, policy)
    return loop.node(trace, init_leaves, policy)


def _tree_map_leaves(f, tree):
    leaves, treedef = tree_flatten(tree)
    return tree_unflatten(treedef, [f(x) for x in leaves])


def _length(xs_leaves, length) -> int:
    if length is not None:
        if not isinstance(length, int | np.integer) or isinstance(length, bool) or length < 0:
            raise ValueError(f"scan: length must be a non-negative int, got {length!r}")
        length = int(length)
    sizes = set()
    for leaf in xs_leaves:
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(
                "scan: every leaf of xs needs a leading axis to scan over, got a 0-d value"
            )
        sizes.add(shape[0])
    if len(sizes) > 1:
        raise ValueError(f"scan: the leaves of xs have different leading sizes {sorted(sizes)}")
    if sizes:
        (size,) = sizes
        if length is not None and length != size:
            raise ValueError(f"scan: length={length} but xs has leading size {size}")
        return size
    if length is None:
        raise ValueError("scan: with xs=None (or no array leaves in xs), length must be given")
    return length


def _as_value(x):
    if isinstance(x, Tracer | np.ndarray):
        return x
    if isinstance(x, bool | int | float | complex | np.generic):
        return np.asarray(x)
    raise TypeError(f"scan: the leaves of init must be arrays or numbers, got {type(x).__name__}")


def _inexact(x) -> bool:
    return np.issubdtype(x.dtype, np.inexact)


def _describe(x) -> str:
    return f"shape {tuple(np.shape(x))}, dtype {x.dtype}"


_LEAF_TYPES = (np.ndarray, np.generic, Tracer, float, int, complex)


def _flattener(td: PyTreeDef):
    """``f(x, out) -> bool``: append ``x``'s leaves to ``out`` if ``x`` has structure ``td``
    (tuples, lists and ``None`` around array leaves: the common carries), else ``False``."""
    node = td.node_type
    if node is None:
        return lambda x, out: isinstance(x, _LEAF_TYPES) and (out.append(x) or True)
    if node is type(None):
        return lambda x, out: x is None
    if node is tuple or node is list:
        subs = tuple(_flattener(c) for c in td.children)
        n = len(subs)

        def flatten(x, out):
            if x.__class__ is not node or len(x) != n:
                return False
            for sub, c in zip(subs, x, strict=True):
                if not sub(c, out):
                    return False
            return True

        return flatten
    return lambda x, out: False


def _unflattener(td: PyTreeDef):
    """``f(leaves) -> tree`` for structure ``td`` (fast for tuples, lists and ``None``)."""
    node = td.node_type
    if node is None:
        return lambda leaves: leaves[0]
    if node is type(None):
        return lambda leaves: None
    if (node is tuple or node is list) and all(c.node_type is None for c in td.children):
        return tuple if node is tuple else list
    return lambda leaves: tree_unflatten(td, leaves)


class _Loop:
    """One call of ``scan``: the step, the structures, and the three ways to run it."""

    def __init__(self, step, carry_def: PyTreeDef, xs_leaves, xs_def, n: int) -> None:
        self.step = step
        self.carry_def = carry_def
        self.xs_leaves = xs_leaves
        self.xs_def = xs_def
        self.n = n
        self.y_def: PyTreeDef | None = None
        self.checked = False
        self.flat_c = _flattener(carry_def)
        self.flat_y = None
        self.unflat_c = _unflattener(carry_def)
        self.unflat_x = _unflattener(xs_def)

    # --- one step ----------------------------------------------------------------------------
    def x_at(self, xs_leaves, i: int):
        return self.unflat_x([leaf[i] for leaf in xs_leaves])

    def call(self, carry_leaves, x):
        """``step`` on flat carry leaves; flat (new carry, y) leaves, checked."""
        out = self.step(self.unflat_c(carry_leaves), x)
        if out.__class__ is tuple and len(out) == 2 and self.flat_y is not None:
            c_leaves, y_leaves = [], []
            if self.flat_c(out[0], c_leaves) and self.flat_y(out[1], y_leaves):
                return c_leaves, y_leaves
        return self._call_checked(carry_leaves, out)

    def _call_checked(self, carry_leaves, out):
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise TypeError(
                "scan: step must return a pair (carry, y), got "
                + (
                    f"a sequence of length {len(out)}"
                    if isinstance(out, tuple | list)
                    else type(out).__name__
                )
            )
        c_leaves, c_def = tree_flatten(out[0])
        y_leaves, y_def = tree_flatten(out[1])
        if not same_structure(c_def, self.carry_def):
            raise TypeError(
                f"scan: step returned a carry of structure {c_def}, but init has structure "
                f"{self.carry_def}; they must match"
            )
        if self.y_def is None:
            self.y_def = y_def
            self.flat_y = _flattener(y_def)
        elif not same_structure(y_def, self.y_def):
            raise TypeError(
                f"scan: step returned y of structure {y_def} at one step and {self.y_def} at "
                "another; it must be the same at every step"
            )
        if not self.checked:
            self.checked = True
            for k, (a, b) in enumerate(zip(carry_leaves, c_leaves, strict=True)):
                b_val = _as_value(b)
                if np.shape(a) != np.shape(b_val) or a.dtype != b_val.dtype:
                    raise TypeError(
                        f"scan: carry leaf {k} enters the step with {_describe(a)} and leaves "
                        f"it with {_describe(b_val)}; a carry must keep its shape and dtype "
                        "(cast it, e.g. with .astype)"
                    )
        return c_leaves, y_leaves

    # --- results -----------------------------------------------------------------------------
    def stack(self, ys_steps: list[list]):
        """Stack per-step y leaves on a new leading axis."""
        import diffsys.numpy as dnp

        if self.y_def is None:
            return None
        cols = []
        for k in range(self.y_def.num_leaves):
            col = [_as_value(ys[k]) for ys in ys_steps]
            if any(isinstance(v, Tracer) for v in col):
                cols.append(dnp.stack(col))
            else:
                cols.append(np.stack(col))
        return cols

    def result(self, carry_leaves, ys_cols):
        carry = tree_unflatten(self.carry_def, carry_leaves)
        ys = None if self.y_def is None else tree_unflatten(self.y_def, ys_cols)
        return carry, ys

    def empty(self, init_leaves):
        """Zero steps: ``init`` and empty ``ys`` shaped by one step on plain zeros."""
        plain = [np.zeros(np.shape(x), x.dtype) for x in init_leaves]
        x = tree_unflatten(
            self.xs_def,
            [np.zeros(np.shape(leaf)[1:], getattr(leaf, "dtype", None)) for leaf in self.xs_leaves],
        )
        _, y_leaves = self.call(plain, x)
        cols = [np.zeros((0,) + np.shape(y), _as_value(y).dtype) for y in y_leaves]
        return self.result(init_leaves, cols)

    # --- no node: the loop as it is ------------------------------------------------------------
    def eager(self, init_leaves, policy):
        """Run the loop; transforms record it as they would a Python loop. With a policy,
        the first step may reveal a reverse trace read from the closure that
        :func:`remat.node_trace` missed: the loop then restarts as a node on it."""
        c = init_leaves
        ys_steps = []
        top = remat.higher_trace(init_leaves + self.xs_leaves, None)
        for i in range(self.n):
            c_new, y = self.call(c, self.x_at(self.xs_leaves, i))
            if i == 0 and policy is not None:
                higher = remat.higher_trace(c_new + y, top)
                if isinstance(higher, ReverseTrace):
                    return self.node(higher, init_leaves, policy)
            c = c_new
            ys_steps.append(y)
        return self.result(c, self.stack(ys_steps))

    # --- one node on a reverse trace -----------------------------------------------------------
    def node(self, trace: ReverseTrace, init_leaves, policy):
        try:
            return _Node(self, trace, init_leaves, policy).run()
        except _Restart as r:  # the step read a value traced above ``trace``
            if isinstance(r.trace, ReverseTrace):
                return self.node(r.trace, init_leaves, policy)
            return self.eager(init_leaves, None)


class _Restart(Exception):
    """A step's outputs hold a value traced above the node's trace: run on that trace."""

    def __init__(self, trace) -> None:
        super().__init__()
        self.trace = trace


class _Taped:
    """One step recorded on the node's trace: its entries and slot range, the slots of its
    boxed carry and ``x`` leaves, its output leaves."""

    __slots__ = ("entries", "base", "end", "c_slots", "x_slots", "c_out", "y_out")


class _Node:
    """The loop as one node on ``trace``: forward pass, then the backward pass's schedule."""

    def __init__(self, loop: _Loop, trace: ReverseTrace, init_leaves, policy) -> None:
        self.loop = loop
        self.trace = trace
        self.policy = policy
        self.n_init = len(init_leaves)
        self.vals = []
        self.parents = []
        for i, x in enumerate(init_leaves + loop.xs_leaves):
            if x.__class__ is ReverseTracer and x._trace is trace:
                self.vals.append(x._value)
                self.parents.append((i, x._slot))
            else:
                self.vals.append(x)
        self.init_vals = self.vals[: self.n_init]
        self.xs_vals = self.vals[self.n_init :]
        # xs leaves that receive cotangents: traced by ``trace`` and inexact
        traced = {i for i, _ in self.parents}
        self.xs_diff = [
            (self.n_init + k) in traced and _inexact(v) for k, v in enumerate(self.xs_vals)
        ]
        self.captured: dict = {}  # slot -> value of traced values the step reads

    # --- steps -----------------------------------------------------------------------------------
    def _check_level(self, leaves) -> None:
        higher = remat.higher_trace(leaves, self.trace)
        if higher is not None:
            raise _Restart(higher)

    def advance(self, c, i: int, keep_y: bool = False, discover: bool = False):
        """Step ``i`` from ``c`` with nothing recorded; the new carry (and ``y``)."""
        loop, trace = self.loop, self.trace
        with remat.Recording(trace) as rec:
            c_leaves, y_leaves = loop.call(c, loop.x_at(self.xs_vals, i))
            self._check_level(c_leaves + y_leaves)
            if discover:
                rec.captured(c_leaves + y_leaves, into=self.captured)
            c_new = [remat.unbox(trace, o) for o in c_leaves]
            if keep_y:
                return c_new, [remat.unbox(trace, o) for o in y_leaves]
        return c_new

    def tape(self, rec, c, i: int) -> _Taped:
        """Record step ``i`` from ``c`` in ``rec``; its inexact carry leaves and its
        differentiated ``x`` leaves are the recording's inputs."""
        loop = self.loop
        taped = _Taped()
        boxed = list(c)
        taped.c_slots = [None] * len(c)
        for k, v in enumerate(c):
            if _inexact(v):
                t = rec.box(v)
                boxed[k] = t
                taped.c_slots[k] = t._slot
        x_leaves = [leaf[i] for leaf in self.xs_vals]
        taped.x_slots = [None] * len(x_leaves)
        for k, v in enumerate(x_leaves):
            if self.xs_diff[k]:
                t = rec.box(v)
                x_leaves[k] = t
                taped.x_slots[k] = t._slot
        taped.c_out, taped.y_out = loop.call(boxed, tree_unflatten(loop.xs_def, x_leaves))
        self._check_level(taped.c_out + taped.y_out)
        taped.entries = rec.entries
        taped.base = rec.base
        taped.end = rec.end
        return taped

    def adjoint(self, taped: _Taped, i: int, ct_c: list, g_ys: list) -> list:
        """Walk step ``i``'s recording back from the cotangents of its outputs; returns the
        carry's cotangent before the step, collects those of ``x_i`` and captured values."""
        trace = self.trace
        cts: dict = {}
        remat.seed(cts, trace, taped.c_out, ct_c)
        remat.seed(cts, trace, taped.y_out, [g[i] for g in g_ys])
        remat.backprop(taped.entries, cts, trace.ops)
        ct_prev = [None if s is None else cts.pop(s, None) for s in taped.c_slots]
        for k, s in enumerate(taped.x_slots):
            if s is not None:
                ct = cts.pop(s, None)
                if ct is not None:
                    self.ct_xs[k][i] = ct
        for s, ct in cts.items():
            if s >= taped.base:
                continue
            if s not in self.captured:
                raise RuntimeError(
                    "scan: recomputing a step in the backward pass read a traced value that "
                    "the forward pass did not; the step must take the same path both times "
                    "(no Python control flow on values that differ between the passes)"
                )
            remat.accumulate(self.cap_cts, s, ct)
        return ct_prev

    # --- forward pass ---------------------------------------------------------------------------
    def last_step(self, c):
        """The forward pass's last step: recorded at once, its recording is the first adjoint's
        (one evaluation fewer). Returns the new carry, ``y`` and the recording."""
        trace = self.trace
        with remat.Recording(trace) as rec:
            last = self.tape(rec, c, self.loop.n - 1)
            rec.captured(last.c_out + last.y_out, into=self.captured)
        c_final = [remat.unbox(trace, o) for o in last.c_out]
        return c_final, [remat.unbox(trace, o) for o in last.y_out], last

    def forward(self):
        """Run the steps, keeping what the policy asks for: the final carry, the ``y``'s of
        every step and the state the backward pass starts from."""
        n = self.loop.n
        snap_at = self.policy.forward_snapshots(n)
        snaps = {}
        c = self.init_vals
        ys_steps = []
        for i in range(n - 1):
            if i in snap_at:
                snaps[i] = c
            c, y = self.advance(c, i, keep_y=True, discover=True)
            if y:  # a step without outputs keeps nothing: memory independent of the length
                ys_steps.append(y)
        if (n - 1) in snap_at:
            snaps[n - 1] = c
        c_final, y, last = self.last_step(c)
        if y:
            ys_steps.append(y)
        return c_final, ys_steps, {"snaps": snaps, "last": last, "c_last": c}

    def run(self):
        loop, trace = self.loop, self.trace
        c_final, ys_steps, state = self.forward()
        ys_cols = loop.stack(ys_steps)
        del ys_steps
        n_in = len(self.vals)
        cap_slots = list(self.captured)
        parents = self.parents + [(n_in + j, s) for j, s in enumerate(cap_slots)]
        if not parents:  # nothing traced by ``trace`` reaches the loop
            return loop.result(c_final, ys_cols)
        n_c = len(c_final)

        def bwd(g):
            return self.backward(state, list(g[:n_c]), list(g[n_c:]), cap_slots, n_in)

        node_vals = self.vals + [self.captured[s] for s in cap_slots]
        tracers = trace.record_custom(_scan_p, node_vals, c_final + ys_cols, parents, bwd, True)
        return loop.result(tracers[:n_c], tracers[n_c:])

    def adjoint_at(self, c, i: int, ct_c: list, g_ys: list) -> list:
        """Record step ``i`` from ``c`` and walk it back (see :meth:`adjoint`)."""
        with remat.Recording(self.trace) as rec:
            return self.adjoint(self.tape(rec, c, i), i, ct_c, g_ys)

    def adjoint_last(self, last, i: int, ct_c: list, g_ys: list) -> list:
        """Walk back the forward pass's recording of the last step."""
        with remat.Recording(self.trace, reserve=last.end):
            return self.adjoint(last, i, ct_c, g_ys)

    # --- backward pass --------------------------------------------------------------------------
    def backward(self, state, ct_c, g_ys, cap_slots, n_in):
        n = self.loop.n
        self.ct_xs = [[None] * n for _ in self.xs_vals]
        self.cap_cts = {}
        ct_c = [g if _inexact(v) else None for g, v in zip(ct_c, self.init_vals, strict=True)]
        ct_c = self.sweep(state, ct_c, g_ys)
        result = {}
        for i, _ in self.parents:
            ct = ct_c[i] if i < self.n_init else self._stack_ct(i - self.n_init)
            if ct is not None:
                result[i] = ct
        for j, s in enumerate(cap_slots):
            ct = self.cap_cts.get(s)
            if ct is not None:
                result[n_in + j] = ct
        self.ct_xs = self.cap_cts = None
        return result

    def sweep(self, state, ct_c: list, g_ys: list) -> list:
        """The policy's backward schedule, from the final carry's cotangent to ``init``'s."""
        n = self.loop.n
        snaps = dict(state["snaps"])  # a vjp function may be called again: keep the originals
        last, state["last"] = state["last"], None
        cur, cur_i = None, None
        for action in self.policy.backward(n):
            kind = action[0]
            if kind == "adjoint":
                i = action[1]
                if i == n - 1 and last is not None:  # recorded by the forward pass
                    ct_c = self.adjoint_last(last, i, ct_c, g_ys)
                    last = None
                    continue
                if i == n - 1:
                    c = state["c_last"]
                else:
                    c = cur if cur_i == i else snaps[i]
                ct_c = self.adjoint_at(c, i, ct_c, g_ys)
            elif kind == "restore":
                cur, cur_i = snaps[action[1]], action[1]
            elif kind == "advance":
                _, i, j = action
                if cur_i != i:
                    cur = snaps[i]
                for k in range(i, j):
                    cur = self.advance(cur, k)
                cur_i = j
            elif kind == "snapshot":
                snaps[action[1]] = cur
            elif kind == "free":
                snaps.pop(action[1], None)
        return ct_c

    def _stack_ct(self, k: int):
        import diffsys.numpy as dnp

        col = self.ct_xs[k]
        if all(ct is None for ct in col):
            return None
        leaf = self.xs_vals[k]
        zero = np.zeros(np.shape(leaf)[1:], leaf.dtype)
        col = [zero if ct is None else ct for ct in col]
        if any(isinstance(ct, Tracer) for ct in col):
            return dnp.stack(col)
        return np.stack(col)
