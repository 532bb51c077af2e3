"""NumPy's own functions on traced values: ``np.exp(x)``, ``np.sum(x)``, ``ndarray * x``.

NumPy hands a call that has a tracer among its arguments to ``Tracer.__array_ufunc__``
(NEP 13: ufuncs, their methods, and so the operators of ``ndarray``s and NumPy scalars) or
``Tracer.__array_function__`` (NEP 18: the other public functions). The handlers here look
the NumPy function up in tables built from this package's own names (``np.X`` ->
``dnp.X``, ``np.linalg.X`` -> ``dnp.linalg.X``, ``np.fft.X`` -> ``dnp.fft.X``) and run
diffsys's version, so code written with ``import numpy as np`` differentiates as it is::

    import numpy as np
    import diffsys as ds

    ds.grad(lambda x: np.sum(np.tanh(x) ** 2))(np.ones(3))

What would leave the traced world fails loudly instead of detaching a value: ``out=``
(NumPy writing into an existing array), ``ufunc.at``, a NumPy function that diffsys has no
derivative for (the error names it and what to use), and ``np.asarray`` (``Tracer.__array__``).

Cost: a dispatched call pays NumPy's override lookup plus one table lookup (about 1 µs);
``dnp.`` calls and operators on tracers do not come through here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from ..core.primitive import Primitive
from ..core.tracer import Tracer, set_array_protocols

# --- the tables ---------------------------------------------------------------------------------

# np ufunc -> diffsys function, for ``ufunc(*inputs)`` (method "__call__").
UFUNCS: dict[np.ufunc, Callable] = {}
# The binary ufuncs whose diffsys function is a primitive (the fast path of operators).
_BINARY: dict[np.ufunc, Primitive] = {}
# NumPy function (a NEP 18 dispatcher) -> _Adapter running the diffsys function.
FUNCTIONS: dict[Callable, _Adapter] = {}

# ufunc.reduce / ufunc.accumulate with a reduction of their own (else: a fold, below).
_REDUCTIONS: dict[np.ufunc, Callable] = {}
_ACCUMULATIONS: dict[np.ufunc, Callable] = {}

# ``ufunc.at`` spelled functionally.
_AT_METHODS = {
    "add": "add",
    "subtract": "subtract",
    "multiply": "multiply",
    "divide": "divide",
    "true_divide": "divide",
}

_NO_VALUE = getattr(np, "_NoValue", object())


def _name(func) -> str:
    """``numpy.linalg.norm``, ``numpy.exp``: how a user would write the function."""
    name = getattr(func, "__name__", repr(func))
    if isinstance(func, np.ufunc):
        return f"numpy.{name}" if getattr(np, name, None) is func else f"the ufunc {name}"
    module = getattr(func, "__module__", None) or "numpy"
    return f"{module}.{name}"


def _short(value) -> str:
    """A keyword's value in an error message: arrays by shape and dtype, the rest cut short."""
    if isinstance(value, Tracer | np.ndarray):
        kind = "a traced array" if isinstance(value, Tracer) else "an array"
        return f"<{kind} of shape {value.shape}, dtype {value.dtype}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(args) -> str:
    """The traced arguments of a call, by position: ``argument 0 (shape (3,), float64)``."""
    parts = []
    for i, a in enumerate(args):
        if isinstance(a, Tracer):
            parts.append(f"argument {i}: traced, shape {a.shape}, dtype {a.dtype}")
        elif isinstance(a, list | tuple) and any(isinstance(b, Tracer) for b in a):
            parts.append(f"argument {i}: a {type(a).__name__} holding traced values")
    return "; ".join(parts) if parts else "traced arguments"


# --- __array_ufunc__ ----------------------------------------------------------------------------

# Operand types that are plain values (no dispatch protocol of their own).
_PLAIN = {np.ndarray, float, int, complex, bool, list, tuple}
_PLAIN.update(np.sctypeDict.values())


