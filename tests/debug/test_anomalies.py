"""Anomaly mode: the first NaN/Inf is named (op, rule, argument), with shapes, dtypes and the
user's line; inputs already bad are reported as such; nothing is left installed afterwards."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.core.primitive import registry
from diffsys.core.reverse import ReverseTrace
from diffsys.debug import AnomalyError, AnomalyWarning, anomalies

HERE = __file__


def _line_of(text: str) -> int:
    """The line number in this file of the (unique) line ending with ``text``."""
    with open(HERE, encoding="utf-8") as f:
        hits = [i for i, line in enumerate(f, 1) if line.rstrip().endswith(text)]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def model_with_sqrt(x):
    h = x * 2.0
    r = dnp.sqrt(h)  # ANOMALY-SQRT
    return dnp.sum(r)


def model_with_log(x):
    shifted = x - 1.0
    return dnp.sum(dnp.log(shifted))  # ANOMALY-LOG


def model_with_complex_log(x):
    z = x * 0j  # complex zeros, finite
    w = dnp.log(z)  # ANOMALY-CLOG
    return dnp.sum(dnp.real(w))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # deliberate: log(0j), 1/0j
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_values_are_checked_and_blamed_on_the_op_that_made_them(dtype):
    with pytest.raises(AnomalyError) as info:
        with anomalies():
            dnp.log(np.array([0, 1], dtype))  # log(0j) = -inf + 0j
    err = info.value
    assert (err.primitive, err.phase, err.kind, err.already) == ("log", "forward", "Inf", None)
    assert f"(2,) {np.dtype(dtype).name}" in str(err)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # deliberate: log(0j), 1/0j
def test_complex_log_of_zero_is_named_in_every_pass():
    with pytest.raises(AnomalyError) as info:  # a Python complex scalar
        with anomalies():
            dnp.log(0j)
    assert (info.value.primitive, info.value.already) == ("log", None)
    x = np.array([1.0, 2.0])
    with pytest.raises(AnomalyError) as info:  # traced: not the later real() or sum()
        with anomalies():
            ds.grad(model_with_complex_log)(x)
    err = info.value
    assert (err.primitive, err.phase, err.kind, err.already) == ("log", "forward", "Inf", None)
    assert err.site[1] == _line_of("# ANOMALY-CLOG") and "complex128" in str(err)
    with pytest.raises(AnomalyError) as info:  # backward: sqrt's VJP at 0j divides by 0j
        with anomalies():
            ds.grad(lambda x: dnp.sum(dnp.real(dnp.sqrt(x * (1 + 0j)))))(np.array([0.0, 1.0]))
    err = info.value
    assert (err.primitive, err.phase, err.argnum, err.already) == ("sqrt", "backward", 0, None)
    with pytest.raises(AnomalyError) as info:  # forward mode: its tangent
        with anomalies():
            ds.jvp(lambda x: dnp.sqrt(x * (1 + 0j)), (np.array([0.0]),), (np.ones(1),))
    assert (info.value.primitive, info.value.phase, info.value.already) == ("sqrt", "tangent", None)


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # deliberate
def test_backward_inf_names_rule_argument_and_forward_line():
    x = np.array([0.0, 1.0, 4.0])
    assert np.isfinite(model_with_sqrt(x))  # the forward pass is fine: sqrt(0) = 0
    with pytest.raises(AnomalyError) as info:
        with anomalies():
            ds.grad(model_with_sqrt)(x)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert (err.primitive, err.phase, err.argnum, err.kind) == ("sqrt", "backward", 0, "Inf")
    assert err.already is None
    assert err.site[0] == HERE and err.site[1] == _line_of("# ANOMALY-SQRT")
    msg = str(err)
    assert "VJP rule of primitive 'sqrt' for its argument 0" in msg
    assert "(3,) float64" in msg
    assert "r = dnp.sqrt(h)" in msg  # the user's source line, from the forward pass


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # deliberate
def test_forward_nan_names_the_op_and_line():
    x = np.array([0.5, 2.0], dtype=np.float32)
    with pytest.raises(AnomalyError) as info:
        with anomalies():
            ds.grad(model_with_log)(x)
    err = info.value
    assert (err.primitive, err.phase, err.kind, err.already) == ("log", "forward", "NaN", None)
    assert err.site[1] == _line_of("# ANOMALY-LOG")
    assert "(2,) float32" in str(err) and "dnp.log(shifted)" in str(err)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # deliberate
def test_plain_call_outside_transforms_is_checked_too():
    with pytest.raises(AnomalyError) as info:
        with anomalies():
            dnp.log(np.array([-1.0]))
    assert info.value.primitive == "log" and info.value.phase == "forward"


def test_input_already_nan_is_not_blamed_on_the_op():
    x = np.array([np.nan, 1.0])
    with pytest.raises(AnomalyError) as info:
        with anomalies():
            ds.grad(lambda x: dnp.sum(dnp.sin(x)))(x)
    err = info.value
    assert err.primitive == "sin" and err.already == "input 0"
    assert "input 0 already contained NaN" in str(err)
    assert "did not produce it" in str(err)


def test_nan_seed_cotangent_is_reported_as_incoming():
    with pytest.raises(AnomalyError) as info:
        with anomalies():
            out, vjp_fn = ds.vjp(dnp.tanh, np.array([0.1, 0.2]))
            vjp_fn(np.array([np.nan, 1.0]))
    err = info.value
    assert err.phase == "backward" and err.already == "incoming cotangent"


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # deliberate
def test_inf_only_and_nan_only_options():
    x = np.array([0.0, 1.0])
    with anomalies(inf=False):  # the backward pass of sqrt at 0 gives Inf, not NaN
        g = ds.grad(model_with_sqrt)(x)
    assert np.isinf(g[0])
    with pytest.raises(AnomalyError):
        with anomalies(nan=False):
            ds.grad(model_with_sqrt)(x)
    with pytest.raises(ValueError):
        anomalies(nan=False, inf=False)


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # deliberate
def test_warn_instead_of_raise_keeps_the_first_report():
    x = np.array([0.0, 1.0])
    with pytest.warns(AnomalyWarning, match="VJP rule of primitive 'sqrt'") as record:
        with anomalies(warn=True) as mode:
            g = ds.grad(model_with_sqrt)(x)
    assert np.isinf(g[0])  # the computation went on, unchanged
    assert len([w for w in record if issubclass(w.category, AnomalyWarning)]) == 1
    assert isinstance(mode.report, AnomalyError) and mode.report.primitive == "sqrt"


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # deliberate
def test_higher_order_and_forward_mode():
    x = np.array([0.0, 1.0])
    with pytest.raises(AnomalyError) as info:  # jvp: the tangent of sqrt at 0 is Inf
        with anomalies():
            ds.jvp(model_with_sqrt, (x,), (np.ones(2),))
    assert info.value.phase == "tangent" and info.value.primitive == "sqrt"
    assert info.value.site[1] == _line_of("# ANOMALY-SQRT")
    with pytest.raises(AnomalyError) as info:  # grad of grad: the first backward pass
        with anomalies():
            ds.grad(lambda x: dnp.sum(ds.grad(model_with_sqrt)(x)))(x)
    assert info.value.primitive == "sqrt" and info.value.phase == "backward"


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # deliberate
def test_custom_vjp_backward_is_checked():
    @ds.custom_vjp
    def f(x):
        return x

    f.defvjp(lambda x: (x, None), lambda res, g: (g / 0.0,))
    with pytest.raises(AnomalyError) as info:
        with anomalies():
            ds.grad(lambda x: dnp.sum(f(x)))(np.ones(2))  # CUSTOM-LINE
    err = info.value
    assert err.phase == "backward" and "custom_vjp" in err.primitive
    assert err.site[1] == _line_of("# CUSTOM-LINE")


def test_results_unchanged_and_everything_restored_afterwards():
    x = np.linspace(0.1, 1.0, 4)
    f = lambda x: dnp.sum(dnp.tanh(x) ** 2 * dnp.exp(x))
    impls = {prim: prim.impl for prim in registry.values()}  # strong refs: none collected
    methods = {k: ReverseTrace.__dict__[k] for k in ("process", "process1", "process2")}
    want = ds.hessian(f)(x)
    with anomalies():
        with anomalies(warn=True):  # nested: the inner options apply, one install
            got = ds.hessian(f)(x)
        ds.check_grads(f, (x,), order=2)
    np.testing.assert_array_equal(got, want)
    assert all(prim.impl is impl for prim, impl in impls.items())
    assert {k: ReverseTrace.__dict__[k] for k in methods} == methods


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # deliberate
def test_restored_after_an_error_and_no_checks_when_off():
    with pytest.raises(AnomalyError):
        with anomalies():
            dnp.log(np.array([-1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(dnp.log(np.array([-1.0]))[0])  # off again: no error
        assert np.isinf(ds.grad(model_with_sqrt)(np.array([0.0, 1.0]))[0])


def test_exception_message_holds_everything_for_a_matmul():
    w = np.ones((3, 2))
    x = np.array([[1.0, -1.0, np.inf]])

    def f(w):
        return dnp.sum(x @ w)

    with pytest.raises(AnomalyError) as info:
        with anomalies():
            ds.grad(f)(w)
    msg = str(info.value)
    assert "matmul" in msg and "input 0 already contained Inf" in msg
    assert "(1, 3) float64" in msg and "(3, 2) float64" in msg


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # deliberate
def test_other_threads_are_checked_while_a_block_is_open():
    """The mode is process-wide (documented): an anomaly in another thread raises there."""
    errors = []

    def work():
        try:
            dnp.log(np.array([-1.0]))
        except AnomalyError as e:
            errors.append(e)

    with anomalies():
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert len(errors) == 1


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # deliberate
def test_raise_mode_keeps_checking_after_a_caught_error():
    with anomalies() as mode:
        for _ in range(2):
            with pytest.raises(AnomalyError):
                dnp.log(np.array([-1.0]))
    assert mode.report.primitive == "log"
