"""``Module``: a model as an ordinary value, a pytree that owns its named parameters.

Subclasses declare their fields with annotations, as dataclasses do, and set them in
``__init__``; after construction a module is immutable. Array fields (and sub-modules, lists
and dicts of them) are the pytree's children, so ``ds.grad`` differentiates with respect to
a whole model; everything else (sizes, strides, activation functions, flags) is static
structure that transforms leave alone.

>>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
>>> from diffsys import nn
>>> class Affine(nn.Module):
...     weight: np.ndarray
...     bias: np.ndarray
...     def __init__(self, n):
...         self.weight = np.ones(n)
...         self.bias = np.zeros(n)
...     def __call__(self, x, *, key=None):
...         return self.weight * x + self.bias
>>> m = Affine(2)
>>> g = ds.grad(lambda m: dnp.sum(m(np.array([1.0, 2.0]))))(m)
>>> g.weight
array([1., 2.])

Non-trainable state (BatchNorm's running statistics) lives outside the module, in a
:class:`State` made by :func:`with_state`; see there.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import sys
from collections.abc import Callable, Iterator
from types import BuiltinFunctionType, FunctionType, MethodType
from typing import Any

import numpy as np

from ..core.pytree import register_pytree_node
from ..core.tracer import Tracer
from ._tree import named_leaves

__all__ = [
    "Lambda",
    "Module",
    "State",
    "eval_mode",
    "field",
    "field_names",
    "module_fields",
    "module_from_fields",
    "static",
    "train_mode",
    "with_state",
]

_STATIC = "diffsys.static"


def static(default: Any = dataclasses.MISSING, **kwargs) -> Any:
    """Declare a field as static structure (never a pytree leaf), whatever its value.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> class Masked(nn.Module):
    ...     mask: np.ndarray = nn.static()   # a fixed array, not a parameter
    """
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[_STATIC] = True
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


field = dataclasses.field

_STATIC_TYPES = (
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    type,
    np.dtype,
    FunctionType,
    BuiltinFunctionType,
    MethodType,
    functools.partial,
    range,
    slice,
    type(Ellipsis),
)


_STATIC_EXACT = frozenset(_STATIC_TYPES)


def _is_static_value(v) -> bool:
    """Values that are configuration rather than data: they go into the pytree structure."""
    t = type(v)
    if t in _STATIC_EXACT:  # the common cases first: this runs on every flatten
        return True
    if t is np.ndarray or v is None or t is list or t is dict:
        return False
    if isinstance(v, Module | Tracer | np.ndarray | np.generic):
        return False
    if isinstance(v, _STATIC_TYPES):
        return True
    if isinstance(v, tuple | frozenset) and not hasattr(v, "_fields"):
        return all(_is_static_value(x) for x in v)
    if callable(v) and not isinstance(v, list | dict | tuple):
        return True  # functions, primitives, callable objects that are not modules
    return False


class _Static:
    """The static part of a module's structure; compares with ``==`` (arrays by value)."""

    __slots__ = ("dynamic", "items")

    def __init__(self, dynamic: tuple[str, ...], items: tuple[tuple[str, Any], ...]) -> None:
        self.dynamic = dynamic
        self.items = items

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Static) or self.dynamic != other.dynamic:
            return False
        try:  # identical or plainly comparable static values: one tuple comparison
            if self.items == other.items:
                return True
        except (ValueError, TypeError):  # arrays among the static values
            pass
        if len(self.items) != len(other.items):
            return False
        for (na, a), (nb, b) in zip(self.items, other.items, strict=True):
            if na != nb or not _static_equal(a, b):
                return False
        return True

    def __hash__(self) -> int:
        return hash(self.dynamic)


def _static_equal(a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(np.array_equal(a, b))
        )
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects whose == is not a bool are different
        return False


def _field_specs(cls) -> tuple[tuple[str, bool], ...]:
    specs = cls.__dict__.get("_ds_field_specs")
    if specs is None:
        specs = tuple(
            (f.name, bool(f.metadata.get(_STATIC, False))) for f in dataclasses.fields(cls)
        )
        cls._ds_field_specs = specs
    return specs


