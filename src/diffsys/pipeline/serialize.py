"""Saving and loading pipelines without pickle: structure as JSON, arrays as safetensors.

A saved pipeline is a :mod:`diffsys.train` checkpoint directory: ``checkpoint.json`` holds
the pipeline's config (every stage's module type and hyperparameters -- the module's
static fields -- its contract, kind and flags; the loss terms, weights and metrics), the
tensor file holds the parameters and the state. Types and functions are saved by their
registered name and looked up in a registry when loading: nothing named by the file is
imported, evaluated or unpickled. ``diffsys.nn`` layers and functions, ``diffsys.numpy`` and
``diffsys.relax`` functions are registered, and the stages of ``diffsys.systems.data``,
``.db`` and ``.search`` are imported on demand; register your own with
:func:`register`.

Configuration values other than JSON's (a module's static fields) are saved when their class
is registered and has the value protocol: ``x.to_config()`` returns JSON-able configuration
and the classmethod ``cls.from_config(config)`` rebuilds (and checks) the value; the file
holds ``{"value": registered name, "config": ...}``. After a module is rebuilt, its class's
``__check_init__(module)`` runs when it defines one, so a file cannot hold a configuration its
constructor would refuse.

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
import inspect
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import fileio as fio
from ..nn.module import Module, State, field_names, module_fields, module_from_fields
from ..train.checkpoint import (
    LEAF_DTYPES,
    CheckpointError,
    load_checkpoint,
    read_index,
    save_checkpoint,
)
from .losses import _SCHEDULES, Loss, Metric, Scheduled, accuracy
from .spec import Spec
from .stage import KINDS

__all__ = ["SerializationError", "load", "load_training", "register", "registered", "save"]

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
    ``@pl.register(name=...)``). Returns ``obj``. A value class with ``to_config()`` and a
    classmethod ``from_config(config)`` (see the module docstring) registers the same way.

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
    _register(relax.soft_gate, "relax.soft_threshold")  # its old name: saved files still load


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
_PROVIDERS = {
    "systems.data.": "diffsys.systems.data",
    "systems.db.": "diffsys.systems.db",
    "systems.search.": "diffsys.systems.search",
}


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
    static, children = module_fields(m)
    return {
        "module": _name_of(type(m), f"{where} ({type(m).__name__})"),
        "static": {n: _enc_static(v, f"{where}.{n}") for n, v in static.items()},
        "children": {n: _enc_tree(v, f"{where}.{n}") for n, v in children.items()},
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
    if hasattr(type(x), "from_config") and hasattr(x, "to_config"):
        name = _name_of(type(x), where)
        try:
            config = x.to_config()
        except (ValueError, TypeError) as exc:
            raise SerializationError(f"{where}: {exc}") from exc
        return {"value": name, "config": _enc_static(config, f"{where}.config")}
    if callable(x):
        return {"fn": _name_of(x, where)}
    raise SerializationError(
        f"{where}: a {type(x).__name__} ({x!r:.60}) cannot be saved as configuration"
    )


# The decoders below read a config already checked against CONFIG_SCHEMA; ``path`` is the
# field being decoded (``config.stages[0].module``), ``where`` the file, for the errors.


def _dec_static(x, path: str, where: str):
    if not isinstance(x, dict):
        return x
    if "float" in x:
        return float(x["float"])
    if "const" in x:
        return np.array(x["const"], dtype=np.dtype(x["dtype"])).reshape(x["shape"])
    if "dtype" in x:
        return np.dtype(x["dtype"])
    if "tuple" in x:
        return tuple(_dec_static(v, f"{path}.tuple[{i}]", where) for i, v in enumerate(x["tuple"]))
    if "list" in x:
        return [_dec_static(v, f"{path}.list[{i}]", where) for i, v in enumerate(x["list"])]
    if "dict" in x:
        return {k: _dec_static(v, f"{path}.dict.{k}", where) for k, v in x["dict"].items()}
    if "type" in x:
        return _lookup(x["type"], f"{where}: field '{path}.type'")
    if "value" in x:
        return _dec_value(x, path, where)
    return _lookup(x["fn"], f"{where}: field '{path}.fn'")


def _dec_value(x: dict, path: str, where: str):
    """A registered value (``{"value": name, "config": ...}``), rebuilt by its class's
    ``from_config``, which checks the configuration."""
    cls = _lookup(x["value"], f"{where}: field '{path}.value'")
    if not (isinstance(cls, type) and hasattr(cls, "from_config") and hasattr(cls, "to_config")):
        raise SerializationError(
            f"{where}: field '{path}.value': {x['value']!r} is registered as {cls!r}, not a "
            "value class (one with to_config and from_config)"
        )
    config = _dec_static(x["config"], f"{path}.config", where)
    try:
        return cls.from_config(config)
    except (ValueError, TypeError) as exc:
        raise SerializationError(
            f"{where}: field '{path}.config': not a valid {x['value']}: {exc}"
        ) from exc


def _dec_tree(x, path: str, where: str):
    """A template of the saved structure: arrays as read-only zero views of the saved shape
    and dtype (nothing is allocated; the values come from the tensor file)."""
    if x is None:
        return None
    if "array" in x:
        return np.broadcast_to(np.zeros((), dtype=np.dtype(x["dtype"])), x["array"])
    if "scalar" in x:
        return np.zeros((), dtype=np.dtype(x["scalar"]))[()]
    if "leaf" in x:
        return {"float": 0.0, "int": 0, "bool": False}[x["leaf"]]
    if "module" in x:
        return _dec_module(x, path, where)
    if "state" in x:
        return State({k: _dec_tree(v, f"{path}.state.{k}", where) for k, v in x["state"].items()})
    if "list" in x:
        return [_dec_tree(v, f"{path}.list[{i}]", where) for i, v in enumerate(x["list"])]
    if "tuple" in x:
        return tuple(_dec_tree(v, f"{path}.tuple[{i}]", where) for i, v in enumerate(x["tuple"]))
    return {k: _dec_tree(v, f"{path}.dict.{k}", where) for k, v in x["dict"].items()}


def _dec_module(doc: dict, path: str, where: str) -> Module:
    cls = _lookup(doc["module"], f"{where}: field '{path}.module'")
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise SerializationError(
            f"{where}: field '{path}.module': {doc['module']!r} is registered as {cls!r}, not "
            "an nn.Module class"
        )
    fields = set(field_names(cls))
    for part in ("static", "children"):
        for n in doc[part]:
            if n not in fields:
                raise SerializationError(
                    f"{where}: field '{path}.{part}.{n}': {doc['module']} has no field {n!r} "
                    f"(its fields: {sorted(fields)}); the class changed since the pipeline "
                    "was saved, or the file was edited"
                )
    missing = sorted(fields - set(doc["static"]) - set(doc["children"]))
    if missing:
        raise SerializationError(
            f"{where}: field {path!r}: {doc['module']} has the fields {missing} that were not "
            "saved: the class changed since the pipeline was saved, or the file was edited"
        )
    static = {n: _dec_static(v, f"{path}.static.{n}", where) for n, v in doc["static"].items()}
    children = {n: _dec_tree(v, f"{path}.children.{n}", where) for n, v in doc["children"].items()}
    try:
        return module_from_fields(cls, static, children)
    except (ValueError, TypeError) as exc:
        raise SerializationError(
            f"{where}: field {path!r}: not a valid {doc['module']}: {exc}"
        ) from exc


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
            if s.hard_fn is not None and not s.hard_from_fn:  # a Relaxation brings its own
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


# --- the schema of a saved pipeline's config ----------------------------------------------------

_NAME = fio.string(max_len=512)
_NAMES = fio.list_of(_NAME)
_STATIC_DTYPES = (*LEAF_DTYPES, np.dtype("complex64").str, np.dtype("complex128").str)


def _tree(x, field: str) -> None:
    if x is not None:
        _TREE(x, field)


def _children(x, field: str) -> None:
    fio.mapping(_tree)(x, field)


_TREE = fio.tagged(
    {
        "array": fio.record({"array": fio.shape(), "dtype": fio.one_of(*LEAF_DTYPES)}),
        "scalar": fio.record({"scalar": fio.one_of(*LEAF_DTYPES)}),
        "leaf": fio.record({"leaf": fio.one_of("float", "int", "bool")}),
        "module": fio.record(
            {"module": _NAME, "static": lambda x, f: _STATICS(x, f), "children": _children}
        ),
        "state": fio.record({"state": _children}),
        "list": fio.record({"list": fio.list_of(_tree)}),
        "tuple": fio.record({"tuple": fio.list_of(_tree)}),
        "dict": fio.record({"dict": _children}),
    }
)


def _const(x, field: str) -> None:
    fio.record(
        {
            "const": fio.list_of(fio.either(fio.number(), fio.boolean, what="a number")),
            "shape": fio.shape(),
            "dtype": fio.one_of(*LEAF_DTYPES),
        }
    )(x, field)
    if len(x["const"]) != math.prod(x["shape"]):
        raise fio.SchemaError(f"{field}.const", f"{len(x['const'])} values for shape {x['shape']}")


def _static(x, field: str) -> None:
    if x is None or isinstance(x, bool | int | str):
        return
    if isinstance(x, float):
        fio.number()(x, field)
        return
    _STATIC_TAGGED(x, field)


_STATIC_TAGGED = fio.tagged(
    {
        "float": fio.record({"float": fio.one_of("nan", "inf", "-inf")}),
        "const": _const,
        "dtype": fio.record({"dtype": fio.one_of(*_STATIC_DTYPES)}),
        "tuple": fio.record({"tuple": fio.list_of(_static)}),
        "list": fio.record({"list": fio.list_of(_static)}),
        "dict": fio.record({"dict": fio.mapping(_static)}),
        "type": fio.record({"type": _NAME}),
        "fn": fio.record({"fn": _NAME}),
        "value": fio.record({"value": _NAME, "config": _static}),
    }
)
_STATICS = fio.mapping(_static)


def _spec(x, field: str) -> None:
    if x is not None:
        _SPEC(x, field)


_SPEC = fio.tagged(
    {
        "spec": fio.record(
            {
                "spec": fio.record(
                    {
                        "shape": fio.nullable(
                            fio.list_of(
                                fio.either(
                                    fio.integer(min=0),
                                    fio.string(max_len=64),
                                    fio.one_of(None),
                                    what="an int >= 0, a symbol or null",
                                ),
                                max_len=64,
                            )
                        ),
                        "dtype": fio.nullable(fio.string(max_len=64)),
                    }
                )
            }
        ),
        "seq": fio.record({"seq": fio.list_of(_spec)}),
        "map": fio.record({"map": fio.mapping(_spec)}),
    }
)

# The named policies of ds.checkpoint (a function policy is saved by its registered name).
_CHECKPOINT_POLICIES = (
    "nothing_saveable",
    "everything_saveable",
    "dots_saveable",
    "checkpoint_dots",
)

_STAGE = fio.record(
    {
        "name": _NAME,
        "kind": fio.one_of(*KINDS),
        "inputs": _NAMES,
        "input_spec": fio.list_of(_spec),
        "output_spec": _spec,
        "frozen": fio.boolean,
        "checkpoint": fio.either(
            fio.boolean,
            fio.one_of(*_CHECKPOINT_POLICIES),
            fio.record({"fn": _NAME}),
            what=f"true, false, one of {list(_CHECKPOINT_POLICIES)} or {{'fn': registered name}}",
        ),
    },
    {
        "module": _tree,
        "fn": _NAME,
        "hard": _NAME,
        "params": _tree,
        "vjp": fio.list_of(_NAME, min_len=2, max_len=2),
    },
)

CONFIG_SCHEMA = fio.record(
    {
        "format": fio.one_of(FORMAT),
        "version": fio.one_of(VERSION),
        "batch_keys": fio.list_of(_NAME, min_len=1),
        "stages": fio.list_of(_STAGE, min_len=1),
        "losses": fio.list_of(
            fio.record(
                {
                    "name": _NAME,
                    "fn": _NAME,
                    "inputs": _NAMES,
                    "weight": fio.either(
                        fio.number(),
                        fio.record(
                            {
                                "schedule": fio.one_of(*_SCHEDULES),
                                "kwargs": fio.mapping(
                                    fio.either(
                                        fio.number(),
                                        fio.boolean,
                                        fio.one_of(None),
                                        what="a number, a bool or null",
                                    ),
                                    key=fio.string(pattern=r"[a-z_]+"),
                                ),
                            }
                        ),
                        what="a finite number or {'schedule': name, 'kwargs': {...}}",
                    ),
                }
            )
        ),
        "metrics": fio.list_of(fio.record({"name": _NAME, "fn": _NAME, "inputs": _NAMES})),
        "state": fio.mapping(_tree),
        "mode": fio.one_of("train", "infer"),
        "steps_done": fio.integer(min=0),
    },
    {
        "train": fio.record(
            {"step": fio.integer(min=0), "seed": fio.integer(), "trainable": _NAMES}
        )
    },
)
"""The schema of a saved pipeline's config (``config`` in its ``checkpoint.json``)."""


