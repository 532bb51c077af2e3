"""Traced values and trace levels.

A transform (``grad``, ``jvp``, ``vmap`` ...) opens a *trace* with a fresh level and wraps its
inputs in *tracers* of that trace. Every primitive applied to a tracer is handed to the trace
with the highest level among its arguments; that trace unwraps its own tracers (their values
may be tracers of lower levels) and calls the primitive again on the unwrapped values. This is
how nested transforms compose and why perturbations of different transforms never mix.

Levels come from one process-wide monotonic counter. An inner transform always starts after
its outer one, so it always gets a higher level; transforms running in other threads get
unrelated levels and never share tracers. No trace state is global, so concurrent transforms
in several threads do not interfere.
"""

from __future__ import annotations

import itertools
import linecache
import os
import sys

import numpy as np

from .warn import DroppedDerivativeWarning, warn_user

_level_counter = itertools.count(1)


def new_level() -> int:
    """A level higher than that of every trace opened before (thread-safe under the GIL)."""
    return next(_level_counter)


class Trace:
    """One transform's recording context. Subclasses implement :meth:`process`."""

    __slots__ = ("level",)
    # True for traces that carry derivatives (reverse and forward mode): turning one of
    # their tracers into a Python number loses the derivative (see ``Tracer.__float__``).
    differentiates = False

    def __init__(self) -> None:
        self.level = new_level()

    def process(self, prim, args, params):  # pragma: no cover - abstract
        raise NotImplementedError

    # Shortcuts for the most frequent calls (one or two arguments, no parameters); traces
    # may override them with leaner code.
    def process1(self, prim, a):
        return self.process(prim, (a,), _NO_PARAMS)

    def process2(self, prim, a, b):
        return self.process(prim, (a, b), _NO_PARAMS)


_NO_PARAMS: dict = {}


class Tracer:
    """A value traced by a transform; behaves like an immutable ``numpy.ndarray``.

    ``isinstance(x, diffsys.Tracer)`` tells whether ``x`` is being traced. Arithmetic,
    indexing and the common array methods are installed by :mod:`diffsys.numpy`.
    """

    __slots__ = ("_trace", "_value")
    # NumPy's own functions and operators on tracers (``np.exp(x)``, ``np.sum(x)``,
    # ``ndarray * x``) reach diffsys through NumPy's dispatch protocols: ``__array_ufunc__``
    # (NEP 13) and ``__array_function__`` (NEP 18). The engine knows no NumPy names, so the
    # handlers come from diffsys.numpy, which installs them (``set_array_protocols``).
    __array_priority__ = 1000.0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _protocols_missing(ufunc)

    def __array_function__(self, func, types, args, kwargs):
        return _protocols_missing(func)

    __hash__ = None  # like ndarray: mutable-looking values are unhashable
    # True for tracers recorded into a replayable graph (``ds.trace``): reading their value
    # while tracing would fix the graph to the example value, so operations that can keep a
    # value as an operand (integer indices) do so.
    records_graph = False

    # --- abstract value -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._value.shape

    @property
    def dtype(self) -> np.dtype:
        return self._value.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of unsized object (a 0-d traced array)")
        return shape[0]

    def concrete(self):
        """The plain value under every trace level (for Python control flow)."""
        return concrete(self._value)

    # --- Python control flow reads the current value (eager tracing) ----------------------
    def __bool__(self) -> bool:
        return bool(self.concrete())

    # float(), int() and complex() also read the current value, but the Python number they
    # make has no derivative: they warn (once per line of user code) when the value is being
    # differentiated. ``bool`` and comparisons are control flow: silent. ``__index__`` takes
    # integer values only, which have no derivative to lose (a float index is an error).
    def __float__(self) -> float:
        warn_if_dropped(self, "float()")
        return float(self.concrete())

    def __int__(self) -> int:
        warn_if_dropped(self, "int()")
        return int(self.concrete())

    def __complex__(self) -> complex:
        warn_if_dropped(self, "complex()")
        return complex(self.concrete())

    def __index__(self) -> int:
        value = self.concrete()
        if not np.issubdtype(np.asarray(value).dtype, np.integer):
            raise TypeError(
                f"only integer traced values can be used as an index, got dtype {value.dtype}"
            )
        return int(value)

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype).kind in "iub":
            # ``np.int64(x)``, ``np.asarray(x, dtype=int)``: integers carry no derivative
            # (as ``x.astype(int)``), so the current value converts, e.g. to index with it.
            return np.asarray(self.concrete(), dtype=dtype)
        raise TypeError(
            f"a traced value ({type(self).__name__}, shape {self.shape}, dtype {self.dtype}) "
            f"cannot become a plain numpy.ndarray{_call_site()}: numpy.asarray and numpy.array "
            "(also when np.random with traced parameters, np.vectorize, SciPy's compiled "
            "routines or storing into an ndarray call them) would drop its derivative. Pass "
            "the traced value to NumPy's functions as it is (they run diffsys.numpy's: "
            "np.exp(x) is dnp.exp(x)), np.stack a list of traced values, update one with "
            "x.at[i].set(v), or detach it explicitly with ds.stop_gradient(x) (a constant)"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self._trace.level}, value={self._value!r})"


