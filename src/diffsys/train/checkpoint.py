"""Checkpoints without pickle: arrays in safetensors, structure and metadata in JSON.

A checkpoint is a directory holding ``checkpoint.json`` and one ``tensors-<hash>.safetensors``
file. The JSON names every leaf (``params.layers.0.weight``), its shape and dtype, the step,
the state of random generators, a user config and metadata, and the SHA-256 of the tensor
file; a checksum over the JSON itself guards its own fields. Both files are written
atomically (temporary file in the same directory, flush, fsync, ``os.replace``); the JSON is
replaced last, so a crash leaves the previous checkpoint intact. Loading needs a template of
the same structure (the model and optimizer state you would start from) and checks every
name, shape and dtype against it.

>>> import tempfile, numpy as np
>>> from diffsys import nn, train
>>> model = nn.Linear(2, 3, key=0)
>>> d = tempfile.mkdtemp()
>>> train.save_checkpoint(d, {"model": model}, step=7, config={"lr": 0.1})
>>> tree, info = train.load_checkpoint(d, like={"model": nn.Linear(2, 3, key=1)})
>>> info.step, info.config, np.array_equal(tree["model"].weight, model.weight)
(7, {'lr': 0.1}, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import fileio as fio
from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tracer import concrete
from ..nn import named_leaves

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "load_checkpoint",
    "read_index",
    "save_checkpoint",
]

FORMAT = "diffsys-checkpoint"
VERSION = 1
INDEX = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, tampered with, or does not fit the template."""


@dataclass
class CheckpointInfo:
    """What a checkpoint holds besides the arrays."""

    step: int
    config: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    rng: dict[str, np.random.Generator] = field(default_factory=dict)
    path: Path | None = None


def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "checkpoints need the 'safetensors' package: pip install 'diffsys[nn]'"
        ) from exc
    return st


def _leaf_array(name: str, leaf) -> tuple[np.ndarray, str]:
    value = concrete(leaf)
    if isinstance(value, np.ndarray):
        kind = "ndarray"
    elif isinstance(value, np.generic):
        kind = "scalar"
    elif isinstance(value, bool | int | float):
        kind = type(value).__name__
    else:
        raise CheckpointError(
            f"save_checkpoint: leaf {name!r} is a {type(value).__name__}; checkpoints hold "
            "arrays and numbers only (mark other fields static, or keep them in config)"
        )
    arr = np.array(value, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    if arr.dtype.kind not in "biuf":
        raise CheckpointError(f"save_checkpoint: leaf {name!r} has unsupported dtype {arr.dtype}")
    return arr, kind


# The random generators a checkpoint can hold: a closed vocabulary, looked up by name (a file
# never names anything that is called otherwise).
BIT_GENERATORS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        np.random.PCG64,
        np.random.PCG64DXSM,
        np.random.Philox,
        np.random.SFC64,
        np.random.MT19937,
    )
}
_STATE_ARRAYS = ("uint32", "uint64")


def _generators(rng, who: str) -> dict[str, np.random.Generator]:
    if rng is None:
        return {}
    gens = rng if isinstance(rng, dict) else {"default": rng}
    for name, g in gens.items():
        if not isinstance(name, str):
            raise TypeError(f"{who}: rng names must be strings, got {name!r}")
        if not isinstance(g, np.random.Generator):
            raise TypeError(
                f"{who}: rng {name!r} must be a numpy.random.Generator, got {type(g).__name__}"
            )
        if type(g.bit_generator).__name__ not in BIT_GENERATORS:
            raise CheckpointError(
                f"{who}: rng {name!r} uses a {type(g.bit_generator).__name__}; checkpoints "
                f"hold the bit generators {sorted(BIT_GENERATORS)}"
            )
    return gens