def _check_schedule(weight: dict, field: str) -> None:
    """The arguments of a scheduled weight against the signature of its schedule."""
    from ..optim import schedules

    params = inspect.signature(getattr(schedules, weight["schedule"])).parameters
    for name in weight["kwargs"]:
        if name not in params:
            raise fio.SchemaError(
                f"{field}.kwargs.{name}",
                f"{weight['schedule']} takes no argument {name!r} (it takes {list(params)})",
            )
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and name not in weight["kwargs"]:
            raise fio.SchemaError(f"{field}.kwargs.{name}", f"missing ({weight['schedule']})")


def _check_config(config: dict, where: str) -> None:
    fio.validate(config, CONFIG_SCHEMA, error=SerializationError, where=where, field="config")
    for i, t in enumerate(config["losses"]):
        if isinstance(t["weight"], dict):
            fio.validate(
                t["weight"],
                _check_schedule,
                error=SerializationError,
                where=where,
                field=f"config.losses[{i}].weight",
            )
    for i, e in enumerate(config["stages"]):
        if ("module" in e) == ("fn" in e):
            raise SerializationError(
                f"{where}: field 'config.stages[{i}]': a stage holds either 'module' or 'fn'"
            )
        if "module" in e and not (isinstance(e["module"], dict) and "module" in e["module"]):
            raise SerializationError(
                f"{where}: field 'config.stages[{i}].module': expected a saved module"
            )
        extra = {"hard", "params", "vjp"} & set(e)
        if "module" in e and extra:
            raise SerializationError(
                f"{where}: field 'config.stages[{i}].{min(extra)}': only function stages "
                "hold it"
            )


