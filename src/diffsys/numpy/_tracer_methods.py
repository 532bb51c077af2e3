"""Operators and array methods of :class:`diffsys.Tracer`, so traced code reads like NumPy.

Traced arrays are immutable: item assignment and in-place operators on arrays raise an error
that names the functional alternatives. (In-place operators on 0-d values rebind, like
NumPy's immutable scalars: ``total += term`` works.)
"""

from __future__ import annotations

import numpy as np

from ..core import ad_util
from ..core.primitive import Primitive
from ..core.tracer import Tracer, warn_if_dropped
from . import _elementwise as ew
from . import _indexing as ix
from . import _products as pr
from . import _reductions as red
from . import _shape as sh
from ._util import array_like, def_elementwise_batch

# --- dtype conversion -----------------------------------------------------------------------------

_cast_nondiff = Primitive(
    "cast_nondiff", lambda x, dtype: np.asarray(x, dtype=dtype), zero_derivative=True
)
def_elementwise_batch(_cast_nondiff)


@array_like("x")
def astype(x, dtype):
    """``x`` converted to ``dtype``; differentiable between floating/complex dtypes, a
    constant when converting to integers or booleans."""
    dtype = np.dtype(dtype)
    if not isinstance(x, Tracer):
        return np.asarray(x).astype(dtype)
    if x.dtype == dtype:
        return x
    if np.issubdtype(dtype, np.inexact) and np.issubdtype(x.dtype, np.inexact):
        if np.issubdtype(x.dtype, np.complexfloating) and not np.issubdtype(
            dtype, np.complexfloating
        ):
            x = ad_util.real_part(x)
        return ad_util.cast(x, dtype=dtype)
    return _cast_nondiff(x, dtype=dtype)


# --- immutability -------------------------------------------------------------------------------

_FUNCTIONAL_HINT = (
    "traced arrays are immutable (diffsys records operations to differentiate them). "
    "Use a functional update instead: x = x.at[idx].set(v), x.at[idx].add(v), "
    "x.at[idx].multiply(v), or dnp.where(mask, v, x)"
)


def _setitem(self, idx, value):
    raise TypeError(
        f"item assignment x[{idx!r}] = ... on a traced array (shape {self.shape}, dtype "
        f"{self.dtype}) is not supported: {_FUNCTIONAL_HINT}"
    )


def _inplace(op_name: str, fn):
    def method(self, other):
        if self.ndim == 0:
            return fn(self, other)  # rebinding, as for NumPy's immutable scalars
        raise TypeError(
            f"in-place operator 'x {op_name}= v' on a traced array (shape {self.shape}, dtype "
            f"{self.dtype}) is not supported: it would mutate an array other references may "
            f"share. Write 'x = x {op_name} v', or {_FUNCTIONAL_HINT}"
        )

    return method


# --- operators ---------------------------------------------------------------------------------


def _reflected(prim):
    if not isinstance(prim, Primitive):
        return lambda self, other: prim(other, self)

    def reflected(self, other):
        trace = self._trace
        if isinstance(other, Tracer):
            if other._trace.level > trace.level:
                trace = other._trace
        elif other.__class__ is list or other.__class__ is tuple:
            return prim(other, self)  # array_like: the dispatch stacks a list of tracers
        return trace.process2(prim, other, self)

    return reflected


def _round(self, ndigits=None):
    """``round(x)``: a 0-d value rounds to a Python int, like a NumPy scalar (a constant that
    reads the current value); otherwise the zero-derivative ``dnp.round``."""
    if ndigits is None and self.ndim == 0:
        return round(float(self))
    return ew.round(self, 0 if ndigits is None else ndigits)


def _divmod(self, other):
    return ew.floor_divide(self, other), ew.remainder(self, other)


def _rdivmod(self, other):
    return ew.floor_divide(other, self), ew.remainder(other, self)


