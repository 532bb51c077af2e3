"""Anomaly mode: name the first operation that produces NaN or Inf, forward or backward.

``with ds.debug.anomalies():`` checks the output of every primitive, every VJP rule (the
backward pass) and every JVP rule (tangents), and raises :class:`AnomalyError` at the first
NaN or Inf with the primitive's name, the rule and argument, shapes and dtypes, and the
user's source line (for the backward pass: the line where the forward operation ran).

Zero cost when off: nothing on the engine's per-operation path looks at anomaly mode.
Entering the outermost block swaps every registered primitive's implementation and JVP rules
for checking wrappers and makes reverse traces tag each recorded node with its source line
and checking VJP rules; leaving it puts everything back.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
import warnings

import numpy as np

from ..core.primitive import registry
from ..core.reverse import ReverseTrace, _CustomNode
from ..core.tracer import Tracer

__all__ = ["AnomalyError", "AnomalyWarning", "anomalies"]

# Frames in files under this folder belong to diffsys; the user's line is the first other one.
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class AnomalyError(FloatingPointError):
    """NaN or Inf first appeared here (raised by :class:`anomalies`).

    Attributes: ``primitive`` (name), ``phase`` (``"forward"``, ``"backward"`` or
    ``"tangent"``), ``kind`` (``"NaN"`` or ``"Inf"``), ``argnum`` (the argument whose
    cotangent or tangent the rule computed, or ``None``), ``inner`` (the operation inside the
    rule where it appeared, or ``None``), ``already`` (what already held it when the operation
    did not produce it, e.g. ``"input 0"``, else ``None``), ``site`` (``(file, line,
    function)`` of the user's code, or ``None``).
    """

    def __init__(self, message: str, **info) -> None:
        super().__init__(message)
        self.primitive: str = info["primitive"]
        self.phase: str = info["phase"]
        self.kind: str = info["kind"]
        self.argnum: int | None = info.get("argnum")
        self.inner: str | None = info.get("inner")
        self.already: str | None = info.get("already")
        self.site: tuple[str, int, str] | None = info.get("site")


class AnomalyWarning(RuntimeWarning):
    """The warning :class:`anomalies` gives with ``warn=True``."""


AnomalyError.__module__ = AnomalyWarning.__module__ = "diffsys.debug"  # where users find them


# --- the state of the process-wide mode ------------------------------------------------------

_lock = threading.RLock()
_active: list[anomalies] = []  # entered blocks, innermost last (all threads)
_saved: dict = {}  # primitive -> (impl, jvps, jvp_all) while installed
_TRACE_METHODS = ("process", "process1", "process2", "record_custom")
_saved_trace: dict = {}
_tls = threading.local()  # .rule: the rule being run in this thread (a _Rule), or None


def _options() -> anomalies | None:
    try:
        return _active[-1]
    except IndexError:
        return None


class _Rule:
    """A derivative rule being run: which primitive, which argument, where it was recorded."""

    __slots__ = ("phase", "prim", "argnum", "site", "parent")

    def __init__(self, phase, prim, argnum, site, parent):
        self.phase = phase
        self.prim = prim
        self.argnum = argnum
        self.site = site
        self.parent = parent

    def where(self):
        """The recorded source line of this rule or of the rule it runs in, else the stack's."""
        rule = self
        while rule is not None:
            if rule.site is not None:
                return rule.site
            rule = rule.parent
        return _user_site()

    def describe(self) -> str:
        what = "VJP" if self.phase == "backward" else "JVP"
        text = f"the {what} rule of primitive '{self.prim}'"
        if self.argnum is not None:
            text += f" for its argument {self.argnum}"
        if self.parent is not None:
            text += f", inside {self.parent.describe()}"
        return text


# --- checks --------------------------------------------------------------------------------------


def _plain(x):
    while isinstance(x, Tracer):
        x = x._value
    return x


def _bad(x, opts) -> str | None:
    """``"NaN"`` or ``"Inf"`` if ``x`` (an array, scalar or list of them) holds one."""
    if isinstance(x, list | tuple | dict):
        for item in x.values() if isinstance(x, dict) else x:
            kind = _bad(item, opts)
            if kind:
                return kind
        return None
    x = _plain(x)
    if isinstance(x, np.ndarray | np.generic):
        if x.dtype.kind not in "fc":
            return None
    elif isinstance(x, float | complex):
        x = np.asarray(x)
    else:
        return None
    if np.isfinite(x).all():
        return None
    if opts.nan and np.isnan(x).any():
        return "NaN"
    if opts.inf and np.isinf(x).any():
        return "Inf"
    return None


def _describe_value(x) -> str:
    if isinstance(x, list | tuple):
        return "(" + ", ".join(_describe_value(v) for v in x) + ")"
    v = _plain(x)
    if isinstance(v, np.ndarray | np.generic):
        return f"{tuple(v.shape)} {v.dtype}"
    if isinstance(v, int | float | complex):
        return f"{type(v).__name__} scalar"
    return type(v).__name__


def _describe_values(xs) -> str:
    return ", ".join(_describe_value(x) for x in xs) or "none"


def _user_site() -> tuple[str, int, str] | None:
    """``(file, line, function)`` of the first frame on the stack outside diffsys."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    if f is None:
        return None
    return f.f_code.co_filename, f.f_lineno, f.f_code.co_name


def _format_site(site) -> str:
    if site is None:
        return "(no frame outside diffsys on the stack)"
    filename, lineno, func = site
    code = linecache.getline(filename, lineno).strip()
    text = f"{filename}:{lineno}, in {func}"
    return text + (f"\n      {code}" if code else "")


def _report(opts, kind, *, primitive, phase, argnum, inner, already, site, lines, rule_text):
    if phase == "forward":
        who = f"primitive '{primitive}'"
        where = "in the forward pass"
    else:
        who = rule_text
        where = "in the backward pass" if phase == "backward" else "in a tangent (forward mode)"
    if inner is not None:
        who += f" (at its inner operation '{inner}')"
    if already is None:
        head = f"{kind} produced {where} by {who}"
    else:
        head = (
            f"{kind} reached {who} {where}: its {already} already contained {kind} (this "
            "operation did not produce it; it came from an unchecked value, such as the "
            "function's input or a seed cotangent)"
        )
    at = "forward op recorded at" if phase == "backward" else "called at"
    message = "\n  ".join([head, *lines, f"{at} {_format_site(site)}"])
    err = AnomalyError(
        message,
        primitive=primitive,
        phase=phase,
        kind=kind,
        argnum=argnum,
        inner=inner,
        already=already,
        site=site,
    )
    opts.report = err
    if opts.warn:
        opts.silenced = True  # one warning: what follows a NaN is mostly NaN
        warnings.warn(message, AnomalyWarning, stacklevel=2)
        return
    raise err


def _first_bad(xs, opts, label: str) -> tuple[str, str] | None:
    for i, x in enumerate(xs):
        kind = _bad(x, opts)
        if kind:
            return kind, f"{label} {i}"
    return None


def _forward_anomaly(opts, prim_name, args, out, kind):
    """An operation's output is bad: name the op, or the rule it runs in, or a bad input.

    Inside a derivative rule the rule is blamed: its incoming value was checked on entry and
    its primal inputs in the forward pass, so a bad inner value is the rule's own (it may
    come from plain NumPy code in the rule, which is not checked by itself)."""
    rule = getattr(_tls, "rule", None)
    lines = [f"inputs: {_describe_values(args)}", f"output: {_describe_value(out)}"]
    if rule is None:
        found = _first_bad(args, opts, "input")
        already = None
        if found:
            kind, already = found
        _report(
            opts, kind, primitive=prim_name, phase="forward", argnum=None, inner=None,
            already=already, site=_user_site(), lines=lines, rule_text=None,
        )  # fmt: skip
        return
    _report(
        opts, kind, primitive=rule.prim, phase=rule.phase, argnum=rule.argnum,
        inner=prim_name, already=None,
        site=rule.where(), lines=lines,
        rule_text=rule.describe(),
    )  # fmt: skip


# --- wrappers ------------------------------------------------------------------------------


def _checked_impl(prim_name: str, impl):
    def impl_checked(*args, **params):
        out = impl(*args, **params)
        opts = _options()
        if opts is not None and not opts.silenced:
            kind = _bad(out, opts)
            if kind:
                _forward_anomaly(opts, prim_name, args, out, kind)
        return out

    impl_checked.__wrapped__ = impl
    return impl_checked


def _rule_lines(what, incoming, primals, ans, result=None) -> list[str]:
    lines = [
        f"incoming {what}: {_describe_value(incoming)}",
        f"primal inputs: {_describe_values(primals)}",
        f"primal output: {_describe_value(ans)}",
    ]
    if result is not None:
        lines.append(f"{what} out: {_describe_value(result)}")
    return lines


def _run_rule(rule: _Rule, incoming, primals, ans, call):
    """Run a derivative rule under ``rule``'s context and check what goes in and comes out."""
    opts = _options()
    if opts is None or opts.silenced:
        return call()
    what = "cotangent" if rule.phase == "backward" else "tangent"
    prev = rule.parent = getattr(_tls, "rule", None)
    kind = _bad(incoming, opts)
    if kind:
        _report(
            opts, kind, primitive=rule.prim, phase=rule.phase, argnum=rule.argnum, inner=None,
            already=f"incoming {what}", site=rule.where(),
            lines=_rule_lines(what, incoming, primals, ans), rule_text=rule.describe(),
        )  # fmt: skip
        return call()
    _tls.rule = rule
    try:
        result = call()
    finally:
        _tls.rule = prev
    kind = _bad(result, opts)
    if kind and not opts.silenced:
        found = _first_bad(primals, opts, "primal input")
        _report(
            opts, kind if not found else found[0], primitive=rule.prim, phase=rule.phase,
            argnum=rule.argnum, inner=None, already=found[1] if found else None,
            site=rule.where(),
            lines=_rule_lines(what, incoming, primals, ans, result), rule_text=rule.describe(),
        )  # fmt: skip
    return result