# --- saving and loading --------------------------------------------------------------------------


def save(
    pipe,
    directory: str | os.PathLike,
    *,
    params=None,
    state=None,
    step=None,
    metadata=None,
    train_state=None,
) -> None:
    """Save ``pipe`` (its current parameters and state unless given) to ``directory``:
    a ``diffsys.train`` checkpoint whose config is the pipeline's JSON config. Atomic.

    With ``train_state`` (a :class:`~diffsys.pipeline.TrainState`, as
    :meth:`Trainer.save <diffsys.pipeline.Trainer.save>` passes) its parameters, state,
    optimizer state, step, seed and trainable stages are saved too, so that
    :meth:`Trainer.load <diffsys.pipeline.Trainer.load>` resumes training exactly.
    """
    tree = {}
    if train_state is not None:
        params, state = train_state.params, train_state.state
        tree["opt_state"] = train_state.opt_state
    params = pipe.params if params is None else pipe._validate_params(params, "save")
    state = pipe.state if state is None else state
    config = config_of(pipe, params, state)
    if train_state is not None:
        config["train"] = {
            "step": int(train_state.step),
            "seed": int(train_state.seed),
            "trainable": list(train_state.trainable),
        }
    tree.update(params=params, state=state)
    save_checkpoint(
        directory,
        tree,
        step=pipe.steps_done if step is None else int(step),
        config=config,
        metadata=metadata,
    )