def _flatten_module(m: Module):
    values = m.__dict__
    aux = values.get("_ds_aux")
    if aux is not None:  # a module is immutable: its split into children and static is too
        return [values[name] for name in aux.dynamic], aux
    cls = type(m)
    specs = cls.__dict__.get("_ds_field_specs") or _field_specs(cls)
    children, dynamic, items = [], [], []
    for name, forced_static in specs:
        v = values[name]
        if forced_static or _is_static_value(v):
            items.append((name, v))
        else:
            dynamic.append(name)
            children.append(v)
    aux = _Static(tuple(dynamic), tuple(items))
    if values.get("_ds_frozen", False):
        values["_ds_aux"] = aux
    return children, aux


def _module_child_names(m: Module) -> list[str]:
    return list(_flatten_module(m)[1].dynamic)


def _unflatten_module(cls, aux: _Static, children) -> Module:
    obj = object.__new__(cls)
    d = obj.__dict__
    for name, v in aux.items:
        d[name] = v
    for name, v in zip(aux.dynamic, children, strict=True):
        d[name] = v
    d["_ds_frozen"] = True
    d["_ds_aux"] = aux  # the same structure: children stay children whatever they hold now
    return obj


def field_names(cls: type[Module]) -> tuple[str, ...]:
    """The declared fields of a Module class, in declaration order.

    >>> from diffsys import nn
    >>> nn.field_names(nn.Linear)
    ('weight', 'bias', 'in_features', 'out_features')
    """
    return tuple(name for name, _ in _field_specs(cls))


def module_fields(m: Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a module into ``(static, children)``: its configuration values and its pytree
    children, each a dict by field name in declaration order. :func:`module_from_fields`
    puts them back together; serializers and tree tools use the pair.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> static, children = nn.module_fields(nn.Linear(3, 2, key=0))
    >>> sorted(children), static
    (['bias', 'weight'], {'in_features': 3, 'out_features': 2})
    """
    children, aux = _flatten_module(m)
    return dict(aux.items), dict(zip(aux.dynamic, children, strict=True))


def module_from_fields(
    cls: type[Module], static: dict[str, Any], children: dict[str, Any]
) -> Module:
    """Rebuild a module of class ``cls`` from the two halves :func:`module_fields` returns,
    without calling ``__init__``: every field must be given once. A class may define
    ``__check_init__(self)`` to validate such a rebuilt instance (it raises
    ``ValueError``/``TypeError`` on a configuration it cannot hold).

    >>> import numpy as np
    >>> from diffsys import nn
    >>> lin = nn.Linear(3, 2, key=0)
    >>> copy = nn.module_from_fields(nn.Linear, *nn.module_fields(lin))
    >>> bool(np.array_equal(copy.weight, lin.weight))
    True
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"module_from_fields: {cls!r} is not an nn.Module class")
    names = field_names(cls)
    both = sorted(set(static) & set(children))
    unknown = sorted((set(static) | set(children)) - set(names))
    missing = [n for n in names if n not in static and n not in children]
    if both or unknown or missing:
        parts = []
        if unknown:
            parts.append(f"no field(s) {unknown}")
        if missing:
            parts.append(f"field(s) {missing} not given")
        if both:
            parts.append(f"field(s) {both} given as both static and child")
        raise TypeError(
            f"module_from_fields({cls.__name__}): {'; '.join(parts)} (its fields: {list(names)})"
        )
    obj = object.__new__(cls)
    d = obj.__dict__
    for name in names:
        d[name] = static[name] if name in static else children[name]
    check = getattr(cls, "__check_init__", None)
    if check is not None:
        check(obj)
    d["_ds_frozen"] = True
    return obj


