"""``ds.jit``: trace a function once per signature into a :class:`Graph`, replay it after.

A *signature* is what a graph is specialised to: the pytree structure of the arguments, the
shape and dtype of every array leaf, the values of the other leaves (Python ints, bools,
strings: static in a graph, see :func:`diffsys.trace`) and of the static arguments. The
first call with a signature traces the function (:func:`diffsys.trace`, then
:meth:`Graph.optimize`); later calls flatten the arguments, look the signature up in a
bounded LRU cache and replay the graph (:meth:`Graph.call_flat`: on plain arrays, straight
NumPy calls with no tracer and no tape).

Python control flow on traced values (``if x.sum() > 0:``, ``int(n)``) is recorded along the
path the first call took, as in ``torch.jit.trace``. With ``guards=True`` (the default) every
such value becomes a *guard*: the graph also returns it, each replay compares it with the
value seen while tracing, and a mismatch traces the function again for the new path (up to
``max_variants`` paths per signature; beyond, the function runs eagerly, with a warning).

Transforms compose both ways. ``jit(grad(f))`` records the forward and backward passes in one
graph. ``grad(jit(f))``, ``jvp``, ``vmap``... replay the graph on their tracers: each
operation dispatches as in eager mode, so every transform applies.
"""

from __future__ import annotations

import functools
import inspect
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tracer import Tracer, concrete
from ._graph import Graph
from ._trace import GraphSpecializationWarning, trace


class JitCacheInfo(NamedTuple):
    """Statistics of a jitted function's cache (as ``functools.lru_cache``'s, and more).

    ``hits``: calls that replayed a cached graph; ``misses``: calls that traced;
    ``maxsize``/``currsize``: the bound and the number of cached signatures;
    ``evictions``: graphs dropped to respect the bound; ``retraces``: traces caused by a
    failed guard (a new Python path for a known signature); ``eager_calls``: calls run
    without a cached graph (too many paths, or a closure over a value traced outside);
    ``trace_seconds``: time spent tracing and optimizing, in total; ``compile_seconds``:
    time spent generating and compiling native code (``backend="numba"``; Numba compiles
    at the first call of a signature, or loads its disk cache), in total.
    """

    hits: int
    misses: int
    maxsize: int
    currsize: int
    evictions: int
    retraces: int
    eager_calls: int
    trace_seconds: float
    compile_seconds: float = 0.0


class _Entry:
    """One traced path: the graph replayed (its outputs then the guard values), how to
    rebuild the outputs, and the guard values seen while tracing."""

    __slots__ = (
        "graph", "n_out", "out_treedef", "guards", "_traced", "_optimize", "_lowered", "native"
    )

    def __init__(self, graph: Graph, n_out: int, out_treedef, guards: list, traced, optimize):
        self.graph = graph
        self.n_out = n_out
        self.out_treedef = out_treedef
        self.guards = guards  # [(output index, value while tracing)]
        self._traced = traced  # the graph as traced, when ``graph`` has guard outputs
        self._optimize = optimize
        self._lowered: Graph | None = None
        self.native = None  # the compiled program (backend="numba")

    def run(self, flat: list) -> list:
        """The graph's flat outputs: compiled code on plain arrays, else the executor (whose
        operations dispatch on the tracers of outer transforms)."""
        native = self.native
        if native is not None and not any(isinstance(x, Tracer) for x in flat):
            return native.call_flat(flat)
        return self.graph.call_flat(flat)

    @property
    def lowered(self) -> Graph:
        """The graph of the function's outputs only (``graph`` less its guard outputs)."""
        if self._traced is None:
            return self.graph
        if self._lowered is None:
            self._lowered = self._traced.optimize() if self._optimize else self._traced
        return self._lowered


_FLOAT_KEY = ("float",)
_COMPLEX_KEY = ("complex",)


