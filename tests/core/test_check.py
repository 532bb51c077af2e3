"""check_grads must catch wrong rules, in each mode and at each order."""

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp


def _wrong(name, vjp_factor=1.0, jvp_factor=1.0, second_order_bug=False):
    p = ds.Primitive(name, np.sin)
    if second_order_bug:
        # first derivative right, but its derivative wrong: cos is treated as a constant
        p.defvjp(lambda g, ans, x: g * ds.stop_gradient(dnp.cos(x)))
        p.defjvp(lambda t, ans, x: t * ds.stop_gradient(dnp.cos(x)))
    else:
        p.defvjp(lambda g, ans, x: vjp_factor * g * dnp.cos(x))
        p.defjvp(lambda t, ans, x: jvp_factor * t * dnp.cos(x))
    p.defbatch(lambda args, batched: p(args[0]))
    return p


x = np.array([0.3, -0.8, 1.1])


def test_correct_rules_pass_at_order_three():
    ds.check_grads(lambda x: dnp.sum(dnp.sin(x) ** 2), (x,), order=3)


def test_wrong_vjp_is_caught_in_reverse_mode_only():
    p = _wrong("test_wrong_vjp", vjp_factor=1.01)
    ds.check_grads(p, (x,), order=1, modes=("fwd",))
    with pytest.raises(ds.GradientCheckError) as err:
        ds.check_grads(p, (x,), order=1, modes=("rev",))
    msg = str(err.value)
    assert "reverse" in msg and "order 1" in msg and "absolute error" in msg
    assert "relative error" in msg and "test_wrong_vjp" in msg


def test_wrong_jvp_is_caught_in_forward_mode():
    p = _wrong("test_wrong_jvp", jvp_factor=0.99)
    with pytest.raises(ds.GradientCheckError, match="forward-mode derivative of order 1"):
        ds.check_grads(p, (x,), order=1, modes=("fwd",))


def test_wrong_second_derivative_is_caught_at_order_two():
    p = _wrong("test_wrong_second", second_order_bug=True)
    ds.check_grads(p, (x,), order=1)
    with pytest.raises(ds.GradientCheckError, match="order 2"):
        ds.check_grads(p, (x,), order=2)


def test_integer_arguments_are_held_fixed():
    ds.check_grads(lambda x, n: dnp.sum(x**n), (x, 3), order=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="modes"):
        ds.check_grads(dnp.sin, (x,), modes=("sideways",))
    with pytest.raises(ValueError, match="no floating-point"):
        ds.check_grads(lambda n: n, (3,))


def test_mixed_real_and_complex_outputs():
    # A real output's cotangent stays real when complex outputs are probed with i*u: with an
    # imaginary seed on |z|, correct rules used to be reported as wrong.
    z = np.array([1.0 + 2.0j, 0.5 - 1.0j])
    ds.check_grads(lambda z: (dnp.abs(z), z * z), (z,), order=2)


def test_mixed_outputs_still_catch_a_wrong_rule():
    z = np.array([1.0 + 2.0j, 0.5 - 1.0j])
    wrong = _wrong("wrong_sin_mixed_outputs", vjp_factor=1.5)
    with pytest.raises(ds.GradientCheckError, match="reverse"):
        ds.check_grads(lambda z: (wrong(dnp.abs(z)), z * z), (z,), order=1, modes=("rev",))


def test_gradient_errors_measures_each_mode_separately():
    from diffsys.check import gradient_errors

    x = np.array([0.3, -0.7, 1.1])
    fwd, rev = gradient_errors(_wrong("ge_ok"), (x,))
    assert fwd < 1e-8 and rev < 1e-8
    fwd, rev = gradient_errors(_wrong("ge_bad_vjp", vjp_factor=1.5), (x,))
    assert fwd < 1e-8 and 0.1 < rev  # only the reverse rule is wrong
    fwd, rev = gradient_errors(_wrong("ge_bad_jvp", jvp_factor=2.0), (x,), modes=("fwd",))
    assert 0.5 < fwd and rev is None
    with pytest.raises(ValueError, match="no floating-point argument"):
        gradient_errors(_wrong("ge_int"), (np.arange(3),))
    with pytest.raises(ValueError, match="modes must be"):
        gradient_errors(_wrong("ge_mode"), (x,), modes=("backward",))