def _iter(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d traced array")
    return (ix.getitem(self, i) for i in range(self.shape[0]))


_OPERATORS = {
    "__add__": ew.add,
    "__radd__": _reflected(ew.add),
    "__sub__": ew.subtract,
    "__rsub__": _reflected(ew.subtract),
    "__mul__": ew.multiply,
    "__rmul__": _reflected(ew.multiply),
    "__truediv__": ew.divide,
    "__rtruediv__": _reflected(ew.divide),
    "__floordiv__": ew.floor_divide,
    "__rfloordiv__": _reflected(ew.floor_divide),
    "__mod__": ew.remainder,
    "__rmod__": _reflected(ew.remainder),
    "__pow__": ew.power,
    "__rpow__": _reflected(ew.power),
    "__matmul__": pr.matmul,
    "__rmatmul__": _reflected(pr.matmul),
    "__neg__": ew.negative,
    "__pos__": ew.positive,
    "__abs__": ew.absolute,
    "__eq__": ew.equal,
    "__ne__": ew.not_equal,
    "__lt__": ew.less,
    "__le__": ew.less_equal,
    "__gt__": ew.greater,
    "__ge__": ew.greater_equal,
    "__and__": ew.bitwise_and,
    "__rand__": _reflected(ew.bitwise_and),
    "__or__": ew.bitwise_or,
    "__ror__": _reflected(ew.bitwise_or),
    "__xor__": ew.bitwise_xor,
    "__rxor__": _reflected(ew.bitwise_xor),
    "__invert__": ew.invert,
    "__round__": _round,
    "__divmod__": _divmod,
    "__rdivmod__": _rdivmod,
    "__getitem__": ix.getitem,
    "__setitem__": _setitem,
    "__iter__": _iter,
}

for _op, _fn in (
    ("+", ew.add),
    ("-", ew.subtract),
    ("*", ew.multiply),
    ("/", ew.divide),
    ("//", ew.floor_divide),
    ("%", ew.remainder),
    ("**", ew.power),
    ("@", pr.matmul),
):
    _name = {
        "+": "add",
        "-": "sub",
        "*": "mul",
        "/": "truediv",
        "//": "floordiv",
        "%": "mod",
        "**": "pow",
        "@": "matmul",
    }[_op]
    _OPERATORS[f"__i{_name}__"] = _inplace(_op, _fn)


# --- methods -----------------------------------------------------------------------------------


def _reshape_method(self, *shape, order="C"):
    if len(shape) == 1 and not isinstance(shape[0], int | np.integer):
        shape = shape[0]
    return sh.reshape(self, shape, order=order)


def _transpose_method(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], int | np.integer):
        axes = axes[0]
    return sh.transpose(self, axes if axes else None)


def _item(self, *args):
    warn_if_dropped(self, ".item()")
    return self.concrete().item(*args)


def _tolist(self):
    warn_if_dropped(self, ".tolist()")
    return self.concrete().tolist()


def _no_out(fn, name: str):
    """A method that also takes NumPy's ``out=None``, as ``ndarray``'s does (code written for
    NumPy may pass it); any other ``out`` is refused: traced arrays are immutable."""

    def method(self, *args, out=None, **kwargs):
        if out is not None:
            raise TypeError(
                f"{name}(..., out=...) on a traced array (shape {self.shape}, dtype "
                f"{self.dtype}) is not supported: traced arrays are immutable, use the "
                "returned value"
            )
        return fn(self, *args, **kwargs)

    method.__name__ = name
    return method


def _format(self, spec: str) -> str:
    """``f"{x:.3f}"`` formats a 0-d value as NumPy does (with the current value)."""
    if not spec:
        return str(self)
    if self.ndim:
        raise TypeError(
            f"unsupported format string {spec!r} for a traced array of shape {self.shape} "
            "(only 0-d values take a format spec, as in NumPy)"
        )
    return format(self.concrete(), spec)


def _imag(self):
    if np.issubdtype(self.dtype, np.complexfloating):
        return ad_util.real_part(ew.multiply(self, -1j))
    return np.zeros(self.shape, dtype=self.dtype)  # a constant, as NumPy's zeros