def _foreign(inputs) -> bool:
    """Does an operand belong to another library with its own ``__array_ufunc__``? Then
    NumPy should ask it (we return ``NotImplemented``)."""
    for a in inputs:
        cls = a.__class__
        if cls in _PLAIN or isinstance(a, Tracer):
            continue
        override = getattr(cls, "__array_ufunc__", None)
        if override is not None and override is not np.ndarray.__array_ufunc__:
            return True
    return False


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """``Tracer.__array_ufunc__``: a ufunc call (or method) with a tracer among its operands."""
    if method == "__call__" and not kwargs:
        if len(inputs) == 2:
            # ``ndarray * tracer`` and ``np.multiply(a, b)``: as the tracer's reflected
            # operator would, hand a binary primitive straight to the top trace.
            prim = _BINARY.get(ufunc)
            if prim is not None:
                a, b = inputs
                other = b if a is self else a
                trace = self._trace
                if isinstance(other, Tracer):
                    if other._trace.level > trace.level:
                        trace = other._trace
                    return trace.process2(prim, a, b)
                if other.__class__ in _PLAIN:
                    return trace.process2(prim, a, b)
        fn = UFUNCS.get(ufunc)
        if fn is not None and not _foreign(inputs):
            return fn(*inputs)
    if _foreign(inputs):
        return NotImplemented
    if method == "__call__":
        return _call_with_keywords(ufunc, inputs, kwargs)
    handler = _UFUNC_METHODS.get(method)
    if handler is None:
        raise TypeError(
            f"{_name(ufunc)}.{method}(...) on a traced value ({_describe(inputs)}) is not "
            "supported by diffsys; write it with diffsys.numpy operations"
        )
    return handler(ufunc, inputs, kwargs)


def _ufunc_fn(ufunc, inputs, what: str) -> Callable:
    fn = UFUNCS.get(ufunc)
    if fn is None:
        raise TypeError(
            f"{_name(ufunc)}{what} was called on a traced value ({_describe(inputs)}), but "
            f"diffsys.numpy has no differentiable {ufunc.__name__}: write it with "
            "diffsys.numpy operations, make it a primitive with its derivative "
            "(ds.Primitive(...).defvjp, or ds.custom_vjp), or pass ds.stop_gradient(x) to "
            "treat the value as a constant"
            + (
                ". (SciPy's special functions are ufuncs: diffsys.scipy.special has "
                "differentiable ones)"
                if not _name(ufunc).startswith("numpy.")
                else ""
            )
        )
    return fn


_UFUNC_DEFAULTS = {"casting": "same_kind", "order": "K", "subok": True, "where": True}


def _check_ufunc_kwargs(ufunc, method: str, inputs, kwargs, allowed=()) -> dict:
    """The keywords a diffsys function takes; refuse ``out=`` and everything NumPy-specific
    that is not at its default, each with its own fix."""
    kept = {}
    for key, value in kwargs.items():
        if key == "out":
            if all(o is None for o in (value if isinstance(value, tuple) else (value,))):
                continue
            raise TypeError(_out_message(f"{_name(ufunc)}{method}", inputs))
        if key in allowed:
            kept[key] = value
            continue
        default = _UFUNC_DEFAULTS.get(key, _NO_VALUE)
        if _is_default(value, default):
            continue
        if key == "where":
            fix = (
                "where= leaves the masked-out elements of the result unset; write "
                f"np.where(mask, np.{ufunc.__name__}(...), fallback) instead"
            )
        elif key in ("dtype", "signature"):
            fix = "cast the operands first (x.astype(dtype)) and call it without dtype="
        else:
            fix = f"call it without {key}="
        raise TypeError(
            f"{_name(ufunc)}{method}(..., {key}={_short(value)}) on a traced value "
            f"({_describe(inputs)}): diffsys does not support the keyword {key!r}; {fix}"
        )
    return kept


def _out_message(call: str, inputs) -> str:
    return (
        f"{call}(..., out=...) on a traced value ({_describe(inputs)}) would write a traced "
        "result into an existing array (in place; this is also what `a += x` does when `a` "
        "is a NumPy array and `x` is traced). Traced arrays are immutable and a plain array "
        "cannot hold a derivative: use the returned value instead (a = a + x), or a "
        "functional update: a.at[idx].set(v), a.at[idx].add(v), np.where(mask, v, a)"
    )


def _call_with_keywords(ufunc, inputs, kwargs):
    """``ufunc(*inputs, **kwargs)`` with keywords (or a ufunc diffsys lacks)."""
    fn = _ufunc_fn(ufunc, inputs, "")
    _check_ufunc_kwargs(ufunc, "", inputs, kwargs)
    return fn(*inputs)


