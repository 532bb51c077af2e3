"""NumPy's own functions on traced values (``__array_ufunc__``, NEP 13, and
``__array_function__``, NEP 18): code written with ``import numpy as np`` differentiates as
its ``diffsys.numpy`` twin does, in every transform, and what would leave the traced world
fails with an error that names the function and the fix."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.numpy import _dispatch

RNG = np.random.default_rng(13)
X3 = np.array([0.3, -0.7, 1.1])
X23 = np.array([[0.5, -1.2, 0.8], [1.4, 0.2, -0.6]])
A = np.array([[3.0, 0.4, -0.2], [0.1, 2.5, 0.3], [-0.4, 0.2, 4.0]])
B = np.array([1.0, -2.0, 0.5])
S8 = np.array([0.4, -1.1, 0.9, 2.0, -0.3, 0.7, 1.5, -0.8])


# --- a body of NumPy code, run once with m = numpy and once with m = diffsys.numpy ------------
# Each function is plain NumPy code when ``m`` is ``numpy``: only ``m.`` names, operators,
# methods and NumPy arrays/scalars appear in it.


def elementwise(m, x):
    return m.sin(x) * m.exp(-(x**2)) + m.tanh(x) / (1.0 + m.abs(x)) + m.log1p(x * x)


def elementwise_more(m, x):
    y = m.sqrt(x * x + 1.0) + m.arctan2(x, 1.5) + m.hypot(x, 2.0) + m.cbrt(x + 3.0)
    return y + m.logaddexp(x, 0.0) + m.expm1(x / 3) + m.power(m.abs(x) + 1.0, 1.5) + m.cosh(x)


def piecewise(m, x):
    return m.where(x > 0, x**2, -x) + m.clip(x, -0.5, 0.5) + m.maximum(x, 0.2) + m.sign(x) * x


def mixed_operands(m, x):
    ones = np.ones(3)  # a NumPy array on the left of a tracer: __array_ufunc__
    y = ones * x + np.arange(3.0) - x / np.float64(2.5) + np.float32(1.5) * x
    y = y + m.multiply(ones, x) - m.subtract(np.arange(3.0), x) + m.maximum(np.zeros(3), x)
    return y + 2.0**x + np.float64(1.3) ** x + (np.linspace(1, 2, 3) > x) * x


def reductions(m, x):
    return (
        m.sum(x, axis=0)
        + m.mean(x, axis=0)
        + m.var(x, axis=0)
        + m.std(x, axis=0, ddof=1)
        + m.max(x, axis=0)
        + m.prod(x, axis=0)
        + m.cumsum(x, axis=1)[-1]
        + x.sum(axis=0)
        + m.linalg.norm(x, axis=0)
    )


def ufunc_methods(m, x):
    if m is np:  # ufunc methods have no dnp spelling: their twin is written out below
        return (
            np.add.reduce(x, axis=1)
            + np.multiply.accumulate(x, axis=1)[:, -1]
            + np.maximum.reduce(x, axis=1)
            + np.hypot.reduce(x, axis=1)
            + np.subtract.outer(x[:, 0], x[:, 1])[:, 0]
        )
    return (
        dnp.sum(x, axis=1)
        + dnp.cumprod(x, axis=1)[:, -1]
        + dnp.max(x, axis=1)
        + dnp.hypot(dnp.hypot(x[:, 0], x[:, 1]), x[:, 2])
        + (x[:, 0][:, None] - x[:, 1][None, :])[:, 0]
    )


def linalg(m, x):
    a = A + m.outer(x, x) * 0.1
    sign, logdet = m.linalg.slogdet(a)
    return (
        m.linalg.solve(a, B) * m.linalg.det(a)
        + m.linalg.inv(a) @ x
        + logdet
        + m.trace(a)
        + m.einsum("ij,j->i", a, x)
        + m.dot(a.T, x)
        + m.linalg.norm(a, "fro")
        + m.linalg.eigvalsh(a + a.T)
        + m.diagonal(m.linalg.cholesky(a @ a.T))
    )


def indexing(m, x):
    y = m.concatenate([x, x[::-1] * 2.0])
    z = m.stack([y[:3], y[3:]], axis=0)
    return (
        z[1, [0, 2]].sum()
        + m.take(y, [4, 0, 1])
        + m.roll(x, 1)
        + m.flip(x)
        + m.sort(x)
        + m.reshape(z, (3, 2))[:, 0]
        + m.transpose(z)[:, 1]
        + m.expand_dims(x, 0)[0]
        + m.diag(m.diag(x))
        + m.tile(x[:1], 3)
        + m.repeat(x[1:2], 3)
    )


def broadcasting(m, x):
    col = x[:, None]
    grid = col * x[None, :] + m.broadcast_to(x, (3, 3)) - m.outer(x, x + 1.0) * 0.5
    return m.sum(grid * m.exp(-grid), axis=1) + m.mean(grid, axis=0)


def fft(m, x):
    f = m.fft.fft(x)
    r = m.fft.irfft(m.fft.rfft(x) * np.linspace(1.0, 0.5, 5), n=8)
    two = m.fft.fft2(m.reshape(x, (2, 4)))
    return m.abs(f) ** 2 + r + m.real(m.fft.ifft(f * f)) + m.ravel(m.imag(two))


CASES = {
    "elementwise": (elementwise, X3),
    "elementwise_more": (elementwise_more, X3),
    "piecewise": (piecewise, X3),
    "mixed_operands": (mixed_operands, X3),
    "reductions": (reductions, X23 + 2.0),
    "ufunc_methods": (ufunc_methods, X23 + 2.0),
    "linalg": (linalg, X3),
    "indexing": (indexing, X3),
    "broadcasting": (broadcasting, X3),
    "fft": (fft, S8),
}


def _scalar(fn, m, weights):
    """A scalar function of ``fn``'s output (so grad and hessian apply), written with ``m``."""
    return lambda x: m.sum(fn(m, x) * weights)