class Jitted:
    """A function traced once per signature and replayed; made by :func:`jit`.

    Calling it replays (or traces) a graph; :meth:`lower` gives that graph,
    :meth:`cache_info` the cache statistics, :meth:`cache_clear` empties the cache.
    """

    def __init__(
        self,
        fun: Callable,
        static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (),
        *,
        cache_size: int = 64,
        optimize: bool = True,
        guards: bool = True,
        max_variants: int = 8,
        backend: str = "numpy",
    ) -> None:
        if not callable(fun):
            raise TypeError(f"ds.jit: expected a function, got {type(fun).__name__}")
        if not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"ds.jit: cache_size must be a positive int, got {cache_size!r}")
        if not isinstance(max_variants, int) or max_variants < 1:
            raise ValueError(f"ds.jit: max_variants must be a positive int, got {max_variants!r}")
        if backend not in ("numpy", "numba"):
            raise ValueError(f"ds.jit: backend must be 'numpy' or 'numba', got {backend!r}")
        if backend == "numba":
            from ._numba import import_numba

            import_numba()  # an ImportError naming the `jit` extra, now rather than later
        self.backend = backend
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.name = getattr(fun, "__name__", None) or type(fun).__name__
        nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        for i in nums:
            if not isinstance(i, int) or isinstance(i, bool):
                raise TypeError(f"ds.jit: static_argnums must be ints, got {static_argnums!r}")
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"ds.jit: static_argnames must be strings, got {static_argnames!r}")
        self._nums, self._names = _complete_statics(fun, nums, names)
        self.cache_size = cache_size
        self.optimize = optimize
        self.guards = guards
        self.max_variants = max_variants
        self._cache: OrderedDict[Any, list[_Entry]] = OrderedDict()
        self._stats = {"hits": 0, "misses": 0, "evictions": 0, "retraces": 0, "eager": 0}
        self._trace_seconds = 0.0
        self._compile_seconds = 0.0
        self._warned: set[str] = set()

    # --- calling ---------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        dyn, static, inner = self._split(args, kwargs)
        leaves, treedef = tree_flatten(dyn)
        key, flat = _signature(leaves, self.name)
        key = (treedef, key, static)
        try:
            variants = self._cache.get(key)
        except TypeError:
            raise TypeError(_unhashable_message(self.name, static)) from None
        if variants is not None:
            self._cache.move_to_end(key)
            for entry in variants:
                out = entry.run(flat)
                if _guards_hold(entry, out):
                    self._stats["hits"] += 1
                    return tree_unflatten(entry.out_treedef, out[: entry.n_out])
            if len(variants) >= self.max_variants:
                return self._eager(args, kwargs, "too_many_paths")
            self._stats["retraces"] += 1
        return self._trace_and_run(key, inner, dyn, flat, args, kwargs)

    def _trace_and_run(self, key, inner, dyn, flat, args, kwargs):
        self._stats["misses"] += 1
        if self.backend == "numba":
            from ._numba import check_dtypes

            check_dtypes(flat, self.name)
        entry, captured = self._trace(inner, dyn)
        if captured:  # closures over outer tracers: this graph is for this call only
            self._warn_once(
                "closure",
                f"ds.jit({self.name}): the function reads values traced by an outer "
                "transform that are not its arguments (a closure); it is traced again at "
                "every call. Pass those values as arguments to replay one graph",
            )
            self._stats["eager"] += 1
            out = entry.graph.call_flat(flat + captured)
            return tree_unflatten(entry.out_treedef, out[: entry.n_out])
        if self.backend == "numba":
            from ._numba import NumbaProgram

            start = time.perf_counter()
            entry.native = NumbaProgram(entry.graph)
            out = entry.run(flat)  # Numba compiles (or loads its cache) here
            self._compile_seconds += time.perf_counter() - start
        else:
            out = entry.graph.call_flat(flat)
        if not _guards_hold(entry, out):  # impure code: a replay of the new trace differs
            return self._eager(args, kwargs, "unstable")
        variants = self._cache.get(key)
        if variants is None:
            self._cache[key] = [entry]
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
                self._stats["evictions"] += 1
        else:
            variants.append(entry)
        return tree_unflatten(entry.out_treedef, out[: entry.n_out])

    def _trace(self, inner, dyn) -> tuple[_Entry, list]:
        start = time.perf_counter()
        with warnings.catch_warnings():
            if self.guards:  # guarded: a specialization is checked at each call, not a hazard
                warnings.simplefilter("ignore", GraphSpecializationWarning)
            graph, captured = trace(inner, param_argnums=(), lift_closures=True, name=self.name)(
                *_plain_args(dyn)
            )
        if not captured:  # no closure: drop the (empty) argument that would list them
            graph = graph._rebuilt(args=list(graph.args[:-1]))
        n_out = len(graph.outputs)
        out_treedef = graph.out_treedef
        guard_vars = list(dict.fromkeys(v for v, _ in graph.specializations)) if self.guards else []
        seen = {}
        for v, value in graph.specializations:
            seen.setdefault(v, value)  # the first value read is the one the path depends on
        replayed = graph
        if guard_vars:  # the guard values become extra outputs, so passes keep them
            outputs = graph.outputs + tuple(guard_vars)
            replayed = graph._rebuilt(
                outputs=outputs,
                out_treedef=None,
                out_spec=("tuple", (("leaf",),) * len(outputs)),
                specializations=[],
            )
        if self.optimize:
            replayed = replayed.optimize()
        guards = [(n_out + k, seen[v]) for k, v in enumerate(guard_vars)]
        replayed.examples.clear()  # the cache holds no example arrays
        self._trace_seconds += time.perf_counter() - start
        entry = _Entry(
            replayed, n_out, out_treedef, guards, graph if guard_vars else None, self.optimize
        )
        return entry, list(captured)

    def _eager(self, args, kwargs, why: str):
        self._stats["eager"] += 1
        if why == "too_many_paths":
            self._warn_once(
                why,
                f"ds.jit({self.name}): {self.max_variants} paths through Python control flow "
                "were traced for one signature (a traced value converted by float()/int()/"
                "bool()/an `if` takes a new value at each call?); running eagerly from now "
                "on for this signature. Make the value a static argument (static_argnums), "
                "use dnp.where for data-dependent choices, or raise max_variants",
            )
        else:
            self._warn_once(
                why,
                f"ds.jit({self.name}): the graph just traced takes another path than the "
                "trace did on the same arguments (impure Python code: random numbers, "
                "global state?); running eagerly",
            )
        return self.fun(*args, **kwargs)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _split(self, args: tuple, kwargs: dict):
        """``(dynamic pytree, hashable static part, function of the dynamic part)``."""
        if not self._nums and not self._names:
            if not kwargs:
                return args, (), self.fun
            fun = self.fun

            def with_kwargs(*a):
                return fun(*a[:-1], **a[-1])

            return (*args, dict(kwargs)), ("kw",), with_kwargs
        nargs = len(args)
        nums = sorted({i % nargs for i in self._nums if -nargs <= i < nargs})
        s_pos = tuple((i, args[i]) for i in nums)
        s_kw = tuple(sorted((k, v) for k, v in kwargs.items() if k in self._names))
        dyn_kw = {k: v for k, v in kwargs.items() if k not in self._names}
        dyn_pos = tuple(a for i, a in enumerate(args) if i not in nums)
        fun = self.fun

        def with_statics(*a):
            full = list(a[:-1])
            for i, v in s_pos:
                full.insert(i, v)
            return fun(*full, **dict(s_kw), **a[-1])

        typed = (tuple(type(v) for _, v in s_pos), tuple(type(v) for _, v in s_kw))
        return (*dyn_pos, dyn_kw), (nargs, s_pos, s_kw, typed), with_statics

    # --- inspection -------------------------------------------------------------------------
    def lower(self, *args, **kwargs) -> Graph:
        """The graph replayed for these arguments (traced and cached now if it was not),
        without the guard outputs. Its arguments are the dynamic ones (static arguments are
        baked in); with keyword arguments, one more last argument: their dict.

        >>> import diffsys as ds, diffsys.numpy as dnp
        >>> f = ds.jit(lambda x: dnp.sum(dnp.sin(x) * 2.0))
        >>> f.lower(dnp.ones(3)).count("sin")
        1
        """
        dyn, static, inner = self._split(args, kwargs)
        leaves, treedef = tree_flatten(dyn)
        key, flat = _signature(leaves, self.name)
        key = (treedef, key, static)
        try:
            variants = self._cache.get(key)
        except TypeError:
            raise TypeError(_unhashable_message(self.name, static)) from None
        if variants:
            for entry in variants:
                if _guards_hold(entry, entry.graph.call_flat(flat)):
                    return entry.lowered
        self._trace_and_run(key, inner, dyn, flat, args, kwargs)
        for entry in self._cache.get(key, ()):
            if _guards_hold(entry, entry.graph.call_flat(flat)):
                return entry.lowered
        return self._trace(inner, dyn)[0].lowered  # not cacheable (a closure, impure code)

    def explain(self, *args, **kwargs):
        """What runs a call with these arguments (traced, compiled and cached now if it was
        not): with ``backend="numba"``, how many operations compiled into how many regions,
        the compile time, and each operation left to the graph executor with the reason;
        ``str()`` of it is a short report.

        >>> import diffsys as ds, diffsys.numpy as dnp
        >>> f = ds.jit(lambda x: dnp.sum(dnp.sin(x) * 2.0))
        >>> print(f.explain(dnp.ones(3)))
        backend numpy: 3 operation(s) replayed by the graph executor (no compiled code)
        """
        from ._numba import Explanation

        dyn, static, inner = self._split(args, kwargs)
        leaves, treedef = tree_flatten(dyn)
        key, flat = _signature(leaves, self.name)
        key = (treedef, key, static)
        if not self._cache.get(key):
            self(*args, **kwargs)
        for entry in self._cache.get(key, ()):
            if _guards_hold(entry, entry.run(flat)):
                if entry.native is not None:
                    return entry.native.explain()
                n = len(entry.graph.nodes)
                return Explanation(self.backend, n, 0, 0, (), 0.0, None)
        raise RuntimeError(  # pragma: no cover - eager calls only (see the warnings)
            f"ds.jit({self.name}).explain: no cached graph serves these arguments (the "
            "function runs eagerly for them)"
        )

    def cache_info(self) -> JitCacheInfo:
        """Hits, misses (traces), bound and size of the cache, evictions, guard retraces,
        eager calls, the total tracing time and the total native compile time."""
        s = self._stats
        return JitCacheInfo(
            s["hits"],
            s["misses"],
            self.cache_size,
            len(self._cache),
            s["evictions"],
            s["retraces"],
            s["eager"],
            self._trace_seconds,
            self._compile_seconds,
        )

    def cache_clear(self) -> None:
        """Drop every cached graph and reset the statistics."""
        self._cache.clear()
        for k in self._stats:
            self._stats[k] = 0
        self._trace_seconds = 0.0
        self._compile_seconds = 0.0

    def __get__(self, obj, objtype=None):  # methods: ds.jit on a function in a class body
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __repr__(self) -> str:
        backend = "" if self.backend == "numpy" else f" (backend {self.backend})"
        return f"<ds.jit {self.name}{backend}: {len(self._cache)} cached signature(s)>"