def _reduce_args(ufunc, method, inputs, kwargs, allowed):
    if ufunc.nin != 2:
        raise ValueError(f"{_name(ufunc)}{method} is only supported for binary functions")
    if len(inputs) != 1:
        raise TypeError(f"{_name(ufunc)}{method} takes one array, got {len(inputs)}")
    return _check_ufunc_kwargs(ufunc, method, inputs, kwargs, allowed)


def _reduce(ufunc, inputs, kwargs):
    """``ufunc.reduce(a, axis=0, keepdims=False, initial=...)``."""
    kw = _reduce_args(ufunc, ".reduce", inputs, kwargs, ("axis", "keepdims", "initial", "dtype"))
    a = inputs[0]
    axis = kw.get("axis", 0)
    keepdims = kw.get("keepdims", False)
    initial = kw.get("initial", _NO_VALUE)
    dtype = kw.get("dtype")
    fn = _ufunc_fn(ufunc, inputs, ".reduce")
    reduction = _REDUCTIONS.get(ufunc)
    if reduction is not None and (dtype is None or ufunc in (np.add, np.multiply)):
        options = {"axis": axis, "keepdims": keepdims}
        if dtype is not None:
            options["dtype"] = dtype
        out = reduction(a, **options)
        return out if initial is _NO_VALUE else fn(out, initial)
    if dtype is not None:
        raise TypeError(
            f"{_name(ufunc)}.reduce(..., dtype={dtype!r}) on a traced value is not "
            "supported: cast the operand first (x.astype(dtype))"
        )
    return _fold(fn, ufunc, a, axis, keepdims, initial, accumulate=False)


def _accumulate(ufunc, inputs, kwargs):
    """``ufunc.accumulate(a, axis=0)``."""
    kw = _reduce_args(ufunc, ".accumulate", inputs, kwargs, ("axis", "dtype"))
    a = inputs[0]
    axis = kw.get("axis", 0)
    dtype = kw.get("dtype")
    accumulation = _ACCUMULATIONS.get(ufunc)
    if accumulation is not None:
        return accumulation(a, axis=axis, dtype=dtype)
    if dtype is not None:
        raise TypeError(
            f"{_name(ufunc)}.accumulate(..., dtype={dtype!r}) on a traced value is not "
            "supported: cast the operand first (x.astype(dtype))"
        )
    fn = _ufunc_fn(ufunc, inputs, ".accumulate")
    return _fold(fn, ufunc, a, axis, False, _NO_VALUE, accumulate=True)


def _fold(fn, ufunc, a, axis, keepdims, initial, *, accumulate: bool):
    """Apply the binary ``fn`` along ``axis`` from the first element to the last: what
    ``ufunc.reduce`` / ``ufunc.accumulate`` compute, for any ufunc diffsys has."""
    from . import _shape as sh
    from ._indexing import getitem
    from ._util import normalize_axis, shape_of

    what = f"{_name(ufunc)}.{'accumulate' if accumulate else 'reduce'}"
    if axis is None:
        if accumulate and len(shape_of(a)) > 1:
            raise TypeError(f"{what}: axis=None is not valid for arrays of more than 1 dimension")
        a = sh.ravel(a)
        axis = 0
    elif isinstance(axis, tuple):
        if len(axis) != 1:
            raise TypeError(
                f"{what} over several axes {axis} on a traced value is supported only for "
                "np.add, np.multiply, np.maximum, np.minimum, np.logical_and and np.logical_or"
            )
        (axis,) = axis
    shape = shape_of(a)
    axis = normalize_axis(axis, len(shape), what)
    moved = sh.moveaxis(a, axis, 0)
    n = shape[axis]
    acc = initial
    partials = []
    for i in range(n):
        item = getitem(moved, i)
        acc = item if acc is _NO_VALUE else fn(acc, item)
        partials.append(acc)
    if accumulate:
        return sh.moveaxis(sh.stack(partials), 0, axis) if n else a
    if acc is _NO_VALUE:
        if ufunc.identity is None:
            raise ValueError(f"{what}: zero-size array with no identity and no initial value")
        acc = np.full(shape[:axis] + shape[axis + 1 :], ufunc.identity, dtype=a.dtype)
    if keepdims:
        acc = sh.expand_dims(acc, axis)
    return acc


