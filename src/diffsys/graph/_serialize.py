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
import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import fileio as fio
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
        raise _bad(where, f"malformed dtype {name!r}")
    try:
        dt = np.dtype(name)
    except TypeError as exc:
        raise _bad(where, f"unknown dtype {name!r}") from exc
    if dt.kind not in _DTYPE_KINDS:
        raise _bad(where, f"dtype {name!r} is not allowed")
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


_TAGS = (
    "$float",
    "$complex",
    "$ellipsis",
    "$scalar",
    "$dtype",
    "$slice",
    "$array",
    "$tensor",
    "$tuple",
    "$dict",
    "$slot",
)


def _decode(obj, where: str, tensors: dict) -> Any:
    if obj is None or isinstance(obj, bool | str | int | float):
        return obj
    if isinstance(obj, list):
        return [_decode(v, f"{where}[{i}]", tensors) for i, v in enumerate(obj)]
    if not isinstance(obj, dict):
        raise _bad(where, f"malformed value {obj!r}")
    tags = [k for k in obj if k.startswith("$")]
    if len(tags) != 1:
        raise _bad(
            where,
            f"malformed value {_clip(obj)}: expected exactly one of the tags {sorted(_TAGS)}",
        )
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
        raise _bad(where, f"unknown or malformed tagged value {_clip(obj)}")
    body = obj[tag]
    try:
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise _bad(where, f"bad $float {body!r}")
            return float(body)
        if tag == "$complex":
            re, im = (_decode(v, f"{where}.$complex[{i}]", tensors) for i, v in enumerate(body))
            return complex(_num(re, where), _num(im, where))
        if tag == "$ellipsis":
            return Ellipsis
        if tag == "$scalar":
            dt = _parse_dtype(body, f"{where}.$scalar")
            value = _decode(obj["value"], f"{where}.value", tensors)
            return dt.type(_num(value, f"{where}.value"))
        if tag == "$dtype":
            dt = _parse_dtype(body, f"{where}.$dtype")
            return dt.type if obj.get("type") else dt
        if tag == "$slice":
            parts = [_decode(v, f"{where}.$slice[{i}]", tensors) for i, v in enumerate(body)]
            if len(parts) != 3 or any(p is not None and not isinstance(p, int) for p in parts):
                raise _bad(where, f"malformed slice {body!r}")
            return slice(*parts)
        if tag == "$array":
            dt = _parse_dtype(body, f"{where}.$array")
            shape = _shape(obj["shape"], f"{where}.shape")
            if not isinstance(obj["data"], list):
                raise _bad(f"{where}.data", "expected a list")
            data = [
                _num(_decode(v, f"{where}.data[{i}]", tensors), f"{where}.data[{i}]")
                for i, v in enumerate(obj["data"])
            ]
            if len(data) != math.prod(shape):
                raise _bad(where, f"array data does not fill shape {shape}")
            return np.array(data, dtype=dt).reshape(shape)
        if tag == "$tensor":
            return _tensor(body, obj["dtype"], obj["shape"], where, tensors)
        if tag == "$tuple":
            if not isinstance(body, list):
                raise _bad(where, "malformed $tuple")
            return tuple(_decode(v, f"{where}.$tuple[{i}]", tensors) for i, v in enumerate(body))
        if tag == "$dict":
            if not isinstance(body, dict):
                raise _bad(where, "malformed $dict")
            return {k: _decode(v, f"{where}.$dict.{k}", tensors) for k, v in body.items()}
        # $slot
        from ..numpy._indexing import Slot

        k, shape = body
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise _bad(where, "malformed $slot")
        return Slot(k, _shape(shape, where))
    except GraphLoadError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise _bad(where, f"malformed {tag} value: {exc}") from exc


def _num(x, where):
    if isinstance(x, bool | int | float | complex):
        return x
    raise _bad(where, f"expected a number, got {_clip(x)}")


def _shape(shape, where) -> tuple[int, ...]:
    try:
        fio.shape()(shape, where)
    except fio.SchemaError as exc:
        raise _bad(exc.field, exc.reason) from None
    return tuple(shape)


def _bad(field: str, reason: str) -> GraphLoadError:
    return GraphLoadError(f"graph.json: field {field!r}: {reason}")


