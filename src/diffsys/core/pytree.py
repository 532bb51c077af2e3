"""Pytrees: nested containers of arrays that transforms flatten and rebuild.

Containers are tuples, lists, dicts (keys in sorted order), namedtuples, dataclasses, ``None``
(an empty node) and any type registered with :func:`register_pytree_node`. Everything else
is a leaf.

>>> leaves, treedef = tree_flatten({"b": (1, 2), "a": [3]})
>>> leaves
[3, 1, 2]
>>> tree_unflatten(treedef, [30, 10, 20])
{'a': [30], 'b': (10, 20)}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

_registry: dict[type, tuple[Callable, Callable]] = {}
# Handlers by exact type, ``None`` for leaf types: whether a type is a container (registered,
# a namedtuple, a dataclass, a dict subclass) is a property of the type, so it is worked out
# once per type instead of once per node. Registering a type drops its entry.
_handlers_by_type: dict[type, tuple[Callable, Callable] | None] = {}


def register_pytree_node(
    cls: type,
    flatten: Callable[[Any], tuple[Iterable, Any]],
    unflatten: Callable[[Any, list], Any],
    child_names: Callable[[Any], list[str]] | None = None,
) -> None:
    """Make ``cls`` a container: ``flatten(x) -> (children, aux)``,
    ``unflatten(aux, children) -> x``. ``aux`` must compare with ``==``. ``child_names(x)``
    (optional) names the children in flattening order, for :func:`tree_named_leaves`;
    without it they are numbered."""
    _registry[cls] = (flatten, unflatten)
    _handlers_by_type.pop(cls, None)
    if child_names is None:
        _child_namers.pop(cls, None)
    else:
        _child_namers[cls] = child_names


_child_namers: dict[type, Callable[[Any], list[str]]] = {}


def tree_child_names(x, n: int) -> list[str]:
    """Names of the ``n`` children of pytree node ``x``, in flattening order: a registered
    type's ``child_names``, a dict's keys (sorted, as flattened), a namedtuple's or a
    dataclass's fields, else ``"0"``, ``"1"``, ...

    >>> tree_child_names({"b": 1, "a": 2}, 2)
    ['a', 'b']
    """
    namer = _child_namers.get(type(x))
    if namer is not None:
        return [str(name) for name in namer(x)]
    if isinstance(x, dict):
        return [str(k) for k in _dict_keys(x)]
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):
        return list(type(x)._fields)
    fields = getattr(type(x), "__dataclass_fields__", None)
    if fields is not None and len(fields) == n:
        return list(fields)
    return [str(i) for i in range(n)]


def tree_named_leaves(tree, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted name, leaf)`` for every leaf of ``tree`` (``None`` is no leaf), in
    :func:`tree_leaves` order.

    >>> dict(tree_named_leaves({"enc": [1.0, 2.0], "w": 3.0}))
    {'enc.0': 1.0, 'enc.1': 2.0, 'w': 3.0}
    """
    children, treedef = tree_flatten(tree, is_leaf=lambda y: y is not tree)
    if treedef.node_type is None:  # tree is itself a leaf
        yield prefix, tree
        return
    for name, child in zip(tree_child_names(tree, len(children)), children, strict=True):
        if child is None:
            continue
        yield from tree_named_leaves(child, f"{prefix}.{name}" if prefix else name)


def _dict_keys(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:  # keys of mixed types: keep insertion order
        return list(d)


register_pytree_node(tuple, lambda t: (t, None), lambda _, c: tuple(c))
register_pytree_node(list, lambda t: (t, None), lambda _, c: list(c))
register_pytree_node(type(None), lambda _: ((), None), lambda _a, _c: None)


def _flatten_dict(d):
    keys = _dict_keys(d)
    return [d[k] for k in keys], (type(d), tuple(keys))


def _unflatten_dict(aux, children):
    cls, keys = aux
    out = dict(zip(keys, children, strict=True))
    return out if cls is dict else cls(out)


register_pytree_node(dict, _flatten_dict, _unflatten_dict)


def _node_handlers(x) -> tuple[Callable, Callable] | None:
    cls = type(x)
    try:
        return _handlers_by_type[cls]
    except KeyError:
        handlers = _handlers_by_type[cls] = _find_handlers(x, cls)
        return handlers


def _find_handlers(x, cls: type) -> tuple[Callable, Callable] | None:
    handlers = _registry.get(cls)
    if handlers is not None:
        return handlers
    if isinstance(x, tuple) and hasattr(cls, "_fields"):  # namedtuple
        return (lambda t: (tuple(t), None), lambda _, c, cls=cls: cls(*c))
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x))
        return (
            lambda obj: ([getattr(obj, n) for n in names], None),
            lambda _, c, cls=cls: _build_dataclass(cls, names, c),
        )
    if isinstance(x, dict):  # OrderedDict, defaultdict, ... keep their class
        return (_flatten_dict, _unflatten_dict)
    return None


