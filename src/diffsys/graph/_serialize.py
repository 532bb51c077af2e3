"""Saving and loading graphs: structure as JSON, arrays as safetensors; no pickle, no eval.

A saved graph is a directory holding ``graph.json`` and ``tensors-<hash>.safetensors``. The
JSON names each operation's primitive, which the loader looks up by name in the primitive
registry (never importing or calling anything the file names), and writes parameters in a
closed vocabulary: ``None``, bools, ints, floats, strings, lists, and tagged objects
(``$tuple``, ``$dict``, ``$float`` for non-finite floats, ``$complex``, ``$scalar``,
``$dtype``, ``$slice``, ``$ellipsis``, ``$array`` for small arrays, ``$tensor`` for large ones,
``$slot`` for diffsys's index slots). Anything else is refused when saving. Both files are
written atomically (temporary file, fsync, rename), the JSON last, with the SHA-256 of the
tensor file, so a crash leaves the previous save readable.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.primitive import registry
from ..core.tracer import Tracer
from ._graph import ArgSpec, Graph, Node, VarInfo

FORMAT = "diffsys-graph"
VERSION = 1
INDEX = "graph.json"
_KINDS = ("input", "param", "const", "op")
_DTYPE_KINDS = "biufc"
_SMALL = 1024  # arrays in parameters up to this many elements are written inline
# diffsys's own modules that define primitives, imported (a fixed list, never a name read
# from a file) when a graph names a primitive not registered yet.
_PRIMITIVE_MODULES = (
    "diffsys.numpy",
    "diffsys.numpy.linalg",
    "diffsys.numpy.fft",
    "diffsys.scipy",
    "diffsys.scipy.special",
    "diffsys.scipy.linalg",
    "diffsys.scipy.signal",
    "diffsys.scipy.stats",
    "diffsys.scipy.integrate",
    "diffsys.nn",
    "diffsys.relax",
)
# Registered primitives whose behaviour lives in a Python closure (custom rules, checkpoint).
_CLOSURE_PREFIXES = ("custom_vjp:", "custom_jvp:")
_CLOSURE_NAMES = ("checkpoint",)


class GraphSaveError(ValueError):
    """The graph holds something the file format cannot represent (see the message)."""


class GraphLoadError(ValueError):
    """A saved graph is missing, malformed, of another version, or inconsistent."""


def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "saving and loading graphs needs the optional 'safetensors' package: "
            "pip install safetensors (or pip install 'diffsys[nn]')"
        ) from exc
    return st


# --- the value vocabulary ---


def _dtype_name(dt: np.dtype, where: str, err=GraphSaveError) -> str:
    dt = np.dtype(dt)
    if dt.kind not in _DTYPE_KINDS or dt.byteorder == ">":
        raise err(f"{where}: unsupported dtype {dt} (only bool, int, uint, float, complex)")
    return dt.name


def _parse_dtype(name, where: str) -> np.dtype:
    if not isinstance(name, str) or not name.isalnum():
        raise GraphLoadError(f"{where}: malformed dtype {name!r}")
    try:
        dt = np.dtype(name)
    except TypeError as exc:
        raise GraphLoadError(f"{where}: unknown dtype {name!r}") from exc
    if dt.kind not in _DTYPE_KINDS:
        raise GraphLoadError(f"{where}: dtype {name!r} is not allowed")
    return dt


class _Encoder:
    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def array(self, key: str, value: np.ndarray, where: str) -> dict:
        arr = np.array(value, order="C")
        dtype = _dtype_name(arr.dtype, where)
        if arr.dtype.kind == "c":  # safetensors has no complex128: store (real, imag) pairs
            arr = np.ascontiguousarray(arr.view(arr.real.dtype).reshape(arr.shape + (2,)))
        self.tensors[key] = arr
        return {"$tensor": key, "dtype": dtype, "shape": list(value.shape)}

    def value(self, x, where: str, key: str) -> Any:
        if x is None or isinstance(x, bool | str):
            return x
        if isinstance(x, int):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {"$float": repr(x)}
        if isinstance(x, complex):
            return {"$complex": [self.value(x.real, where, key), self.value(x.imag, where, key)]}
        if x is Ellipsis:
            return {"$ellipsis": True}
        if isinstance(x, np.generic):
            dtype = _dtype_name(x.dtype, where)
            return {"$scalar": dtype, "value": self.value(x.item(), where, key)}
        if isinstance(x, np.dtype):
            return {"$dtype": _dtype_name(x, where)}
        if isinstance(x, type) and issubclass(x, np.generic):
            return {"$dtype": _dtype_name(np.dtype(x), where), "type": True}
        if isinstance(x, slice):
            return {"$slice": [self.value(p, where, key) for p in (x.start, x.stop, x.step)]}
        if isinstance(x, np.ndarray):
            if x.size <= _SMALL:
                dtype = _dtype_name(x.dtype, where)
                flat = [self.value(v, where, key) for v in x.ravel().tolist()]
                return {"$array": dtype, "shape": list(x.shape), "data": flat}
            return self.array(key, x, where)
        if isinstance(x, list):
            return [self.value(v, f"{where}[{i}]", f"{key}.{i}") for i, v in enumerate(x)]
        if isinstance(x, tuple):
            return {
                "$tuple": [self.value(v, f"{where}[{i}]", f"{key}.{i}") for i, v in enumerate(x)]
            }
        if isinstance(x, dict) and all(isinstance(k, str) for k in x):
            return {"$dict": {k: self.value(v, f"{where}.{k}", f"{key}.{k}") for k, v in x.items()}}
        if type(x).__name__ == "Slot" and type(x).__module__ == "diffsys.numpy._indexing":
            return {"$slot": [int(x.k), [int(d) for d in x.shape]]}
        if isinstance(x, Tracer):
            raise GraphSaveError(f"{where}: a traced value cannot be saved")
        raise GraphSaveError(
            f"{where}: a {type(x).__module__}.{type(x).__qualname__} cannot be saved; graph "
            "files hold only None, bools, numbers, strings, lists, tuples, dicts with string "
            "keys, dtypes, slices, Ellipsis and arrays (no functions or other objects)"
        )


def _decode(obj, where: str, tensors: dict) -> Any:
    if obj is None or isinstance(obj, bool | str | int | float):
        return obj
    if isinstance(obj, list):
        return [_decode(v, f"{where}[{i}]", tensors) for i, v in enumerate(obj)]
    if not isinstance(obj, dict):
        raise GraphLoadError(f"{where}: malformed value {obj!r}")
    tags = [k for k in obj if k.startswith("$")]
    if len(tags) != 1:
        raise GraphLoadError(f"{where}: malformed value (expected one $tag): {_clip(obj)}")
    tag = tags[0]
    allowed = {
        "$float": set(),
        "$complex": set(),
        "$ellipsis": set(),
        "$scalar": {"value"},
        "$dtype": {"type"},
        "$slice": set(),
        "$array": {"shape", "data"},
        "$tensor": {"dtype", "shape"},
        "$tuple": set(),
        "$dict": set(),
        "$slot": set(),
    }
    if tag not in allowed or set(obj) - {tag} - allowed[tag]:
        raise GraphLoadError(f"{where}: unknown or malformed tagged value {_clip(obj)}")
    body = obj[tag]
    try:
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise GraphLoadError(f"{where}: bad $float {body!r}")
            return float(body)
        if tag == "$complex":
            re, im = (_decode(v, where, tensors) for v in body)
            return complex(_num(re, where), _num(im, where))
        if tag == "$ellipsis":
            return Ellipsis
        if tag == "$scalar":
            dt = _parse_dtype(body, where)
            return dt.type(_num(_decode(obj["value"], where, tensors), where))
        if tag == "$dtype":
            dt = _parse_dtype(body, where)
            return dt.type if obj.get("type") else dt
        if tag == "$slice":
            parts = [_decode(v, where, tensors) for v in body]
            if len(parts) != 3 or any(p is not None and not isinstance(p, int) for p in parts):
                raise GraphLoadError(f"{where}: malformed slice {body!r}")
            return slice(*parts)
        if tag == "$array":
            dt = _parse_dtype(body, where)
            shape = _shape(obj["shape"], where)
            data = [_num(_decode(v, where, tensors), where) for v in obj["data"]]
            if len(data) != math.prod(shape):
                raise GraphLoadError(f"{where}: array data does not fill shape {shape}")
            return np.array(data, dtype=dt).reshape(shape)
        if tag == "$tensor":
            return _tensor(body, obj["dtype"], obj["shape"], where, tensors)
        if tag == "$tuple":
            if not isinstance(body, list):
                raise GraphLoadError(f"{where}: malformed $tuple")
            return tuple(_decode(v, f"{where}[{i}]", tensors) for i, v in enumerate(body))
        if tag == "$dict":
            if not isinstance(body, dict):
                raise GraphLoadError(f"{where}: malformed $dict")
            return {k: _decode(v, f"{where}.{k}", tensors) for k, v in body.items()}
        # $slot
        from ..numpy._indexing import Slot

        k, shape = body
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise GraphLoadError(f"{where}: malformed $slot")
        return Slot(k, _shape(shape, where))
    except GraphLoadError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise GraphLoadError(f"{where}: malformed {tag} value: {exc}") from exc


def _num(x, where):
    if isinstance(x, bool | int | float | complex):
        return x
    raise GraphLoadError(f"{where}: expected a number, got {_clip(x)}")


def _shape(shape, where) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise GraphLoadError(f"{where}: malformed shape {_clip(shape)}")
    return tuple(shape)


def _tensor(key, dtype, shape, where, tensors) -> np.ndarray:
    if not isinstance(key, str) or key not in tensors:
        raise GraphLoadError(f"{where}: tensor {_clip(key)} is missing from the tensor file")
    dt = _parse_dtype(dtype, where)
    shape = _shape(shape, where)
    arr = tensors[key]
    if dt.kind == "c":
        if arr.shape != shape + (2,) or arr.dtype != np.dtype(f"f{dt.itemsize // 2}"):
            raise GraphLoadError(f"{where}: tensor {key!r} has the wrong shape or dtype")
        arr = np.ascontiguousarray(arr).view(dt).reshape(shape)
    elif arr.shape != shape or arr.dtype != dt:
        raise GraphLoadError(
            f"{where}: tensor {key!r} has shape {arr.shape} and dtype {arr.dtype}, the graph "
            f"declares {shape} and {dt}"
        )
    return arr


def _clip(x) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


# --- structures ---


def _spec_to_json(spec) -> dict:
    t = spec[0]
    if t in ("leaf", "none"):
        return {"t": t}
    if t in ("tuple", "list"):
        return {"t": t, "c": [_spec_to_json(s) for s in spec[1]]}
    if t == "dict":
        return {"t": t, "k": list(spec[1]), "c": [_spec_to_json(s) for s in spec[2]]}
    return {"t": t, "type": spec[1], "k": list(spec[2]), "c": [_spec_to_json(s) for s in spec[3]]}


def _spec_from_json(obj, where: str, depth: int = 0) -> tuple:
    if depth > 100:
        raise GraphLoadError(f"{where}: structure nested too deeply")
    if not isinstance(obj, dict) or "t" not in obj:
        raise GraphLoadError(f"{where}: malformed structure {_clip(obj)}")
    t = obj["t"]
    if t in ("leaf", "none"):
        return (t,)
    kids = obj.get("c")
    if not isinstance(kids, list):
        raise GraphLoadError(f"{where}: malformed structure {_clip(obj)}")
    children = tuple(_spec_from_json(c, where, depth + 1) for c in kids)
    if t in ("tuple", "list"):
        return (t, children)
    keys = obj.get("k")
    if (
        t not in ("dict", "node")
        or not isinstance(keys, list)
        or len(keys) != len(children)
        or not all(isinstance(k, str) for k in keys)
    ):
        raise GraphLoadError(f"{where}: malformed structure {_clip(obj)}")
    if t == "dict":
        return (t, tuple(keys), children)
    name = obj.get("type")
    if not isinstance(name, str):
        raise GraphLoadError(f"{where}: malformed structure {_clip(obj)}")
    return (t, name, tuple(keys), children)


def _spec_leaves(spec) -> int:
    t = spec[0]
    if t == "leaf":
        return 1
    if t == "none":
        return 0
    kids = spec[1] if t in ("tuple", "list") else spec[2] if t == "dict" else spec[3]
    return sum(_spec_leaves(s) for s in kids)


# --- save ---


def _check_primitive(prim, k: int) -> None:
    name = prim.name
    if name.startswith(_CLOSURE_PREFIXES) or name in _CLOSURE_NAMES:
        raise GraphSaveError(
            f"Graph.save: operation {k} calls primitive {name!r}, whose behaviour is a Python "
            "closure (custom_vjp / custom_jvp / checkpoint); such graphs cannot be saved. "
            "Trace the function without it, or save the parameters with "
            "diffsys.train.save_checkpoint instead"
        )
    if registry.get(name) is not prim:
        raise GraphSaveError(
            f"Graph.save: operation {k} calls primitive {name!r}, which is not the one "
            "registered under that name (made with register=False, or replaced); the loader "
            "could not find it"
        )


def save(graph: Graph, path) -> None:
    """Write ``graph`` to directory ``path`` (see the module docstring)."""
    st = _safetensors()
    from ..train.checkpoint import _atomic_write

    enc = _Encoder()
    nodes = []
    for k, node in enumerate(graph.nodes):
        _check_primitive(node.prim, k)
        where = f"Graph.save: operation {k} ({node.prim.name})"
        params = {
            p: enc.value(v, f"{where}, parameter {p!r}", f"op{k}.{p}")
            for p, v in node.params.items()
        }
        nodes.append(
            {
                "op": node.prim.name,
                "in": list(node.inputs),
                "params": params,
                "out": list(node.outputs),
                "views": list(node.views),
            }
        )
    vars_ = []
    for v, info in enumerate(graph.vars):
        entry = {
            "kind": info.kind,
            "shape": list(info.shape),
            "dtype": _dtype_name(info.dtype, f"Graph.save: variable %{v} ({info.name})"),
            "name": info.name,
        }
        vars_.append(entry)
    consts = []
    for v, value in graph.consts.items():
        where = f"Graph.save: constant %{v}"
        if isinstance(value, np.ndarray) and value.ndim > 0:
            consts.append({"var": v, "value": enc.array(f"const.{v}", value, where)})
        else:
            consts.append({"var": v, "value": enc.value(value, where, f"const.{v}")})
    params = {}
    for v in graph.placeholders:
        info = graph.vars[v]
        if info.kind == "param" and v in graph.examples:
            value = np.asarray(_concrete(graph.examples[v]))
            params[str(v)] = enc.array(f"param.{info.name}", value, f"Graph.save: {info.name}")
    args = []
    for spec in graph.args:
        entries = []
        for i, (kind, x) in enumerate(spec.entries):
            if kind == "var":
                entries.append({"var": x})
            else:
                where = f"Graph.save: argument {spec.name!r}, static leaf {i}"
                entries.append({"static": enc.value(x, where, f"static.{spec.name}.{i}")})
        args.append({"name": spec.name, "spec": _spec_to_json(spec.spec), "entries": entries})
    blob = st.save(enc.tensors) if enc.tensors else st.save({})
    digest = hashlib.sha256(blob).hexdigest()
    tensor_file = f"tensors-{digest[:16]}.safetensors"
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "tensor_file": tensor_file,
        "tensor_sha256": digest,
        "vars": vars_,
        "consts": consts,
        "params": params,
        "args": args,
        "nodes": nodes,
        "outputs": list(graph.outputs),
        "out_spec": _spec_to_json(graph.out_spec),
    }
    text = json.dumps(doc, allow_nan=False, indent=1)
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / tensor_file, blob)
    _atomic_write(directory / INDEX, text.encode())
    for old in directory.glob("tensors-*.safetensors"):  # earlier saves' tensor files
        if old.name != tensor_file:
            try:
                old.unlink()
            except OSError:
                pass


def _concrete(x):
    while isinstance(x, Tracer):
        x = x.concrete()
    return x


# --- load ---


def _need(doc: dict, key: str, typ, where: str = "graph.json"):
    if key not in doc or not isinstance(doc[key], typ):
        raise GraphLoadError(f"{where}: missing or malformed field {key!r}")
    return doc[key]


def _lookup(name, k: int):
    where = f"graph.json: operation {k}"
    if not isinstance(name, str):
        raise GraphLoadError(f"{where}: malformed primitive name {_clip(name)}")
    if name.startswith(_CLOSURE_PREFIXES) or name in _CLOSURE_NAMES:
        raise GraphLoadError(f"{where}: primitive {name!r} cannot be loaded (it is a closure)")
    prim = registry.get(name)
    if prim is None:
        for module in _PRIMITIVE_MODULES:
            importlib.import_module(module)
        prim = registry.get(name)
    if prim is None:
        raise GraphLoadError(
            f"{where}: unknown primitive {name!r}: no primitive of that name is registered "
            "(graphs can only call diffsys's registered primitives; import the module that "
            "defines a custom one before loading)"
        )
    return prim


def _no_raw_constants(token):
    raise GraphLoadError(f"graph.json: non-standard JSON constant {token}")


def load_graph(path, *, verify: bool = True) -> Graph:
    """Read a graph written by :meth:`Graph.save`: a runnable, differentiable graph.

    Nothing in the files is executed: primitives are found by name in the registry,
    parameters are decoded from a closed vocabulary, arrays come from safetensors. With
    ``verify`` (the default) the graph is run once on ones (its parameters: the saved values)
    and every operation's result must have the shape and dtype the file declares.

    An unknown primitive, a malformed file, another format version, a tensor whose shape
    does not match, or a tampered tensor file raise :class:`GraphLoadError`.
    """
    st = _safetensors()
    directory = Path(path)
    index = directory / INDEX
    if not index.is_file():
        raise GraphLoadError(f"load_graph: {index} does not exist (not a saved graph?)")
    try:
        doc = json.loads(index.read_text(encoding="utf-8"), parse_constant=_no_raw_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GraphLoadError(f"load_graph: {index} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise GraphLoadError(f"load_graph: {index} is not a diffsys graph (format field)")
    version = doc.get("version")
    if version != VERSION:
        raise GraphLoadError(
            f"load_graph: {index} has format version {version!r}; this diffsys reads version "
            f"{VERSION}"
        )
    tensor_file = _need(doc, "tensor_file", str)
    if os.path.basename(tensor_file) != tensor_file or not tensor_file.endswith(".safetensors"):
        raise GraphLoadError(f"load_graph: malformed tensor file name {tensor_file!r}")
    blob_path = directory / tensor_file
    if not blob_path.is_file():
        raise GraphLoadError(f"load_graph: the tensor file {blob_path} is missing")
    blob = blob_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != _need(doc, "tensor_sha256", str):
        raise GraphLoadError(
            f"load_graph: {blob_path} does not match the checksum in graph.json (truncated, "
            "tampered with, or from another save)"
        )
    try:
        tensors = st.load(blob)
    except Exception as exc:  # noqa: BLE001 - any parse failure of the tensor file
        raise GraphLoadError(f"load_graph: {blob_path} is not a valid safetensors file") from exc
    return _build(doc, tensors, verify)


def _build(doc: dict, tensors: dict, verify: bool) -> Graph:
    raw_vars = _need(doc, "vars", list)
    vars_: list[VarInfo] = []
    for v, e in enumerate(raw_vars):
        where = f"graph.json: variable %{v}"
        if not isinstance(e, dict) or e.get("kind") not in _KINDS:
            raise GraphLoadError(f"{where}: malformed")
        name = e.get("name")
        if name is not None and not isinstance(name, str):
            raise GraphLoadError(f"{where}: malformed name")
        vars_.append(
            VarInfo(
                e["kind"], _shape(e.get("shape"), where), _parse_dtype(e.get("dtype"), where), name
            )
        )
    n = len(vars_)
    defined: set[int] = set()

    def ref(v, where: str, define: bool = False) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < n:
            raise GraphLoadError(f"{where}: variable {_clip(v)} out of range")
        if define:
            if v in defined:
                raise GraphLoadError(f"{where}: variable %{v} is defined twice")
            defined.add(v)
        elif v not in defined:
            raise GraphLoadError(f"{where}: variable %{v} is used before it is defined")
        return v

    # placeholders (with the parameters' saved values), then constants
    args = []
    examples: dict[int, Any] = {}
    saved_params = _need(doc, "params", dict)
    for i, a in enumerate(_need(doc, "args", list)):
        where = f"graph.json: argument {i}"
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise GraphLoadError(f"{where}: malformed")
        spec = _spec_from_json(a.get("spec"), where)
        raw_entries = a.get("entries")
        if not isinstance(raw_entries, list) or len(raw_entries) != _spec_leaves(spec):
            raise GraphLoadError(f"{where}: entries do not match its structure")
        entries = []
        for e in raw_entries:
            if isinstance(e, dict) and set(e) == {"var"}:
                v = ref(e["var"], where, define=True)
                if vars_[v].kind not in ("input", "param"):
                    raise GraphLoadError(f"{where}: %{v} is not a placeholder")
                entries.append(("var", v))
                if vars_[v].kind == "param":
                    value = saved_params.get(str(v))
                    if value is None:
                        raise GraphLoadError(f"{where}: no saved value for parameter %{v}")
                    examples[v] = _checked(
                        _decode(value, f"{where}, {vars_[v].name}", tensors), vars_[v], where
                    )
            elif isinstance(e, dict) and set(e) == {"static"}:
                entries.append(("static", _decode(e["static"], where, tensors)))
            else:
                raise GraphLoadError(f"{where}: malformed entry {_clip(e)}")
        args.append(ArgSpec(a["name"], None, spec, tuple(entries)))
    consts: dict[int, Any] = {}
    for c in _need(doc, "consts", list):
        if not isinstance(c, dict) or set(c) != {"var", "value"}:
            raise GraphLoadError(f"graph.json: malformed constant {_clip(c)}")
        where = f"graph.json: constant {_clip(c['var'])}"
        v = ref(c["var"], where, define=True)
        if vars_[v].kind != "const":
            raise GraphLoadError(f"{where}: %{v} is not declared a constant")
        value = _decode(c["value"], where, tensors)
        if isinstance(value, np.ndarray | np.generic):
            value = _checked(value, vars_[v], where)
        consts[v] = value
    nodes = []
    for k, e in enumerate(_need(doc, "nodes", list)):
        where = f"graph.json: operation {k}"
        if not isinstance(e, dict) or set(e) != {"op", "in", "params", "out", "views"}:
            raise GraphLoadError(f"{where}: malformed")
        prim = _lookup(e["op"], k)
        where = f"graph.json: operation {k} ({prim.name})"
        ins, outs, views = e["in"], e["out"], e["views"]
        if not all(isinstance(x, list) for x in (ins, outs, views)) or len(views) != len(outs):
            raise GraphLoadError(f"{where}: malformed")
        inputs = tuple(ref(v, where) for v in ins)
        if not isinstance(e["params"], dict) or not all(
            isinstance(p, str) and p.isidentifier() for p in e["params"]
        ):
            raise GraphLoadError(f"{where}: malformed parameters")
        params = {
            p: _decode(v, f"{where}, parameter {p!r}", tensors) for p, v in e["params"].items()
        }
        if not prim.multiple_results and len(outs) != 1:
            raise GraphLoadError(f"{where}: a single-result primitive with {len(outs)} outputs")
        outputs = tuple(ref(v, where, define=True) for v in outs)
        for v in outputs:
            if vars_[v].kind != "op":
                raise GraphLoadError(f"{where}: %{v} is not declared an operation result")
        for view in views:
            if view is not None and (not isinstance(view, int) or not 0 <= view < len(inputs)):
                raise GraphLoadError(f"{where}: malformed views")
        nodes.append(Node(prim, inputs, params, outputs, tuple(views)))
    outputs = tuple(ref(v, "graph.json: outputs") for v in _need(doc, "outputs", list))
    out_spec = _spec_from_json(doc.get("out_spec"), "graph.json: out_spec")
    if _spec_leaves(out_spec) != len(outputs):
        raise GraphLoadError("graph.json: out_spec does not match the outputs")
    name = doc.get("name")
    graph = Graph(
        name=name if isinstance(name, str) else "loaded",
        vars=vars_,
        nodes=nodes,
        consts=consts,
        args=args,
        outputs=outputs,
        out_treedef=None,
        out_spec=out_spec,
        examples=examples,
    )
    if verify:
        _verify(graph)
    return graph


def _checked(value, info: VarInfo, where: str):
    arr = np.asarray(value)
    if arr.shape != info.shape or arr.dtype != info.dtype:
        raise GraphLoadError(
            f"{where}: the saved value has shape {arr.shape} and dtype {arr.dtype}, but the "
            f"graph declares {info.shape} and {info.dtype} (shape mismatch)"
        )
    return value


def _verify(graph: Graph) -> None:
    """Run the graph once and check every result against its declared shape and dtype.

    Placeholders get their saved values (parameters) or zeros (integers, booleans) and ones
    (floating point). An operation that cannot run on such values (a singular matrix...) is
    given zeros of its declared results, and the check goes on after it.
    """
    s: dict[int, Any] = dict(graph.consts)
    for v in graph.placeholders:
        info = graph.vars[v]
        if v in graph.examples:
            s[v] = graph.examples[v]
        elif info.dtype.kind in "biu":
            s[v] = np.zeros(info.shape, dtype=info.dtype)
        else:
            s[v] = np.ones(info.shape, dtype=info.dtype)
    with np.errstate(all="ignore"):
        for k, node in enumerate(graph.nodes):
            try:
                out = node.prim.impl(*[s[v] for v in node.inputs], **node.params)
            except Exception:  # noqa: BLE001 - data-dependent failures are not the file's fault
                for v in node.outputs:
                    info = graph.vars[v]
                    s[v] = np.zeros(info.shape, dtype=info.dtype)
                continue
            outs = list(out) if node.prim.multiple_results else [out]
            if len(outs) != len(node.outputs):
                raise GraphLoadError(
                    f"load_graph: operation {k} ({node.prim.name}) gives {len(outs)} results, "
                    f"the file declares {len(node.outputs)}"
                )
            for v, o in zip(node.outputs, outs, strict=True):
                info = graph.vars[v]
                shape, dtype = np.shape(o), np.result_type(o)
                if shape != info.shape or dtype != info.dtype:
                    raise GraphLoadError(
                        f"load_graph: operation {k} ({node.prim.name}) computes shape {shape} "
                        f"and dtype {dtype}, the file declares {info.shape} and {info.dtype} "
                        "(shape mismatch)"
                    )
                s[v] = o