def _build(directory: Path):
    """The pipeline of a saved config (parameters and state as templates), with the
    checked index and the state template."""
    from .pipeline import Pipeline
    from .stage import Stage

    try:
        doc = read_index(directory)
    except CheckpointError as exc:
        raise SerializationError(f"load: {exc}") from exc
    config = doc["config"]
    where = f"load: {directory / 'checkpoint.json'}"
    if config.get("format") != FORMAT:
        raise SerializationError(
            f"{where}: field 'config.format': {directory} holds a checkpoint, not a saved "
            f"pipeline (format {FORMAT!r})"
        )
    if config.get("version") != VERSION:
        raise SerializationError(
            f"{where}: field 'config.version': pipeline format version "
            f"{config.get('version')!r}, this diffsys reads {VERSION}"
        )
    _check_config(config, where)
    stages = []
    for i, e in enumerate(config["stages"]):
        path = f"config.stages[{i}]"
        at = f"{where}: stage {e['name']!r}"
        field = f"{at}: field {path!r}"
        try:
            kw = dict(
                inputs=tuple(e["inputs"]),
                input_spec=[_dec_spec(x) for x in e["input_spec"]],
                output_spec=_dec_spec(e["output_spec"]),
                kind=e["kind"],
                frozen=e["frozen"],
                checkpoint=_dec_static(e["checkpoint"], f"{path}.checkpoint", at),
            )
            if "module" in e:
                fn = _dec_tree(e["module"], f"{path}.module", at)
            else:
                fn = _lookup(e["fn"], f"{at}: field '{path}.fn'")
                if "hard" in e:
                    kw["hard"] = _lookup(e["hard"], f"{at}: field '{path}.hard'")
                if "params" in e:
                    kw["params"] = _dec_tree(e["params"], f"{path}.params", at)
                if "vjp" in e:
                    kw["vjp"] = tuple(
                        _lookup(name, f"{at}: field '{path}.vjp[{k}]'")
                        for k, name in enumerate(e["vjp"])
                    )
            stages.append(Stage(e["name"], fn, **kw))
        except SerializationError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise SerializationError(f"{field}: cannot be rebuilt: {exc}") from exc
    losses, metrics = [], []
    for i, t in enumerate(config["losses"]):
        field = f"{where}: field 'config.losses[{i}]', loss term {t['name']!r}"
        w = t["weight"]
        try:
            if isinstance(w, dict):
                weight = Scheduled(w["schedule"], **w["kwargs"])
                float(weight(0))  # a schedule that cannot run fails now, named
            else:
                weight = float(w)
            fn = _lookup(t["fn"], f"{where}: field 'config.losses[{i}].fn'")
            losses.append(Loss(t["name"], fn, t["inputs"], weight))
        except SerializationError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise SerializationError(f"{field}: cannot be rebuilt: {exc}") from exc
    for i, m in enumerate(config["metrics"]):
        field = f"{where}: field 'config.metrics[{i}]', metric {m['name']!r}"
        try:
            fn = _lookup(m["fn"], f"{where}: field 'config.metrics[{i}].fn'")
            metrics.append(Metric(m["name"], fn, m["inputs"]))
        except SerializationError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise SerializationError(f"{field}: cannot be rebuilt: {exc}") from exc
    try:
        pipe = Pipeline(stages, batch_keys=config["batch_keys"], losses=losses, metrics=metrics)
    except (ValueError, TypeError, KeyError) as exc:
        raise SerializationError(
            f"{where}: field 'config': the pipeline cannot be rebuilt: {exc}"
        ) from exc
    state = {k: _dec_tree(v, f"config.state.{k}", where) for k, v in config["state"].items()}
    return pipe, doc, state