def _weights(fn, x):
    return RNG.standard_normal(np.shape(fn(np, x)))


def _assert_same(a, b):
    for u, v in zip(ds.tree_leaves(a), ds.tree_leaves(b), strict=True):
        assert not isinstance(u, ds.Tracer) and not isinstance(v, ds.Tracer)
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_code_values_match_numpy(name):
    fn, x = CASES[name]
    expected = fn(np, x)
    out, _ = ds.vjp(lambda x: fn(np, x), x)  # traced through NumPy's own functions
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fn(dnp, x), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_code_derivatives_match_dnp_twin_to_order_2(name):
    fn, x = CASES[name]
    w = _weights(fn, x)
    f_np, f_dnp = _scalar(fn, np, w), _scalar(fn, dnp, w)
    t = RNG.standard_normal(x.shape)
    derivatives = {
        "rev": lambda f: ds.grad(f)(x),
        "fwd": lambda f: ds.jvp(f, (x,), (t,)),
        "rev_over_rev": lambda f: ds.jacrev(ds.grad(f))(x),
        "fwd_over_rev": lambda f: ds.hessian(f)(x),
        "fwd_over_fwd": lambda f: ds.jacfwd(ds.jacfwd(f))(x),
        "hvp": lambda f: ds.hvp(f, (x,), (t,)),
    }
    for kind, derivative in derivatives.items():
        try:
            _assert_same(derivative(f_np), derivative(f_dnp))
        except AssertionError as exc:
            raise AssertionError(f"{name}: {kind} derivatives differ") from exc


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_code_derivatives_match_finite_differences(name):
    fn, x = CASES[name]
    f_np = _scalar(fn, np, _weights(fn, x))
    ds.check_grads(f_np, (x,), order=2, modes=("fwd", "rev"))


# --- every transform ----------------------------------------------------------------------------


