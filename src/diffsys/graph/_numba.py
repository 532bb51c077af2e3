"""The Numba backend of ``ds.jit``: a traced graph compiled to native code, region by region.

A graph is cut into *regions*: runs of consecutive operations that have a compiled kernel,
at most ``REGION_OPS`` of them (one Numba function each, so that no function grows to the
size Numba takes minutes on), separated by the operations that have none (those run through
the graph's ordinary implementation, one by one, and :meth:`NumbaProgram.explain` names
them with the reason). Inside a region,

- consecutive elementwise operations whose results have one shape fuse into one loop
  (flat when every operand has that shape, nested with broadcast indices otherwise): the
  values used only inside the loop are scalars, never arrays;
- reductions are loops, matrix products ``np.dot`` (BLAS), basic indexing, reshapes,
  transposes and concatenations the NumPy functions Numba compiles.

Values that leave a region (read by a later region or a fallback operation, or returned)
are written into an *arena*: one buffer per dtype allocated per call, each value a slice at
a fixed offset. So a region takes few arguments (the arenas, and the placeholders,
constants and fallback results it reads) and returns nothing, however many values cross.

Results equal the uncompiled graph's to rounding: ``fastmath`` is off, every elementwise
result is cast to the dtype the graph recorded (NumPy's), and only the order of
summations differs (a loop, not NumPy's pairwise sum).

The generated source is built from integers, dtype names and NumPy function names out of
fixed tables only (never a name, parameter or constant of the graph, which are passed in as
values), written to a file in the cache directory named by a hash of itself and the Numba
version, and imported from there with ``cache=True``: another process compiling the same
graph loads Numba's cached machine code instead of compiling again. The directory is
``$DIFFSYS_CACHE_DIR``, else ``$XDG_CACHE_HOME/diffsys``, else ``~/.cache/diffsys``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

REGION_OPS = 400  # operations per compiled function, at most
_DECORATOR = "@numba.njit(cache=True, fastmath=False, error_model='numpy')\n"

_ERROR_KINDS = "OUSVMm"  # object, strings, void, datetimes: nothing to compile


def import_numba():
    """The ``numba`` module, or an ImportError naming the extra that installs it."""
    try:
        import numba
    except ImportError as e:  # pragma: no cover - exercised by monkeypatching in the tests
        raise ImportError(
            "ds.jit(..., backend='numba') needs Numba, which is not installed: install the "
            "`jit` extra (pip install 'diffsys[jit]') or use the default backend ('numpy')"
        ) from e
    return numba


def cache_dir() -> Path:
    """Where generated sources and Numba's cached machine code are kept."""
    env = os.environ.get("DIFFSYS_CACHE_DIR")
    if env:
        return Path(env) / "numba"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "diffsys" / "numba"


def check_dtypes(leaves: list, name: str) -> None:
    """A TypeError for an argument leaf whose dtype cannot be compiled (object, strings)."""
    for k, x in enumerate(leaves):
        dtype = getattr(x, "dtype", None)
        if dtype is not None and dtype.kind in _ERROR_KINDS:
            raise TypeError(
                f"ds.jit({name}, backend='numba'): array argument leaf {k} (shape "
                f"{tuple(np.shape(x))}) has dtype {dtype}; the numba backend compiles bool, "
                "integer, floating and complex arrays only. Convert it first (e.g. "
                "x.astype(np.float64)) or use backend='numpy'"
            )


# --- what compiles -----------------------------------------------------------------------------

