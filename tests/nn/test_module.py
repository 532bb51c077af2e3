"""Module as a pytree: fields, immutability, names, partition, state, modes."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn


class Block(nn.Module):
    conv: nn.Conv2d
    norm: nn.LayerNorm
    scale: np.ndarray
    activation: object

    def __init__(self, key):
        self.conv = nn.Conv2d(2, 3, 3, padding=1, key=key)
        self.norm = nn.LayerNorm(4)
        self.scale = np.array(2.0)
        self.activation = nn.relu

    def __call__(self, x, *, key=None):
        return self.scale * self.norm(self.activation(self.conv(x)))


class Encoder(nn.Module):
    block: Block
    head: nn.Linear

    def __init__(self):
        rng = np.random.default_rng(0)
        self.block = Block(rng)
        self.head = nn.Linear(3 * 4 * 4, 2, key=rng)

    def __call__(self, x, *, key=None):
        h = self.block(x)
        return self.head(dnp.reshape(h, (dnp.shape(h)[0], -1)))


def test_named_parameters_use_dotted_paths_in_leaf_order():
    model = Encoder()
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "block.conv.weight",
        "block.conv.bias",
        "block.norm.weight",
        "block.norm.bias",
        "block.scale",
        "head.weight",
        "head.bias",
    ]
    leaves = ds.tree_leaves(model)
    assert len(leaves) == len(names)
    for a, b in zip(leaves, model.parameters(), strict=True):
        assert a is b
    assert model.num_parameters() == sum(p.size for p in leaves)


def test_static_fields_stay_out_of_the_leaves_and_round_trip():
    model = Encoder()
    leaves, treedef = ds.tree_flatten(model)
    assert all(isinstance(x, np.ndarray) for x in leaves)
    rebuilt = ds.tree_unflatten(treedef, [x * 2 for x in leaves])
    assert isinstance(rebuilt, Encoder)
    assert rebuilt.block.activation is nn.relu
    assert rebuilt.block.conv.stride == (1, 1)
    np.testing.assert_array_equal(rebuilt.head.weight, 2 * model.head.weight)


def test_grad_differentiates_through_a_whole_model(rng):
    model = Encoder()
    x = rng.standard_normal((2, 2, 4, 4))

    def loss(m):
        return dnp.sum(m(x) ** 2)

    g = ds.grad(loss)(model)
    assert isinstance(g, Encoder)
    # finite-difference check of one coordinate of a nested parameter
    eps = 1e-6
    w = model.block.conv.weight
    e = np.zeros_like(w)
    e[1, 0, 2, 1] = eps
    plus = model.replace(block=model.block.replace(conv=model.block.conv.replace(weight=w + e)))
    minus = model.replace(block=model.block.replace(conv=model.block.conv.replace(weight=w - e)))
    fd = (loss(plus) - loss(minus)) / (2 * eps)
    np.testing.assert_allclose(g.block.conv.weight[1, 0, 2, 1], fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        float(g.block.scale),
        float(
            ds.grad(lambda s: loss(model.replace(block=model.block.replace(scale=s))))(
                np.array(2.0)
            )
        ),
    )


def test_modules_are_immutable_and_replace_makes_copies():
    layer = nn.Linear(2, 3, key=0)
    with pytest.raises(AttributeError, match="immutable.*replace"):
        layer.weight = np.zeros((3, 2))
    new = layer.replace(bias=np.zeros(3))
    assert new is not layer and np.all(new.bias == 0) and not np.all(layer.bias == 0)
    with pytest.raises(TypeError, match="unknown field"):
        layer.replace(nope=1)


def test_unset_field_is_a_clear_error():
    class Broken(nn.Module):
        a: np.ndarray
        b: np.ndarray

        def __init__(self):
            self.a = np.zeros(1)

    with pytest.raises(TypeError, match="did not set the field.*b"):
        Broken()


def test_generated_init_for_field_only_modules_and_subclasses_keep_parent_init():
    class Scale(nn.Module):
        factor: np.ndarray

        def __call__(self, x, *, key=None):
            return self.factor * x

    s = Scale(np.array(3.0))
    assert float(s(2.0)) == 6.0
    # MaxPool2d inherits its parent's __init__ (kernel_size first), not a generated one
    assert nn.MaxPool2d(3).kernel_size == 3


def test_partition_combine_and_training_only_the_unfrozen_part(rng):
    model = nn.Sequential([nn.Linear(3, 4, key=0), nn.tanh, nn.Linear(4, 1, key=1)])
    params, frozen = nn.partition(model, frozen="layers.0.*")
    assert sorted(params.named_parameter_dict()) == ["layers.2.bias", "layers.2.weight"]
    assert sorted(frozen.named_parameter_dict()) == ["layers.0.bias", "layers.0.weight"]
    x = rng.standard_normal((5, 3))

    def loss(p):
        return dnp.sum(nn.combine(p, frozen)(x) ** 2)

    g = ds.grad(loss)(params)
    assert g.layers[0].weight is None
    full = ds.grad(lambda m: dnp.sum(m(x) ** 2))(model)
    np.testing.assert_allclose(g.layers[2].weight, full.layers[2].weight)
    back = nn.combine(params, frozen)
    for a, b in zip(ds.tree_leaves(back), ds.tree_leaves(model), strict=True):
        assert a is b


def test_partition_by_filter_excludes_integer_leaves():
    tree = {"w": np.ones(2), "idx": np.arange(3)}
    a, b = nn.partition(tree)
    assert a["idx"] is None and b["w"] is None


def test_sequential_wraps_functions_and_threads_state_and_modes(rng):
    net = nn.Sequential([nn.Linear(3, 4, key=0), nn.BatchNorm(4), nn.relu, nn.Dropout(0.5)])
    with pytest.raises(TypeError, match="with_state"):
        net(np.ones((2, 3)))
    net, state = nn.with_state(net)
    assert list(state.keys()) == ["layers.1"]
    x = rng.standard_normal((16, 3))
    with pytest.raises(TypeError, match="key="):
        net(x, state)
    y, new_state = net(x, state, key=np.random.default_rng(0))
    assert y.shape == (16, 4)
    assert int(new_state["layers.1"]["count"]) == 1
    assert int(state["layers.1"]["count"]) == 0  # functional: the old state is unchanged
    ev = nn.eval_mode(net)
    assert not ev.layers[1].training and not ev.layers[3].training
    assert net.layers[1].training  # the original is unchanged
    y1, s1 = ev(x, new_state)
    y2, _ = ev(x, new_state)
    np.testing.assert_array_equal(y1, y2)  # deterministic in eval mode
    assert s1 is new_state
    assert nn.train_mode(ev).layers[3].training


def test_state_is_a_pytree_with_named_entries():
    _, state = nn.with_state(nn.Sequential([nn.Linear(2, 2, key=0), nn.BatchNorm(2)]))
    names = dict(nn.named_leaves(state))
    assert sorted(names) == ["layers.1.count", "layers.1.mean", "layers.1.var"]
    doubled = ds.tree_map(lambda x: x * 2, state)
    np.testing.assert_array_equal(doubled["layers.1"]["var"], 2 * np.ones(2))


def test_astype_casts_float_leaves():
    m = nn.astype(nn.Conv2d(1, 2, 3, key=0), np.float32)
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    y = m(np.ones((1, 1, 5, 5), np.float32))
    assert y.dtype == np.float32
    g = ds.grad(lambda m: dnp.sum(m(np.ones((1, 1, 5, 5), np.float32))))(m)
    assert g.weight.dtype == np.float32


def test_missing_key_is_a_clear_error():
    with pytest.raises(TypeError, match="Linear: key must be"):
        nn.Linear(2, 2, key=None)


def test_repr_shows_structure_and_shapes():
    text = repr(nn.Sequential([nn.Linear(3, 4, key=0), nn.relu]))
    assert "Linear(weight=float64[4, 3]" in text and "Lambda(fn=relu)" in text


class Clipped(nn.Module):
    limit: float
    weight: np.ndarray

    def __check_init__(self):
        if self.limit <= 0:
            raise ValueError(f"limit must be positive, got {self.limit}")


def test_module_fields_round_trip_through_module_from_fields():
    block = Block(key=0)
    static, children = nn.module_fields(block)
    assert nn.field_names(Block) == ("conv", "norm", "scale", "activation")
    assert list(children) == ["conv", "norm", "scale"] and list(static) == ["activation"]
    copy = nn.module_from_fields(Block, static, children)
    assert type(copy) is Block and copy is not block
    x = np.ones((1, 2, 4, 4))
    np.testing.assert_array_equal(copy(x), block(x))
    with pytest.raises(AttributeError, match="immutable"):
        copy.scale = np.zeros(3)  # rebuilt modules are frozen like constructed ones
    assert ds.tree_structure(copy) == ds.tree_structure(block)


def test_module_from_fields_names_missing_unknown_and_invalid_fields():
    static, children = nn.module_fields(Clipped(limit=1.0, weight=np.ones(2)))
    with pytest.raises(TypeError, match=r"no field\(s\) \['extra'\].*\['weight'\] not given"):
        nn.module_from_fields(Clipped, static, {"extra": 1})
    with pytest.raises(TypeError, match="both static and child"):
        nn.module_from_fields(Clipped, {**static, "weight": 1}, children)
    with pytest.raises(ValueError, match="limit must be positive"):
        nn.module_from_fields(Clipped, {"limit": -1.0}, children)
    with pytest.raises(TypeError, match="not an nn.Module class"):
        nn.module_from_fields(dict, static, children)


def test_module_docstring_examples():
    import doctest

    import diffsys.nn.module as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
