"""Elementwise primitives of diffsys.numpy: values, derivatives (against finite differences,
forward and reverse, to second order), broadcasting, ties and kinks, dtypes and batching."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp

SHAPES = [(), (3,), (2, 3)]
# Pairs of broadcast-compatible shapes, including 0-d with 0-d and 0-d with arrays.
SHAPE_PAIRS = [
    ((), ()),
    ((3,), (3,)),
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 1), (1, 3)),
    ((), (2, 3)),
    ((3,), ()),
]


# --- input samplers: each returns float64 values inside the function's domain ------------------


def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def away_from_zero(lo, hi):
    """Magnitudes in [lo, hi], random signs."""

    def sample(rng, shape):
        return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], size=shape)

    return sample


def normal(rng, shape):
    return rng.standard_normal(shape)


def asarray(value, shape):
    """``rng`` samplers return Python floats for shape (): keep 0-d inputs as arrays."""
    return np.asarray(value, dtype=np.float64).reshape(shape)


# name -> (diffsys function, numpy function, sampler)
UNARY = {
    "negative": (dnp.negative, np.negative, normal),
    "positive": (dnp.positive, np.positive, normal),
    "reciprocal": (dnp.reciprocal, np.reciprocal, away_from_zero(0.5, 2.0)),
    "exp": (dnp.exp, np.exp, uniform(-2.0, 2.0)),
    "exp2": (dnp.exp2, np.exp2, uniform(-2.0, 2.0)),
    "log": (dnp.log, np.log, uniform(0.3, 3.0)),
    "log2": (dnp.log2, np.log2, uniform(0.3, 3.0)),
    "log10": (dnp.log10, np.log10, uniform(0.3, 3.0)),
    "log1p": (dnp.log1p, np.log1p, uniform(-0.6, 2.0)),
    "expm1": (dnp.expm1, np.expm1, uniform(-2.0, 2.0)),
    "sqrt": (dnp.sqrt, np.sqrt, uniform(0.3, 3.0)),
    "square": (dnp.square, np.square, normal),
    "cbrt": (dnp.cbrt, np.cbrt, away_from_zero(0.3, 3.0)),
    "sin": (dnp.sin, np.sin, uniform(-3.0, 3.0)),
    "cos": (dnp.cos, np.cos, uniform(-3.0, 3.0)),
    "tan": (dnp.tan, np.tan, uniform(-1.2, 1.2)),
    "arcsin": (dnp.arcsin, np.arcsin, uniform(-0.8, 0.8)),
    "arccos": (dnp.arccos, np.arccos, uniform(-0.8, 0.8)),
    "arctan": (dnp.arctan, np.arctan, uniform(-3.0, 3.0)),
    "sinh": (dnp.sinh, np.sinh, uniform(-2.0, 2.0)),
    "cosh": (dnp.cosh, np.cosh, uniform(-2.0, 2.0)),
    "tanh": (dnp.tanh, np.tanh, uniform(-2.0, 2.0)),
    "arcsinh": (dnp.arcsinh, np.arcsinh, uniform(-3.0, 3.0)),
    "arccosh": (dnp.arccosh, np.arccosh, uniform(1.3, 3.0)),
    "arctanh": (dnp.arctanh, np.arctanh, uniform(-0.8, 0.8)),
    "abs": (dnp.abs, np.abs, away_from_zero(0.3, 2.0)),
    "absolute": (dnp.absolute, np.absolute, away_from_zero(0.3, 2.0)),
    "fabs": (dnp.fabs, np.fabs, away_from_zero(0.3, 2.0)),
    "sign": (dnp.sign, np.sign, away_from_zero(0.3, 2.0)),
}


def _no_ties(rng, sx, sy):
    """Independent normals whose broadcast pairs differ by at least 0.05."""
    while True:
        x, y = rng.standard_normal(sx), rng.standard_normal(sy)
        if np.min(np.abs(np.subtract(x, y))) > 0.05:
            return x, y


def _remainder_args(rng, sx, sy):
    """Dividends away from the jumps of remainder (x / y not near an integer)."""
    while True:
        x, y = rng.uniform(-3.0, 3.0, sx), away_from_zero(0.5, 2.0)(rng, sy)
        q = np.divide(x, y)
        frac = q - np.floor(q)
        if np.all((frac > 0.05) & (frac < 0.95)):
            return x, y


def _pair(sample_x, sample_y):
    return lambda rng, sx, sy: (sample_x(rng, sx), sample_y(rng, sy))


# name -> (diffsys function, numpy function, sampler(rng, shape_x, shape_y) -> (x, y))
BINARY = {
    "add": (dnp.add, np.add, _pair(normal, normal)),
    "subtract": (dnp.subtract, np.subtract, _pair(normal, normal)),
    "multiply": (dnp.multiply, np.multiply, _pair(normal, normal)),
    "divide": (dnp.divide, np.divide, _pair(normal, away_from_zero(0.5, 2.0))),
    "true_divide": (dnp.true_divide, np.true_divide, _pair(normal, away_from_zero(0.5, 2.0))),
    "power": (dnp.power, np.power, _pair(uniform(0.5, 2.0), uniform(-2.0, 2.0))),
    # arctan2(y, x): y away from 0 keeps clear of the branch cut on the negative x axis.
    "arctan2": (dnp.arctan2, np.arctan2, _pair(away_from_zero(0.3, 2.0), normal)),
    "maximum": (dnp.maximum, np.maximum, _no_ties),
    "minimum": (dnp.minimum, np.minimum, _no_ties),
    "fmax": (dnp.fmax, np.fmax, _no_ties),
    "fmin": (dnp.fmin, np.fmin, _no_ties),
    "logaddexp": (dnp.logaddexp, np.logaddexp, _pair(normal, normal)),
    "hypot": (dnp.hypot, np.hypot, _pair(away_from_zero(0.3, 2.0), away_from_zero(0.3, 2.0))),
    "remainder": (dnp.remainder, np.remainder, _remainder_args),
    "mod": (dnp.mod, np.mod, _remainder_args),
}

# Derivatives that are piecewise constant: the second order adds nothing but is still checked
# (it must be zero, which finite differences confirm away from the kinks).
ORDER = {name: 2 for name in [*UNARY, *BINARY]}


def _binary_args(rng, name, sx, sy):
    x, y = BINARY[name][2](rng, sx, sy)
    return asarray(x, sx), asarray(y, sy)


def _is_plain(value) -> bool:
    return isinstance(value, np.ndarray | np.generic) and not isinstance(value, ds.Tracer)


def numeric_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian of ``f`` at ``x``, shaped ``f(x).shape + x.shape``."""
    x = np.asarray(x, dtype=np.float64)
    out_shape = np.shape(f(x))
    jac = np.zeros(out_shape + x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        jac[(Ellipsis,) + idx] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)
    return jac


