from collections import OrderedDict, namedtuple
from dataclasses import dataclass, field

import numpy as np
import pytest

import diffsys as ds

Point = namedtuple("Point", "x y")


@dataclass(frozen=True)
class Frozen:
    a: object
    b: object = field(default=None)


def test_flatten_unflatten_round_trip():
    tree = {"b": (1, [2, 3]), "a": Point(4, None), "c": Frozen(5, {"z": 6})}
    leaves, treedef = ds.tree_flatten(tree)
    assert leaves == [4, 1, 2, 3, 5, 6]  # dict keys sorted; None is an empty node
    rebuilt = ds.tree_unflatten(treedef, leaves)
    assert rebuilt == tree
    assert ds.tree_leaves(tree) == leaves


def test_tree_map_multiple_trees_and_structure_mismatch():
    a = {"x": np.ones(2), "y": [1.0, 2.0]}
    b = {"x": np.ones(2), "y": [3.0, 4.0]}
    out = ds.tree_map(lambda u, v: u + v, a, b)
    assert out["y"] == [4.0, 6.0]
    with pytest.raises(ValueError, match="different structures"):
        ds.tree_map(lambda u, v: u, a, {"x": 1.0})


def test_ordered_dict_keeps_class():
    od = OrderedDict([("z", 1), ("a", 2)])
    out = ds.tree_map(lambda v: v * 10, od)
    assert isinstance(out, OrderedDict) and out["z"] == 10


def test_register_pytree_node():
    class Box:
        def __init__(self, items, label):
            self.items = items
            self.label = label

    ds.register_pytree_node(Box, lambda b: (b.items, b.label), lambda lab, c: Box(list(c), lab))
    b = ds.tree_map(lambda v: v + 1, Box([1, 2], "L"))
    assert b.items == [2, 3] and b.label == "L"


def test_unflatten_wrong_leaf_count():
    _, treedef = ds.tree_flatten((1, 2))
    with pytest.raises(ValueError, match="2 leaves"):
        ds.tree_unflatten(treedef, [1])


def test_is_leaf():
    leaves, _ = ds.tree_flatten([(1, 2), (3, 4)], is_leaf=lambda t: isinstance(t, tuple))
    assert leaves == [(1, 2), (3, 4)]


class Pair:
    def __init__(self, left, right):
        self.left, self.right = left, right


class Bag:
    def __init__(self, items):
        self.items = items


ds.register_pytree_node(
    Pair, lambda p: ((p.left, p.right), None), lambda _, c: Pair(*c), lambda p: ["left", "right"]
)
ds.register_pytree_node(Bag, lambda b: (tuple(b.items), None), lambda _, c: Bag(list(c)))


def test_named_leaves_use_registered_child_names_dicts_and_fields():
    tree = {
        "p": Pair(1.0, Point(2.0, None)),
        "bag": Bag([3.0, 4.0]),
        "f": Frozen(a=5.0),
        "skip": None,
    }
    named = dict(ds.tree_named_leaves(tree))
    assert named == {
        "bag.0": 3.0,  # a registered type without child_names: numbered
        "bag.1": 4.0,
        "f.a": 5.0,
        "p.left": 1.0,
        "p.right.x": 2.0,
    }
    assert [v for _, v in ds.tree_named_leaves(tree)] == ds.tree_leaves(tree)
    assert list(ds.tree_named_leaves(7.0, "x")) == [("x", 7.0)]