_METHODS = {
    "reshape": _reshape_method,
    "transpose": _transpose_method,
    "sum": _no_out(red.sum, "sum"),
    "mean": _no_out(red.mean, "mean"),
    "prod": _no_out(red.prod, "prod"),
    "max": _no_out(red.max, "max"),
    "min": _no_out(red.min, "min"),
    "var": _no_out(red.var, "var"),
    "std": _no_out(red.std, "std"),
    "cumsum": _no_out(red.cumsum, "cumsum"),
    "cumprod": _no_out(red.cumprod, "cumprod"),
    "astype": astype,
    "dot": pr.dot,
    "flatten": lambda self, order="C": sh.ravel(self, order),
    "ravel": sh.ravel,
    "squeeze": sh.squeeze,
    "swapaxes": sh.swapaxes,
    "clip": _no_out(lambda self, min=None, max=None: ew.clip(self, min, max), "clip"),
    "conj": ew.conjugate,
    "conjugate": ew.conjugate,
    "argmax": _no_out(ix.argmax, "argmax"),
    "argmin": _no_out(ix.argmin, "argmin"),
    "copy": lambda self: self,
    "item": _item,
    "tolist": _tolist,
    "any": _no_out(
        lambda self, axis=None, keepdims=False: red.any(self, axis, keepdims=keepdims), "any"
    ),
    "all": _no_out(
        lambda self, axis=None, keepdims=False: red.all(self, axis, keepdims=keepdims), "all"
    ),
    "round": _no_out(lambda self, decimals=0: ew.round(self, decimals), "round"),
    "__format__": _format,
    # Methods that return new arrays in NumPy too.
    "argsort": lambda self, axis=-1, kind=None, order=None: _ordering().argsort(
        self, axis=axis, kind=kind
    ),
    "argpartition": lambda self, kth, axis=-1: _ordering().argpartition(self, kth, axis=axis),
    "take": lambda self, indices, axis=None: _ordering().take(self, indices, axis=axis),
    "repeat": lambda self, repeats, axis=None: _ordering().repeat(self, repeats, axis=axis),
    "diagonal": lambda self, offset=0, axis1=0, axis2=1: _ordering().diagonal(
        self, offset, axis1, axis2
    ),
    "trace": lambda self, offset=0, axis1=0, axis2=1: _ordering().trace(self, offset, axis1, axis2),
    "searchsorted": lambda self, v, side="left": _ordering().searchsorted(self, v, side=side),
    "compress": lambda self, condition, axis=None: _ordering().compress(condition, self, axis=axis),
    "choose": lambda self, choices: _ordering().choose(self, choices),
    "nonzero": lambda self: ix.nonzero(self),
    "ptp": lambda self, axis=None, keepdims=False: _statistics().ptp(
        self, axis=axis, keepdims=keepdims
    ),
    # NumPy sorts these in place; traced arrays are immutable, so they name the alternative.
    "sort": lambda self, *a, **k: _in_place_method("sort", self),
    "partition": lambda self, *a, **k: _in_place_method("partition", self),
    "fill": lambda self, *a, **k: _in_place_method("fill", self),
}


def _ordering():
    from . import _ordering as module

    return module


def _statistics():
    from . import _statistics as module

    return module


def _in_place_method(name: str, self):
    alternative = {"fill": "dnp.full_like(x, value)"}.get(name, f"x = dnp.{name}(x, ...)")
    raise TypeError(
        f"x.{name}() changes a NumPy array in place, but traced arrays (shape {self.shape}, "
        f"dtype {self.dtype}) are immutable: use {alternative}, which returns a new array"
    )


def _T(self):
    return sh.transpose(self)


def _mT(self):
    return sh.swapaxes(self, -1, -2)


_UNARY = frozenset(("__neg__", "__pos__", "__abs__", "__invert__"))


def _as_method(name: str, fn):
    """Primitives are objects, not functions: give them a function to bind ``self``.

    Operators hand the call straight to the top trace (``self``'s, or ``other``'s when it is
    a tracer of a higher level), skipping the generic dispatch: they run on every traced op.
    A list or tuple operand (``x * [y, 1.]``) goes through the dispatch, which stacks the
    tracers it holds before any trace unwraps ``self``.
    Unary operators and methods that are primitives (``x.conj()``) take only ``self``.
    """
    if not isinstance(fn, Primitive):
        return fn
    if name in _UNARY or name in _METHODS:
        return lambda self: self._trace.process1(fn, self)

    def binary(self, other):
        trace = self._trace
        if isinstance(other, Tracer):
            if other._trace.level > trace.level:
                trace = other._trace
        elif other.__class__ is list or other.__class__ is tuple:
            return fn(self, other)  # array_like: the dispatch stacks a list of tracers
        return trace.process2(fn, self, other)

    return binary


def install() -> None:
    """Attach operators, methods and properties to :class:`Tracer`."""
    for name, fn in {**_OPERATORS, **_METHODS}.items():
        setattr(Tracer, name, _as_method(name, fn))
    Tracer.T = property(_T)
    Tracer.mT = property(_mT)
    Tracer.at = property(ix.IndexUpdateHelper, doc="Functional updates: x.at[idx].set(v).")
    Tracer.real = property(lambda self: ad_util.real_part(self))
    Tracer.imag = property(_imag)
    Tracer.itemsize = property(lambda self: self.dtype.itemsize)
    Tracer.nbytes = property(lambda self: self.size * self.dtype.itemsize)