# --- values outside transforms -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_unary_values_are_plain_numpy(rng, name, shape):
    f, np_f, sample = UNARY[name]
    x = asarray(sample(rng, shape), shape)
    out = f(x)
    expected = np_f(x)
    assert _is_plain(out)
    assert type(out) is type(expected)
    assert out.dtype == expected.dtype and np.shape(out) == np.shape(expected)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("sx,sy", SHAPE_PAIRS, ids=str)
def test_binary_values_are_plain_numpy(rng, name, sx, sy):
    f, np_f, _ = BINARY[name]
    x, y = _binary_args(rng, name, sx, sy)
    out = f(x, y)
    expected = np_f(x, y)
    assert _is_plain(out)
    assert type(out) is type(expected)
    assert out.dtype == expected.dtype and np.shape(out) == np.shape(expected)
    np.testing.assert_array_equal(out, expected)


def test_python_scalars_give_numpy_results():
    assert dnp.add(1.0, 2.0) == np.add(1.0, 2.0)
    assert type(dnp.exp(1.0)) is type(np.exp(1.0))
    np.testing.assert_array_equal(dnp.power(2.0, np.arange(3.0)), np.power(2.0, np.arange(3.0)))
    np.testing.assert_array_equal(dnp.clip(np.arange(5.0), 1, 3), np.clip(np.arange(5.0), 1, 3))
    np.testing.assert_array_equal(
        dnp.clip(np.arange(5.0), None, 3), np.clip(np.arange(5.0), None, 3)
    )
    np.testing.assert_array_equal(
        dnp.clip(np.arange(5.0), 2, None), np.clip(np.arange(5.0), 2, None)
    )
    c = np.array([True, False, True])
    np.testing.assert_array_equal(
        dnp.where(c, 1.0, np.arange(3.0)), np.where(c, 1.0, np.arange(3.0))
    )
    nz = dnp.where(c)
    assert len(nz) == 1
    np.testing.assert_array_equal(nz[0], np.nonzero(c)[0])


def test_clip_requires_a_bound():
    with pytest.raises(ValueError, match="clip"):
        dnp.clip(np.ones(3))
    with pytest.raises(ValueError, match="clip"):
        dnp.clip(np.ones(3), 0.0, min=1.0)


def test_clip_min_max_keywords():
    """NumPy 2 names the bounds min= and max= too."""
    x = np.linspace(-2.0, 2.0, 7) + 0.01
    np.testing.assert_array_equal(dnp.clip(x, min=-1.0, max=1.0), np.clip(x, -1.0, 1.0))
    np.testing.assert_array_equal(dnp.clip(x, max=0.5), np.clip(x, None, 0.5))
    g = ds.grad(lambda a, lo: dnp.sum(dnp.clip(a, min=lo, max=1.0)), argnums=(0, 1))(x, -1.0)
    np.testing.assert_array_equal(g[0], ((x >= -1.0) & (x <= 1.0)).astype(float))
    assert g[1] == np.sum(x < -1.0)


# --- derivatives against finite differences ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_unary_grads(rng, name, shape):
    f, _, sample = UNARY[name]
    x = asarray(sample(rng, shape), shape)
    ds.check_grads(f, (x,), order=ORDER[name], modes=("fwd", "rev"))


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("sx,sy", SHAPE_PAIRS, ids=str)
def test_binary_grads(rng, name, sx, sy):
    f, _, _ = BINARY[name]
    x, y = _binary_args(rng, name, sx, sy)
    ds.check_grads(f, (x, y), order=ORDER[name], modes=("fwd", "rev"))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_grads_in_each_argument_alone(rng, name):
    """With the other operand a constant (so only one VJP/JVP rule runs at a time)."""
    f, _, _ = BINARY[name]
    x, y = _binary_args(rng, name, (2, 3), (3,))
    ds.check_grads(lambda a: f(a, y), (x,), order=2)
    ds.check_grads(lambda b: f(x, b), (y,), order=2)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_power_forms(rng, shape):
    x_any = asarray(rng.standard_normal(shape), shape)  # negative bases are fine for x**2
    x_pos = asarray(rng.uniform(0.5, 2.0, shape), shape)
    y = asarray(rng.uniform(-1.5, 1.5, shape), shape)
    ds.check_grads(lambda a: a**2, (x_any,), order=2)
    ds.check_grads(lambda a: dnp.power(a, 2), (x_any,), order=2)
    ds.check_grads(lambda a: a**3, (x_any,), order=2)
    ds.check_grads(lambda a: 2**a, (x_any,), order=2)
    ds.check_grads(lambda a: 2.5**a, (x_any,), order=2)
    ds.check_grads(lambda a: a**2.5, (x_pos,), order=2)
    ds.check_grads(lambda a, b: a**b, (x_pos, y), order=2)
    ds.check_grads(lambda a, b: b**a, (y, x_pos), order=2)