def model(w, x):
    """A small model in plain NumPy."""
    h = np.tanh(x @ w[:, :2] + np.ones(2) * w[0, 2])
    return np.mean(np.log1p(np.exp(h)) ** 2) + 0.1 * np.linalg.norm(w) ** 2


def model_dnp(w, x):
    h = dnp.tanh(x @ w[:, :2] + np.ones(2) * w[0, 2])
    return dnp.mean(dnp.log1p(dnp.exp(h)) ** 2) + 0.1 * dnp.linalg.norm(w) ** 2


W = np.array([[0.2, -0.4, 0.3], [0.7, 0.1, -0.5], [-0.3, 0.6, 0.2]])
XS = np.linspace(-1.0, 1.0, 12).reshape(4, 3)


def _scan_loss(f):
    def loss(w):
        def step(carry, x):
            return carry + f(w, x[None, :]), carry

        total, _ = ds.scan(step, 0.0, XS, checkpoint="sqrt")
        return total

    return loss


TRANSFORMS = {
    "grad": lambda f: ds.grad(f)(W, XS),
    "value_and_grad": lambda f: ds.value_and_grad(f, argnums=(0, 1))(W, XS),
    "vjp": lambda f: ds.vjp(f, W, XS)[1](np.array(1.0)),
    "jvp": lambda f: ds.jvp(f, (W, XS), (np.ones_like(W), XS)),
    "jacfwd": lambda f: ds.jacfwd(f)(W, XS),
    "jacrev": lambda f: ds.jacrev(f, argnums=1)(W, XS),
    "hessian": lambda f: ds.hessian(f)(W, XS),
    "grad_of_grad": lambda f: ds.grad(lambda w: ds.grad(f)(w, XS)[1, 1])(W),
    "third_order": lambda f: ds.grad(
        lambda w: ds.grad(lambda v: ds.grad(f)(v, XS)[0, 0])(w)[0, 1]
    )(W),
    "vmap": lambda f: ds.vmap(f, in_axes=(None, 0))(W, XS[:, None, :]),
    "vmap_of_grad": lambda f: ds.vmap(ds.grad(f), in_axes=(None, 0))(W, XS[:, None, :]),
    "elementwise_grad": lambda f: ds.elementwise_grad(lambda w: f(w, XS) * w)(W),
    "checkpoint": lambda f: ds.grad(ds.checkpoint(f))(W, XS),
    "trace_replay": lambda f: ds.trace(f)(W, XS)(W * 2.0, XS),
    "trace_of_grad": lambda f: ds.trace(ds.grad(f))(W, XS)(W * 2.0, XS),
    "grad_of_trace": lambda f: ds.grad(ds.trace(f)(W, XS))(W * 2.0, XS),
    "scan": lambda f: ds.grad(_scan_loss(f))(W),
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_numpy_code_in_every_transform(transform):
    _assert_same(TRANSFORMS[transform](model), TRANSFORMS[transform](model_dnp))


def test_ndarray_on_the_left_gives_a_tracer():
    seen = []

    def f(x):
        for y in (
            np.ones(3) * x,
            np.float64(2.0) * x,
            np.arange(3.0) - x,
            np.ones(3) @ x,
            np.multiply(np.ones(3), x),
            np.power(np.float32(2.0), x),
            np.hypot(3.0, x),
        ):
            seen.append(y)
        return x.sum()

    ds.grad(f)(X3)
    assert all(isinstance(y, ds.Tracer) for y in seen)


SIGNATURE_CALLS = {
    # NumPy's positional order, where diffsys's differs (np.std: a, axis, dtype, out, ddof)
    "std_positional_ddof": (
        lambda m, x: m.std(x, None, None, None, 1),
        lambda x: np.std(x, ddof=1),
    ),
    "sum_positional_keepdims": (
        lambda m, x: m.sum(x, 0, None, None, True),
        lambda x: np.sum(x, axis=0, keepdims=True),
    ),
    "first_parameter_by_name": (
        lambda m, x: m.ones(m.shape(m.empty_like(prototype=x))) + m.reshape(x, shape=(3, 2)).T,
        lambda x: 1.0 + np.reshape(x, (3, 2)).T,
    ),
    "defaults_spelled_out": (
        lambda m, x: m.mean(x, axis=0, out=None, where=True) + m.exp(x, casting="same_kind"),
        lambda x: np.mean(x, axis=0) + np.exp(x),
    ),
    "size_along_an_axis": (lambda m, x: m.size(x, 1) * x, lambda x: 3 * x),
}


def test_numpy_signatures_are_honoured():
    x = X23
    for name, (call, reference) in SIGNATURE_CALLS.items():
        out, _ = ds.vjp(lambda x, call=call: call(np, x), x)
        np.testing.assert_allclose(out, reference(x), rtol=1e-14, err_msg=name)
        w = RNG.standard_normal(np.shape(out))
        ds.check_grads(lambda x, call=call, w=w: np.sum(call(np, x) * w), (x,), order=2)


def test_creation_like_a_tracer_makes_a_constant():
    def f(x):
        z = np.zeros(3, like=x)
        assert type(z) is np.ndarray
        return np.sum((np.ones(3, like=x) + z) * x)

    np.testing.assert_allclose(ds.grad(f)(X3), np.ones(3))


def test_numpy_scalar_types_keep_float32():
    x32 = X3.astype(np.float32)

    def f(x):
        y = np.float32(2.0) * x + np.sin(x) * np.float32(0.5) + np.ones(3, np.float32) * x
        assert y.dtype == np.float32
        return np.sum(y)

    assert ds.grad(f)(x32).dtype == np.float32


# --- completeness: every NumPy name that diffsys.numpy has is dispatched ------------------------


def _dispatched_pairs():
    for np_mod, d_mod in ((np, dnp), (np.linalg, dnp.linalg), (np.fft, dnp.fft)):
        for name in d_mod.__all__:
            theirs = getattr(np_mod, name, None)
            ours = getattr(d_mod, name)
            if theirs is None or theirs is ours:
                continue
            if isinstance(theirs, np.ufunc) or hasattr(theirs, "_implementation"):
                yield f"{np_mod.__name__}.{name}", theirs, ours


PAIRS = {name: (theirs, ours) for name, theirs, ours in _dispatched_pairs()}
# NumPy changes its argument in place, diffsys returns a new array: not dispatched (an error).
IN_PLACE = {"numpy.put_along_axis"}


def test_every_numpy_name_diffsys_has_is_dispatched_to_it():
    assert len(PAIRS) > 200
    for name, (theirs, ours) in PAIRS.items():
        if name in IN_PLACE:
            assert theirs not in _dispatch.FUNCTIONS, name
        elif isinstance(theirs, np.ufunc):
            assert _dispatch.UFUNCS.get(theirs) is ours, name
        else:
            assert _dispatch.FUNCTIONS[theirs].fn is ours, name


def test_functions_of_shapes_and_dtypes_read_the_tracer(monkeypatch):
    dispatched = []
    funcs = (np.result_type, np.can_cast, np.shape, np.ndim, np.size, np.iscomplexobj)
    for func in funcs:
        adapter = _dispatch.FUNCTIONS[func]
        monkeypatch.setitem(
            _dispatch.FUNCTIONS,
            func,
            lambda a, k, adapter=adapter: dispatched.append(adapter.func) or adapter(a, k),
        )
    seen = {}

    def f(x):
        seen.update(
            result_type=np.result_type(x, np.float32),  # dnp.result_type is NumPy's own
            can_cast=np.can_cast(x, np.float32),
            shape=np.shape(x),
            ndim=np.ndim(x),
            size=np.size(x, 0),
            iscomplexobj=np.iscomplexobj(x),
        )
        return x.sum()

    ds.grad(f)(X23)
    assert seen == dict(
        result_type=np.float64, can_cast=False, shape=(2, 3), ndim=2, size=2, iscomplexobj=False
    )
    assert set(dispatched) == set(funcs)  # each through __array_function__


def _ufunc_dtype(ufunc):
    """A dtype NumPy's ufunc has a loop for, float64 first."""
    for char in "dl?":
        if any(t.split("->")[0] == char * ufunc.nin for t in ufunc.types):
            return np.dtype(char)
    raise AssertionError(f"no float64/int64/bool loop for {ufunc.__name__}")


UFUNC_PAIRS = [name for name, (theirs, _) in PAIRS.items() if isinstance(theirs, np.ufunc)]


@pytest.mark.parametrize("name", UFUNC_PAIRS)
def test_every_dispatched_ufunc_runs_traced(name):
    ufunc, ours = PAIRS[name]
    dtype = _ufunc_dtype(ufunc)
    if dtype.kind == "f":
        args = [np.array([0.3, 0.6, 0.9]), np.array([0.8, 0.5, 0.7])][: ufunc.nin]
        if ufunc is np.arccosh:  # defined from 1 up
            args = [a + 1.0 for a in args]
    else:
        args = [np.array([1, 2, 3], dtype), np.array([3, 1, 2], dtype)][: ufunc.nin]
    # A float tracer joins the call (the derivative's input): as argument 0 for a float
    # ufunc, or multiplied into a boolean or integer one's result.
    seen = {}

    def f(x):
        if dtype.kind == "f":
            seen["np"], seen["dnp"] = ufunc(x, *args[1:]), ours(x, *args[1:])
        else:  # integer or boolean operands, traced by a vmap inside the derivative
            batch = [np.stack([a, a]) for a in args]
            seen["np"] = ds.vmap(ufunc)(*batch)[0] * x
            seen["dnp"] = ds.vmap(ours)(*batch)[0] * x
        return x.sum()

    ds.grad(f)(args[0] if dtype.kind == "f" else np.array([0.3, 0.6, 0.9]))
    assert isinstance(seen["np"], ds.Tracer) == isinstance(seen["dnp"], ds.Tracer), name
    expected = ufunc(*args) if dtype.kind == "f" else ufunc(*args) * np.array([0.3, 0.6, 0.9])
    np.testing.assert_allclose(ds.concrete(seen["np"]), expected, rtol=1e-14)
    np.testing.assert_array_equal(ds.concrete(seen["np"]), ds.concrete(seen["dnp"]))


# How to call each dispatched function that needs more than one argument (the others are
# called on the matrix alone), written with ``m``: numpy, or its twin diffsys.numpy.
CALLS = {
    "numpy.allclose": lambda m, x: m.allclose(x, x),
    "numpy.append": lambda m, x: m.append(x, x[:1], axis=0),
    "numpy.argpartition": lambda m, x: m.argpartition(x, 1, axis=1),
    "numpy.rollaxis": lambda m, x: m.rollaxis(x, 1),
    "numpy.array_split": lambda m, x: m.array_split(x, 2),
    "numpy.astype": lambda m, x: m.astype(x, m.float32),
    "numpy.broadcast_to": lambda m, x: m.broadcast_to(x, (2, 3, 3)),
    "numpy.choose": lambda m, x: m.choose(m.array([0, 1, 0]), x),
    "numpy.compress": lambda m, x: m.compress([True, False, True], x, axis=0),
    "numpy.convolve": lambda m, x: m.convolve(x[0], x[1]),
    "numpy.correlate": lambda m, x: m.correlate(x[0], x[1], "full"),
    "numpy.cross": lambda m, x: m.cross(x[0], x[1]),
    "numpy.dot": lambda m, x: m.dot(x, x),
    "numpy.dsplit": lambda m, x: m.dsplit(x[:, :, None] * m.ones(2), 2),
    "numpy.einsum": lambda m, x: m.einsum("ij,jk->ik", x, x),
    "numpy.expand_dims": lambda m, x: m.expand_dims(x, 1),
    "numpy.full_like": lambda m, x: m.full_like(x, 2.0),
    "numpy.hsplit": lambda m, x: m.hsplit(x, 3),
    "numpy.inner": lambda m, x: m.inner(x, x),
    "numpy.interp": lambda m, x: m.interp(m.array([0.5, 1.5]), m.array([0.0, 1.0, 2.0]), x[0]),
    "numpy.isclose": lambda m, x: m.isclose(x, x.T),
    "numpy.kron": lambda m, x: m.kron(x, x),
    "numpy.linspace": lambda m, x: m.linspace(x[0, 0], x[1, 1], 5),
    "numpy.moveaxis": lambda m, x: m.moveaxis(x, 0, 1),
    "numpy.outer": lambda m, x: m.outer(x[0], x[1]),
    "numpy.pad": lambda m, x: m.pad(x, 1),
    "numpy.partition": lambda m, x: m.partition(x, 1, axis=1),
    "numpy.percentile": lambda m, x: m.percentile(x, 40.0),
    "numpy.polyval": lambda m, x: m.polyval(x[0], 0.7),
    "numpy.quantile": lambda m, x: m.quantile(x, 0.4),
    "numpy.repeat": lambda m, x: m.repeat(x, 2, axis=0),
    "numpy.reshape": lambda m, x: m.reshape(x, (9,)),
    "numpy.roll": lambda m, x: m.roll(x, 1, axis=0),
    "numpy.searchsorted": lambda m, x: m.searchsorted(m.sort(x[0]), x[1]),
    "numpy.select": lambda m, x: m.select([x > 5, x <= 5], [x, -x]),
    "numpy.split": lambda m, x: m.split(x, 3),
    "numpy.swapaxes": lambda m, x: m.swapaxes(x, 0, 1),
    "numpy.take": lambda m, x: m.take(x, [0, 2], axis=1),
    "numpy.take_along_axis": lambda m, x: m.take_along_axis(x, m.array([[0], [1], [2]]), axis=1),
    "numpy.tensordot": lambda m, x: m.tensordot(x, x, axes=1),
    "numpy.tile": lambda m, x: m.tile(x, 2),
    "numpy.vdot": lambda m, x: m.vdot(x, x),
    "numpy.vsplit": lambda m, x: m.vsplit(x, 3),
    "numpy.linalg.lstsq": lambda m, x: m.linalg.lstsq(x, x[0], rcond=None),
    "numpy.linalg.matrix_power": lambda m, x: m.linalg.matrix_power(x, 3),
    "numpy.linalg.multi_dot": lambda m, x: m.linalg.multi_dot([x, x, x]),
    "numpy.linalg.solve": lambda m, x: m.linalg.solve(x, x[0]),
    "numpy.linalg.tensorsolve": lambda m, x: m.linalg.tensorsolve(x, x[0]),
    "numpy.clip": lambda m, x: m.clip(x, 1.0, 5.0),
}
FUNCTION_PAIRS = [
    name
    for name, (theirs, _) in PAIRS.items()
    if not isinstance(theirs, np.ufunc) and name not in IN_PLACE
]


def _in(m, name):
    """``numpy.linalg.norm`` -> ``m.linalg.norm``."""
    obj = m
    for part in name.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", FUNCTION_PAIRS)
def test_every_dispatched_function_runs_traced(name, monkeypatch):
    call = CALLS.get(name, lambda m, x: _in(m, name)(x))
    theirs = PAIRS[name][0]
    adapter = _dispatch.FUNCTIONS[theirs]
    dispatched = []
    monkeypatch.setitem(
        _dispatch.FUNCTIONS, theirs, lambda a, k: dispatched.append(1) or adapter(a, k)
    )
    x0 = A @ A.T  # symmetric positive definite, distinct eigenvalues
    expected = call(np, x0)
    seen = {}

    def f(x):
        seen["np"], seen["dnp"] = call(np, x), call(dnp, x)
        return x.sum()

    ds.grad(f)(x0)
    assert dispatched, f"{name} did not go through __array_function__"
    got, twin = ds.tree_leaves(seen["np"]), ds.tree_leaves(seen["dnp"])
    want = ds.tree_leaves(expected)
    assert len(got) == len(twin) == len(want), name
    for g, t, w in zip(got, twin, want, strict=True):
        assert isinstance(g, ds.Tracer) == isinstance(t, ds.Tracer), name
        g, t = ds.concrete(g), ds.concrete(t)
        assert np.shape(g) == np.shape(w), name
        if name != "numpy.empty_like":  # its values are whatever memory held
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)
            np.testing.assert_array_equal(g, t, err_msg=name)