def _checked_vjp(prim_name, argnum, rule_fn, site):
    def vjp_checked(g, ans, *args, **params):
        rule = _Rule("backward", prim_name, argnum, site, None)
        return _run_rule(rule, g, args, ans, lambda: rule_fn(g, ans, *args, **params))

    return vjp_checked


def _checked_jvp(prim_name, argnum, rule_fn):
    def jvp_checked(t, ans, *args, **params):
        rule = _Rule("tangent", prim_name, argnum, None, None)  # site: found when reported
        return _run_rule(rule, t, args, ans, lambda: rule_fn(t, ans, *args, **params))

    return jvp_checked


def _checked_jvp_all(prim_name, rule_fn):
    def jvp_all_checked(primals, tangents, ans, **params):
        rule = _Rule("tangent", prim_name, None, None, None)
        present = [t for t in tangents if t is not None]
        return _run_rule(
            rule, present, primals, ans, lambda: rule_fn(primals, tangents, ans, **params)
        )

    return jvp_all_checked


class _CheckedRules(tuple):
    """A primitive's VJP rules, each wrapped to check its result (sized like the original)."""

    def __new__(cls, node):
        obj = super().__new__(cls)
        obj.node = node
        return obj

    def __len__(self):
        return len(self.node.prim.vjps)

    def __getitem__(self, i):
        node = self.node
        rule = node.prim.vjps[i]
        return None if rule is None else _checked_vjp(node.prim.name, i, rule, node.site)


