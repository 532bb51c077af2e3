"""The graph IR: variables, nodes, argument structure, and the :class:`Graph` function."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..core.pytree import PyTreeDef, same_structure, tree_child_names, tree_flatten, tree_unflatten
from ..core.tracer import Tracer
from . import _exec


class GraphCallError(TypeError):
    """A graph was called with arguments that do not match its traced signature."""


class GraphvizNotFoundError(RuntimeError):
    """``Graph.render`` needs Graphviz's ``dot`` program, which is not installed."""


class VarInfo(NamedTuple):
    """A variable: ``kind`` is ``"input"``, ``"param"``, ``"const"`` or ``"op"``."""

    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype
    name: str | None = None

    def describe(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    @property
    def nbytes(self) -> int:
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return int(n)


class Node:
    """One primitive application: ``outputs = prim(*inputs, **params)`` (variable numbers).

    ``views[j]`` is the input index whose memory output ``j`` shared while tracing (a view,
    e.g. ``reshape``), or ``None``; memory plans use it.
    """

    __slots__ = ("prim", "inputs", "params", "outputs", "views")

    def __init__(self, prim, inputs: tuple, params: dict, outputs: tuple, views: tuple) -> None:
        self.prim = prim
        self.inputs = inputs
        self.params = params
        self.outputs = outputs
        self.views = views

    def __repr__(self) -> str:
        return f"Node({self.prim.name}, in={self.inputs}, out={self.outputs})"


class ArgSpec(NamedTuple):
    """One positional argument: its name, structure, and per leaf ``("var", n)`` for a
    placeholder or ``("static", value)`` for a value baked into the graph."""

    name: str
    treedef: PyTreeDef | None  # None for loaded graphs (their structure is ``spec``)
    spec: tuple
    entries: tuple


# --- structures that survive serialization ---


def spec_of(x) -> tuple:
    """The structure of pytree ``x`` in terms the loader can rebuild without its classes.

    ``("leaf",)``, ``("none",)``, ``("tuple", children)``, ``("list", children)``,
    ``("dict", keys, children)`` and ``("node", type name, child names, children)`` for every
    other container (modules, dataclasses, namedtuples...).
    """
    if x is None:
        return ("none",)
    children, treedef = tree_flatten(x, is_leaf=lambda y: y is not x)
    if treedef.node_type is None:
        return ("leaf",)
    kids = tuple(spec_of(c) for c in children)
    if type(x) is tuple:
        return ("tuple", kids)
    if type(x) is list:
        return ("list", kids)
    names = _child_names(x, len(children))
    if type(x) is dict and all(isinstance(k, str) for k in x):
        return ("dict", tuple(names), kids)
    return ("node", type(x).__name__, tuple(names), kids)


def _child_names(x, n: int) -> list[str]:
    return tree_child_names(x, n)


def flatten_spec(spec: tuple, x, where: str, out: list, templates: dict | None = None) -> None:
    """Append the leaves of ``x`` to ``out``, checking that ``x`` has structure ``spec``.

    ``templates`` maps the ``node`` structures wanted to ``None``; the first object of each
    met in ``x`` gives its pytree structure there (see :func:`unflatten_spec`)."""
    t = spec[0]
    if t == "leaf":
        out.append(x)
        return
    if t == "none":
        if x is not None:
            raise GraphCallError(f"{where}: expected None, got {type(x).__name__}")
        return
    if t in ("tuple", "list"):
        kids = spec[1]
        if not isinstance(x, tuple | list) or len(x) != len(kids):
            raise GraphCallError(
                f"{where}: expected a {t} of {len(kids)} items, got {_describe_obj(x)}"
            )
        for i, (c, s) in enumerate(zip(x, kids, strict=True)):
            flatten_spec(s, c, f"{where}[{i}]", out, templates)
        return
    if t == "dict":
        keys, kids = spec[1], spec[2]
    else:
        keys, kids = spec[2], spec[3]
    if isinstance(x, dict):
        if set(x) != set(keys):
            raise GraphCallError(f"{where}: expected a dict with keys {list(keys)}, got {list(x)}")
        children = [x[k] for k in keys]
    elif t == "node":
        got, treedef = tree_flatten(x, is_leaf=lambda y: y is not x)
        names = _child_names(x, len(got)) if treedef.node_type is not None else []
        if treedef.node_type is None or list(names) != list(keys):
            raise GraphCallError(
                f"{where}: expected a {spec[1]} (or a dict) with fields {list(keys)}, got "
                f"{_describe_obj(x)}"
            )
        children = got
        if templates is not None and spec in templates and templates[spec] is None:
            templates[spec] = tree_flatten(x)[1]
    else:
        raise GraphCallError(f"{where}: expected a dict with keys {list(keys)}, got {type(x)}")
    for k, c, s in zip(keys, children, kids, strict=True):
        flatten_spec(s, c, f"{where}.{k}", out, templates)


def unflatten_spec(spec: tuple, it, templates: dict | None = None) -> Any:
    """Rebuild a value of structure ``spec`` from leaves. A ``node`` (a module, dataclass,
    namedtuple...) is rebuilt with the pytree structure ``templates`` holds for it (that of
    an argument with the same structure: gradients of a module are that module), else as a
    dict of its children."""
    t = spec[0]
    if t == "leaf":
        return next(it)
    if t == "none":
        return None
    if t == "tuple":
        return tuple(unflatten_spec(s, it, templates) for s in spec[1])
    if t == "list":
        return [unflatten_spec(s, it, templates) for s in spec[1]]
    if t == "node" and templates:
        treedef = templates.get(spec)
        if treedef is not None:
            return tree_unflatten(treedef, [next(it) for _ in range(treedef.num_leaves)])
    keys, kids = (spec[1], spec[2]) if t == "dict" else (spec[2], spec[3])
    return {k: unflatten_spec(s, it, templates) for k, s in zip(keys, kids, strict=True)}


def node_specs(spec: tuple) -> frozenset:
    """The ``node`` structures within ``spec``."""
    found: set = set()

    def walk(s):
        t = s[0]
        if t in ("tuple", "list"):
            for c in s[1]:
                walk(c)
        elif t == "dict":
            for c in s[2]:
                walk(c)
        elif t == "node":
            found.add(s)
            for c in s[3]:
                walk(c)

    walk(spec)
    return frozenset(found)


def _describe_obj(x) -> str:
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)}"
    if isinstance(x, tuple | list):
        return f"a {type(x).__name__} of {len(x)} items"
    return type(x).__name__