def test_adapters_pass_the_common_calls_straight_through():
    """The first argument of every dispatched function goes through positionally, and every
    keyword both signatures share by name is passed on as it is."""
    for name in FUNCTION_PAIRS:
        adapter = _dispatch.FUNCTIONS[PAIRS[name][0]]
        assert adapter.npos >= 1, name
        if adapter.kw is not None:
            keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            shared = {
                n
                for n, p in inspect.signature(adapter.func).parameters.items()
                if p.kind in keywords and n in adapter.dnp_params
                and adapter.dnp_params[n].kind in keywords
            }
            assert adapter.kw >= shared - {"out"}, name


# --- what would leave the traced world fails loudly -------------------------------------------


def _grad_error(f, x=X3) -> str:
    with pytest.raises(TypeError) as info:
        ds.grad(f)(x)
    return str(info.value)


def test_asarray_of_a_tracer_names_the_call_and_stop_gradient():
    def f(x):
        y = np.asarray(x)  # would detach x
        return y.sum()

    message = _grad_error(f)
    assert "numpy.asarray" in message and "ds.stop_gradient(x)" in message
    assert "y = np.asarray(x)  # would detach x" in message, message  # the user's line
    message = _grad_error(lambda x: np.array(x).sum())
    assert "numpy.array" in message
    # The explicit detach: x * const(x) has derivative const(x).
    g = ds.grad(lambda x: np.sum(x * np.asarray(ds.stop_gradient(x))))(X3)
    np.testing.assert_allclose(g, X3)