class _CheckedNode:
    """Stands in for a primitive on a reverse tape while anomaly mode is on: the same
    primitive, with VJP rules that check their results and know the forward op's line."""

    __slots__ = ("prim", "site")

    def __init__(self, prim, site):
        self.prim = prim
        self.site = site

    @property
    def vjps(self):
        return _CheckedRules(self)

    def vjp_rule(self, i):
        return self.prim.vjp_rule(i)

    def __getattr__(self, name):
        return getattr(self.prim, name)

    def __repr__(self) -> str:
        return f"_CheckedNode({self.prim!r})"


def _checked_bwd(name, bwd, site):
    """A custom node's backward closure (custom rules, checkpoint), checked per argument."""

    def bwd_checked(g):
        rule = _Rule("backward", name, None, site, None)
        opts = _options()
        if opts is None or opts.silenced:
            return bwd(g)
        return _run_rule(rule, g, (), None, lambda: bwd(g))

    bwd_checked._ds_anomaly = True
    return bwd_checked


def _tag_nodes(trace, tape: list, start: int) -> None:
    """Give the nodes recorded from ``start`` on their source line and checking rules."""
    site = None
    for k in range(start, len(tape)):
        entry = tape[k]
        prim, params = trace.ops[entry[0]]
        cls = prim.__class__
        if cls is _CheckedNode:
            continue
        if cls is _CustomNode:
            if getattr(prim.bwd, "_ds_anomaly", False):
                continue
            site = site or _user_site()
            node = _CustomNode(prim.prim, _checked_bwd(prim.prim.name, prim.bwd, site))
        else:
            site = site or _user_site()
            node = _CheckedNode(prim, site)
        tape[k] = (trace.add_op(node, params), *entry[1:])