def _enc_state(x):
    """A bit generator's state as JSON: its arrays become ``{"array": [...], "dtype": ...}``."""
    if isinstance(x, dict):
        return {k: _enc_state(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return {"array": [int(v) for v in x.ravel()], "dtype": x.dtype.name}
    if isinstance(x, np.integer):
        return int(x)
    return x


def _dec_state(x):
    if isinstance(x, dict):
        if set(x) == {"array", "dtype"} and x["dtype"] in _STATE_ARRAYS:
            return np.array(x["array"], dtype=x["dtype"])
        return {k: _dec_state(v) for k, v in x.items()}
    return x


def _rng_state(rng) -> dict:
    return {
        name: _enc_state(g.bit_generator.state)
        for name, g in _generators(rng, "save_checkpoint").items()
    }


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save_checkpoint(
    directory: str | os.PathLike,
    tree: Any,
    *,
    step: int = 0,
    rng: np.random.Generator | dict[str, np.random.Generator] | None = None,
    config: dict | None = None,
    metadata: dict | None = None,
) -> None:
    """Save the arrays of ``tree`` (e.g. ``{"params": model, "opt_state": s}``) with the
    ``step``, the state of ``rng`` (one Generator or a dict of them), and JSON-serializable
    ``config`` and ``metadata``. Overwrites an earlier checkpoint in ``directory`` atomically.
    """
    st = _safetensors()
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        raise TypeError(f"save_checkpoint: step must be an int, got {step!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    leaves_meta = []
    for name, leaf in named_leaves(tree):
        arr, kind = _leaf_array(name, leaf)
        key = name or "<root>"
        if key in tensors:
            raise CheckpointError(f"save_checkpoint: two leaves are both named {key!r}")
        tensors[key] = arr
        leaves_meta.append(
            {"name": key, "kind": kind, "dtype": arr.dtype.str, "shape": list(arr.shape)}
        )
    data = st.save(tensors, metadata={"format": FORMAT})
    digest = hashlib.sha256(data).hexdigest()
    tensor_file = f"tensors-{digest[:16]}.safetensors"
    body = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "config": config or {},
        "metadata": metadata or {},
        "rng": _rng_state(rng),
        "tensors": {"file": tensor_file, "sha256": digest, "bytes": len(data)},
        "leaves": leaves_meta,
    }
    try:
        text = json.dumps({**body, "checksum": _checksum(body)}, indent=1, sort_keys=True)
    except TypeError as exc:
        raise CheckpointError(f"save_checkpoint: config/metadata must be JSON data: {exc}") from exc
    fio.atomic_write(directory / tensor_file, data)
    fio.atomic_write(directory / INDEX, text.encode())
    for old in directory.glob("tensors-*.safetensors"):  # files of earlier checkpoints
        if old.name != tensor_file:
            with contextlib.suppress(OSError):
                old.unlink()


# --- reading -------------------------------------------------------------------------------------

LEAF_DTYPES = tuple(
    np.dtype(t).str
    for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    + ("float16", "float32", "float64")
)
"""The dtypes (``dtype.str``) a checkpoint's leaves may have."""
LEAF_KINDS = ("ndarray", "scalar", "int", "float", "bool")
_HEX64 = r"[0-9a-f]{64}"


def _state_array(dtype: str, size: int) -> fio.Schema:
    return fio.record(
        {
            "array": fio.list_of(
                fio.integer(min=0, max=2 ** (8 * np.dtype(dtype).itemsize) - 1),
                min_len=size,
                max_len=size,
            ),
            "dtype": fio.one_of(dtype),
        }
    )


_U64 = fio.integer(min=0, max=2**64 - 1)
_U128 = fio.integer(min=0, max=2**128 - 1)
_COMMON = {"has_uint32": fio.integer(min=0, max=1), "uinteger": fio.integer(min=0, max=2**32 - 1)}
_PCG = fio.record(
    {
        "bit_generator": fio.string(),
        "state": fio.record({"state": _U128, "inc": _U128}),
        **_COMMON,
    }
)
# The state of each bit generator, field by field (numpy's own layout).
_GENERATOR_STATES = {
    "PCG64": _PCG,
    "PCG64DXSM": _PCG,
    "Philox": fio.record(
        {
            "bit_generator": fio.string(),
            "state": fio.record(
                {"counter": _state_array("uint64", 4), "key": _state_array("uint64", 2)}
            ),
            "buffer": _state_array("uint64", 4),
            "buffer_pos": fio.integer(min=0, max=4),
            **_COMMON,
        }
    ),
    "SFC64": fio.record(
        {
            "bit_generator": fio.string(),
            "state": fio.record({"state": _state_array("uint64", 4)}),
            **_COMMON,
        }
    ),
    "MT19937": fio.record(
        {
            "bit_generator": fio.string(),
            "state": fio.record(
                {"key": _state_array("uint32", 624), "pos": fio.integer(min=0, max=624)}
            ),
        }
    ),
}
assert set(_GENERATOR_STATES) == set(BIT_GENERATORS)


def _rng(x, field: str) -> None:
    if not isinstance(x, dict):
        raise fio.SchemaError(field, f"expected a generator state object, got {x!r:.60}")
    name = x.get("bit_generator")
    fio.one_of(*BIT_GENERATORS)(name, f"{field}.bit_generator")
    _GENERATOR_STATES[name](x, field)


SCHEMA = fio.record(
    {
        "format": fio.one_of(FORMAT),
        "version": fio.one_of(VERSION),
        "checksum": fio.string(pattern=_HEX64),
        "step": fio.integer(),
        "config": fio.mapping(fio.any_json),
        "metadata": fio.mapping(fio.any_json),
        "rng": fio.mapping(_rng),
        "tensors": fio.record(
            {
                "file": fio.plain_file(pattern=r"tensors-[0-9a-f]{16}\.safetensors"),
                "sha256": fio.string(pattern=_HEX64),
                "bytes": fio.integer(min=0),
            }
        ),
        "leaves": fio.list_of(
            fio.record(
                {
                    "name": fio.string(),
                    "kind": fio.one_of(*LEAF_KINDS),
                    "dtype": fio.one_of(*LEAF_DTYPES),
                    "shape": fio.shape(),
                }
            )
        ),
    }
)
"""The schema of ``checkpoint.json`` (see :mod:`diffsys.fileio`)."""


def _check_leaves(doc: dict, where: str) -> None:
    seen = set()
    for i, leaf in enumerate(doc["leaves"]):
        if leaf["name"] in seen:
            raise CheckpointError(f"{where}: field 'leaves[{i}].name': {leaf['name']!r} twice")
        seen.add(leaf["name"])
        if leaf["kind"] != "ndarray" and leaf["shape"] != []:
            raise CheckpointError(
                f"{where}: field 'leaves[{i}].shape': a {leaf['kind']} leaf has shape []"
            )


def _check_generators(doc: dict, where: str) -> dict[str, tuple[type, dict]]:
    """The saved generator states, each tried on a fresh bit generator of its type."""
    out = {}
    for name, saved in doc["rng"].items():
        cls = BIT_GENERATORS[saved["bit_generator"]]
        state = _dec_state(saved)
        try:
            cls().state = state
        except Exception as exc:  # noqa: BLE001 - numpy's setters raise several types
            raise CheckpointError(
                f"{where}: field 'rng.{name}': not a valid {cls.__name__} state: {exc}"
            ) from None
        out[name] = (cls, state)
    return out


def read_index(directory: str | os.PathLike) -> dict:
    """The checked ``checkpoint.json`` of the checkpoint in ``directory`` (no tensors read).

    The file must parse, carry its own checksum, and fit :data:`SCHEMA` as a whole (every
    field present, of its type, from its closed vocabulary; no unknown fields), else a
    :class:`CheckpointError` names the field.
    """
    directory = Path(directory)
    path = directory / INDEX
    if not path.is_file():
        raise CheckpointError(f"load_checkpoint: no checkpoint at {directory} ({INDEX} missing)")
    try:
        doc = json.loads(path.read_text(), parse_constant=_no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise CheckpointError(
            f"load_checkpoint: {path} is not valid JSON (truncated or corrupted): {exc}"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(
            f"load_checkpoint: {path}: field 'format': not a diffsys checkpoint (format "
            f"{FORMAT!r})"
        )
    if doc.get("version") != VERSION:
        raise CheckpointError(
            f"load_checkpoint: {path}: field 'version': format version {doc.get('version')!r}, "
            f"this diffsys reads version {VERSION}"
        )
    body = {k: v for k, v in doc.items() if k != "checksum"}
    if doc.get("checksum") != _checksum(body):
        raise CheckpointError(
            f"load_checkpoint: the checksum of {path} does not match its contents: the file "
            "was modified or corrupted"
        )
    fio.validate(doc, SCHEMA, error=CheckpointError, where=f"load_checkpoint: {path}")
    _check_leaves(doc, f"load_checkpoint: {path}")
    _check_generators(doc, f"load_checkpoint: {path}")
    return body


def _no_constants(token):
    raise ValueError(f"non-standard JSON constant {token}")


def _read_tensors(directory: Path, doc: dict) -> dict[str, np.ndarray]:
    st = _safetensors()
    info = doc["tensors"]
    path = directory / info["file"]  # a plain name (checked by the schema)
    if not path.is_file():
        raise CheckpointError(f"load_checkpoint: tensor file {path} is missing")
    if path.stat().st_size != info["bytes"]:
        raise CheckpointError(
            f"load_checkpoint: {path} has {path.stat().st_size} bytes, expected {info['bytes']}: "
            "the file is truncated or was replaced"
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise CheckpointError(
            f"load_checkpoint: the SHA-256 of {path} does not match the checkpoint index: the "
            "file was modified or corrupted"
        )
    try:
        return st.load(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
        raise CheckpointError(f"load_checkpoint: cannot parse {path}: {exc}") from exc


def _restore_generators(doc: dict, rng) -> dict[str, np.random.Generator]:
    targets = _generators(rng, "load_checkpoint")
    saved = _check_generators(doc, "load_checkpoint")
    unknown = sorted(set(targets) - set(saved))
    if unknown:
        raise CheckpointError(
            f"load_checkpoint: the checkpoint saved no state for the generators {unknown} "
            f"(it holds {sorted(saved)})"
        )
    out = {}
    for name, (cls, state) in saved.items():
        g = targets.get(name)
        if g is None:
            g = np.random.Generator(cls())
        elif type(g.bit_generator) is not cls:
            raise CheckpointError(
                f"load_checkpoint: rng {name!r} is a {type(g.bit_generator).__name__}, the "
                f"checkpoint saved a {cls.__name__}"
            )
        g.bit_generator.state = state
        out[name] = g
    return out


def load_checkpoint(
    directory: str | os.PathLike,
    like: Any,
    *,
    rng: np.random.Generator | dict[str, np.random.Generator] | None = None,
    strict: bool = True,
) -> tuple[Any, CheckpointInfo]:
    """Load a checkpoint into the structure of ``like``; return ``(tree, info)``.

    Every leaf name, shape and dtype must match ``like``; with ``strict=False`` leaves the
    checkpoint holds beyond ``like`` are ignored (e.g. read only the parameters of a
    checkpoint that also holds optimizer state). Every random generator saved is restored:
    in place into ``rng`` (one Generator, or a dict by name) where given, else made anew;
    all are in ``info.rng``. A damaged or malformed checkpoint raises
    :class:`CheckpointError` naming the field.
    """
    directory = Path(directory)
    doc = read_index(directory)
    tensors = _read_tensors(directory, doc)
    saved = {m["name"]: m for m in doc["leaves"]}
    named = list(named_leaves(like))
    leaves, treedef = tree_flatten(like)
    if len(named) != len(leaves):  # pragma: no cover - named_leaves mirrors flatten
        raise CheckpointError("load_checkpoint: the template's leaves cannot be named")
    want = [n or "<root>" for n, _ in named]
    missing = [n for n in want if n not in saved]
    extra = [n for n in saved if n not in set(want)] if strict else []
    if missing or extra:
        raise CheckpointError(
            "load_checkpoint: the checkpoint does not fit the template: "
            + (f"missing from the checkpoint {missing[:5]}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"not in the template {extra[:5]}" if extra else "")
        )
    out = []
    for name, leaf in zip(want, leaves, strict=True):
        meta = saved[name]
        arr = tensors.get(name)
        if arr is None:
            raise CheckpointError(f"load_checkpoint: tensor {name!r} is missing from the file")
        if list(arr.shape) != meta["shape"] or arr.dtype.str != meta["dtype"]:
            raise CheckpointError(
                f"load_checkpoint: tensor {name!r} is {arr.dtype}{list(arr.shape)} in the file "
                f"but {meta['dtype']}{meta['shape']} in the index"
            )
        ref = _template_array(leaf)
        if ref.shape != arr.shape or ref.dtype != arr.dtype:
            raise CheckpointError(
                f"load_checkpoint: {name!r} is {arr.dtype}{list(arr.shape)} in the checkpoint "
                f"but {ref.dtype}{list(ref.shape)} in the template"
            )
        kind = meta["kind"]
        if kind == "scalar":
            out.append(arr[()])
        elif kind in ("int", "float", "bool"):
            out.append({"int": int, "float": float, "bool": bool}[kind](arr[()]))
        else:
            out.append(np.array(arr))  # writable, owned
    info = CheckpointInfo(
        step=doc["step"],
        config=doc["config"],
        metadata=doc["metadata"],
        rng=_restore_generators(doc, rng),
        path=directory,
    )
    return tree_unflatten(treedef, out), info


def _template_array(leaf):
    value = concrete(leaf)
    if isinstance(value, np.ndarray | np.generic):
        return value
    return np.asarray(value)