def test_power_gradients_at_zero_are_finite():
    # d/dx x**0 = 0 (not 0 * inf); d/dy 0**y = 0 for y > 0 (not 0 * log 0 = nan).
    assert ds.grad(lambda a: dnp.power(a, 0.0))(0.0) == 0.0
    assert ds.grad(lambda b: dnp.power(0.0, b))(2.0) == 0.0
    assert ds.grad(lambda b: dnp.power(np.zeros(2), b).sum())(np.array([1.5, 3.0])).tolist() == [
        0,
        0,
    ]
    assert ds.grad(lambda a: a**2)(0.0) == 0.0
    assert ds.grad(ds.grad(lambda a: a**2))(0.0) == 2.0
    # second derivatives of x**0 and x**1 at x == 0 are 0, not NaN (0 * inf in a masked branch)
    for y in (0.0, np.array(0.0), np.array([0.0, 1.0, 2.0])):
        h = ds.hessian(lambda a, y=y: dnp.sum(dnp.power(a, y)))(np.zeros(3))
        np.testing.assert_array_equal(
            h, np.diag(np.where(np.asarray(y) == 2.0, 2.0, 0.0) * np.ones(3))
        )
    h = ds.hessian(lambda b: dnp.sum(dnp.power(np.array([0.0, 2.0]), b)))(np.array([0.0, 1.0]))
    np.testing.assert_allclose(h, np.diag([0.0, 2.0 * np.log(2.0) ** 2]), rtol=1e-15)
    ds.check_grads(
        lambda a, b: dnp.power(a, b), (np.array([0.5, 1.5]), np.array([0.0, 2.0])), order=3
    )
    # power's analytic derivatives, independently of finite differences
    x, y = 1.7, 0.6
    gx, gy = ds.grad(dnp.power, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, y * x ** (y - 1), rtol=1e-14)
    np.testing.assert_allclose(gy, np.log(x) * x**y, rtol=1e-14)


def test_abs_and_sign_derivatives():
    x = np.array([-2.0, -0.5, 0.25, 3.0])
    np.testing.assert_array_equal(ds.grad(lambda a: dnp.sum(dnp.abs(a)))(x), np.sign(x))
    np.testing.assert_array_equal(ds.grad(lambda a: dnp.sum(dnp.sign(a)))(x), np.zeros(4))
    _, t = ds.jvp(dnp.sign, (x,), (np.ones(4),))
    np.testing.assert_array_equal(t, np.zeros(4))
    np.testing.assert_array_equal(ds.hessian(lambda a: dnp.sum(dnp.abs(a)))(x), np.zeros((4, 4)))


def test_abs_of_complex():
    """|z| is a real function of a complex input: its tangent is real(conj(z) t) / |z| and its
    gradient conj(z) / |z| (the convention of the engine, as JAX's: grad(|z|^2) = 2 conj(z))."""
    z = np.array([3 + 4j, -1 + 0.5j, 2j, -1.5 - 0.1j])
    t = np.array([1j, 2 - 1j, 0.5 + 0.5j, -1.0])
    out = dnp.abs(z)
    assert _is_plain(out) and out.dtype == np.float64
    np.testing.assert_array_equal(out, np.abs(z))
    primal, tangent = ds.jvp(dnp.abs, (z,), (t,))
    assert np.asarray(tangent).dtype == np.float64
    eps = 1e-6
    numeric = (np.abs(z + eps * t) - np.abs(z - eps * t)) / (2 * eps)
    np.testing.assert_allclose(tangent, numeric, rtol=1e-8)
    np.testing.assert_allclose(tangent, np.real(np.conj(z) * t) / np.abs(z), rtol=1e-14)
    g = ds.grad(lambda a: dnp.sum(dnp.abs(a)))(z)
    np.testing.assert_allclose(g, np.conj(z) / np.abs(z), rtol=1e-14)
    composed = ds.grad(lambda a: dnp.sum(dnp.sqrt(dnp.real(a * dnp.conj(a)))))(z)
    np.testing.assert_allclose(g, composed, rtol=1e-14)
    np.testing.assert_array_equal(ds.grad(lambda a: dnp.sum(dnp.abs(a)))(np.array([0j])), [0j])
    ds.check_grads(dnp.abs, (z,), order=2, modes=("fwd",))


def test_check_grads_reverse_mode_of_real_function_of_complex_input():
    z = np.array([1 + 2j, 3 - 1j, 0.5j])
    # |z|^2 written with primitives whose complex rules are exact (see test_abs_of_complex)
    ds.check_grads(lambda a: dnp.real(a * dnp.conj(a)), (z,), order=1, modes=("rev",))


# --- ties of maximum / minimum / fmax / fmin: the gradient is split evenly ---------------------

EXTREMA = {"maximum": np.greater, "minimum": np.less, "fmax": np.greater, "fmin": np.less}


@pytest.mark.parametrize("name", sorted(EXTREMA))
def test_tie_splits_gradient(name):
    f = getattr(dnp, name)
    wins = EXTREMA[name]
    x = np.array([1.0, 2.0, 3.0, 2.0, -1.0])
    y = np.array([2.0, 2.0, 1.0, 2.0, -1.0])
    gx, gy = ds.grad(lambda a, b: dnp.sum(f(a, b)), argnums=(0, 1))(x, y)
    tie = x == y
    expected_x = np.where(tie, 0.5, np.where(wins(x, y), 1.0, 0.0))
    np.testing.assert_array_equal(gx, expected_x)
    np.testing.assert_array_equal(gy, 1.0 - expected_x)
    # forward mode splits the same way
    tx, ty = np.arange(5.0) + 1.0, -(np.arange(5.0) + 3.0)
    _, t_out = ds.jvp(f, (x, y), (tx, ty))
    np.testing.assert_allclose(t_out, expected_x * tx + (1.0 - expected_x) * ty, rtol=0, atol=0)
    # a value against itself: half to each argument, the total gradient is 1
    assert ds.grad(lambda a, b: f(a, b), argnums=(0, 1))(1.5, 1.5) == (0.5, 0.5)
    assert ds.grad(lambda a: f(a, a))(1.5) == 1.0