def set_array_protocols(array_ufunc, array_function) -> None:
    """Install NumPy's dispatch handlers on :class:`Tracer` (and so on every tracer class).

    ``array_ufunc(self, ufunc, method, *inputs, **kwargs)`` and ``array_function(self, func,
    types, args, kwargs)`` have the signatures of ``__array_ufunc__`` and
    ``__array_function__``; :mod:`diffsys.numpy` installs its own when it is imported.
    """
    Tracer.__array_ufunc__ = array_ufunc
    Tracer.__array_function__ = array_function


def _protocols_missing(func):
    name = getattr(func, "__name__", repr(func))
    raise TypeError(
        f"{name} was called on a traced value, but no NumPy dispatch handlers are installed: "
        "import diffsys.numpy (importing diffsys does) to run NumPy's functions on tracers"
    )


# Frames in these folders are the libraries that converted a tracer, not the user's code.
_LIBRARY_DIRS = (
    os.path.dirname(np.__file__) + os.sep,
    f"{os.sep}site-packages{os.sep}scipy{os.sep}",
    f"{os.sep}dist-packages{os.sep}scipy{os.sep}",
)


def _call_site() -> str:
    """`` (at file:line: code)``: the line of the user's code that made NumPy (or SciPy)
    convert a tracer, and the library line that did, if it is another."""
    try:
        frame = sys._getframe(2)  # 0: this helper, 1: __array__, 2: the NumPy call's caller
    except ValueError:  # called with no Python caller
        return ""
    inner = None
    while frame is not None and any(d in frame.f_code.co_filename for d in _LIBRARY_DIRS):
        inner = inner or frame
        frame = frame.f_back
    if frame is None:
        return f" (inside {_frame_text(inner)})" if inner is not None else ""
    return f" (at {_frame_text(frame)}" + (f", inside {_frame_text(inner)})" if inner else ")")


def _frame_text(frame) -> str:
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    line = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno}: {line}" if line else f"{filename}:{lineno}"


def concrete(x):
    """Strip every trace level from ``x`` and return the plain value."""
    while isinstance(x, Tracer):
        x = x.concrete()
    return x


def warn_if_dropped(x: Tracer, how: str) -> None:
    """Warn with :class:`DroppedDerivativeWarning` when ``x`` carries a derivative (an
    inexact value traced, at some level, by a differentiating transform) that turning it
    into a Python number with ``how`` drops. The message depends only on ``how`` and the
    transform, so the warning registry shows it once per line of user code."""
    if x.dtype.kind not in "fc":  # integers and booleans have no derivative to lose
        return
    while isinstance(x, Tracer):
        if x._trace.differentiates:
            warn_user(
                f"{how} of a value being differentiated ({type(x).__name__}) makes a "
                "Python number that carries no derivative: the gradient through it is lost "
                "(silently 0). Keep the computation in diffsys.numpy (e.g. dnp.exp instead "
                "of math.exp, no float()), or wrap the value in ds.stop_gradient first if "
                "it is meant to be a constant",
                DroppedDerivativeWarning,
            )
            return
        x = x._value


def top_trace(args):
    """The trace with the highest level among ``args``' tracers, or ``None``."""
    trace = None
    level = 0
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if t.level > level:
                trace = t
                level = t.level
    return trace