def _outer(ufunc, inputs, kwargs):
    """``ufunc.outer(a, b)``: ``ufunc(a[..., None, ...], b)`` over every pair."""
    from . import _shape as sh
    from ._util import shape_of

    fn = _ufunc_fn(ufunc, inputs, ".outer")
    _check_ufunc_kwargs(ufunc, ".outer", inputs, kwargs)
    if len(inputs) != 2:
        raise TypeError(f"{_name(ufunc)}.outer takes two arrays, got {len(inputs)}")
    a, b = inputs
    sa, sb = shape_of(a), shape_of(b)
    return fn(sh.reshape(a, sa + (1,) * len(sb)), b)


def _at(ufunc, inputs, kwargs):
    method = _AT_METHODS.get(ufunc.__name__)
    fix = (
        f"a = a.at[indices].{method}(b) (repeated indices accumulate, as in np.{ufunc.__name__}.at)"
        if method
        else "a functional update: a.at[indices].set(v), or np.where(mask, v, a)"
    )
    raise TypeError(
        f"{_name(ufunc)}.at(a, indices, ...) changes `a` in place, which traced values "
        f"({_describe(inputs)}) cannot take part in: traced arrays are immutable and a plain "
        f"array cannot hold a derivative. Use {fix}"
    )


def _reduceat(ufunc, inputs, kwargs):
    raise TypeError(
        f"{_name(ufunc)}.reduceat on a traced value ({_describe(inputs)}) is not supported: "
        f"apply np.{ufunc.__name__}.reduce to each slice (a[i:j]) and np.stack the results"
    )


_UFUNC_METHODS = {
    "reduce": _reduce,
    "accumulate": _accumulate,
    "outer": _outer,
    "at": _at,
    "reduceat": _reduceat,
}


# --- __array_function__ -------------------------------------------------------------------------


def _is_default(value, default) -> bool:
    if value is default:
        return True
    return (
        type(value) in (str, bool, int, float)
        and type(value) is type(default)
        and value == default
    )


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
# Values that change nothing, for keywords whose NumPy default is "not given".
_NEUTRAL = {"where": True, "keepdims": False}


