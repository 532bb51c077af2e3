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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.pytree import tree_flatten, tree_unflatten
from ..core.tracer import concrete
from ..nn._tree import named_leaves

__all__ = ["CheckpointError", "CheckpointInfo", "load_checkpoint", "save_checkpoint"]

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


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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


def _rng_state(rng) -> dict:
    if rng is None:
        return {}
    gens = rng if isinstance(rng, dict) else {"default": rng}
    out = {}
    for name, g in gens.items():
        if not isinstance(g, np.random.Generator):
            raise TypeError(
                f"save_checkpoint: rng {name!r} must be a numpy.random.Generator, got "
                f"{type(g).__name__}"
            )
        out[name] = g.bit_generator.state
    return out


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
    _atomic_write(directory / tensor_file, data)
    _atomic_write(directory / INDEX, text.encode())
    for old in directory.glob("tensors-*.safetensors"):  # files of earlier checkpoints
        if old.name != tensor_file:
            with contextlib.suppress(OSError):
                old.unlink()


def _read_index(directory: Path) -> dict:
    path = directory / INDEX
    if not path.is_file():
        raise CheckpointError(f"load_checkpoint: no checkpoint at {directory} ({INDEX} missing)")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"load_checkpoint: {path} is not valid JSON (truncated or corrupted): {exc}"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"load_checkpoint: {path} is not a diffsys checkpoint")
    if doc.get("version") != VERSION:
        raise CheckpointError(
            f"load_checkpoint: {path} has format version {doc.get('version')}, this diffsys "
            f"reads version {VERSION}"
        )
    checksum = doc.pop("checksum", None)
    if checksum != _checksum(doc):
        raise CheckpointError(
            f"load_checkpoint: the checksum of {path} does not match its contents: the file "
            "was modified or corrupted"
        )
    return doc


def _read_tensors(directory: Path, doc: dict) -> dict[str, np.ndarray]:
    st = _safetensors()
    info = doc["tensors"]
    path = directory / info["file"]
    if not path.is_file():
        raise CheckpointError(f"load_checkpoint: tensor file {path} is missing")
    data = path.read_bytes()
    if len(data) != info["bytes"]:
        raise CheckpointError(
            f"load_checkpoint: {path} has {len(data)} bytes, expected {info['bytes']}: the "
            "file is truncated or was replaced"
        )
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise CheckpointError(
            f"load_checkpoint: the SHA-256 of {path} does not match the checkpoint index: the "
            "file was modified or corrupted"
        )
    try:
        return st.load(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt file
        raise CheckpointError(f"load_checkpoint: cannot parse {path}: {exc}") from exc


def _restore_generators(states: dict, rng) -> dict[str, np.random.Generator]:
    targets = {}
    if rng is not None:
        targets = rng if isinstance(rng, dict) else {"default": rng}
    out = {}
    for name, state in states.items():
        g = targets.get(name)
        if g is None:
            bit_gen = getattr(np.random, state["bit_generator"])()
            g = np.random.Generator(bit_gen)
        elif type(g.bit_generator).__name__ != state["bit_generator"]:
            raise CheckpointError(
                f"load_checkpoint: rng {name!r} is a {type(g.bit_generator).__name__}, the "
                f"checkpoint saved a {state['bit_generator']}"
            )
        g.bit_generator.state = state
        out[name] = g
    return out


def load_checkpoint(
    directory: str | os.PathLike,
    like: Any,
    *,
    rng: np.random.Generator | dict[str, np.random.Generator] | None = None,
) -> tuple[Any, CheckpointInfo]:
    """Load a checkpoint into the structure of ``like``; return ``(tree, info)``.

    Every leaf name, shape and dtype must match ``like``. Random generators are restored in
    place into ``rng`` when given, else made anew; both are in ``info.rng``.
    """
    directory = Path(directory)
    doc = _read_index(directory)
    tensors = _read_tensors(directory, doc)
    saved = {m["name"]: m for m in doc["leaves"]}
    named = list(named_leaves(like))
    leaves, treedef = tree_flatten(like)
    if len(named) != len(leaves):  # pragma: no cover - named_leaves mirrors flatten
        raise CheckpointError("load_checkpoint: the template's leaves cannot be named")
    want = [n or "<root>" for n, _ in named]
    missing = [n for n in want if n not in saved]
    extra = [n for n in saved if n not in set(want)]
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
        ref = np.asarray(concrete(leaf))
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
        step=int(doc["step"]),
        config=doc.get("config", {}),
        metadata=doc.get("metadata", {}),
        rng=_restore_generators(doc.get("rng", {}), rng),
        path=directory,
    )
    return tree_unflatten(treedef, out), info