# --- the graph ---


class Graph:
    """A traced function: placeholders, parameters, constants and operations in topological
    order, with shapes and dtypes. Made by :func:`diffsys.trace` or :func:`diffsys.load_graph`.

    A graph is a function with the signature of the function it was traced from:
    ``graph(*args)`` replays it, and every transform (``grad``, ``jvp``, ``vjp``, ``vmap``,
    ``hessian``...) applies to it. Graphs are immutable: passes return new graphs.
    """

    def __init__(
        self,
        *,
        name: str,
        vars: list[VarInfo],
        nodes: list[Node],
        consts: dict[int, Any],
        args: list[ArgSpec],
        outputs: tuple[int, ...],
        out_treedef: PyTreeDef | None,
        out_spec: tuple,
        examples: dict[int, Any] | None = None,
        specializations: list | None = None,
    ) -> None:
        # Renumber: placeholders, then the constants in use, then operation outputs in order.
        placeholders = [v for a in args for kind, v in a.entries if kind == "var"]
        used: set[int] = set(outputs)
        for node in nodes:
            used.update(node.inputs)
        order = list(placeholders)
        is_placeholder = set(placeholders)
        order += [v for v in consts if v in used and v not in is_placeholder]
        for node in nodes:
            order.extend(node.outputs)
        remap = {old: new for new, old in enumerate(order)}
        if len(remap) != len(order):
            raise ValueError("internal error: a variable is defined twice in the graph")
        self.name = name
        self.vars: tuple[VarInfo, ...] = tuple(vars[old] for old in order)
        self.nodes: tuple[Node, ...] = tuple(
            Node(
                n.prim,
                tuple(remap[v] for v in n.inputs),
                n.params,
                tuple(remap[v] for v in n.outputs),
                n.views,
            )
            for n in nodes
        )
        self.consts: dict[int, Any] = {
            remap[v]: value for v, value in consts.items() if v in remap and v in used
        }
        self.args: tuple[ArgSpec, ...] = tuple(
            a._replace(entries=tuple((k, remap[x]) if k == "var" else (k, x) for k, x in a.entries))
            for a in args
        )
        self.outputs: tuple[int, ...] = tuple(remap[v] for v in outputs)
        self.out_treedef = out_treedef
        self.out_spec = out_spec
        self.examples: dict[int, Any] = {
            remap[v]: x for v, x in (examples or {}).items() if v in remap
        }
        self.specializations = [(remap[v], x) for v, x in (specializations or []) if v in remap]
        self.placeholders: tuple[int, ...] = tuple(remap[v] for v in placeholders)
        self._checks = [
            (v, self.vars[v].shape, self.vars[v].dtype, self.vars[v].name)
            for v in self.placeholders
        ]
        # Arguments that are one array placeholder: checked without flattening.
        self._simple = []
        for a in self.args:
            simple = None
            if a.treedef is not None and a.treedef.node_type is None and a.entries[0][0] == "var":
                info = self.vars[a.entries[0][1]]
                simple = (info.shape, info.dtype, info.name)
            self._simple.append(simple)
        self._unflatten = self._make_unflatten()
        # A loaded graph rebuilds modules (and other classes) among its outputs from the
        # arguments of the same structure.
        self._out_nodes = node_specs(out_spec) if out_treedef is None else frozenset()
        self._program: _exec.Program | None = None
        self._dispatch: _exec.Program | None = None
        self._fast = None

    # --- inspection ---------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The parameters' values recorded at trace time (or loaded), by dotted name."""
        return {
            self.vars[v].name: self.examples[v]
            for v in self.placeholders
            if self.vars[v].kind == "param" and v in self.examples
        }

    @property
    def inputs(self) -> dict[str, VarInfo]:
        """Every placeholder (inputs and parameters) by name, in call order."""
        return {self.vars[v].name: self.vars[v] for v in self.placeholders}

    def __len__(self) -> int:
        return len(self.nodes)

    def count(self, primitive: str | None = None) -> int:
        """The number of operations (of one primitive, by name)."""
        if primitive is None:
            return len(self.nodes)
        return sum(1 for n in self.nodes if n.prim.name == primitive)

    def __repr__(self) -> str:
        return (
            f"<Graph {self.name}: {len(self.placeholders)} placeholder(s), "
            f"{len(self.consts)} constant(s), {len(self.nodes)} operation(s)>"
        )

    def __str__(self) -> str:
        from ._format import listing

        return listing(self)

    def to_dot(self) -> str:
        """The graph in Graphviz's DOT language."""
        from ._format import to_dot

        return to_dot(self)

    def render(self, path: str | os.PathLike, format: str | None = None) -> Path:  # noqa: A002
        """Write the graph as an image (``svg``, ``png`` or ``pdf``, by default from the
        file's suffix) with Graphviz's ``dot`` program."""
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".") or "svg").lower()
        if fmt not in ("svg", "png", "pdf"):
            raise ValueError(f"Graph.render: format must be svg, png or pdf, got {fmt!r}")
        dot = shutil.which("dot")
        if dot is None:
            raise GraphvizNotFoundError(
                "Graph.render needs Graphviz's `dot` program, which was not found on PATH. "
                "Install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
                "install graphviz; conda: conda install graphviz), or write graph.to_dot() to "
                "a .dot file and render it elsewhere"
            )
        proc = subprocess.run(
            [dot, f"-T{fmt}"], input=self.to_dot().encode(), capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"Graph.render: dot failed ({proc.returncode}): {proc.stderr.decode()[:500]}"
            )
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(proc.stdout)
        os.replace(tmp, path)
        return path

    # --- running ---------------------------------------------------------------------------------
    def __call__(self, *args):
        if len(args) != len(self.args):
            raise GraphCallError(
                f"graph {self.name!r} takes {len(self.args)} positional argument(s) "
                f"({', '.join(a.name for a in self.args)}), got {len(args)}"
            )
        leaves: list = []
        traced = False
        templates = dict.fromkeys(self._out_nodes) if self._out_nodes else None
        for arg, spec, simple in zip(args, self.args, self._simple, strict=True):
            if simple is not None and arg.__class__ is np.ndarray:  # the common case
                if arg.shape != simple[0] or arg.dtype != simple[1]:
                    _mismatch(self, simple[2], arg, simple[0], simple[1])
                leaves.append(arg)
                continue
            traced = self._flatten_arg(arg, spec, leaves, templates) or traced
        if traced:
            out = _exec.run(self._get_program(True), leaves)
        else:
            fast = self._fast
            if fast is None:
                fast = self._fast = self._make_fast()
            out = fast(leaves)
        if templates:
            return unflatten_spec(self.out_spec, iter(out), templates)
        return self._unflatten(out)

    def call_flat(self, leaves: list) -> list:
        """Run on the placeholder values in call order (``graph.inputs``), without checking
        them; the flat list of outputs. For loops calling one graph many times on values
        whose shapes and dtypes are known to match (e.g. a scan's step). Static leaves
        (Python ints, bools, ``None``...) are not placeholders: leave them out."""
        if len(leaves) != len(self.placeholders):
            raise GraphCallError(
                f"graph {self.name!r}: call_flat takes the {len(self.placeholders)} "
                f"placeholder value(s) ({', '.join(self.inputs)}), got {len(leaves)}"
            )
        if any(isinstance(x, Tracer) for x in leaves):
            return _exec.run(self._get_program(True), list(leaves))
        fast = self._fast
        if fast is None:
            fast = self._fast = self._make_fast()
        return fast(list(leaves))

    def _flatten_arg(self, arg, spec: ArgSpec, leaves: list, templates=None) -> bool:
        """Append the checked placeholder values of ``arg``; whether one is a tracer."""
        traced = False
        if spec.treedef is not None:
            flat, treedef = tree_flatten(arg)
            if not same_structure(treedef, spec.treedef):
                raise GraphCallError(
                    f"graph {self.name!r}: argument {spec.name!r} has structure {treedef}, "
                    f"but the graph was traced with {spec.treedef}"
                )
        else:
            flat = []
            where = f"graph {self.name!r}: argument {spec.name!r}"
            flatten_spec(spec.spec, arg, where, flat, templates)
        checks = self._checks
        for leaf, (kind, x) in zip(flat, spec.entries, strict=True):
            if kind == "var":
                _, shape, dtype, name = checks[len(leaves)]
                if leaf.__class__ is np.ndarray:
                    if leaf.shape != shape or leaf.dtype != dtype:
                        _mismatch(self, name, leaf, shape, dtype)
                elif isinstance(leaf, Tracer):
                    traced = True
                    if leaf.shape != shape or leaf.dtype != dtype:
                        _mismatch(self, name, leaf, shape, dtype)
                else:
                    leaf = _coerce(self, name, leaf, shape, dtype)
                leaves.append(leaf)
            elif not _same_static(leaf, x):
                raise GraphCallError(
                    f"graph {self.name!r}: in argument {spec.name!r}, a static leaf (a "
                    f"value baked into the graph when it was traced) was {x!r}, got "
                    f"{leaf!r}; trace the function again for this value"
                )
        return traced

    def _make_unflatten(self):
        treedef = self.out_treedef
        if treedef is None:
            spec = self.out_spec
            return lambda out: unflatten_spec(spec, iter(out))
        if treedef.node_type is None:
            return lambda out: out[0]
        if treedef.node_type is tuple and all(c.node_type is None for c in treedef.children):
            return tuple
        return lambda out: tree_unflatten(treedef, out)

    def _get_program(self, traced: bool) -> _exec.Program:
        if traced:
            program = self._dispatch
            if program is None:
                program = self._dispatch = _exec.compile_program(self, dispatch=True)
        else:
            program = self._program
            if program is None:
                program = self._program = _exec.compile_program(self)
        return program

    def _make_fast(self):
        """The executor on plain arrays: straight-line code for programs of moderate size,
        else the instruction loop."""
        program = self._get_program(False)
        template = program.template
        if len(program.code) <= _exec.STRAIGHT_LINE_LIMIT:
            replay = _exec.straight_line(program)
            self._replay_source = replay.source
            return lambda leaves: replay(leaves + template)
        return lambda leaves: _exec.run(program, leaves)

    def program(self) -> _exec.Program:
        """The compiled instruction list used on plain arrays (for inspection)."""
        if self._program is None:
            self._program = _exec.compile_program(self)
        return self._program

    # --- transformations of the graph -------------------------------------------------------------
    def _rebuilt(self, **changes) -> Graph:
        fields = dict(
            name=self.name,
            vars=list(self.vars),
            nodes=list(self.nodes),
            consts=dict(self.consts),
            args=list(self.args),
            outputs=self.outputs,
            out_treedef=self.out_treedef,
            out_spec=self.out_spec,
            examples=dict(self.examples),
            specializations=list(self.specializations),
        )
        fields.update(changes)
        return Graph(**fields)

    def dce(self) -> Graph:
        """Dead-code elimination: drop operations whose results no output needs."""
        from ._passes import dce

        return dce(self)

    def cse(self) -> Graph:
        """Common-subexpression elimination: one operation for each (primitive, inputs,
        parameters) triple; impure primitives are never merged."""
        from ._passes import cse

        return cse(self)

    def fold_constants(self) -> Graph:
        """Constant folding: compute operations whose inputs are all constants once."""
        from ._passes import fold_constants

        return fold_constants(self)

    def simplify(self) -> Graph:
        """Algebraic simplification: fewer operations, the same values and derivatives
        (a ``broadcast_to`` that arithmetic would do anyway, a scatter into zeros that is
        added to another array); see :mod:`diffsys.graph._simplify`."""
        from ._simplify import simplify

        return simplify(self)

    def optimize(self) -> Graph:
        """Constant folding, then algebraic simplification, CSE and DCE."""
        return self.fold_constants().simplify().cse().dce()

    def freeze(self, argnums: int | Sequence[int] | dict[int, Any]) -> Graph:
        """A graph without the arguments ``argnums``: their placeholders become constants
        holding the example values recorded at trace time (or the values given as a dict
        ``{argnum: value}``). Follow with :meth:`fold_constants` to precompute what depends
        on them only (e.g. a frozen model's weight transforms)."""
        from ._passes import freeze

        return freeze(self, argnums)

    def memory_plan(self):
        """Predicted peak bytes of a replay, forward and forward+backward (see
        :class:`~diffsys.graph.MemoryPlan`)."""
        from ._memory import memory_plan

        return memory_plan(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write the graph to directory ``path``: structure as JSON, constants and parameters
        as safetensors (no pickle). Read it back with :func:`diffsys.load_graph`."""
        from ._serialize import save

        save(self, path)


def _same_static(a, b) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects whose == is not a bool differ
        return False


def _mismatch(graph, name, leaf, shape, dtype):
    raise GraphCallError(
        f"graph {graph.name!r}: input {name!r} was traced with shape {shape} and dtype "
        f"{dtype}, got shape {tuple(np.shape(leaf))} and dtype {getattr(leaf, 'dtype', None)}; "
        "a graph is specialised to its traced shapes and dtypes: trace it again for these"
    )


def _coerce(graph, name, leaf, shape, dtype):
    if isinstance(leaf, np.generic):
        if leaf.shape != shape or leaf.dtype != dtype:
            _mismatch(graph, name, leaf, shape, dtype)
        return leaf
    if isinstance(leaf, bool) or not isinstance(leaf, int | float | complex):
        raise GraphCallError(
            f"graph {graph.name!r}: input {name!r} must be an array of shape {shape} and dtype "
            f"{dtype}, got {type(leaf).__name__}"
        )
    kind = np.asarray(leaf).dtype.kind
    ok = shape == () and (
        dtype.kind == "c"
        or (dtype.kind == "f" and kind in "if")
        or (dtype.kind in "iu" and kind == "i")
    )
    if not ok:
        _mismatch(graph, name, np.asarray(leaf), shape, dtype)
    return np.asarray(leaf, dtype=dtype)