def _read(directory: Path, like: dict, what: str, *, strict: bool) -> dict:
    try:
        tree, _ = load_checkpoint(directory, like=like, strict=strict)
    except CheckpointError as exc:
        raise SerializationError(f"load: {exc}{what}") from exc
    return tree


def _install(pipe, config: dict, tree: dict) -> None:
    pipe.params = tree["params"]
    pipe.state = tree["state"]
    for name, p in tree["params"].items():
        st = pipe.stages[name]
        st.params = p
        if st.module is not None:
            st.module = p
    pipe.mode = config["mode"]
    pipe.steps_done = config["steps_done"]


def load(directory: str | os.PathLike):
    """Rebuild a pipeline saved by :func:`save` from registered types, with its parameters,
    state, losses, metrics and mode (a pipeline saved after ``.infer()`` loads in inference
    mode). The whole file is checked before anything is built: a malformed one raises
    :class:`SerializationError` naming the field."""
    directory = Path(directory)
    pipe, doc, state = _build(directory)
    kinds = ("params.", "state.") + (("opt_state.",) if "train" in doc["config"] else ())
    _check_leaves(doc, kinds, directory)
    tree = _read(directory, {"params": pipe.params, "state": state}, "", strict=False)
    _install(pipe, doc["config"], tree)
    return pipe