@pytest.mark.parametrize(
    "draw",
    [
        lambda mu: np.random.default_rng(0).normal(mu, 1.0),
        lambda mu: np.random.normal(mu, 1.0),
        lambda mu: np.random.default_rng(0).uniform(0.0, mu),
    ],
)
def test_random_draws_from_traced_parameters_fail(draw):
    message = _grad_error(lambda mu: np.sum(draw(mu)), np.ones(3))
    assert "np.random with traced parameters" in message and "stop_gradient" in message
    # Reparameterized: plain noise, transformed by differentiable operations.
    eps = np.random.default_rng(0).standard_normal(3)
    g = ds.grad(lambda mu: np.sum(np.square(mu + 2.0 * eps)))(np.ones(3))
    np.testing.assert_allclose(g, 2.0 * (1.0 + 2.0 * eps))


def _plain_iadd(x):
    a = np.ones(3)
    a += x  # NumPy: np.add(a, x, out=(a,))
    return a.sum()


OUT_CALLS = {
    "ufunc": lambda x: np.exp(x, out=np.empty(3)).sum(),
    "function": lambda x: np.sum(x, out=np.empty(())),
    "iadd": _plain_iadd,
    "ufunc_method": lambda x: np.add.accumulate(x, out=np.empty(3)).sum(),
}