def _build_dataclass(cls, names, children):
    obj = object.__new__(cls)
    for n, c in zip(names, children, strict=True):
        object.__setattr__(obj, n, c)
    return obj


class PyTreeDef(NamedTuple):
    """The structure of a pytree: node type, auxiliary data, and child structures."""

    node_type: type | None  # None marks a leaf
    aux: Any
    children: tuple
    num_leaves: int

    def __repr__(self) -> str:
        if self.node_type is None:
            return "*"
        inner = ", ".join(repr(c) for c in self.children)
        return f"{self.node_type.__name__}({inner})"


_LEAF = PyTreeDef(None, None, (), 1)


def tree_flatten(tree, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """Leaves of ``tree`` in a fixed order, and its structure."""
    leaves: list = []
    treedef = _flatten(tree, leaves, is_leaf)
    return leaves, treedef


def _flatten(x, leaves: list, is_leaf) -> PyTreeDef:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    handlers = _node_handlers(x)
    if handlers is None:
        leaves.append(x)
        return _LEAF
    children, aux = handlers[0](x)
    defs = []
    num_leaves = 0
    for c in children:
        d = _flatten(c, leaves, is_leaf)
        defs.append(d)
        num_leaves += d[3]  # num_leaves (tuple indexing: this runs once per node)
    return PyTreeDef(type(x), (handlers[1], aux), tuple(defs), num_leaves)


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable) -> Any:
    """Rebuild a pytree of structure ``treedef`` from ``leaves``."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(
            f"tree_unflatten: the structure {treedef} has {treedef.num_leaves} leaves, "
            f"but {len(leaves)} were given"
        )
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(treedef: PyTreeDef, it) -> Any:
    if treedef[0] is None:  # node_type (tuple indexing: this runs once per node)
        return next(it)
    unflatten, aux = treedef[1]
    return unflatten(aux, [_unflatten(c, it) for c in treedef[2]])


def tree_leaves(tree, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of ``tree``, in flattening order."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree) -> PyTreeDef:
    return tree_flatten(tree)[1]


def key_paths(tree) -> list[str]:
    """A readable path for each leaf of ``tree``, in flattening order (for error messages):
    ``['w']`` for dict keys, ``[0]`` for sequence items, ``.name`` for fields.

    >>> key_paths({"b": (1, 2), "a": [3]})
    ["['a'][0]", "['b'][0]", "['b'][1]"]
    """
    out: list[str] = []

    def walk(x, path: str) -> None:
        handlers = _node_handlers(x)
        if handlers is None:
            out.append(path)
            return
        children, aux = handlers[0](x)
        children = list(children)
        if isinstance(x, dict):
            names = [f"[{k!r}]" for k in aux[1]]
        elif hasattr(type(x), "_fields"):
            names = [f".{f}" for f in type(x)._fields]
        elif dataclasses.is_dataclass(x) and not hasattr(aux, "dynamic"):
            names = [f".{f.name}" for f in dataclasses.fields(x)]
        elif hasattr(aux, "dynamic"):  # nn.Module: its dynamic fields
            names = [f".{n}" for n in aux.dynamic]
        else:
            names = [f"[{i}]" for i in range(len(children))]
        if len(names) != len(children):
            names = [f"[{i}]" for i in range(len(children))]
        for name, c in zip(names, children, strict=True):
            walk(c, path + name)

    walk(tree, "")
    return out


def tree_map(f: Callable, tree, *rest, is_leaf: Callable[[Any], bool] | None = None):
    """Apply ``f`` leaf-wise to ``tree`` (and to matching leaves of trees in ``rest``).

    >>> tree_map(lambda x, y: x + y, {"a": 1, "b": (2, 3)}, {"a": 10, "b": (20, 30)})
    {'a': 11, 'b': (22, 33)}
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = []
    for r in rest:
        r_leaves, r_def = tree_flatten(r, is_leaf)
        if not same_structure(treedef, r_def):
            raise ValueError(f"tree_map: trees have different structures: {treedef} and {r_def}")
        others.append(r_leaves)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others, strict=True)])


def same_structure(a: PyTreeDef, b: PyTreeDef) -> bool:
    """Whether two structures match (node types, auxiliary data, children)."""
    try:
        if a == b:  # equal tuples, compared in C (stricter: the unflatten functions too)
            return True
    except Exception:  # noqa: BLE001 - auxiliary data whose == is not a bool (arrays)
        pass
    return _same_structure(a, b)


def _same_structure(a: PyTreeDef, b: PyTreeDef) -> bool:
    if a.node_type is not b.node_type or a.num_leaves != b.num_leaves:
        return False
    if a.node_type is None:
        return True
    if a.aux[1] != b.aux[1] or len(a.children) != len(b.children):
        return False
    return all(_same_structure(x, y) for x, y in zip(a.children, b.children, strict=True))