def _check_leaves(doc: dict, prefixes: tuple[str, ...], directory: Path) -> None:
    for i, leaf in enumerate(doc["leaves"]):
        if not leaf["name"].startswith(prefixes):
            raise SerializationError(
                f"load: {directory / 'checkpoint.json'}: field 'leaves[{i}].name': a saved "
                f"pipeline holds no leaf {leaf['name']!r}"
            )


def load_training(directory: str | os.PathLike, optimizer):
    """``(pipeline, train state)`` saved by :func:`save` with a ``train_state``: training
    goes on from the saved step with the saved optimizer state (``optimizer`` must be the
    one it was saved with: its state must have the same structure)."""
    from .pipeline import TrainState

    directory = Path(directory)
    pipe, doc, state = _build(directory)
    config = doc["config"]
    saved = config.get("train")
    if saved is None:
        raise SerializationError(
            f"load: {directory} holds a pipeline saved without its training state (pipe.save; "
            "field 'config.train' is absent): save with Trainer.save to resume training, or "
            "start anew with pl.Trainer(pl.load(path), optimizer)"
        )
    trainable = tuple(saved["trainable"])
    if trainable != pipe.trainable_stages():
        raise SerializationError(
            f"load: {directory / 'checkpoint.json'}: field 'config.train.trainable': "
            f"{list(trainable)}, but the saved stages make {list(pipe.trainable_stages())} "
            "trainable"
        )
    template = pipe.init(optimizer, seed=saved["seed"])
    tree = _read(
        directory,
        {"params": pipe.params, "state": state, "opt_state": template.opt_state},
        " (is the optimizer the one the training state was saved with?)",
        strict=True,
    )
    _install(pipe, config, tree)
    ts = TrainState(
        params=tree["params"],
        opt_state=tree["opt_state"],
        state=dict(tree["state"]),
        step=saved["step"],
        optimizer=optimizer,
        seed=saved["seed"],
        trainable=trainable,
    )
    return pipe, ts