# Elementwise primitives: the scalar expression, over NumPy functions Numba compiles.
_UFUNCS = {
    name: f"np.{name}({{0}})"
    for name in (
        "sin cos tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 "
        "expm1 log log2 log10 log1p sqrt cbrt square reciprocal absolute sign floor ceil "
        "trunc rint isfinite isnan isinf signbit logical_not"
    ).split()
}
_UFUNCS.update(
    {
        name: f"np.{name}({{0}}, {{1}})"
        for name in (
            "maximum minimum fmax fmin hypot arctan2 logaddexp copysign equal not_equal less "
            "less_equal greater greater_equal logical_and logical_or logical_xor power"
        ).split()
    }
)
_UFUNCS.update(
    {
        "add": "({0} + {1})",
        "add_any": "({0} + {1})",
        "subtract": "({0} - {1})",
        "multiply": "({0} * {1})",
        "divide": "({0} / {1})",
        "negative": "(-{0})",
        "positive": "{0}",
        "where": "({1} if {0} else {2})",
        "cast": "{0}",
        "broadcast_to": "{0}",
        "broadcast_axis": "{0}",
        "stop_gradient": "{0}",
    }
)
_NO_CAST_IN = {"where", "cast", "broadcast_to", "broadcast_axis", "stop_gradient"}
_DTYPES = {
    np.dtype(t): f"np.{t}"
    for t in ("float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32",
              "uint16", "uint8", "bool_")
}
_STRUCTURAL = {
    "sum", "sum_axis", "reshape", "transpose", "getitem", "slice_axis", "pad_axis",
    "scatter_zeros", "index_add", "index_set", "concatenate", "matmul",
}  # fmt: skip


