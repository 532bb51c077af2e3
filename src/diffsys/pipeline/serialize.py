"""Saving and loading pipelines without pickle: structure as JSON, arrays as safetensors.

A saved pipeline is a :mod:`diffsys.train` checkpoint directory: ``checkpoint.json`` holds
the pipeline's config (every stage's module type and hyperparameters -- the module's
static fields -- its contract, kind and flags; the loss terms, weights and metrics), the
tensor file holds the parameters and the state. Types and functions are saved by their
registered name and looked up in a registry when loading: nothing named by the file is
imported, evaluated or unpickled. ``diffsys.nn`` layers and functions, ``diffsys.numpy`` and
``diffsys.relax`` functions are registered, and ``diffsys.systems.data`` stages are imported
on demand; register your own with :func:`register`.

>>> import tempfile, numpy as np
>>> from diffsys import nn, pipeline as pl
>>> pipe = pl.Pipeline([pl.Stage("lin", nn.Linear(3, 2, key=0)), pl.Stage("act", nn.tanh)])
>>> d = tempfile.mkdtemp()
>>> pipe.save(d)
>>> again = pl.load(d)
>>> x = np.ones((4, 3))
>>> np.array_equal(again({"x": x}), pipe({"x": x}))
True
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..nn.module import Module, State, _field_specs, _flatten_module
from ..train.checkpoint import CheckpointError, _read_index, load_checkpoint, save_checkpoint
from .losses import Loss, Metric, Scheduled, accuracy
from .spec import Spec

__all__ = ["SerializationError", "load", "register", "registered", "save"]

FORMAT = "diffsys-pipeline"
VERSION = 1


class SerializationError(ValueError):
    """A pipeline cannot be saved (an unregistered type or function, a value JSON cannot
    hold) or a saved one cannot be rebuilt."""


# --- the registry --------------------------------------------------------------------------------

_BY_NAME: dict[str, Any] = {}
_BY_ID: dict[int, str] = {}
_defaults_done = False


def register(obj=None, name: str | None = None):
    """Register a module class or a function under ``name`` (default
    ``module.qualname``) so pipelines using it can be saved and loaded. Usable as a
    decorator, bare (``@pl.register``) or with the name (``@pl.register("my.double")``,
    ``@pl.register(name=...)``). Returns ``obj``.

    >>> from diffsys import pipeline as pl
    >>> @pl.register("my.double")
    ... def double(x):
    ...     return 2 * x
    >>> pl.registered()["my.double"] is double
    True
    """
    if isinstance(obj, str):  # @register("name"): the decorator-factory spelling
        if name is not None:
            raise TypeError(f"register: two names given, {obj!r} and name={name!r}")
        return lambda o: register(o, obj)
    if obj is None:
        return lambda o: register(o, name)
    if not callable(obj):
        raise TypeError(
            f"register: expected a module class or a function, got {type(obj).__name__} "
            f"{obj!r}"
        )
    _ensure_defaults()
    return _register(obj, name)


def _register(obj, name: str | None):
    if name is None:
        qual = getattr(obj, "__qualname__", None)
        mod = getattr(obj, "__module__", None)
        if not qual or not mod or "<" in qual:
            raise ValueError(
                f"register: {obj!r} has no stable name (a lambda or a local function): give "
                "one, register(fn, name='my.fn')"
            )
        name = f"{mod}.{qual}"
    prev = _BY_NAME.get(name)
    if prev is not None and prev is not obj:
        raise ValueError(f"register: the name {name!r} is already registered for {prev!r}")
    _BY_NAME[name] = obj
    _BY_ID.setdefault(id(obj), name)
    return obj


def registered() -> dict[str, Any]:
    """A copy of the registry: name -> class or function."""
    _ensure_defaults()
    return dict(_BY_NAME)


def _ensure_defaults() -> None:
    global _defaults_done
    if _defaults_done:
        return
    _defaults_done = True
    from .. import nn, relax
    from .. import numpy as dnp

    for prefix, namespace, names in (
        ("nn", nn, sorted(nn.__all__)),
        ("relax", relax, sorted(relax.__all__)),
        ("numpy", dnp, sorted(n for n in dir(dnp) if not n.startswith("_"))),
    ):
        for n in names:
            obj = getattr(namespace, n, None)
            if isinstance(obj, type) and issubclass(obj, Module):
                _register(obj, f"{prefix}.{n}")
            elif callable(obj) and not isinstance(obj, type) and not _is_namespace(obj):
                _register(obj, f"{prefix}.{n}")
    _register(accuracy, "pipeline.accuracy")


def _is_namespace(obj) -> bool:
    return type(obj).__name__ == "module"


def _name_of(obj, what: str) -> str:
    _ensure_defaults()
    name = _BY_ID.get(id(obj))
    if name is None or _BY_NAME.get(name) is not obj:
        label = getattr(obj, "__qualname__", None) or type(obj).__name__
        raise SerializationError(
            f"{what}: {label} is not registered, so it cannot be saved by name: call "
            f"diffsys.pipeline.register({getattr(obj, '__name__', 'obj')}"
            + (", name='...')" if "<" in str(label) else ")")
            + " (pickle is never used)"
        )
    return name


# Stage types of diffsys's own higher layers register themselves when their module is
# imported; loading a saved pipeline imports them on demand. The module names come from this
# table, never from the file being loaded.
_PROVIDERS = {"systems.data.": "diffsys.systems.data"}


def _import_provider(name: str) -> None:
    for prefix, module in _PROVIDERS.items():
        if name.startswith(prefix):
            importlib.import_module(module)


def _lookup(name: str, what: str):
    _ensure_defaults()
    if name not in _BY_NAME:
        _import_provider(name)
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SerializationError(
            f"{what}: {name!r} is not registered in this process: import the module that "
            "defines it and register it with diffsys.pipeline.register before loading"
        ) from None


# --- values --------------------------------------------------------------------------------------


def _enc_tree(x, where: str):
    """A pytree of parameters/state: arrays become placeholders filled from the tensors."""
    if x is None:
        return None
    if isinstance(x, Module):
        return _enc_module(x, where)
    if isinstance(x, np.ndarray):
        return {"array": list(x.shape), "dtype": x.dtype.str}
    if isinstance(x, np.generic):
        return {"scalar": np.asarray(x).dtype.str}
    if isinstance(x, bool | int | float):
        return {"leaf": type(x).__name__}
    if isinstance(x, State):
        return {"state": {k: _enc_tree(v, f"{where}[{k!r}]") for k, v in x.items()}}
    if isinstance(x, list):
        return {"list": [_enc_tree(v, f"{where}[{i}]") for i, v in enumerate(x)]}
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return {"tuple": [_enc_tree(v, f"{where}[{i}]") for i, v in enumerate(x)]}
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        return {"dict": {k: _enc_tree(v, f"{where}[{k!r}]") for k, v in x.items()}}
    raise SerializationError(
        f"{where}: a {type(x).__name__} among the parameters cannot be saved (arrays, numbers, "
        "modules, lists, tuples and str-keyed dicts can)"
    )


def _enc_module(m: Module, where: str) -> dict:
    children, aux = _flatten_module(m)
    return {
        "module": _name_of(type(m), f"{where} ({type(m).__name__})"),
        "static": {n: _enc_static(v, f"{where}.{n}") for n, v in aux.items},
        "children": {
            n: _enc_tree(v, f"{where}.{n}") for n, v in zip(aux.dynamic, children, strict=True)
        },
    }


def _enc_static(x, where: str):
    """Configuration values (a module's static fields): JSON, tagged where JSON is not
    enough."""
    if x is None or isinstance(x, bool | str):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else {"float": repr(x)}
    if isinstance(x, np.dtype):
        return {"dtype": x.str}
    if isinstance(x, np.ndarray | np.generic):
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise SerializationError(f"{where}: a static array of dtype {a.dtype} cannot be saved")
        return {"const": a.ravel().tolist(), "shape": list(a.shape), "dtype": a.dtype.str}
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return {"tuple": [_enc_static(v, f"{where}[{i}]") for i, v in enumerate(x)]}
    if isinstance(x, list):
        return {"list": [_enc_static(v, f"{where}[{i}]") for i, v in enumerate(x)]}
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        return {"dict": {k: _enc_static(v, f"{where}[{k!r}]") for k, v in x.items()}}
    if isinstance(x, type):
        return {"type": _name_of(x, where)}
    if callable(x):
        return {"fn": _name_of(x, where)}
    raise SerializationError(
        f"{where}: a {type(x).__name__} ({x!r:.60}) cannot be saved as configuration"
    )


def _dec_static(x, where: str):
    if not isinstance(x, dict):
        return x
    if "float" in x:
        return float(x["float"])
    if "dtype" in x and len(x) == 1:
        return np.dtype(x["dtype"])
    if "const" in x:
        return np.array(x["const"], dtype=np.dtype(x["dtype"])).reshape(x["shape"])
    if "tuple" in x:
        return tuple(_dec_static(v, where) for v in x["tuple"])
    if "list" in x:
        return [_dec_static(v, where) for v in x["list"]]
    if "dict" in x:
        return {k: _dec_static(v, where) for k, v in x["dict"].items()}
    if "type" in x:
        return _lookup(x["type"], where)
    if "fn" in x:
        return _lookup(x["fn"], where)
    raise SerializationError(f"{where}: unknown tagged value {sorted(x)}")


def _dec_tree(x, where: str):
    """A template of the saved structure, arrays as zeros of the saved shape and dtype."""
    if x is None:
        return None
    if "array" in x:
        return np.zeros(x["array"], dtype=np.dtype(x["dtype"]))
    if "scalar" in x:
        return np.zeros((), dtype=np.dtype(x["scalar"]))[()]
    if "leaf" in x:
        return {"float": 0.0, "int": 0, "bool": False}[x["leaf"]]
    if "module" in x:
        return _dec_module(x, where)
    if "state" in x:
        return State({k: _dec_tree(v, where) for k, v in x["state"].items()})
    if "list" in x:
        return [_dec_tree(v, where) for v in x["list"]]
    if "tuple" in x:
        return tuple(_dec_tree(v, where) for v in x["tuple"])
    if "dict" in x:
        return {k: _dec_tree(v, where) for k, v in x["dict"].items()}
    raise SerializationError(f"{where}: unknown saved value {sorted(x)}")


def _dec_module(doc: dict, where: str) -> Module:
    cls = _lookup(doc["module"], where)
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise SerializationError(
            f"{where}: {doc['module']!r} is registered as {cls!r}, not an nn.Module class"
        )
    fields = {n for n, _ in _field_specs(cls)}
    saved = set(doc["static"]) | set(doc["children"])
    if fields != saved:
        raise SerializationError(
            f"{where}: {doc['module']} has fields {sorted(fields)} now but was saved with "
            f"{sorted(saved)}: the class changed since the pipeline was saved"
        )
    obj = object.__new__(cls)
    d = obj.__dict__
    for n, v in doc["static"].items():
        d[n] = _dec_static(v, f"{where}.{n}")
    for n, v in doc["children"].items():
        d[n] = _dec_tree(v, f"{where}.{n}")
    d["_ds_frozen"] = True
    return obj


# --- pipelines -----------------------------------------------------------------------------------


def _enc_spec(spec):
    if spec is None:
        return None
    if isinstance(spec, Spec):
        return {"spec": spec.to_json()}
    if isinstance(spec, tuple | list):
        return {"seq": [_enc_spec(s) for s in spec]}
    return {"map": {k: _enc_spec(s) for k, s in spec.items()}}


def _dec_spec(doc):
    if doc is None:
        return None
    if "spec" in doc:
        return Spec.from_json(doc["spec"])
    if "seq" in doc:
        return tuple(_dec_spec(s) for s in doc["seq"])
    return {k: _dec_spec(s) for k, s in doc["map"].items()}


def _enc_weight(w, term: str):
    if isinstance(w, float):
        return w
    if isinstance(w, Scheduled):
        return {"schedule": w.schedule, "kwargs": w.kwargs}
    raise SerializationError(
        f"loss term {term!r}: its weight is a {type(w).__name__} schedule, which cannot be "
        "saved; use pipeline.scheduled('linear', init_value=..., ...) for a savable schedule"
    )


def config_of(pipe, params=None, state=None) -> dict:
    """The JSON config of ``pipe`` (structure only; arrays as shape/dtype placeholders)."""
    params = pipe.params if params is None else params
    state = pipe.state if state is None else state
    stages = []
    for name, s in pipe.stages.items():
        where = f"stage {name!r}"
        entry = {
            "name": name,
            "kind": s.kind,
            "inputs": list(s.inputs),
            "input_spec": [_enc_spec(x) for x in s.input_spec],
            "output_spec": _enc_spec(s.output_spec),
            "frozen": s.frozen,
            "checkpoint": s.checkpoint
            if isinstance(s.checkpoint, bool | str)
            else {"fn": _name_of(s.checkpoint, f"{where} checkpoint policy")},
        }
        if s.module is not None:
            entry["module"] = _enc_tree(params[name], where)
        else:
            if s.vjp_rules is not None:
                fn, fwd, bwd = s.vjp_rules
                entry["vjp"] = [_name_of(fwd, f"{where} fwd"), _name_of(bwd, f"{where} bwd")]
            else:
                fn = s.fn
            entry["fn"] = _name_of(fn, f"{where} function")
            if s.hard_fn is not None:
                entry["hard"] = _name_of(s.hard_fn, f"{where} hard function")
            if s.params is not None:
                entry["params"] = _enc_tree(params[name], where)
        stages.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "batch_keys": list(pipe.batch_keys),
        "stages": stages,
        "losses": [
            {
                "name": t.name,
                "fn": _name_of(t.fn, f"loss term {t.name!r}"),
                "inputs": list(t.inputs),
                "weight": _enc_weight(t.weight, t.name),
            }
            for t in pipe.losses
        ],
        "metrics": [
            {"name": m.name, "fn": _name_of(m.fn, f"metric {m.name!r}"), "inputs": list(m.inputs)}
            for m in pipe.metrics
        ],
        "state": {k: _enc_tree(v, f"stage {k!r} state") for k, v in state.items()},
        "mode": pipe.mode,
        "steps_done": pipe.steps_done,
    }


def save(
    pipe, directory: str | os.PathLike, *, params=None, state=None, step=None, metadata=None
) -> None:
    """Save ``pipe`` (its current parameters and state unless given) to ``directory``:
    a ``diffsys.train`` checkpoint whose config is the pipeline's JSON config. Atomic."""
    params = pipe.params if params is None else pipe._validate_params(params, "save")
    state = pipe.state if state is None else state
    config = config_of(pipe, params, state)
    save_checkpoint(
        directory,
        {"params": params, "state": state},
        step=pipe.steps_done if step is None else int(step),
        config=config,
        metadata=metadata,
    )


def load(directory: str | os.PathLike):
    """Rebuild a pipeline saved by :func:`save` from registered types, with its parameters,
    state, losses, metrics and mode."""
    from .pipeline import Pipeline
    from .stage import Stage

    directory = Path(directory)
    try:
        doc = _read_index(directory)
    except CheckpointError as exc:
        raise SerializationError(f"load: {exc}") from exc
    config = doc.get("config", {})
    if config.get("format") != FORMAT:
        raise SerializationError(f"load: {directory} holds a checkpoint, not a saved pipeline")
    if config.get("version") != VERSION:
        raise SerializationError(
            f"load: pipeline format version {config.get('version')}, this diffsys reads {VERSION}"
        )
    stages = []
    for e in config["stages"]:
        where = f"stage {e['name']!r}"
        kw = dict(
            inputs=tuple(e["inputs"]),
            input_spec=[_dec_spec(x) for x in e["input_spec"]],
            output_spec=_dec_spec(e["output_spec"]),
            kind=e["kind"],
            frozen=e["frozen"],
            checkpoint=_dec_static(e["checkpoint"], where),
        )
        if "module" in e:
            fn = _dec_tree(e["module"], where)
        else:
            fn = _lookup(e["fn"], where)
            if "hard" in e:
                kw["hard"] = _lookup(e["hard"], where)
            if "params" in e:
                kw["params"] = _dec_tree(e["params"], where)
            if "vjp" in e:
                kw["vjp"] = (_lookup(e["vjp"][0], where), _lookup(e["vjp"][1], where))
        stages.append(Stage(e["name"], fn, **kw))
    losses = [
        Loss(
            t["name"],
            _lookup(t["fn"], f"loss term {t['name']!r}"),
            t["inputs"],
            t["weight"]
            if isinstance(t["weight"], float)
            else Scheduled(t["weight"]["schedule"], **t["weight"]["kwargs"]),
        )
        for t in config["losses"]
    ]
    metrics = [
        Metric(m["name"], _lookup(m["fn"], f"metric {m['name']!r}"), m["inputs"])
        for m in config["metrics"]
    ]
    pipe = Pipeline(stages, batch_keys=config["batch_keys"], losses=losses, metrics=metrics)
    state = {k: _dec_tree(v, f"stage {k!r} state") for k, v in config["state"].items()}
    tree, _ = load_checkpoint(directory, like={"params": pipe.params, "state": state})
    pipe.params = tree["params"]
    pipe.state = tree["state"]
    for name, p in tree["params"].items():
        st = pipe.stages[name]
        st.params = p
        if st.module is not None:
            st.module = p
    pipe.mode = config.get("mode", "train")
    pipe.steps_done = int(config.get("steps_done", 0))
    return pipe