class _Adapter:
    """Runs the diffsys version of a NumPy function with the arguments NumPy was given.

    The common call (positional arguments that mean the same in both signatures, keywords
    that both take) goes straight through. Otherwise the call is matched against NumPy's
    signature: arguments at NumPy's default are dropped, the rest are passed by name, and an
    argument the diffsys version lacks is an error naming it.
    """

    __slots__ = ("func", "fn", "npos", "kw", "np_names", "np_defaults", "dnp_params")

    def __init__(self, func, fn) -> None:
        self.func = func
        self.fn = fn
        self.npos = 1 << 30  # leading positional arguments passed as they are
        self.kw = None  # keywords passed as they are (None: all of them)
        self.np_names: tuple[str, ...] = ()  # NumPy's positional parameters, in order
        self.np_defaults: dict = {}
        self.dnp_params: dict = {}
        if isinstance(fn, Primitive):  # a primitive takes NumPy's own arguments
            return
        try:
            np_params = list(inspect.signature(func).parameters.values())
            self.dnp_params = dict(inspect.signature(fn).parameters)
        except (TypeError, ValueError):  # no signature to go by: pass calls through
            return
        self.np_defaults = {p.name: p.default for p in np_params}
        if not np_params or np_params[0].kind is not inspect.Parameter.VAR_POSITIONAL:
            # Leading positional parameters that mean the same (same name; the first is
            # the array whatever each calls it, and NumPy's positional-only ones have no
            # name to go by) may be passed by position.
            np_pos = [p for p in np_params if p.kind in _POSITIONAL]
            d_pos = [p for p in self.dnp_params.values() if p.kind in _POSITIONAL]
            npos = 0
            for i, (p, q) in enumerate(zip(np_pos, d_pos, strict=False)):
                if i and p.name != q.name and p.kind is not inspect.Parameter.POSITIONAL_ONLY:
                    break
                npos += 1
            self.npos = npos
            self.np_names = tuple(p.name for p in np_pos)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self.dnp_params.values()):
            return
        by_name = {
            n
            for n, p in self.dnp_params.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        self.kw = frozenset(n for n in self.np_defaults if n in by_name and n != "out")

    def __call__(self, args, kwargs):
        kw = self.kw
        if len(args) <= self.npos and (kw is None or kw.issuperset(kwargs)):
            if kw is None and "out" in kwargs:
                self._check_out(kwargs["out"], args)
                kwargs = {k: v for k, v in kwargs.items() if k != "out"}
            return self.fn(*args, **kwargs)
        return self._matched_call(args, kwargs)

    def _check_out(self, out, args) -> None:
        if out is not None:
            raise TypeError(_out_message(_name(self.func), args))

    def _matched_call(self, args, kwargs):
        """Positional arguments past ``npos`` take NumPy's names; then every named argument
        is passed on, dropped (at NumPy's default) or refused."""
        npos = self.npos
        extra = args[npos:]
        if len(extra) > len(self.np_names) - npos:
            raise TypeError(
                f"{_name(self.func)}() takes at most {len(self.np_names)} positional "
                f"arguments, got {len(args)}"
            )
        named = dict(zip(self.np_names[npos:], extra, strict=False))
        for key, value in kwargs.items():
            if key in named:
                raise TypeError(f"{_name(self.func)}() got multiple values for {key!r}")
            named[key] = value
        # Leading parameters given by name (np.empty_like(prototype=x)) go by position.
        positional = list(args[:npos])
        lead = min(npos, len(self.np_names))
        while len(positional) < lead and self.np_names[len(positional)] in named:
            positional.append(named.pop(self.np_names[len(positional)]))
        call_kwargs: dict = {}
        for key, value in named.items():
            self._keyword(key, value, call_kwargs, args)
        return self.fn(*positional, **call_kwargs)

    def _keyword(self, key, value, call_kwargs, args) -> None:
        if key == "out":
            self._check_out(value, args)
            return
        if self.kw is None or key in self.kw:
            call_kwargs[key] = value
            return
        if _is_default(value, self.np_defaults.get(key, _NO_VALUE)) or _is_default(
            value, _NEUTRAL.get(key, _NO_VALUE)
        ):
            return
        fn_name = getattr(self.fn, "__name__", "its diffsys version")
        takes = ", ".join(self.dnp_params) or "no keywords"
        raise TypeError(
            f"{_name(self.func)}(..., {key}={_short(value)}) on a traced value "
            f"({_describe(args)}): diffsys's {fn_name} does not support {key!r} (it takes "
            f"{takes}); call it without {key}= or write the step with diffsys.numpy"
        )


def array_function(self, func, types, args, kwargs):
    """``Tracer.__array_function__``: a NumPy function with a tracer among its arguments."""
    adapter = FUNCTIONS.get(func)
    for t in types:
        if not issubclass(t, Tracer | np.ndarray):
            return NotImplemented  # another library's array: let it (or NumPy) decide
    if adapter is None:
        if func in _LIKE:  # np.zeros(3, like=x): a constant, the plain array NumPy makes
            return func(*args, **kwargs)
        return _unsupported(func, args)
    return adapter(args, kwargs)


# NumPy's creation functions that take ``like=`` (NEP 35) and hand it the call.
_LIKE = frozenset(
    getattr(np, name)
    for name in (
        "array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray", "require",
        "zeros", "ones", "empty", "full", "arange", "eye", "identity", "tri", "fromfunction",
        "fromiter", "frombuffer", "fromstring", "fromfile", "loadtxt", "genfromtxt",
    )
    if hasattr(np, name)
)


_IN_PLACE = ("copyto", "place", "put", "putmask", "fill_diagonal", "put_along_axis")

_HINTS = {
    "copyto": "np.full(shape, x) and np.copyto write x into a plain array: use "
    "dnp.full(shape, x), np.broadcast_to(x, shape) or a.at[idx].set(x)",
    "apply_along_axis": "map the function with ds.vmap (moving the axis first), or write it "
    "with array operations",
    "apply_over_axes": "write it with array operations (most reductions take axis=)",
    "piecewise": "use np.where(condition, f(x), g(x)) or np.select",
    "vectorize": "use ds.vmap, or array operations",
    "put_along_axis": "np.put_along_axis changes its array in place; diffsys's version "
    "returns the changed copy: a = dnp.put_along_axis(a, indices, values, axis)",
}


def _unsupported(func, args):
    name = _name(func)
    short = getattr(func, "__name__", "")
    if short in _IN_PLACE and short not in _HINTS:
        hint = (
            "it changes an array in place, and traced arrays are immutable (a plain array "
            "cannot hold a derivative): use a functional update, a = a.at[idx].set(v), "
            "a.at[idx].add(v), or np.where(mask, v, a)"
        )
    else:
        hint = _HINTS.get(short) or (
            "write it with NumPy operations diffsys has (docs/api-coverage.md lists them), make "
            "it a primitive with its derivative (ds.Primitive(...).defvjp, or ds.custom_vjp), "
            "or pass ds.stop_gradient(x) to treat the value as a constant"
        )
    raise TypeError(
        f"{name} was called on a traced value ({_describe(args)}), but diffsys.numpy has no "
        f"differentiable {short or name}: {hint}"
    )


# --- building the tables --------------------------------------------------------------------------


def _is_dispatcher(obj) -> bool:
    """A NumPy function that dispatches through ``__array_function__`` (NEP 18)."""
    return hasattr(obj, "_implementation")


def register(func, fn: Callable) -> None:
    """Run ``fn`` (a diffsys function) when NumPy's ``func`` (a ufunc or a public NumPy
    function) is called on traced values."""
    if isinstance(func, np.ufunc):
        UFUNCS[func] = fn
        if func.nin == 2 and func.nout == 1 and isinstance(fn, Primitive):
            _BINARY[func] = fn
        else:
            _BINARY.pop(func, None)
    elif _is_dispatcher(func):
        FUNCTIONS[func] = _Adapter(func, fn)
    else:
        raise TypeError(
            f"{_name(func)} does not dispatch through __array_function__ or __array_ufunc__, "
            "so NumPy never hands it a traced value"
        )


def _register_namespace(np_module, d_module) -> None:
    for name in d_module.__all__:
        ours = getattr(d_module, name)
        theirs = getattr(np_module, name, None)
        if theirs is None or theirs is ours:
            continue
        if isinstance(theirs, np.ufunc) or _is_dispatcher(theirs):
            register(theirs, ours)


def _result_type(*arrays_and_dtypes):
    return np.result_type(*(a.dtype if isinstance(a, Tracer) else a for a in arrays_and_dtypes))


def _can_cast(from_, to, casting="safe"):
    return np.can_cast(from_.dtype if isinstance(from_, Tracer) else from_, to, casting)


def _modf(x):
    from . import _elementwise as ew

    whole = ew.trunc(x)
    return ew.subtract(x, whole), whole


def _divmod(x, y):
    from . import _elementwise as ew

    return ew.floor_divide(x, y), ew.remainder(x, y)


def _matrix_transpose(x):
    from . import _shape as sh

    return sh.swapaxes(x, -1, -2)


def _copy(a, order="K", subok=False):
    return a  # traced arrays are immutable: a copy is the value itself (as x.copy())


def install() -> None:
    """Build the tables from diffsys.numpy's names and install the handlers on tracers."""
    from .. import numpy as dnp  # the package, importing this module last

    _register_namespace(np, dnp)
    _register_namespace(np.linalg, dnp.linalg)
    _register_namespace(np.fft, dnp.fft)
    # NumPy changes the array in place where dnp returns a new one: an error, not a silent
    # no-op (the caller would ignore the result).
    FUNCTIONS.pop(np.put_along_axis, None)
    # NumPy functions that read only shapes and dtypes.
    register(np.result_type, _result_type)
    register(np.can_cast, _can_cast)
    for func in (np.iscomplexobj, np.isrealobj):
        register(func, func._implementation)
    # The same operation under another NumPy name (some are NumPy 2's only).
    for module, name, fn in (
        (np, "divmod", _divmod),
        (np, "modf", _modf),
        (np, "copy", _copy),
        (np, "permute_dims", dnp.transpose),
        (np, "matrix_transpose", _matrix_transpose),
        (np.linalg, "matrix_transpose", _matrix_transpose),
        (np.linalg, "matmul", dnp.matmul),
        (np.linalg, "tensordot", dnp.tensordot),
    ):
        if hasattr(module, name):
            register(getattr(module, name), fn)
    _REDUCTIONS.update(
        {
            np.add: dnp.sum,
            np.multiply: dnp.prod,
            np.maximum: dnp.max,
            np.minimum: dnp.min,
            np.logical_and: dnp.all,
            np.logical_or: dnp.any,
        }
    )
    _ACCUMULATIONS.update({np.add: dnp.cumsum, np.multiply: dnp.cumprod})
    set_array_protocols(array_ufunc, array_function)