@pytest.mark.parametrize("name", sorted(EXTREMA))
def test_tie_with_broadcast_scalar(name):
    f = getattr(dnp, name)
    wins = EXTREMA[name]
    x = np.array([[1.0, 2.0, 3.0], [2.0, 0.0, 4.0]])
    y = 2.0
    gx, gy = ds.grad(lambda a, b: dnp.sum(f(a, b)), argnums=(0, 1))(x, y)
    share_x = np.where(x == y, 0.5, np.where(wins(x, y), 1.0, 0.0))
    np.testing.assert_array_equal(gx, share_x)
    assert gy == np.sum(1.0 - share_x)


def test_fmax_fmin_ignore_nan():
    x = np.array([np.nan, 1.0])
    y = np.array([2.0, np.nan])
    for f, np_f in ((dnp.fmax, np.fmax), (dnp.fmin, np.fmin)):
        np.testing.assert_array_equal(f(x, y), np_f(x, y))
        gx, gy = ds.grad(lambda a, b, f=f: dnp.sum(f(a, b)), argnums=(0, 1))(x, y)
        np.testing.assert_array_equal(gx, [0.0, 1.0])
        np.testing.assert_array_equal(gy, [1.0, 0.0])


# --- clip: in x and in both bounds, away from the kinks ---------------------------------------

CLIP_SHAPES = [
    ((), (), ()),
    ((3,), (), ()),
    ((2, 3), (3,), (2, 1)),
    ((2, 3), (2, 3), (2, 3)),
    ((), (3,), ()),
]


def _clip_args(rng, sx, sl, sh):
    lo = asarray(rng.uniform(-1.0, -0.3, sl), sl)
    hi = asarray(rng.uniform(0.3, 1.0, sh), sh)
    while True:
        x = asarray(rng.uniform(-2.0, 2.0, sx), sx)
        if np.min(np.abs(x - lo)) > 0.05 and np.min(np.abs(x - hi)) > 0.05:
            return x, lo, hi


@pytest.mark.parametrize("sx,sl,sh", CLIP_SHAPES, ids=str)
def test_clip_grads(rng, sx, sl, sh):
    x, lo, hi = _clip_args(rng, sx, sl, sh)
    ds.check_grads(dnp.clip, (x, lo, hi), order=2)
    ds.check_grads(lambda a: dnp.clip(a, lo, hi), (x,), order=2)
    ds.check_grads(lambda a: dnp.clip(a, -0.5, None), (x,), order=2)
    ds.check_grads(lambda a: dnp.clip(a, None, 0.5), (x,), order=2)


def test_clip_gradient_goes_to_the_active_argument():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    lo, hi = -1.0, 1.0
    gx, glo, ghi = ds.grad(lambda a, b, c: dnp.sum(dnp.clip(a, b, c)), argnums=(0, 1, 2))(x, lo, hi)
    np.testing.assert_array_equal(gx, [0.0, 1.0, 1.0, 1.0, 0.0])
    assert (glo, ghi) == (1.0, 1.0)
    lo_arr = np.full(5, -1.0)
    hi_arr = np.full(5, 1.0)
    _, t = ds.jvp(dnp.clip, (x, lo_arr, hi_arr), (np.ones(5), 2 * np.ones(5), 3 * np.ones(5)))
    np.testing.assert_array_equal(t, [2.0, 1.0, 1.0, 1.0, 3.0])