def _tensor(key, dtype, shape, where, tensors) -> np.ndarray:
    if not isinstance(key, str) or key not in tensors:
        raise _bad(f"{where}.$tensor", f"tensor {_clip(key)} is missing from the tensor file")
    dt = _parse_dtype(dtype, f"{where}.dtype")
    shape = _shape(shape, f"{where}.shape")
    arr = tensors[key]
    if dt.kind == "c":
        if arr.shape != shape + (2,) or arr.dtype != np.dtype(f"f{dt.itemsize // 2}"):
            raise _bad(where, f"tensor {key!r} has the wrong shape or dtype")
        arr = np.ascontiguousarray(arr).view(dt).reshape(shape)
    elif arr.shape != shape or arr.dtype != dt:
        raise _bad(
            where,
            f"tensor {key!r} has shape {arr.shape} and dtype {arr.dtype}, the graph "
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


def _structure(obj, field: str, depth: int = 0) -> None:
    """Schema of a saved pytree structure (``{"t": kind, "c": children, ...}``)."""
    if depth > 100:
        raise fio.SchemaError(field, "structure nested too deeply")
    if not isinstance(obj, dict):
        raise fio.SchemaError(field, f"expected a structure object, got {_clip(obj)}")
    fio.one_of("leaf", "none", "tuple", "list", "dict", "node")(obj.get("t"), f"{field}.t")
    t = obj["t"]

    def kids(x, f):
        fio.list_of(lambda c, g: _structure(c, g, depth + 1))(x, f)

    keys = fio.list_of(fio.string())
    fio.record(
        {
            "leaf": {"t": fio.string()},
            "none": {"t": fio.string()},
            "tuple": {"t": fio.string(), "c": kids},
            "list": {"t": fio.string(), "c": kids},
            "dict": {"t": fio.string(), "k": keys, "c": kids},
            "node": {"t": fio.string(), "type": fio.string(), "k": keys, "c": kids},
        }[t]
    )(obj, field)
    if t in ("dict", "node") and len(obj["k"]) != len(obj["c"]):
        raise fio.SchemaError(f"{field}.k", f"{len(obj['k'])} keys for {len(obj['c'])} children")


def _spec_from_json(obj) -> tuple:
    """The structure tuple of a saved structure already checked by :func:`_structure`."""
    t = obj["t"]
    if t in ("leaf", "none"):
        return (t,)
    children = tuple(_spec_from_json(c) for c in obj["c"])
    if t in ("tuple", "list"):
        return (t, children)
    if t == "dict":
        return (t, tuple(obj["k"]), children)
    return (t, obj["type"], tuple(obj["k"]), children)


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
    fio.atomic_write(directory / tensor_file, blob)
    fio.atomic_write(directory / INDEX, text.encode())
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


_DTYPE_NAMES = tuple(
    np.dtype(t).name
    for t in (
        *("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
        *("float16", "float32", "float64", "longdouble", "complex64", "complex128"),
        "clongdouble",
    )
)
_VAR = fio.list_of(fio.integer(min=0))
SCHEMA = fio.record(
    {
        "format": fio.one_of(FORMAT),
        "version": fio.one_of(VERSION),
        "name": fio.nullable(fio.string()),
        "tensor_file": fio.plain_file(pattern=r"tensors-[0-9a-f]{16}\.safetensors"),
        "tensor_sha256": fio.string(pattern=r"[0-9a-f]{64}"),
        "vars": fio.list_of(
            fio.record(
                {
                    "kind": fio.one_of(*_KINDS),
                    "shape": fio.shape(),
                    "dtype": fio.one_of(*_DTYPE_NAMES),
                    "name": fio.nullable(fio.string()),
                }
            )
        ),
        "consts": fio.list_of(fio.record({"var": fio.integer(min=0), "value": fio.any_json})),
        "params": fio.mapping(fio.any_json, key=fio.string(pattern=r"[0-9]+")),
        "args": fio.list_of(
            fio.record(
                {
                    "name": fio.string(),
                    "spec": _structure,
                    "entries": fio.list_of(
                        fio.tagged(
                            {
                                "var": fio.record({"var": fio.integer(min=0)}),
                                "static": fio.record({"static": fio.any_json}),
                            }
                        )
                    ),
                }
            )
        ),
        "nodes": fio.list_of(
            fio.record(
                {
                    "op": fio.string(max_len=256),
                    "in": _VAR,
                    "params": fio.mapping(
                        fio.any_json, key=fio.string(pattern=r"[A-Za-z_][A-Za-z0-9_]*")
                    ),
                    "out": _VAR,
                    "views": fio.list_of(fio.nullable(fio.integer(min=0))),
                }
            )
        ),
        "outputs": _VAR,
        "out_spec": _structure,
    }
)
"""The schema of ``graph.json`` (see :mod:`diffsys.fileio`); tagged values and structures
inside it are checked as they are decoded, before the graph is built."""


def _lookup(name: str, k: int):
    where = f"nodes[{k}].op"
    if name.startswith(_CLOSURE_PREFIXES) or name in _CLOSURE_NAMES:
        raise _bad(where, f"primitive {name!r} cannot be loaded (it is a closure)")
    prim = registry.get(name)
    if prim is None:
        for module in _PRIMITIVE_MODULES:
            importlib.import_module(module)
        prim = registry.get(name)
    if prim is None:
        raise _bad(
            where,
            f"unknown primitive {name!r}: no primitive of that name is registered (graphs can "
            "only call diffsys's registered primitives; import the module that defines a "
            "custom one before loading)",
        )
    return prim


def _check_call(prim, n_inputs: int, params: dict, where: str) -> None:
    """The primitive's implementation must accept ``n_inputs`` operands and exactly these
    parameters (an unknown or missing one is the file's fault, found now, not at first
    call)."""
    try:
        sig = inspect.signature(prim.impl)
    except (TypeError, ValueError):  # pragma: no cover - every registered impl has one
        return
    try:
        sig.bind(*([None] * n_inputs), **params)
    except TypeError as exc:
        raise _bad(
            where,
            f"malformed parameters for primitive {prim.name!r} with {n_inputs} operands "
            f"({exc}); it takes {sig}",
        ) from None


def _no_raw_constants(token):
    raise GraphLoadError(f"graph.json: non-standard JSON constant {token}")


VERIFY_MAX_BYTES = 1 << 30
"""The most memory (bytes) the verification run of :func:`load_graph` may allocate for the
values a file declares; a larger graph loads with ``verify=False`` or a larger
``max_verify_bytes``."""


def load_graph(path, *, verify: bool = True, max_verify_bytes: int = VERIFY_MAX_BYTES) -> Graph:
    """Read a graph written by :meth:`Graph.save`: a runnable, differentiable graph.

    Nothing in the files is executed: primitives are found by name in the registry,
    parameters are decoded from a closed vocabulary, arrays come from safetensors. The whole
    ``graph.json`` is checked against :data:`SCHEMA` and every operation's parameters
    against its primitive's signature before the graph is built. With ``verify`` (the
    default) the graph is run once on ones (its parameters: the saved values) and every
    operation's result must have the shape and dtype the file declares; the values the
    file declares may need at most ``max_verify_bytes`` for that run.

    An unknown primitive, a malformed file (the error names the field), another format
    version, a tensor whose shape does not match, or a tampered tensor file raise
    :class:`GraphLoadError`.
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
        raise GraphLoadError(
            f"load_graph: {index}: field 'format': not a diffsys graph (format {FORMAT!r})"
        )
    version = doc.get("version")
    if version != VERSION:
        raise GraphLoadError(
            f"load_graph: {index}: field 'version': format version {version!r}; this diffsys "
            f"reads version {VERSION}"
        )
    fio.validate(doc, SCHEMA, error=GraphLoadError, where="graph.json")
    blob_path = directory / doc["tensor_file"]  # a plain name (checked by the schema)
    if not blob_path.is_file():
        raise GraphLoadError(f"load_graph: the tensor file {blob_path} is missing")
    blob = blob_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != doc["tensor_sha256"]:
        raise GraphLoadError(
            f"load_graph: {blob_path} does not match the checksum in graph.json (truncated, "
            "tampered with, or from another save)"
        )
    try:
        tensors = st.load(blob)
    except Exception as exc:  # noqa: BLE001 - any parse failure of the tensor file
        raise GraphLoadError(f"load_graph: {blob_path} is not a valid safetensors file") from exc
    graph = _build(doc, tensors)
    if verify:
        _check_verify_budget(graph, max_verify_bytes)
        _verify(graph)
    return graph


def _check_verify_budget(graph: Graph, max_bytes: int) -> None:
    total, biggest, which = 0, 0, 0
    for v, info in enumerate(graph.vars):
        if info.kind in ("input", "op"):
            nbytes = math.prod(info.shape) * info.dtype.itemsize
            total += nbytes
            if nbytes > biggest:
                biggest, which = nbytes, v
    if total > max_bytes:
        raise _bad(
            f"vars[{which}].shape",
            f"the graph declares values of {total:.3g} bytes in all (this one "
            f"{list(graph.vars[which].shape)} {graph.vars[which].dtype}, {biggest:.3g} bytes); "
            f"verifying it would allocate them, over max_verify_bytes={max_bytes}: pass a "
            "larger max_verify_bytes if the file is trusted and the memory there, or "
            "verify=False",
        )


def _build(doc: dict, tensors: dict) -> Graph:
    vars_ = [
        VarInfo(e["kind"], tuple(e["shape"]), np.dtype(e["dtype"]), e["name"]) for e in doc["vars"]
    ]
    n = len(vars_)
    defined: set[int] = set()

    def ref(v: int, where: str, define: bool = False) -> int:
        if not 0 <= v < n:
            raise _bad(where, f"variable {v} out of range (the graph has {n})")
        if define:
            if v in defined:
                raise _bad(where, f"variable %{v} is defined twice")
            defined.add(v)
        elif v not in defined:
            raise _bad(where, f"variable %{v} is used before it is defined")
        return v

    # placeholders (with the parameters' saved values), then constants
    args = []
    examples: dict[int, Any] = {}
    saved_params = doc["params"]
    for i, a in enumerate(doc["args"]):
        where = f"args[{i}]"
        spec = _spec_from_json(a["spec"])
        if len(a["entries"]) != _spec_leaves(spec):
            raise _bad(f"{where}.entries", "the entries do not match the argument's structure")
        entries = []
        for j, e in enumerate(a["entries"]):
            at = f"{where}.entries[{j}]"
            if "static" in e:
                entries.append(("static", _decode(e["static"], f"{at}.static", tensors)))
                continue
            v = ref(e["var"], f"{at}.var", define=True)
            if vars_[v].kind not in ("input", "param"):
                raise _bad(f"{at}.var", f"%{v} is not a placeholder")
            entries.append(("var", v))
            if vars_[v].kind == "param":
                value = saved_params.get(str(v))
                if value is None:
                    raise _bad("params", f"no saved value for parameter %{v}")
                examples[v] = _checked(
                    _decode(value, f"params.{v}", tensors), vars_[v], f"params.{v}"
                )
        args.append(ArgSpec(a["name"], None, spec, tuple(entries)))
    consts: dict[int, Any] = {}
    for j, c in enumerate(doc["consts"]):
        where = f"consts[{j}]"
        v = ref(c["var"], f"{where}.var", define=True)
        if vars_[v].kind != "const":
            raise _bad(f"{where}.var", f"%{v} is not declared a constant")
        value = _decode(c["value"], f"{where}.value", tensors)
        if isinstance(value, np.ndarray | np.generic):
            value = _checked(value, vars_[v], f"{where}.value")
        consts[v] = value
    nodes = []
    for k, e in enumerate(doc["nodes"]):
        prim = _lookup(e["op"], k)
        where = f"nodes[{k}]"
        ins, outs, views = e["in"], e["out"], e["views"]
        if len(views) != len(outs):
            raise _bad(f"{where}.views", f"{len(views)} views for {len(outs)} outputs")
        inputs = tuple(ref(v, f"{where}.in", define=False) for v in ins)
        params = {
            p: _decode(v, f"{where}.params.{p}", tensors) for p, v in e["params"].items()
        }
        _check_call(prim, len(inputs), params, f"{where}.params")
        if not prim.multiple_results and len(outs) != 1:
            raise _bad(f"{where}.out", f"a single-result primitive with {len(outs)} outputs")
        outputs = tuple(ref(v, f"{where}.out", define=True) for v in outs)
        for v in outputs:
            if vars_[v].kind != "op":
                raise _bad(f"{where}.out", f"%{v} is not declared an operation result")
        for view in views:
            if view is not None and not 0 <= view < len(inputs):
                raise _bad(f"{where}.views", f"view of operand {view} out of range")
        nodes.append(Node(prim, inputs, params, outputs, tuple(views)))
    outputs = tuple(ref(v, "outputs") for v in doc["outputs"])
    out_spec = _spec_from_json(doc["out_spec"])
    if _spec_leaves(out_spec) != len(outputs):
        raise _bad("out_spec", "does not match the outputs")
    name = doc["name"]
    return Graph(
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


def _checked(value, info: VarInfo, where: str):
    arr = np.asarray(value)
    if arr.shape != info.shape or arr.dtype != info.dtype:
        raise _bad(
            where,
            f"the saved value has shape {arr.shape} and dtype {arr.dtype}, but the "
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
