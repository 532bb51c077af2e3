"""Primitives: an implementation on plain arrays plus its derivative and batching rules.

Every differentiable operation in diffsys, and every user-defined one, is a :class:`Primitive`
held in one registry. Rules are written next to the implementation::

    import numpy as np
    import diffsys as ds
    import diffsys.numpy as dnp

    logcosh = ds.Primitive("logcosh", lambda x: np.log(np.cosh(x)))
    logcosh.defvjp(lambda g, ans, x: g * dnp.tanh(x))
    logcosh.defjvp(lambda t, ans, x: t * dnp.tanh(x))

Rule signatures (``ans`` is the primitive's output, ``*args`` its inputs, ``**params`` its
keyword parameters; all may be tracers of outer transforms, so rules must use
:mod:`diffsys.numpy` operations to stay differentiable to any order):

- VJP, one rule per positional argument: ``rule(g, ans, *args, **params) -> cotangent`` with
  the shape of that argument (un-broadcast it: :func:`diffsys.numpy.unbroadcast`).
- JVP, one rule per positional argument: ``rule(t, ans, *args, **params) -> tangent`` with
  the shape of ``ans``; the engine adds the contributions of all arguments that have
  tangents. Or one rule for all: ``defjvp_all(rule(primals, tangents, ans, **params))`` where
  missing tangents are ``None``.
- Batching: ``rule(args, batched, **params) -> out`` where every batched argument carries
  the batch on axis 0 and the output must carry it on axis 0 too.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import numpy as np

from .tracer import Tracer, top_trace

# Held weakly: a primitive lives as long as its owner (a module, or a custom_vjp function
# made inside a loop) keeps it; names of primitives still alive stay unique.
registry: weakref.WeakValueDictionary[str, Primitive] = weakref.WeakValueDictionary()


class Primitive:
    """A named operation with its implementation and derivative rules.

    Calling a primitive on plain values runs ``impl``; on tracers it is handed to the trace
    of the highest level among its arguments.
    """

    __slots__ = (
        "name",
        "impl",
        "vjps",
        "jvps",
        "jvp_all",
        "batch_rule",
        "zero_derivative",
        "multiple_results",
        "special",
        "_doc",
        "__weakref__",
    )

    def __init__(
        self,
        name: str,
        impl: Callable,
        *,
        zero_derivative: bool = False,
        multiple_results: bool = False,
        register: bool = True,
    ) -> None:
        if register and name in registry:
            gc.collect()  # an owner that failed to import may be garbage not yet collected
            if name in registry:
                raise ValueError(f"a primitive named {name!r} is already registered")
        self.name = name
        self.impl = impl
        self.vjps: tuple = ()
        self.jvps: tuple = ()
        self.jvp_all: Callable | None = None
        self.batch_rule: Callable | None = None
        self.zero_derivative = zero_derivative
        self.multiple_results = multiple_results
        # One flag for the traces' fast paths, which handle neither case (fixed at creation).
        self.special = zero_derivative or multiple_results
        self._doc: str | None = getattr(impl, "__doc__", None) if callable(impl) else None
        if register:
            registry[name] = self

    def __call__(self, *args, **params):
        if len(args) == 1:  # the most common case, kept short: it runs on every call
            a = args[0]
            if isinstance(a, Tracer):
                if params:
                    return a._trace.process(self, args, params)
                return a._trace.process1(self, a)
            try:
                return self.impl(a, **params)
            except TypeError:  # (free when nothing is raised) a list that holds tracers?
                if (a.__class__ is list or a.__class__ is tuple) and holds_tracer(a):
                    return self.call_with(packed_sequences(args), params)
                raise
        trace = None
        level = 0
        for a in args:
            if isinstance(a, Tracer):
                t = a._trace
                if t.level > level:
                    trace = t
                    level = t.level
            elif a.__class__ is list or a.__class__ is tuple:
                # array_like operands: a list that holds tracers (``dnp.add([x, 1.], y)``)
                # is stacked here, before any trace unwraps the other arguments
                return self.call_with(packed_sequences(args), params)
        if trace is None:
            return self.impl(*args, **params)
        return trace.process(self, args, params)

    def call_with(self, args: tuple, params: dict):
        """``self(*args, **params)`` with ``params`` passed as it is, not copied: wrappers
        of busy primitives hand one dict to every call with the same parameters, so that a
        reverse trace's nodes share it (see :mod:`diffsys.core.reverse`). Never change a
        dict after handing it over."""
        trace = top_trace(args)
        if trace is None:
            return self.impl(*args, **params)
        return trace.process(self, args, params)

    # --- rule registration ----------------------------------------------------------------
    def defvjp(self, *rules: Callable | None) -> Primitive:
        """One VJP rule per positional argument (``None``: not differentiable there)."""
        self.vjps = rules
        return self

    def defvjp_variadic(self, make_rule: Callable[[int], Callable]) -> Primitive:
        """VJP rules for any number of positional arguments: rule ``k`` is ``make_rule(k)``,
        made on first use and kept (``concatenate``, ``einsum``...)."""
        self.vjps = VariadicRules(make_rule)
        return self

    def defjvp(self, *rules: Callable | None) -> Primitive:
        """One JVP rule per positional argument (``None``: not differentiable there)."""
        self.jvps = rules
        return self

    def defjvp_all(self, rule: Callable) -> Primitive:
        """One JVP rule for all arguments: ``rule(primals, tangents, ans, **params)``."""
        self.jvp_all = rule
        return self

    def defbatch(self, rule: Callable) -> Primitive:
        """The batching rule used by ``vmap`` (and so by ``jacfwd``/``jacrev``/``hessian``)."""
        self.batch_rule = rule
        return self

    def vjp_rule(self, argnum: int) -> Callable:
        rules = self.vjps
        rule = rules[argnum] if argnum < len(rules) else None
        if rule is None:
            raise NotImplementedError(
                f"reverse-mode derivative of primitive '{self.name}' with respect to its "
                f"argument {argnum} is not defined (no VJP rule); wrap the value in "
                "diffsys.stop_gradient if it should be treated as a constant, or define one "
                "with defvjp"
            )
        return rule

    def jvp_rule(self, argnum: int) -> Callable:
        rules = self.jvps
        rule = rules[argnum] if argnum < len(rules) else None
        if rule is None:
            raise NotImplementedError(
                f"forward-mode derivative of primitive '{self.name}' with respect to its "
                f"argument {argnum} is not defined (no JVP rule); wrap the value in "
                "diffsys.stop_gradient if it should be treated as a constant, or define one "
                "with defjvp"
            )
        return rule

    @property
    def __doc__(self) -> str | None:  # noqa: D105 - per-primitive documentation
        return self._doc

    @__doc__.setter
    def __doc__(self, text: str | None) -> None:
        self._doc = text

    @property
    def __name__(self) -> str:  # so tools that name functions (check_grads, wraps) work
        return self.name

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"


# --- array_like operands: lists and tuples that hold tracers ------------------------------------

_sequence_rule: list[Callable | None] = [None]


def set_sequence_rule(rule: Callable) -> None:
    """Install how a list or tuple that holds tracers becomes one traced array (stacking,
    which lives in :mod:`diffsys.numpy`; it installs it)."""
    _sequence_rule[0] = rule


def holds_tracer(obj) -> bool:
    """Whether the (nested) list or tuple ``obj`` holds a tracer."""
    for o in obj:
        if isinstance(o, Tracer):
            return True
        if (o.__class__ is list or o.__class__ is tuple) and holds_tracer(o):
            return True
    return False


def packed_sequences(args) -> tuple:
    """``args`` with each list or tuple that holds tracers replaced by one traced array.

    A primitive's positional arguments are arrays, so NumPy would read such a sequence as
    an array (``array_like``); reading it as one traced array here, before dispatch, lets
    its tracers take part in the call (and decide its trace) instead of failing inside
    ``numpy.asarray``. Other arguments are passed on unchanged."""
    out = []
    for a in args:
        if a.__class__ is list or a.__class__ is tuple:
            try:
                a = np.asarray(a)  # plain numbers: NumPy's own (C) conversion
            except TypeError:  # a tracer inside refuses conversion (Tracer.__array__)
                a = pack_sequence(a) if holds_tracer(a) else a
            except ValueError:  # ragged: left for the implementation to judge
                pass
        out.append(a)
    return tuple(out)


def pack_sequence(seq):
    """The list or tuple ``seq``, which holds tracers, as one traced array (the rule that
    :mod:`diffsys.numpy` installs: ``dnp.asarray``)."""
    rule = _sequence_rule[0]
    if rule is None:  # pragma: no cover - diffsys imports diffsys.numpy
        raise TypeError("a list holding traced values needs diffsys.numpy imported")
    return rule(seq)


class VariadicRules(tuple):
    """A rule tuple of unbounded length whose rule ``k`` is ``make_rule(k)``, made on first
    use (see :meth:`Primitive.defvjp_variadic`)."""

    def __new__(cls, make_rule: Callable[[int], Callable]) -> VariadicRules:
        rules = super().__new__(cls)
        rules._make = make_rule
        rules._made = []
        return rules

    def __getitem__(self, k: int) -> Callable:
        made = self._made
        while len(made) <= k:
            made.append(self._make(len(made)))
        return made[k]

    def __len__(self) -> int:
        return 1 << 30


def primitive(name: str | None = None, **kwargs) -> Callable[[Callable], Primitive]:
    """Decorator form: turn a function on plain arrays into a :class:`Primitive`.

    >>> import numpy as np, diffsys as ds
    >>> @ds.primitive()
    ... def cube(x):
    ...     return x ** 3
    >>> _ = cube.defvjp(lambda g, ans, x: g * 3 * x ** 2)
    """

    def wrap(fun: Callable) -> Primitive:
        return Primitive(name or f"{fun.__module__}.{fun.__qualname__}", fun, **kwargs)

    return wrap