def test_clip_with_crossed_bounds_follows_numpy():
    """NumPy's clip is minimum(maximum(x, lo), hi): with lo > hi every element is hi."""
    x = np.array([-3.0, 0.0, 0.5, 3.0])
    lo = np.array([1.0, 1.0, -1.0, 1.0])
    hi = np.array([-1.0, -1.0, 1.0, -1.0])
    np.testing.assert_array_equal(dnp.clip(x, lo, hi), np.clip(x, lo, hi))
    gx, glo, ghi = ds.grad(lambda a, b, c: dnp.sum(dnp.clip(a, b, c)), argnums=(0, 1, 2))(x, lo, hi)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(glo, [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ghi, [1.0, 1.0, 0.0, 1.0])
    _, t = ds.jvp(dnp.clip, (x, lo, hi), (np.ones(4), 2 * np.ones(4), 3 * np.ones(4)))
    np.testing.assert_array_equal(t, [3.0, 3.0, 1.0, 3.0])
    # equal bounds: below goes to lo, above to hi, on the bound to x
    x = np.array([-1.0, 0.0, 1.0])
    gx, glo, ghi = ds.grad(lambda a, b, c: dnp.sum(dnp.clip(a, b, c)), argnums=(0, 1, 2))(
        x, 0.0, 0.0
    )
    np.testing.assert_array_equal(gx, [0.0, 1.0, 0.0])
    assert (glo, ghi) == (1.0, 1.0)


# --- where: in x and in y ------------------------------------------------------------------------

WHERE_SHAPES = [
    ((), (), ()),
    ((3,), (3,), (3,)),
    ((2, 3), (2, 3), (3,)),
    ((2, 3), (), (2, 3)),
    ((3,), (2, 1), ()),
    ((2, 1), (1, 3), (2, 3)),
]


@pytest.mark.parametrize("sc,sx,sy", WHERE_SHAPES, ids=str)
def test_where_grads(rng, sc, sx, sy):
    cond = rng.random(sc) < 0.5
    x = asarray(rng.standard_normal(sx), sx)
    y = asarray(rng.standard_normal(sy), sy)
    ds.check_grads(lambda a, b: dnp.where(cond, a, b), (x, y), order=2)
    ds.check_grads(lambda a, b: dnp.where(cond, a * b, dnp.sin(a) + b), (x, y), order=2)
    # exact gradients: the selected positions, summed over broadcasting
    shape = np.broadcast_shapes(sc, sx, sy)
    gx, gy = ds.grad(lambda a, b: dnp.sum(dnp.where(cond, a, b)), argnums=(0, 1))(x, y)
    full = np.broadcast_to(cond, shape).astype(float)
    np.testing.assert_array_equal(gx, dnp.unbroadcast(full, x))
    np.testing.assert_array_equal(gy, dnp.unbroadcast(1.0 - full, y))


def test_where_with_traced_condition(rng):
    x = away_from_zero(0.2, 2.0)(rng, (2, 3))
    ds.check_grads(lambda a: dnp.where(a > 0, a**2, -a), (x,), order=2)
    np.testing.assert_array_equal(
        ds.grad(lambda a: dnp.sum(dnp.where(a > 0, a, 0.0)))(x), (x > 0).astype(float)
    )


# --- logaddexp, hypot, arctan2, remainder: analytic spot checks --------------------------------


def test_binary_analytic_derivatives():
    x, y = 0.3, -1.2
    gx, gy = ds.grad(dnp.logaddexp, argnums=(0, 1))(x, y)
    np.testing.assert_allclose([gx, gy], [1 / (1 + np.exp(y - x)), 1 / (1 + np.exp(x - y))])
    gx, gy = ds.grad(dnp.hypot, argnums=(0, 1))(x, y)
    np.testing.assert_allclose([gx, gy], np.array([x, y]) / np.hypot(x, y))
    gy2, gx2 = ds.grad(dnp.arctan2, argnums=(0, 1))(y, x)  # arctan2(y, x)
    np.testing.assert_allclose([gy2, gx2], np.array([x, -y]) / (x * x + y * y))
    gx, gy = ds.grad(dnp.remainder, argnums=(0, 1))(5.5, 2.0)
    assert (gx, gy) == (1.0, -2.0)
    # large arguments: logaddexp's gradient stays finite (softmax weights)
    g = ds.grad(dnp.logaddexp, argnums=(0, 1))(1000.0, 999.0)
    np.testing.assert_allclose(g, [1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(1.0))])


# --- comparisons, logic and rounding: values only, constants under transforms -----------------

COMPARISONS = ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]
LOGICAL_BINARY = ["logical_and", "logical_or", "logical_xor"]
ROUNDING = ["floor", "ceil", "round", "around", "trunc", "rint", "sign"]
PREDICATES = ["isfinite", "isnan", "isinf", "signbit", "logical_not"]


def _compare_inputs(rng, shape=(2, 3)):
    """Floats with some exact equalities between x and y (so == and <= are exercised)."""
    x = np.round(rng.uniform(-2, 2, shape), 1)
    y = np.where(rng.random(shape) < 0.4, x, np.round(rng.uniform(-2, 2, shape), 1))
    return x, y


def _special_values():
    return np.array([-np.inf, -2.5, -1.5, -0.5, -0.0, 0.0, 0.4, 0.5, 1.5, 2.6, np.inf, np.nan])


def _capture(values):
    """A function recording its argument's plain value (traced or not)."""
    return lambda v: values.append(np.asarray(ds.concrete(v)))


@pytest.mark.parametrize("name", COMPARISONS + LOGICAL_BINARY)
def test_binary_predicates_values(rng, name):
    f, np_f = getattr(dnp, name), getattr(np, name)
    x, y = _compare_inputs(rng)
    out = f(x, y)
    assert _is_plain(out) and out.dtype == np.bool_
    np.testing.assert_array_equal(out, np_f(x, y))
    np.testing.assert_array_equal(f(x, y[0]), np_f(x, y[0]))
    np.testing.assert_array_equal(f(x[0, 0], y), np_f(x[0, 0], y))
    seen = []
    record = _capture(seen)

    def fun(a, b):
        record(f(a, b))
        return dnp.sum(a * b)

    ds.grad(fun, argnums=(0, 1))(x, y)
    ds.jvp(fun, (x, y), (np.ones_like(x), np.ones_like(y)))
    ds.jacfwd(fun)(x, y)
    assert len(seen) == 3
    for v in seen:
        np.testing.assert_array_equal(v, np_f(x, y))