class Module:
    """Base class of models and layers: an immutable dataclass that is a pytree.

    Fields are declared with annotations. Children of the pytree are arrays, sub-modules,
    ``None`` and containers of them; other values are static. Use :func:`static` to force an
    array to be static. Modules compare by identity and are changed functionally:
    :meth:`replace` (``m.replace(weight=w)``).
    """

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # A class with its own __init__, or below one that has one, keeps it; otherwise the
        # dataclass __init__ (one argument per field) is generated.
        custom = "__init__" in cls.__dict__ or any(
            getattr(c.__dict__.get("__init__"), "_ds_custom", False) for c in cls.__mro__[1:]
        )
        dataclasses.dataclass(cls, init=not custom, repr=False, eq=False)
        cls._ds_field_specs = None
        cls._ds_field_specs = _field_specs(cls)
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            init(self, *args, **kw)
            if type(self) is cls:
                _finish_init(self)

        __init__._ds_custom = custom
        cls.__init__ = __init__
        register_pytree_node(
            cls, _flatten_module, functools.partial(_unflatten_module, cls), _module_child_names
        )

    def __setattr__(self, name: str, value) -> None:
        if self.__dict__.get("_ds_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} is immutable: cannot set {name!r} after construction; "
                f"use m.replace({name}=...) to make a changed copy"
            )
        object.__setattr__(self, name, value)

    def replace(self, **changes) -> Module:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return _replace_fields(self, changes)

    # --- introspection ----------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """``(dotted name, array)`` for every array leaf (``"encoder.conv1.weight"``), in
        pytree order, as PyTorch's ``named_parameters``; :meth:`named_parameter_dict` gives
        the same as a dict.

        >>> from diffsys import nn
        >>> [(name, p.shape) for name, p in nn.Linear(3, 2, key=0).named_parameters()]
        [('weight', (2, 3)), ('bias', (2,))]
        """
        return iter(named_leaves(self, prefix))

    def named_parameter_dict(self, prefix: str = "") -> dict[str, Any]:
        """``{dotted name: array}`` for every array leaf, in pytree order."""
        return dict(named_leaves(self, prefix))

    def parameters(self) -> list:
        """Every array leaf, in pytree order (the order of ``ds.tree_leaves``)."""
        return [p for _, p in named_leaves(self, "")]

    def num_parameters(self) -> int:
        """The number of scalar entries in all floating-point leaves."""
        return int(
            sum(
                int(np.size(p))
                for p in self.parameters()
                if np.issubdtype(np.asarray(_plain(p)).dtype, np.inexact)
            )
        )

    def modules(self) -> Iterator[tuple[str, Module]]:
        """``(dotted name, module)`` for this module and every sub-module, depth first."""
        yield from _walk_modules(self, "")

    def eval(self) -> Module:
        """A copy in evaluation mode (Dropout off, BatchNorm on running statistics); the
        module itself is unchanged, as modules are values. Use the result:
        ``net = net.eval()``. A call whose result is thrown away (``net.eval()`` as a
        statement, PyTorch's in-place habit) would change nothing, so it raises.

        >>> from diffsys import nn
        >>> net = nn.Dropout(0.5)
        >>> net.eval().training, net.training
        (False, True)
        """
        _check_result_used(self, "eval")
        return eval_mode(self)

    def train(self) -> Module:
        """A copy in training mode (``net = net.train()``); see :meth:`eval`."""
        _check_result_used(self, "train")
        return train_mode(self)

    def __repr__(self) -> str:
        return _repr(self, 0)


_DISCARDS: dict[tuple, bool] = {}  # (code object, instruction offset) -> result discarded


def _result_discarded(frame) -> bool:
    """Whether the call running at ``frame``'s current instruction has its result popped
    unused (the next instruction is ``POP_TOP``: an expression statement). Read once per
    call site from the bytecode; False where the layout is not recognised."""
    key = (frame.f_code, frame.f_lasti)
    hit = _DISCARDS.get(key)
    if hit is None:
        hit = False
        previous = None  # f_lasti may point into the CALL's inline caches: take the last
        for ins in dis.get_instructions(frame.f_code):  # instruction at or before it
            if ins.offset > frame.f_lasti:
                calls = previous is not None and previous.opname.startswith("CALL")
                hit = calls and ins.opname == "POP_TOP"
                break
            previous = ins
        _DISCARDS[key] = hit
    return hit


def _check_result_used(m: Module, method: str) -> None:
    frame = sys._getframe(2)  # the caller of Module.eval / Module.train
    if _result_discarded(frame):
        mode = "evaluation" if method == "eval" else "training"
        raise RuntimeError(
            f"{type(m).__name__}.{method}() returns a copy in {mode} mode and leaves the module "
            f"as it was (modules are immutable values), but the copy is thrown away here, so "
            f"nothing changes: write `net = net.{method}()` (or `net = nn."
            f"{method}_mode(net)`). For a pipeline, "
            "`pipe.infer()`/`pipe.train()` switch in place, or use `with pipe.inference():`."
        )


def _plain(x):
    while isinstance(x, Tracer):
        x = x._value
    return x


def _finish_init(m: Module) -> None:
    missing = [name for name, _ in _field_specs(type(m)) if name not in m.__dict__]
    if missing:
        raise TypeError(
            f"{type(m).__name__}.__init__ did not set the field(s) {', '.join(missing)}: every "
            "annotated field must be assigned"
        )
    object.__setattr__(m, "_ds_frozen", True)


def _replace_fields(m: Module, changes: dict) -> Module:
    names = {n for n, _ in _field_specs(type(m))}
    unknown = set(changes) - names
    if unknown:
        raise TypeError(f"{type(m).__name__}.replace: unknown field(s) {sorted(unknown)}")
    obj = object.__new__(type(m))
    obj.__dict__.update(m.__dict__)
    obj.__dict__.update(changes)
    obj.__dict__.pop("_ds_aux", None)  # the changed fields are classified afresh
    return obj


def _walk_modules(x, prefix: str) -> Iterator[tuple[str, Module]]:
    if isinstance(x, Module):
        yield prefix, x
        for name, _ in _field_specs(type(x)):
            yield from _walk_modules(x.__dict__[name], _join(prefix, name))
    elif isinstance(x, list | tuple):
        for i, c in enumerate(x):
            yield from _walk_modules(c, _join(prefix, str(i)))
    elif isinstance(x, dict):
        for k, c in x.items():
            yield from _walk_modules(c, _join(prefix, str(k)))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def map_modules(x, fn: Callable[[str, Module], Module], prefix: str = ""):
    """Rebuild ``x`` bottom-up with every module ``m`` (at dotted path ``p``) replaced by
    ``fn(p, m)`` (children first)."""
    if isinstance(x, Module):
        changes = {}
        for name, _ in _field_specs(type(x)):
            v = x.__dict__[name]
            nv = map_modules(v, fn, _join(prefix, name))
            if nv is not v:
                changes[name] = nv
        m = _replace_fields(x, changes) if changes else x
        return fn(prefix, m)
    if isinstance(x, list | tuple) and not hasattr(x, "_fields"):
        out = [map_modules(c, fn, _join(prefix, str(i))) for i, c in enumerate(x)]
        if all(a is b for a, b in zip(out, x, strict=True)):
            return x
        return type(x)(out)
    if isinstance(x, dict):
        out = {k: map_modules(c, fn, _join(prefix, str(k))) for k, c in x.items()}
        if all(out[k] is x[k] for k in x):
            return x
        return type(x)(out)
    return x


def _set_training(model, training: bool):
    def fn(_path, m):
        if "training" in m.__dict__ and isinstance(m.__dict__["training"], bool):
            return _replace_fields(m, {"training": training})
        return m

    return map_modules(model, fn)


def eval_mode(model):
    """A copy of ``model`` (any pytree of modules) with every ``training`` flag off.

    >>> from diffsys import nn
    >>> nn.eval_mode(nn.Dropout(0.5)).training
    False
    """
    return _set_training(model, False)


def train_mode(model):
    """A copy of ``model`` with every ``training`` flag on."""
    return _set_training(model, True)


# --- Lambda: a function as a layer ---------------------------------------------------------------


class Lambda(Module):
    """A parameter-free function as a layer (``Sequential`` wraps bare functions in it).

    >>> from diffsys import nn
    >>> import numpy as np
    >>> nn.Lambda(nn.relu)(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    fn: Callable

    def __init__(self, fn: Callable) -> None:
        if not callable(fn):
            raise TypeError(f"Lambda: expected a callable, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, x, *, key=None):
        return self.fn(x)


# --- State: non-trainable state such as running statistics --------------------------------------


class State:
    """Non-trainable state of a model (BatchNorm's running statistics), by module path.

    A pytree (a mapping from dotted module path to that module's state), kept apart from the
    parameters so that gradients and optimizers never see it. Made by :func:`with_state`;
    stateful layers are called as ``y, state = layer(x, state)`` and return the updated
    state (functional: the old one is unchanged).
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: dict[str, Any] | None = None) -> None:
        self._entries = dict(entries or {})

    def __getitem__(self, name: str):
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"State has no entry {name!r} (it has {sorted(self._entries)}); was the state "
                "made by nn.with_state for this model?"
            ) from None

    def set(self, name: str, value) -> State:
        """A new state with entry ``name`` replaced."""
        if name not in self._entries:
            raise KeyError(f"State.set: no entry {name!r} (it has {sorted(self._entries)})")
        entries = dict(self._entries)
        entries[name] = value
        return State(entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def keys(self):
        return self._entries.keys()

    def items(self):
        return self._entries.items()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {_short(v)}" for k, v in sorted(self._entries.items()))
        return f"State({{{inner}}})"


def _flatten_state(s: State):
    keys = sorted(s._entries)
    return [s._entries[k] for k in keys], tuple(keys)


def _unflatten_state(keys, children) -> State:
    return State(dict(zip(keys, children, strict=True)))


register_pytree_node(State, _flatten_state, _unflatten_state, lambda s: sorted(s._entries))


def with_state(model):
    """Name every stateful layer in ``model`` by its path; return ``(model, state)``.

    >>> from diffsys import nn
    >>> net = nn.Sequential([nn.Linear(3, 4, key=0), nn.BatchNorm(4)])
    >>> net, state = nn.with_state(net)
    >>> sorted(state.keys())
    ['layers.1']
    """
    entries: dict[str, Any] = {}

    def fn(path, m):
        init = getattr(m, "init_state", None)
        if init is None or "state_name" not in m.__dict__:
            return m
        name = path or type(m).__name__
        entries[name] = init()
        return _replace_fields(m, {"state_name": name})

    model = map_modules(model, fn)
    return model, State(entries)


# --- repr --------------------------------------------------------------------------------------


def _short(v) -> str:
    v = _plain(v)
    if isinstance(v, np.ndarray | np.generic):
        return f"{np.asarray(v).dtype}{list(np.shape(v))}"
    return repr(v)


def _repr(x, indent: int) -> str:
    pad = "  " * (indent + 1)
    if isinstance(x, Module):
        parts = []
        for name, _ in _field_specs(type(x)):
            v = x.__dict__.get(name, "<unset>")
            if name == "training" or (name == "state_name" and v is None):
                continue
            parts.append(f"{name}={_repr(v, indent + 1)},")
        if not parts:
            return f"{type(x).__name__}()"
        if sum(len(p) for p in parts) < 90 and not any(
            isinstance(x.__dict__.get(n), Module | list | tuple | dict)
            for n, _ in _field_specs(type(x))
        ):
            return f"{type(x).__name__}(" + " ".join(parts).rstrip(",") + ")"
        body = "\n".join(pad + p for p in parts)
        return f"{type(x).__name__}(\n" + body + "\n" + "  " * indent + ")"
    if isinstance(x, list | tuple) and any(isinstance(c, Module) for c in x):
        inner = "\n".join(f"{pad}{_repr(c, indent + 1)}," for c in x)
        o, c = ("[", "]") if isinstance(x, list) else ("(", ")")
        return f"{o}\n{inner}\n" + "  " * indent + c
    if isinstance(x, FunctionType | BuiltinFunctionType):
        return getattr(x, "__name__", repr(x))
    return _short(x)