@pytest.mark.parametrize("kind", list(OUT_CALLS))
def test_out_fails_with_the_functional_alternative(kind):
    message = _grad_error(OUT_CALLS[kind])
    assert "out=" in message and "immutable" in message and "a.at[idx].set(v)" in message


def test_out_none_is_accepted():
    g = ds.grad(lambda x: np.sum(np.exp(x, out=None), out=None))(X3)
    np.testing.assert_allclose(g, np.exp(X3))


def test_ufunc_at_names_the_functional_update():
    message = _grad_error(lambda x: np.add.at(np.zeros(3), [0, 0], x[:2]))
    assert "numpy.add.at" in message and "a.at[indices].add(b)" in message
    message = _grad_error(lambda x: np.add.reduceat(x, [0, 2]).sum())
    assert "numpy.add.reduceat" in message


def test_a_numpy_function_diffsys_lacks_is_named():
    message = _grad_error(lambda x: np.trapezoid(x))
    assert "numpy.trapezoid" in message and "ds.custom_vjp" in message
    assert "ds.stop_gradient" in message
    message = _grad_error(lambda x: np.ldexp(x, 2).sum())
    assert "numpy.ldexp" in message and "diffsys.numpy has no differentiable ldexp" in message
    message = _grad_error(lambda x: np.linalg.cond(np.outer(x, x) + np.eye(3)))
    assert "numpy.linalg.cond" in message