@pytest.mark.parametrize("name", COMPARISONS + LOGICAL_BINARY)
def test_binary_predicates_are_constants_under_grad(rng, name):
    f, np_f = getattr(dnp, name), getattr(np, name)
    x, y = _compare_inputs(rng)
    mask = np_f(x, y).astype(float)
    # d/da sum(a * f(a, b)) = f(a, b): the predicate contributes no derivative of its own
    gx, gy = ds.grad(lambda a, b: dnp.sum(a * f(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, mask)
    np.testing.assert_array_equal(gy, np.zeros_like(y))
    _, t = ds.jvp(lambda a, b: a * f(a, b), (x, y), (np.ones_like(x), np.ones_like(y)))
    np.testing.assert_array_equal(t, mask)
    np.testing.assert_array_equal(ds.jacrev(lambda a: a * f(a, y))(x), _diag(mask))


def _diag(values):
    """The Jacobian of an elementwise map with derivative ``values``."""
    n = values.size
    return np.diag(values.ravel()).reshape(values.shape + values.shape) if n else values


@pytest.mark.parametrize("name", COMPARISONS + LOGICAL_BINARY)
def test_binary_predicates_under_vmap(rng, name):
    f, np_f = getattr(dnp, name), getattr(np, name)
    xs, ys = _compare_inputs(rng, (4, 2, 3))
    np.testing.assert_array_equal(ds.vmap(f)(xs, ys), np_f(xs, ys))
    np.testing.assert_array_equal(ds.vmap(f, in_axes=(0, None))(xs, ys[0, 0]), np_f(xs, ys[0, 0]))
    np.testing.assert_array_equal(
        ds.vmap(f, in_axes=(None, 0))(xs[0], ys), np.stack([np_f(xs[0], y) for y in ys])
    )


@pytest.mark.parametrize("name", ROUNDING + PREDICATES)
def test_unary_nondifferentiable_values(name):
    f, np_f = getattr(dnp, name), getattr(np, name)
    x = _special_values()
    out = f(x)
    expected = np_f(x)
    assert _is_plain(out) and out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)
    xs = np.stack([x, -x, 2 * x])
    np.testing.assert_array_equal(ds.vmap(f)(xs), np.stack([np_f(r) for r in xs]))
    seen = []
    record = _capture(seen)

    def fun(a):
        record(f(a))
        return dnp.sum(dnp.where(dnp.isfinite(a), a, 0.0))

    ds.grad(fun)(x)
    ds.jvp(fun, (x,), (np.ones_like(x),))
    for v in seen:
        np.testing.assert_array_equal(v, expected)


@pytest.mark.parametrize("name", ROUNDING)
def test_rounding_has_zero_derivative(rng, name):
    f = getattr(dnp, name)
    x = rng.uniform(-3, 3, (2, 3)) + 0.01  # non-integers
    np.testing.assert_array_equal(ds.grad(lambda a: dnp.sum(f(a)))(x), np.zeros_like(x))
    _, t = ds.jvp(f, (x,), (np.ones_like(x),))
    np.testing.assert_array_equal(t, np.zeros_like(x))
    # a * f(a): the derivative is f(a) exactly (f contributes nothing)
    np.testing.assert_array_equal(ds.grad(lambda a: dnp.sum(a * f(a)))(x), getattr(np, name)(x))
    np.testing.assert_array_equal(
        ds.hessian(lambda a: dnp.sum(a * f(a)))(x), np.zeros(x.shape + x.shape)
    )
    ds.check_grads(lambda a: a * f(a), (x,), order=2)


def test_round_decimals():
    x = np.array([1.234, -5.678, 0.05])
    np.testing.assert_array_equal(dnp.round(x, 2), np.round(x, 2))
    np.testing.assert_array_equal(dnp.around(x, decimals=1), np.around(x, decimals=1))
    np.testing.assert_array_equal(
        ds.vmap(lambda r: dnp.round(r, 1))(np.stack([x, x])), np.round(np.stack([x, x]), 1)
    )
    assert ds.grad(lambda a: dnp.sum(dnp.round(a, 1) * a))(x).tolist() == np.round(x, 1).tolist()


def test_logical_ops_on_traced_comparisons(rng):
    x = rng.uniform(-2, 2, 7)
    inside = np.logical_and(x > -1, x < 1)
    g = ds.grad(lambda a: dnp.sum(dnp.where(dnp.logical_and(a > -1, a < 1), a**2, 0.0)))(x)
    np.testing.assert_allclose(g, np.where(inside, 2 * x, 0.0))
    g = ds.grad(
        lambda a: dnp.sum(dnp.where(dnp.logical_not(dnp.logical_or(a < -1, a > 1)), a, 0.0))
    )(x)
    np.testing.assert_array_equal(g, inside.astype(float))
    g = ds.grad(lambda a: dnp.sum(dnp.where(dnp.logical_xor(a > 0, a > 1), a, 0.0)))(x)
    np.testing.assert_array_equal(g, ((x > 0) ^ (x > 1)).astype(float))
    g = ds.grad(lambda a: dnp.sum(dnp.where(dnp.isfinite(1.0 / a), a, 0.0)))(x)
    np.testing.assert_array_equal(g, np.ones_like(x))


# --- float32 stays float32 -------------------------------------------------------------------


def _dtype_of(v):
    return np.asarray(v).dtype


def _assert_float32_family(fun, *args):
    """Output, gradient (reverse) and output tangent (forward) of fun stay float32."""
    out = fun(*args)
    assert _dtype_of(out) == np.float32
    argnums = tuple(range(len(args)))
    grads = ds.grad(lambda *a: dnp.sum(fun(*a)), argnums=argnums)(*args)
    for g in grads:
        assert _dtype_of(g) == np.float32
    primal, tangent = ds.jvp(fun, args, tuple(np.ones_like(a) for a in args))
    assert _dtype_of(primal) == np.float32
    assert _dtype_of(tangent) == np.float32, f"jvp tangent is {_dtype_of(tangent)}"
    _, vjp_fn = ds.vjp(fun, *args)
    for ct in vjp_fn(np.ones_like(out)):
        assert _dtype_of(ct) == np.float32


@pytest.mark.parametrize("name", sorted(UNARY))
def test_float32_unary(rng, name):
    f, _, sample = UNARY[name]
    x = sample(rng, (2, 3)).astype(np.float32)
    _assert_float32_family(f, x)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_float32_binary(rng, name):
    f, _, _ = BINARY[name]
    x, y = _binary_args(rng, name, (2, 3), (3,))
    x, y = x.astype(np.float32), y.astype(np.float32)
    _assert_float32_family(f, x, y)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("const", [2, 1.5], ids=["int", "float"])
def test_float32_binary_with_python_scalar(rng, name, const):
    """Python scalars are weakly typed (NEP 50): they must not promote float32 derivatives."""
    f, _, _ = BINARY[name]
    x = rng.uniform(0.3, 0.9, (2, 3)).astype(np.float32)  # in every domain, no ties with const
    _assert_float32_family(lambda a: f(a, const), x)
    _assert_float32_family(lambda a: f(const, a), x)


def test_float32_other_elementwise(rng):
    x = rng.uniform(-2, 2, (2, 3)).astype(np.float32)
    lo, hi = np.float32(-1.0), np.full(3, 1.0, dtype=np.float32)
    _assert_float32_family(lambda a: dnp.clip(a, -1.0, 1.0), x)
    _assert_float32_family(lambda a, b: dnp.clip(a, lo, b), x, hi)
    _assert_float32_family(lambda a: dnp.where(a > 0, a, 1.0), x)
    _assert_float32_family(lambda a: dnp.where(a > 0, 2.0, a * a), x)
    _assert_float32_family(lambda a: a**2, x)
    _assert_float32_family(lambda a: 2.0**a, x)
    _assert_float32_family(lambda a: a * dnp.floor(a) + dnp.round(a) + dnp.sign(a), x)
    _assert_float32_family(lambda a: dnp.abs(a) * (a > 0), x)


# --- vmap: batching rules ----------------------------------------------------------------------


def _aligned_shapes(shapes, in_axes):
    """Shapes with size-1 axes inserted after the batch axis, so that the per-row operands
    line up under NumPy broadcasting as they do row by row (for the domain samplers)."""
    rank = max(len(s) - (ax == 0) for s, ax in zip(shapes, in_axes))
    out = []
    for s, ax in zip(shapes, in_axes):
        if ax == 0:
            s = s[:1] + (1,) * (rank - len(s) + 1) + s[1:]
        out.append(s)
    return out


def _stack_rows(f, args, in_axes):
    n = next(np.shape(a)[0] for a, ax in zip(args, in_axes) if ax == 0)
    return np.stack(
        [f(*[a[i] if ax == 0 else a for a, ax in zip(args, in_axes)]) for i in range(n)]
    )


@pytest.mark.parametrize("name", sorted(UNARY))
def test_vmap_unary(rng, name):
    f, _, sample = UNARY[name]
    xs = sample(rng, (4, 2, 3))
    np.testing.assert_allclose(ds.vmap(f)(xs), _stack_rows(f, (xs,), (0,)), rtol=1e-15)
    np.testing.assert_allclose(ds.vmap(f)(xs[:, 0, 0]), _stack_rows(f, (xs[:, 0, 0],), (0,)))
    # batching of the derivative rules
    g = ds.grad(lambda a: dnp.sum(f(a)))
    np.testing.assert_allclose(ds.vmap(g)(xs), _stack_rows(g, (xs,), (0,)), rtol=1e-14)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize(
    "sx,sy,in_axes",
    [
        ((4, 2, 3), (4, 2, 3), (0, 0)),
        ((4, 2, 3), (3,), (0, None)),
        ((3,), (4, 2, 3), (None, 0)),
        ((4,), (4, 2, 3), (0, 0)),  # a batch of scalars against a batch of matrices
        ((4, 3), (4, 2, 1), (0, 0)),
        ((4, 2, 3), (), (0, None)),
    ],
    ids=str,
)
def test_vmap_binary(rng, name, sx, sy, in_axes):
    f, _, _ = BINARY[name]
    x, y = _binary_args(rng, name, *_aligned_shapes((sx, sy), in_axes))
    x, y = x.reshape(sx), y.reshape(sy)
    expected = _stack_rows(f, (x, y), in_axes)
    np.testing.assert_allclose(ds.vmap(f, in_axes=in_axes)(x, y), expected, rtol=1e-15)
    g = ds.grad(lambda a, b: dnp.sum(f(a, b)), argnums=(0, 1))
    batched = ds.vmap(g, in_axes=in_axes)(x, y)
    for k in range(2):
        ref = _stack_rows(lambda *a: g(*a)[k], (x, y), in_axes)
        np.testing.assert_allclose(batched[k], ref, rtol=1e-13)


def test_vmap_clip_and_where(rng):
    x, lo, hi = _clip_args(rng, (4, 2, 3), (4, 1, 3), (2, 1))
    lo = lo.reshape(4, 3)
    f = dnp.clip
    for in_axes in [(0, 0, None), (0, None, None)]:
        args = (x, lo if in_axes[1] == 0 else lo[0], hi)
        np.testing.assert_array_equal(
            ds.vmap(f, in_axes=in_axes)(*args), _stack_rows(f, args, in_axes)
        )
        g = ds.grad(lambda a, b, c: dnp.sum(f(a, b, c)), argnums=(0, 1, 2))
        out = ds.vmap(g, in_axes=in_axes)(*args)
        for k in range(3):
            np.testing.assert_array_equal(out[k], _stack_rows(lambda *a: g(*a)[k], args, in_axes))
    cond = rng.random((4, 3)) < 0.5
    ys = rng.standard_normal((4, 2, 3))

    def w(c, a, b):
        return dnp.where(c, a * b, b)

    for in_axes, args in [((0, 0, 0), (cond, x, ys)), ((None, 0, None), (cond[0], x, ys[0]))]:
        np.testing.assert_array_equal(
            ds.vmap(w, in_axes=in_axes)(*args), _stack_rows(w, args, in_axes)
        )
        g = ds.grad(lambda c, a, b: dnp.sum(w(c, a, b)), argnums=(1, 2))
        out = ds.vmap(g, in_axes=in_axes)(*args)
        for k in range(2):
            np.testing.assert_array_equal(out[k], _stack_rows(lambda *a: g(*a)[k], args, in_axes))


# --- jacfwd / jacrev / hessian agree with each other and with finite differences ---------------


@pytest.mark.parametrize("name", sorted(UNARY))
def test_jacobians_unary(rng, name):
    f, _, sample = UNARY[name]
    x = sample(rng, (2, 3))
    jf, jr = ds.jacfwd(f)(x), ds.jacrev(f)(x)
    assert jf.shape == jr.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(jf, jr, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(jf, numeric_jacobian(f, x), rtol=1e-6, atol=1e-7)

    def total(a):
        return dnp.sum(f(a))

    h = ds.hessian(total)(x)
    np.testing.assert_allclose(h, ds.jacfwd(ds.jacrev(total))(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h, ds.jacrev(ds.jacfwd(total))(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h, numeric_jacobian(ds.grad(total), x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_jacobians_binary(rng, name):
    f, _, _ = BINARY[name]
    x, y = _binary_args(rng, name, (2, 3), (3,))
    for argnum, arg in ((0, x), (1, y)):
        jf, jr = ds.jacfwd(f, argnums=argnum)(x, y), ds.jacrev(f, argnums=argnum)(x, y)
        assert jf.shape == jr.shape == (2, 3) + arg.shape
        np.testing.assert_allclose(jf, jr, rtol=1e-13, atol=1e-15)

        def partial(a, argnum=argnum):
            return f(a, y) if argnum == 0 else f(x, a)

        np.testing.assert_allclose(jf, numeric_jacobian(partial, arg), rtol=1e-6, atol=1e-7)

    def total(a, b):
        return dnp.sum(f(a, b) * dnp.cos(b))

    for argnum, arg in ((0, x), (1, y)):
        h = ds.hessian(total, argnums=argnum)(x, y)
        np.testing.assert_allclose(
            h,
            ds.jacfwd(ds.jacrev(total, argnums=argnum), argnums=argnum)(x, y),
            rtol=1e-12,
            atol=1e-14,
        )
        grad_fn = ds.grad(total, argnums=argnum)
        partial_grad = (lambda a: grad_fn(a, y)) if argnum == 0 else (lambda b: grad_fn(x, b))
        np.testing.assert_allclose(h, numeric_jacobian(partial_grad, arg), rtol=1e-6, atol=1e-6)


def test_jacobians_of_a_composition(rng):
    x = rng.uniform(-1, 1, (3, 2))
    lo = np.array([-0.6, -0.2])

    def f(a):
        b = dnp.where(a > 0, dnp.tanh(a), a * dnp.exp(a))
        c = dnp.clip(b, lo, 0.7) + dnp.maximum(a, -0.1) * dnp.hypot(a, 1.5)
        return dnp.logaddexp(c, a**2) - dnp.arctan2(a, 2.0) + dnp.sqrt(a * a + 1.0)

    ds.check_grads(f, (x,), order=2)
    jf, jr = ds.jacfwd(f)(x), ds.jacrev(f)(x)
    np.testing.assert_allclose(jf, jr, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(jf, numeric_jacobian(f, x), rtol=1e-6, atol=1e-7)

    def total(a):
        return dnp.sum(f(a) ** 2)

    h = ds.hessian(total)(x)
    np.testing.assert_allclose(h, ds.jacrev(ds.jacfwd(total))(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, numeric_jacobian(ds.grad(total), x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, np.swapaxes(np.swapaxes(h, 0, 2), 1, 3), rtol=1e-12, atol=1e-14)


def test_imag_and_angle_of_complex_values():
    z = np.array([1 + 2j, -3 + 0.5j, 0.2 - 1j])
    np.testing.assert_array_equal(dnp.imag(z), np.imag(z))
    np.testing.assert_array_equal(dnp.angle(z, deg=True), np.angle(z, deg=True))
    ds.check_grads(lambda a: dnp.sum(dnp.imag(a) ** 2), (z,), order=2)
    ds.check_grads(lambda a: dnp.sum(dnp.angle(a)), (z,), order=2)
    # angle = Im(log z): d angle along v = Im(v / z) = Re((-1j / z) * v), so grad = -1j / z
    g = ds.grad(lambda a: dnp.sum(dnp.angle(a)))(z)
    np.testing.assert_allclose(g, -1j / z, rtol=1e-12)
    x = np.array([-1.0, 2.0])
    np.testing.assert_array_equal(ds.grad(lambda a: dnp.sum(dnp.angle(a)))(x), [0.0, 0.0])
    assert ds.grad(lambda a: dnp.sum(dnp.imag(a)))(x).tolist() == [0.0, 0.0]


# --- plain backward passes write only into their own temporaries -------------------------------


@pytest.mark.parametrize(
    "fun",
    [dnp.tanh, dnp.sqrt, dnp.log, dnp.exp, dnp.sin, dnp.reciprocal, dnp.arctan, dnp.cbrt],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_vjp_and_jvp_leave_inputs_outputs_and_cotangents_unchanged(fun, dtype):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, (4, 5)).astype(dtype)
    ct = rng.standard_normal((4, 5)).astype(dtype)
    x0, ct0 = x.copy(), ct.copy()
    out, f_vjp = ds.vjp(fun, x)
    out0 = out.copy()
    (first,) = f_vjp(ct)
    (second,) = f_vjp(ct)  # the tape's values must still be intact
    np.testing.assert_array_equal(first, second)
    _, tangent = ds.jvp(fun, (x,), (ct,))
    np.testing.assert_array_equal(tangent, first)  # elementwise: the same product
    for before, after in ((x0, x), (ct0, ct), (out0, out)):
        np.testing.assert_array_equal(before, after)
    assert first.dtype == dtype


@pytest.mark.parametrize("fun", [dnp.divide, dnp.power, dnp.arctan2, dnp.hypot], ids=str)
def test_binary_vjp_leaves_operands_and_cotangent_unchanged(fun):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0.5, 2.0, (2, 3, 4))
    ct = rng.standard_normal((3, 4))
    saved = [a.copy() for a in (x, y, ct)]
    out, f_vjp = ds.vjp(fun, x, y)
    out0 = out.copy()
    gx, gy = f_vjp(ct)
    np.testing.assert_array_equal(np.concatenate([gx, gy]), np.concatenate(f_vjp(ct)))
    for before, after in zip(saved + [out0], (x, y, ct, out), strict=True):
        np.testing.assert_array_equal(before, after)
    ds.check_grads(fun, (x, y), order=1, modes=("rev",))