def _tagging(method):
    def tagging_method(self, *args, **kwargs):
        tape = self.tape
        start = len(tape)
        out = method(self, *args, **kwargs)
        if len(tape) > start:
            _tag_nodes(self, tape, start)
        return out

    return tagging_method


# --- install / uninstall -------------------------------------------------------------------------


def _install() -> None:
    for prim in list(registry.values()):
        if prim in _saved:
            continue
        _saved[prim] = (prim.impl, prim.jvps, prim.jvp_all)
        name = prim.name
        prim.impl = _checked_impl(name, prim.impl)
        prim.jvps = tuple(
            None if r is None else _checked_jvp(name, i, r) for i, r in enumerate(prim.jvps)
        )
        if prim.jvp_all is not None:
            prim.jvp_all = _checked_jvp_all(name, prim.jvp_all)
    for name in _TRACE_METHODS:
        method = ReverseTrace.__dict__[name]
        _saved_trace[name] = method
        setattr(ReverseTrace, name, _tagging(method))


def _uninstall() -> None:
    for prim, (impl, jvps, jvp_all) in _saved.items():
        prim.impl, prim.jvps, prim.jvp_all = impl, jvps, jvp_all
    _saved.clear()
    for name, method in _saved_trace.items():
        setattr(ReverseTrace, name, method)
    _saved_trace.clear()


class anomalies:  # noqa: N801 - a context manager named like numpy.errstate
    """Report the first operation that produces NaN or Inf, forward or backward.

    ``nan`` and ``inf`` choose what counts; with ``warn=True`` the first anomaly gives an
    :class:`AnomalyWarning` (and is kept in ``.report``) instead of raising
    :class:`AnomalyError`.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> with ds.debug.anomalies():
    ...     ds.grad(lambda x: dnp.sum(dnp.sqrt(x)))(np.array([0.0, 1.0]))
    Traceback (most recent call last):
    ...
    diffsys.debug.AnomalyError: Inf produced in the backward pass by the VJP rule ...

    The mode is process-wide while a block is open (other threads' operations are checked
    too); nested blocks use the innermost block's options. Primitives created inside the
    block are not checked.
    """

    def __init__(self, *, nan: bool = True, inf: bool = True, warn: bool = False) -> None:
        if not (nan or inf):
            raise ValueError("anomalies: nothing to detect (nan=False and inf=False)")
        self.nan = bool(nan)
        self.inf = bool(inf)
        self.warn = bool(warn)
        self.report: AnomalyError | None = None
        self.silenced = False  # set after the one warning of warn=True

    def __enter__(self) -> anomalies:
        with _lock:
            if not _active:
                _install()
            self.report = None
            self.silenced = False
            _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            for i in range(len(_active) - 1, -1, -1):
                if _active[i] is self:
                    del _active[i]
                    break
            if not _active:
                _uninstall()