def jit(
    fun: Callable | None = None,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    *,
    cache_size: int = 64,
    optimize: bool = True,
    guards: bool = True,
    max_variants: int = 8,
    backend: str = "numpy",
) -> Jitted | Callable[[Callable], Jitted]:
    """``fun`` traced once per signature into a graph (:func:`diffsys.trace`) and replayed.

    The signature is the arguments' pytree structure, every array leaf's shape and dtype,
    the other leaves' values (Python ints, bools, strings) and the values of the *static*
    arguments (``static_argnums``, ``static_argnames``: hashable values, e.g. a layer count
    or a flag, on which ``fun`` may branch freely). The first call of a signature traces and
    optimizes (:meth:`Graph.optimize`); later calls replay the graph on plain arrays.
    At most ``cache_size`` signatures are kept (least recently used dropped first).

    Python control flow on traced values follows the path of the first call; with ``guards``
    each value it read is checked at every replay, and another value traces the new path
    (at most ``max_variants`` per signature). Outputs keep the pytree types of ``fun``'s
    results (modules stay modules). Composes with every transform, inside and outside.
    Use as ``ds.jit(f)``, ``@ds.jit`` or ``@ds.jit(static_argnums=1)``.

    ``backend="numpy"`` (the default) replays the graph's NumPy calls; ``backend="numba"``
    (the ``jit`` extra) compiles it to native code at the first call of each signature,
    fusing elementwise chains into loops; operations without a compiled kernel run through
    the executor (:meth:`Jitted.explain` names them). See docs/jit.md.

    >>> import diffsys as ds, diffsys.numpy as dnp
    >>> f = ds.jit(ds.value_and_grad(lambda x: dnp.sum(dnp.sin(x) ** 2)))
    >>> value, g = f(dnp.array([0.0, 1.0]))      # traces
    >>> value, g = f(dnp.array([0.5, 2.0]))      # replays
    >>> f.cache_info().hits, f.cache_info().misses
    (1, 1)
    """
    options = dict(
        static_argnums=static_argnums,
        static_argnames=static_argnames,
        cache_size=cache_size,
        optimize=optimize,
        guards=guards,
        max_variants=max_variants,
        backend=backend,
    )
    if fun is None:
        return lambda f: Jitted(f, **options)
    if isinstance(fun, int | tuple | list) and not callable(fun):
        raise TypeError(
            "ds.jit: the first argument is the function; pass static_argnums by keyword "
            "(ds.jit(f, static_argnums=...) or @ds.jit(static_argnums=...))"
        )
    return Jitted(fun, **options)