def _basic_index(idx, shape) -> str | None:
    """``idx`` (a tuple of slices and ints) as index text, or ``None`` when not basic."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    if len(idx) > len(shape):
        return None
    parts = []
    for item, n in zip(idx, shape, strict=False):
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            if step <= 0:
                return None
            parts.append(f"{int(start)}:{int(max(stop, start))}:{int(step)}")
        elif isinstance(item, int | np.integer) and not isinstance(item, bool):
            i = int(item)
            if not -n <= i < n:
                return None
            parts.append(str(i % n))
        else:
            return None
    return ", ".join(parts) + ("," if len(parts) == 1 else "") if parts else "..."


def why_not(graph, node) -> str | None:
    """Why ``node`` has no compiled kernel here, or ``None`` when it has one."""
    name = node.prim.name
    for v in (*node.inputs, *node.outputs):
        dt = graph.vars[v].dtype
        if dt not in _DTYPES:
            return f"dtype {dt} (compiled: bool, integers, float32, float64)"
    if name in _UFUNCS:
        if name == "broadcast_axis":
            return None
        return None
    if name not in _STRUCTURAL:
        return f"no compiled kernel for primitive {name!r}"
    shapes = [graph.vars[v].shape for v in node.inputs]
    p = node.params
    if name in ("getitem", "scatter_zeros", "index_add", "index_set"):
        target = shapes[0] if name != "scatter_zeros" else tuple(p["shape"])
        if _basic_index(p["idx"], target) is None:
            return "advanced or negative-step indexing (compiled: slices with step > 0, ints)"
    if name == "matmul":
        if any(len(s) not in (1, 2) for s in shapes):
            return "batched matmul (compiled: 1-D and 2-D operands)"
        dts = {graph.vars[v].dtype for v in (*node.inputs, *node.outputs)}
        if len(dts) != 1 or next(iter(dts)).kind != "f":
            return "matmul of mixed or non-floating dtypes (compiled: one float dtype)"
    return None


# --- code generation ---------------------------------------------------------------------------


class Region(NamedTuple):
    index: int
    nodes: list  # node positions in the graph
    args: list  # variables passed as arguments (placeholders, constants, fallback results)
    items: list  # ("ew", [node, ...]) fused loops and ("op", node) other operations


def _shape_text(shape) -> str:
    if not shape:
        return "()"
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _index_text(names: list[str]) -> str:
    if not names:
        return "()"
    return ", ".join(names) + ("," if len(names) == 1 else "")


def _strides(shape) -> list[int]:
    out, n = [], 1
    for d in reversed(shape):
        out.append(n)
        n *= int(d)
    return out[::-1]


def _region_shape(shape, idx) -> tuple:
    """The shape of ``x[idx]`` for ``x`` of ``shape`` (a view of one value: no memory)."""
    return np.broadcast_to(np.empty((), dtype=np.bool_), shape)[idx].shape


def _is_elementwise(node) -> bool:
    return node.prim.name in _UFUNCS and len(node.outputs) == 1


def group_items(graph, positions: list[int]) -> list:
    """Fused loops: consecutive elementwise operations with one result shape."""
    items: list = []
    for k in positions:
        node = graph.nodes[k]
        if _is_elementwise(node):
            shape = graph.vars[node.outputs[0]].shape
            last = items[-1] if items else None
            if last is not None and last[0] == "ew" and last[2] == shape:
                last[1].append(node)
                continue
            items.append(("ew", [node], shape))
        else:
            items.append(("op", node, None))
    return items


class _Writer:
    """The source of one region function. Every value a region makes that is read outside
    its own fused loop lives in the arena: elementwise code reads and writes the arena
    buffers at computed offsets (no array object per value); other operations see arena
    values through views."""

    def __init__(self, graph, arena, arena_names, args) -> None:
        self.g = graph
        self.arena = arena  # var -> (dtype, offset, size)
        self.names = arena_names
        self.args = set(args)
        self.lines: list[str] = []
        self.views: set[int] = set()  # array variables v<n> defined so far

    def emit(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    def dt(self, v) -> str:
        return _DTYPES[self.g.vars[v].dtype]

    def slot(self, v) -> tuple[str, int, int]:
        dt, off, n = self.arena[v]
        return self.names[dt], off, n

    def array(self, v) -> str:
        """The name of an array holding ``v`` (an argument, or a view of the arena)."""
        if v not in self.args and v not in self.views:
            buf, off, n = self.slot(v)
            shape = _shape_text(self.g.vars[v].shape)
            self.emit(f"v{v} = {buf}[{off}:{off + n}].reshape({shape})")
            self.views.add(v)
        return f"v{v}"

    def store(self, v, expr: str, shape=None) -> None:
        """The array ``expr`` (of ``v``'s shape, or of ``shape`` with ``v``'s elements in C
        order; any layout) copied into ``v``'s arena slot, by loops (Numba compiles slice
        assignment slowly)."""
        buf, off, _ = self.slot(v)
        shape = self.g.vars[v].shape if shape is None else shape
        self.emit(f"t{v} = {expr}")
        self.loops(shape, f"{buf}[{_flat_pos(off, shape)}] = t{v}[{_loop_index(shape)}]")

    def fill(self, v, value: str) -> None:
        buf, off, n = self.slot(v)
        self.emit(f"for i in range({n}):")
        self.emit(f"{buf}[{off} + i] = {value}", 2)

    def loops(self, shape, body: str) -> None:
        for d in range(len(shape)):
            self.emit(f"for i{d} in range({int(shape[d])}):", d + 1)
        self.emit(body, len(shape) + 1)


def _loop_index(shape) -> str:
    return _index_text([f"i{d}" for d in range(len(shape))])


def _flat_pos(off: int, shape) -> str:
    st = _strides(shape)
    return " + ".join([str(int(off))] + [f"i{d} * {st[d]}" for d in range(len(shape))])


def _broadcast_index(src_shape, shape) -> str:
    """Index of a source of ``src_shape`` broadcast (right-aligned) in a loop over ``shape``."""
    lead = len(shape) - len(src_shape)
    return _index_text(
        [f"i{lead + t}" if n == shape[lead + t] else "0" for t, n in enumerate(src_shape)]
    )


def _write_group(w: _Writer, group: list, shape: tuple) -> None:
    """One loop computing the elementwise ``group`` (results of one ``shape``): values read
    only inside it are scalars, the others are written to the arena."""
    g = w.g
    nd = len(shape)
    local: set[int] = set()
    reads = []  # per node, per input: (var, output dim of each input dim, None: broadcast)
    for node in group:
        row = []
        for v in node.inputs:
            if v in local:
                row.append((v, None))
                continue
            s = g.vars[v].shape
            if node.prim.name == "broadcast_axis":
                axis = node.params["axis"]
                dims = [t if t < axis else t + 1 for t in range(len(s))]
            else:
                dims = [nd - len(s) + t for t in range(len(s))]
            row.append((v, tuple(d if s[t] == shape[d] else None for t, d in enumerate(dims))))
        reads.append(row)
        local.update(node.outputs)
    flat = all(m is None or not m or m == tuple(range(nd)) for row in reads for _, m in row)
    size = int(np.prod(shape, dtype=np.int64))
    hoisted: set = set()
    for row in reads:  # operands: scalars read once, arguments viewed flat
        for v, m in row:
            if m is None or v in hoisted:
                continue
            if not m:
                if v in w.args:
                    w.emit(f"s{v} = v{v}.item()")
                else:
                    buf, off, _ = w.slot(v)
                    w.emit(f"s{v} = {buf}[{off}]")
                hoisted.add(v)
            elif flat and v in w.args:
                w.emit(f"f{v} = v{v}.reshape(({size},))")
                hoisted.add(v)
    depth = 1
    if flat:
        w.emit(f"for i in range({size}):")
        depth = 2
    else:
        for d in range(nd):
            w.emit(f"for i{d} in range({int(shape[d])}):", depth)
            depth += 1
    strides = _strides(shape)
    out_pos = "i" if flat else " + ".join(f"i{d} * {strides[d]}" for d in range(nd)) or "0"

    def read(v, m) -> str:
        if v in local or not m:
            return f"s{v}"
        if v in w.args:
            if flat:
                return f"f{v}[i]"
            return f"v{v}[{_index_text([f'i{d}' if d is not None else '0' for d in m])}]"
        buf, off, _ = w.slot(v)
        if flat:
            return f"{buf}[{off} + i]"
        st = _strides(g.vars[v].shape)
        terms = [f"i{d} * {st[t]}" for t, d in enumerate(m) if d is not None]
        return f"{buf}[{' + '.join([str(off)] + terms)}]"

    for node, row in zip(group, reads, strict=True):
        name = node.prim.name
        out = node.outputs[0]
        odt = w.dt(out)
        args = [read(v, m) for v, m in row]
        if name not in _NO_CAST_IN and g.vars[out].dtype.kind in "fc":
            args = [
                a if g.vars[v].dtype == g.vars[out].dtype else f"{odt}({a})"
                for a, (v, _) in zip(args, row, strict=True)
            ]
        template = _UFUNCS[name]
        if name == "power" and g.vars[node.inputs[1]].dtype.kind in "iu":
            args[1] = read(*row[1])  # an integer exponent: products, as NumPy (x**2 = x*x)
            template = "({0} ** {1})"
        expr = template.format(*args)
        same = all(g.vars[v].dtype == g.vars[out].dtype for v in node.inputs)
        if not (g.vars[out].dtype.kind == "f" and (same or name not in _NO_CAST_IN)) or (
            name == "power"
        ):
            expr = f"{odt}({expr})"  # Numba's scalar type may differ from NumPy's here
        w.emit(f"s{out} = {expr}", depth)
        if out in w.arena:
            buf, off, _ = w.slot(out)
            w.emit(f"{buf}[{off} + {out_pos}] = s{out}", depth)


def _write_op(w: _Writer, node) -> None:
    """An operation that is not elementwise; its result goes to the arena."""
    g = w.g
    name = node.prim.name
    p = node.params
    out = node.outputs[0]
    buf, off, n = w.slot(out)
    oshape = g.vars[out].shape
    if name in ("sum", "sum_axis"):
        x = node.inputs[0]
        s = g.vars[x].shape
        if name == "sum":
            axes, keepdims = p["axis"], p["keepdims"]
            axes = tuple(range(len(s))) if axes is None else tuple(a % len(s) for a in axes)
        else:
            axes, keepdims = (p["axis"] % len(s),), False
        ost = _strides(oshape)
        xa = w.array(x)
        w.fill(out, "0")
        kept = [d for d in range(len(s)) if d not in axes]
        if keepdims:
            terms = [f"i{d} * {ost[d]}" for d in kept]
        else:
            terms = [f"i{d} * {ost[j]}" for j, d in enumerate(kept)]
        pos = " + ".join([str(off)] + terms)
        w.loops(s, f"{buf}[{pos}] += {xa}[{_loop_index(s)}]")
        return
    if name in ("pad_axis", "scatter_zeros", "index_add", "index_set"):
        src = w.array(node.inputs[0])
        if name in ("pad_axis", "scatter_zeros"):
            w.fill(out, "0")
            val, vshape = src, g.vars[node.inputs[0]].shape
        else:
            w.loops(oshape, f"{buf}[{_flat_pos(off, oshape)}] = {src}[{_loop_index(oshape)}]")
            val, vshape = w.array(node.inputs[1]), g.vars[node.inputs[1]].shape
        if name == "pad_axis":
            m = g.vars[node.inputs[0]].shape[p["axis"]]
            b = int(p["before"])
            idx = ":, " * int(p["axis"]) + f"{b}:{b + int(m)}"
            region = g.vars[node.inputs[0]].shape
        else:
            idx = _basic_index(p["idx"], oshape)
            region = _region_shape(oshape, p["idx"])
        w.emit(f"o{out} = {buf}[{off}:{off + n}].reshape({_shape_text(oshape)})[{idx}]")
        op = "+=" if name == "index_add" else "="
        w.loops(
            region,
            f"o{out}[{_loop_index(region)}] {op} {val}[{_broadcast_index(vshape, region)}]",
        )
        return
    ins = [w.array(v) for v in node.inputs]
    if name == "reshape":
        expr = ins[0]
    elif name == "transpose":
        expr = f"{ins[0]}.transpose({_shape_text(tuple(int(a) for a in p['axes']))})"
    elif name == "getitem":
        expr = f"{ins[0]}[{_basic_index(p['idx'], g.vars[node.inputs[0]].shape)}]"
    elif name == "slice_axis":
        expr = f"{ins[0]}[{':, ' * int(p['axis'])}{int(p['start'])}:{int(p['stop'])}]"
    elif name == "concatenate":
        expr = f"np.concatenate(({', '.join(ins)},), axis={int(p['axis'])})"
    elif name == "matmul":
        # BLAS wants contiguous operands (a transposed view would take Numba's slow loop)
        expr = f"np.dot(np.ascontiguousarray({ins[0]}), np.ascontiguousarray({ins[1]}))"
    else:  # pragma: no cover - why_not() admitted it
        raise AssertionError(name)
    w.store(out, expr, g.vars[node.inputs[0]].shape if name == "reshape" else None)


def _region_source(graph, region: Region, arena, arena_names) -> str:
    """The source of one region: ``def region_k(arenas..., args...)``."""
    w = _Writer(graph, arena, arena_names, region.args)
    params = list(arena_names.values()) + [f"v{v}" for v in region.args]
    for kind, what, shape in region.items:
        if kind == "ew":
            _write_group(w, what, shape)
        else:
            _write_op(w, what)
    w.emit("return 0")
    header = f"def region_{region.index}({', '.join(params)}):"
    return header + "\n" + "\n".join(w.lines) + "\n"


# --- the program ---------------------------------------------------------------------------------


class Fallback(NamedTuple):
    """An operation run by the graph executor instead of compiled code, and why."""

    position: int  # in ``graph.nodes``
    primitive: str
    reason: str


class Explanation(NamedTuple):
    """What the numba backend made of a graph (see :meth:`Jitted.explain`)."""

    backend: str
    operations: int
    compiled: int
    regions: int
    fallbacks: tuple[Fallback, ...]
    compile_seconds: float
    source_file: str | None

    def __str__(self) -> str:
        if self.backend != "numba":
            return (
                f"backend {self.backend}: {self.operations} operation(s) replayed by the graph "
                "executor (no compiled code)"
            )
        lines = [
            f"backend {self.backend}: {self.compiled} of {self.operations} operation(s) "
            f"compiled in {self.regions} region(s), {self.compile_seconds:.2f} s to compile"
        ]
        if self.fallbacks:
            lines.append(f"{len(self.fallbacks)} operation(s) run by the graph executor:")
            for f in self.fallbacks:
                lines.append(f"  #{f.position} {f.primitive}: {f.reason}")
        else:
            lines.append("no operation falls back")
        return "\n".join(lines)


class NumbaProgram:
    """A graph compiled by regions (see the module docstring); ``call_flat`` runs it."""

    def __init__(self, graph) -> None:
        numba = import_numba()
        start = time.perf_counter()
        self.graph = graph
        nodes = graph.nodes
        reasons = {k: why_not(graph, n) for k, n in enumerate(nodes)}
        # Regions: runs of compiled nodes, at most REGION_OPS long.
        steps: list = []  # ("region", Region) or ("node", position)
        current: list[int] = []
        for k in range(len(nodes)):
            if reasons[k] is None:
                current.append(k)
                if len(current) >= REGION_OPS:
                    steps.append(current)
                    current = []
            else:
                if current:
                    steps.append(current)
                    current = []
                steps.append(k)
        if current:
            steps.append(current)
        # Fused loops per region; the loop (item) making each value.
        items_of = {}
        item_of: dict[int, int] = {}
        for s, step in enumerate(steps):
            if isinstance(step, list):
                items_of[s] = group_items(graph, step)
                for item in items_of[s]:
                    for node in item[1] if item[0] == "ew" else [item[1]]:
                        for v in node.outputs:
                            item_of[v] = id(item)
        # Arena: every value a region makes that is read outside its own fused loop, or
        # returned (the others are scalars of their loop).
        readers: dict[int, set] = {}
        for s, step in enumerate(steps):
            if isinstance(step, list):
                for item in items_of[s]:
                    for node in item[1] if item[0] == "ew" else [item[1]]:
                        for v in node.inputs:
                            readers.setdefault(v, set()).add(id(item))
            else:
                for v in nodes[step].inputs:
                    readers.setdefault(v, set()).add(None)
        outputs = set(graph.outputs)
        self.arena: dict[int, tuple] = {}
        sizes: dict = {}
        for v, item in item_of.items():
            if v in outputs or any(r != item for r in readers.get(v, ())):
                info = graph.vars[v]
                n = int(np.prod(info.shape, dtype=np.int64))
                self.arena[v] = (info.dtype, sizes.get(info.dtype, 0), n)
                sizes[info.dtype] = sizes.get(info.dtype, 0) + n
        self.arena_dtypes = list(sizes)
        self.arena_sizes = [sizes[k] for k in self.arena_dtypes]
        arena_names = {k: f"A{i}" for i, k in enumerate(self.arena_dtypes)}
        sources = []
        self.plan: list = []
        fallbacks = []
        for s, step in enumerate(steps):
            if isinstance(step, list):
                made = {v for k in step for v in nodes[k].outputs}
                args = []
                for k in step:
                    for v in nodes[k].inputs:
                        if v not in made and v not in self.arena and v not in args:
                            args.append(v)
                region = Region(len(sources), step, args, items_of[s])
                sources.append(_region_source(graph, region, self.arena, arena_names))
                self.plan.append(("region", region))
            else:
                fallbacks.append(Fallback(step, nodes[step].prim.name, reasons[step]))
                self.plan.append(("node", step))
        self.fallbacks = tuple(fallbacks)
        self.n_regions = len(sources)
        self.compiled_ops = sum(len(r.nodes) for kind, r in self.plan if kind == "region")
        self.source_file = None
        self._functions: list = []
        if sources:
            text = "import numpy as np\nimport numba\n\n" + "\n\n".join(
                _DECORATOR + src for src in sources
            )
            self._functions, self.source_file = _load(text, numba)
        self._consts = {v: np.ascontiguousarray(c) for v, c in graph.consts.items()}
        self._slot = {v: k for k, v in enumerate(graph.placeholders)}
        self.compile_seconds = time.perf_counter() - start  # generation; compiled at 1st call
        self._compiled = False

    def explain(self) -> Explanation:
        return Explanation(
            "numba",
            len(self.graph.nodes),
            self.compiled_ops,
            self.n_regions,
            self.fallbacks,
            self.compile_seconds,
            self.source_file,
        )

    def call_flat(self, leaves: list) -> list:
        """Run on the placeholder values in call order; the flat list of outputs."""
        if not self._compiled:  # Numba compiles (or loads from disk) at the first call
            start = time.perf_counter()
            out = self._run(leaves, first=True)
            self.compile_seconds += time.perf_counter() - start
            self._compiled = True
            return out
        return self._run(leaves)

    def _run(self, leaves: list, first: bool = False) -> list:
        g = self.graph
        dtypes = self.arena_dtypes
        arenas = [np.empty(n, dt) for dt, n in zip(dtypes, self.arena_sizes, strict=True)]
        env: dict = {}
        slot = self._slot
        consts = self._consts
        arena = self.arena

        def value(v):
            x = env.get(v)
            if x is not None:
                return x
            k = slot.get(v)
            if k is not None:
                x = leaves[k]
                if x.__class__ is not np.ndarray or not x.flags.c_contiguous:
                    x = np.ascontiguousarray(x, dtype=g.vars[v].dtype)
            elif v in consts:
                x = consts[v]
            else:
                dt, off, n = arena[v]
                x = arenas[dtypes.index(dt)][off : off + n].reshape(g.vars[v].shape)
            env[v] = x
            return x

        functions = self._functions
        plan = self.plan
        k = 0
        while k < len(plan):
            kind, step = plan[k]
            if kind == "region":
                args = [value(v) for v in step.args]
                if first:
                    try:
                        functions[step.index](*arenas, *args)
                    except Exception as e:  # noqa: BLE001 - Numba could not compile it
                        self._demote(k, e)
                        continue  # the same position now holds the region's operations
                else:
                    functions[step.index](*arenas, *args)
            else:
                node = g.nodes[step]
                res = node.prim.impl(*[value(v) for v in node.inputs], **node.params)
                res = res if node.prim.multiple_results else (res,)
                for v, r in zip(node.outputs, res, strict=True):
                    r = np.asarray(r)
                    env[v] = r
                    if v in arena:  # a later region reads it from the arena
                        dt, off, n = arena[v]
                        arenas[dtypes.index(dt)][off : off + n] = r.reshape(-1)
            k += 1
        return [value(v) for v in g.outputs]

    def _demote(self, k: int, error: Exception) -> None:
        """Run the region at plan position ``k`` through the executor from now on."""
        region = self.plan[k][1]
        first = str(error).strip().splitlines()
        why = f"Numba could not compile its region ({type(error).__name__}: "
        why += (first[0][:200] if first else "") + ")"
        self.plan[k : k + 1] = [("node", p) for p in region.nodes]
        self.fallbacks = tuple(
            sorted(
                self.fallbacks
                + tuple(Fallback(p, self.graph.nodes[p].prim.name, why) for p in region.nodes)
            )
        )
        self.compiled_ops -= len(region.nodes)
        self.n_regions -= 1


def _load(text: str, numba):
    """Write ``text`` to the cache directory under its hash (once) and import it."""
    digest = hashlib.sha256(
        (text + numba.__version__ + np.__version__ + sys.version).encode()
    ).hexdigest()[:24]
    folder = cache_dir()
    name = f"diffsys_numba_{digest}"
    path = folder / f"{name}.py"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
    except OSError:  # a read-only home: compile without the disk cache
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="diffsys_numba_"))
        path = folder / f"{name}.py"
        path.write_text(text)
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    n = text.count("\ndef region_")
    return [getattr(module, f"region_{k}") for k in range(n)], str(path)
