"""One set of conventions (issue 13, section 5): a module's eval()/train() is a copy and
throwing the copy away is an error; named_parameters() yields (name, array) pairs."""

from __future__ import annotations

import numpy as np
import pytest

from diffsys import nn


def _net():
    return nn.Sequential([nn.Linear(3, 4, key=0), nn.BatchNorm(4), nn.Dropout(0.5)])


def _training_flags(net):
    return [m.training for _, m in net.modules() if "training" in m.__dict__]


def test_a_discarded_eval_raises_and_names_the_fix():
    net = _net()
    with pytest.raises(
        RuntimeError, match=r"Sequential.eval\(\) returns a copy.*net = net.eval\(\)"
    ):
        net.eval()
    assert all(_training_flags(net))  # unchanged, as the message says
    # used as values, eval()/train() work wherever the result is kept
    evaluated = net.eval()
    assert not any(_training_flags(evaluated)) and all(_training_flags(net))
    assert all(_training_flags(evaluated.train()))
    assert [m.eval().training for m in [nn.Dropout(0.1)]] == [False]
    make = lambda m: m.eval()  # noqa: E731
    assert make(nn.Dropout(0.1)).training is False
    x = np.ones((2, 3))
    net_s, state = nn.with_state(net)
    out_eval, _ = net_s.eval()(x, state)
    np.testing.assert_allclose(out_eval, nn.eval_mode(net_s)(x, state)[0])


def test_a_discarded_train_inside_a_function_raises():
    def switch(net):
        net.train()
        return net

    with pytest.raises(RuntimeError, match=r"Dropout.train\(\).*net = net.train\(\)"):
        switch(nn.Dropout(0.5))


def test_named_parameters_yields_name_array_pairs_and_the_dict_twin():
    net = nn.Sequential([nn.Linear(3, 2, key=0), nn.relu, nn.Linear(2, 1, key=1)])
    pairs = list(net.named_parameters())
    assert [(n, p.shape) for n, p in pairs] == [
        ("layers.0.weight", (2, 3)),
        ("layers.0.bias", (2,)),
        ("layers.2.weight", (1, 2)),
        ("layers.2.bias", (1,)),
    ]
    assert pairs[0][1] is net.layers[0].weight
    as_dict = net.named_parameter_dict()
    assert list(as_dict) == [n for n, _ in pairs]
    assert all(as_dict[n] is p for n, p in pairs)
    assert [n for n, _ in net.named_parameters(prefix="model")][0] == "model.layers.0.weight"
    assert len(net.parameters()) == 4
