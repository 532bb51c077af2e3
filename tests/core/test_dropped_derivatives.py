"""float(), int(), complex() and indexing turn a traced value into a Python number with no
derivative: on a value being differentiated they warn once per line of user code (the
DroppedDerivativeWarning); ds.stop_gradient first silences it; bool and comparisons (control
flow) stay silent."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.core.warn import DroppedDerivativeWarning


def _caught(fn):
    """The DroppedDerivativeWarnings that ``fn()`` gives, under the default filter (which
    shows a warning once per line), and fn's result."""
    with warnings.catch_warnings(record=True) as record:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        result = fn()
    return [w for w in record if w.category is DroppedDerivativeWarning], result


def test_issue_examples_warn_at_the_users_line():
    caught, g = _caught(lambda: ds.grad(lambda w: math.exp(w))(1.0))
    assert g == 0.0 and len(caught) == 1
    assert caught[0].filename == __file__  # the user's line, not diffsys's
    assert "float()" in str(caught[0].message) and "stop_gradient" in str(caught[0].message)
    caught, g = _caught(lambda: ds.grad(lambda w: float(w) * w)(2.0))
    assert g == 2.0 and len(caught) == 1 and caught[0].filename == __file__
    assert ds.DroppedDerivativeWarning is DroppedDerivativeWarning


@pytest.mark.parametrize(
    "convert,how",
    [
        (float, "float()"),
        (int, "int()"),
        (lambda w: complex(w).real, "complex()"),
        (lambda w: math.sin(w), "float()"),
        (lambda w: float(dnp.sin(w) * 2.0), "float()"),
        (lambda w: w.item(), ".item()"),
        (lambda w: dnp.reshape(w, (1,)).tolist()[0], ".tolist()"),
    ],
)
@pytest.mark.parametrize(
    "transform",
    [
        lambda f: ds.grad(f)(1.5),
        lambda f: ds.jvp(f, (1.5,), (1.0,)),
        lambda f: ds.grad(ds.grad(f))(1.5),
        lambda f: ds.jacfwd(f)(1.5),
        lambda f: ds.hessian(f)(1.5),
    ],
    ids=["grad", "jvp", "grad_grad", "jacfwd", "hessian"],
)
def test_each_conversion_warns_under_each_transform(convert, how, transform):
    caught, _ = _caught(lambda: transform(lambda w: w * convert(w)))
    assert len(caught) == 1
    assert caught[0].message.args[0].startswith(how)


def test_integer_values_have_no_derivative_to_lose():
    # int() of an integer traced value (an argmax) is silent; of a float one it warns
    caught, g = _caught(
        lambda: ds.grad(lambda x: x[dnp.argmax(x)] * x[int(dnp.argmax(x))])(np.arange(3.0))
    )
    assert caught == []
    np.testing.assert_array_equal(g, [0.0, 0.0, 4.0])
    caught, _ = _caught(lambda: ds.grad(lambda x: dnp.sum(x[int(x[0])]))(np.arange(3.0)))
    assert len(caught) == 1 and "int()" in str(caught[0].message)


def test_once_per_call_site():
    def loss(w):
        return w * float(w)  # one call site

    def run():
        for _ in range(5):
            ds.grad(loss)(2.0)
            ds.grad(lambda w: w * math.exp(w))(1.0)  # a second call site

    caught, _ = _caught(run)
    assert len(caught) == 2
    assert len({w.lineno for w in caught}) == 2


def test_stop_gradient_silences_it():
    caught, g = _caught(lambda: ds.grad(lambda w: float(ds.stop_gradient(w)) * w)(2.0))
    assert caught == [] and g == 2.0
    caught, g = _caught(lambda: ds.grad(lambda w: math.exp(ds.stop_gradient(w)) * w)(1.0))
    assert caught == [] and g == math.e
    caught, t = _caught(lambda: ds.jvp(lambda w: int(ds.stop_gradient(w)) * w, (2.0,), (1.0,)))
    assert caught == [] and t[1] == 2.0
    caught, t = _caught(lambda: ds.jvp(lambda w: int(w) * w, (2.0,), (1.0,)))  # without: warns
    assert len(caught) == 1 and t[1] == 2.0


def test_control_flow_and_untraced_values_stay_silent():
    def f(w):
        if w > 0 and bool(w < 10) and w != 3.0:
            w = w * 2.0
        while w > 1.0:
            w = w / 2.0
        return w * float(np.float64(1.5)) + len(dnp.ones(3))

    caught, g = _caught(lambda: ds.grad(f)(3.5))
    assert caught == [] and g == 2.0 * 1.5 / 8.0
    caught, _ = _caught(lambda: ds.grad(lambda w: f(w) * float(w))(3.5))
    assert len(caught) == 1  # the same function with a float() warns


def test_a_filter_can_make_it_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DroppedDerivativeWarning)
        with pytest.raises(DroppedDerivativeWarning):
            ds.grad(lambda w: float(w) * w)(2.0)