def test_scipy_special_ufuncs_point_to_diffsys_scipy():
    import scipy.special

    message = _grad_error(lambda x: scipy.special.erf(x).sum())
    assert "erf" in message and "diffsys.scipy.special" in message


def test_scipy_routines_fail_at_the_conversion_naming_both_lines():
    import scipy.linalg

    def f(x):
        return np.sum(scipy.linalg.expm(np.diag(x)))  # SciPy's own expm

    message = _grad_error(f)
    assert "return np.sum(scipy.linalg.expm(np.diag(x)))  # SciPy's own expm" in message
    assert f"inside {scipy.linalg.__file__.rsplit('__init__', 1)[0]}" in message
    assert "SciPy's compiled routines" in message


def test_in_place_numpy_functions_fail():
    message = _grad_error(lambda x: np.copyto(np.zeros(3), x))
    assert "numpy.copyto" in message and "a.at[idx].set(x)" in message
    message = _grad_error(
        lambda x: np.put_along_axis(x, np.array([0]), 1.0, axis=0) or x.sum()
    )
    assert "dnp.put_along_axis(a, indices, values, axis)" in message


def test_np_vectorize_fails_at_the_conversion():
    message = _grad_error(lambda x: np.vectorize(lambda v: v * 2.0)(x).sum())
    assert "np.vectorize" in message and "np.vectorize(lambda v: v * 2.0)(x)" in message


@pytest.mark.parametrize(
    "call, keyword",
    [
        (lambda x: np.sum(x, where=x > 0), "where"),
        (lambda x: np.exp(x, where=x > 0).sum(), "where"),
        (lambda x: np.add(x, 1.0, dtype=np.float32).sum(), "dtype"),
        (lambda x: np.max(x, initial=5.0), "initial"),
        (lambda x: np.add.reduce(x, where=x > 0), "where"),
    ],
)
def test_unsupported_keywords_are_named(call, keyword):
    message = _grad_error(call)
    assert f"{keyword}=" in message and f"{keyword!r}" in message


class Foreign:
    """Another library's array type, with its own NumPy protocols."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return "foreign ufunc"

    def __array_function__(self, func, types, args, kwargs):
        return "foreign function"


def test_other_libraries_arrays_get_their_turn():
    seen = []

    def f(x):
        seen.extend([np.add(x, Foreign()), np.multiply(Foreign(), x), np.stack([x, Foreign()])])
        seen.append(np.concatenate([x, Foreign()]))
        return x.sum()

    ds.grad(f)(X3)
    assert seen == ["foreign ufunc", "foreign ufunc", "foreign function", "foreign function"]