# --- helpers ---------------------------------------------------------------------------------


def _complete_statics(fun, nums: tuple, names: tuple) -> tuple[frozenset, frozenset]:
    """Static positions and names, each completed from the other through ``fun``'s
    signature (as JAX does), so a static argument may be passed either way."""
    nums_set, names_set = set(nums), set(names)
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return frozenset(nums_set), frozenset(names_set)
    positional = [
        p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for i in nums:
        if 0 <= i < len(positional):
            names_set.add(positional[i])
    for n in names:
        if n in positional:
            nums_set.add(positional.index(n))
    return frozenset(nums_set), frozenset(names_set)


def _signature(leaves: list, name: str) -> tuple[tuple, list]:
    """The hashable signature of the leaves, and the placeholder values in call order."""
    key = []
    flat = []
    for x in leaves:
        cls = x.__class__
        if cls is np.ndarray or isinstance(x, Tracer | np.ndarray | np.generic):
            key.append((x.shape, x.dtype))
            flat.append(x)
        elif cls is float:
            key.append(_FLOAT_KEY)
            flat.append(np.asarray(x))
        elif cls is complex:
            key.append(_COMPLEX_KEY)
            flat.append(np.asarray(x))
        else:  # static in the graph: its value is part of the signature
            key.append((cls, x))
    return tuple(key), flat


def _unhashable_message(name: str, static) -> str:
    return (
        f"ds.jit({name}): the signature of this call is not hashable: a static argument "
        f"or a non-array leaf of the arguments ({_short(static)}) cannot be a cache key. "
        "Static arguments must be hashable (tuples, not lists; frozen dataclasses); pass "
        "arrays as dynamic arguments"
    )


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _plain_args(dyn):
    """The example values to trace with: each traced leaf's plain value (the graph is a
    function of plain arrays; transforms apply when it is replayed on their tracers), or
    the tracer itself when its plain value has another shape (a batched value under vmap)."""
    leaves, treedef = tree_flatten(dyn)
    out = []
    for x in leaves:
        if isinstance(x, Tracer):
            v = x
            while isinstance(v, Tracer):
                v = v._value
            if np.shape(v) == tuple(x.shape) and getattr(v, "dtype", None) == x.dtype:
                x = v
        out.append(x)
    return tree_unflatten(treedef, out)


def _guards_hold(entry: _Entry, out: list) -> bool:
    for k, expected in entry.guards:
        value = concrete(out[k])
        if not _same_value(value, expected):
            return False
    return True


def _same_value(a, b) -> bool:
    if a is b:
        return True
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    try:
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    except TypeError:
        return bool(np.array_equal(a, b))
