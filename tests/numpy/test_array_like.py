"""Lists and tuples that mix traced values and numbers, wherever NumPy takes ``array_like``.

``dnp.linalg.norm([x, x + 2.0])``, ``dnp.dot([x, 1.0], y)``: every public function of
``diffsys.numpy``, ``.linalg`` and ``.fft`` with an array argument is called with that
argument given as a nested list of traced scalars and one plain number (and, for matrices,
as a list of a traced row and a row of numbers). Values equal NumPy's; the derivative is
that of the function with the array argument, with the plain entries held constant.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.core.primitive import Primitive

_rng = np.random.default_rng(0)
V = np.array([0.3, 0.7, 0.45, 0.9])  # distinct, in (0, 1)
W = np.array([0.55, 0.2, 0.8, 0.35])
M = np.array([[2.0, 0.3, 0.1], [0.2, 1.5, 0.4], [0.1, 0.5, 1.8]])  # well conditioned
S = M @ M.T  # symmetric positive definite
R = np.array([[0.6, 0.2, 0.9, 0.4], [0.1, 0.8, 0.3, 0.7], [0.5, 0.25, 0.65, 0.15]])
I3 = np.array([2, 0, 3])
Q = np.array([0.25, 0.5, 0.9])

# name -> (fn(m, *args) with m = numpy or diffsys.numpy, args). Float arrays of ndim >= 1 in
# args are the ones given as mixed lists (in turn).
CASES: dict[str, tuple] = {}


def case(name, fn, *args, ndarray=()):
    """``ndarray``: positions where NumPy itself takes only an ndarray (no lists)."""
    CASES[name] = (fn, args, ndarray)


def _np_put_along_axis(a, v):
    out = a.copy()
    np.put_along_axis(out, I3[:2], v, axis=0)
    return out


for _name in (
    "abs absolute arccos arcsin arctan arctanh cbrt ceil conj conjugate cos cosh deg2rad "
    "degrees exp exp2 expm1 fabs fix floor isfinite isinf isnan log log10 log1p log2 "
    "logical_not negative positive rad2deg radians real reciprocal rint sign signbit sin "
    "sinc sinh sqrt square tan tanh trunc arcsinh angle imag around round nan_to_num "
    "ravel flipud atleast_1d atleast_2d atleast_3d diag diagflat argwhere nonzero "
    "count_nonzero sort argsort unique cumsum cumprod nancumsum nancumprod sum prod mean "
    "std var max min amax amin nansum nanmean nanstd nanvar nanmax nanmin median ptp all "
    "any argmax argmin flip squeeze transpose diff"
).split():
    case(_name, lambda m, a, _n=_name: getattr(m, _n)(a), V)
case("arccosh", lambda m, a: m.arccosh(a), V + 1.0)
case("iscomplex", lambda m, a: m.iscomplex(a), V)
case("real_if_close", lambda m, a: m.real_if_close(a), V)
case("gradient", lambda m, a, h: m.gradient(a, h), V, np.cumsum(W))
case("append", lambda m, a, b: m.append(a, b), V, W[:2])
case("rollaxis", lambda m, a: m.rollaxis(a, 1), M, ndarray=(0,))
case("row_stack", lambda m, a, b: (m.row_stack if m is dnp else np.vstack)([a, b]), V, W)
for _name in (
    "add subtract multiply divide true_divide power arctan2 hypot logaddexp logaddexp2 "
    "maximum minimum fmax fmin copysign fmod mod remainder floor_divide float_power "
    "heaviside equal not_equal less less_equal greater greater_equal logical_and "
    "logical_or logical_xor dot inner outer vdot kron convolve correlate isclose "
    "allclose polyval"
).split():
    case(_name, lambda m, a, b, _n=_name: getattr(m, _n)(a, b), V, W)
case("matmul", lambda m, a, b: m.matmul(a, b), M, V[:3])
case("tensordot", lambda m, a, b: m.tensordot(a, b, axes=1), M, V[:3])
case("einsum", lambda m, a, b: m.einsum("ij,j->i", a, b), M, V[:3])
case("cross", lambda m, a, b: m.cross(a, b), V[:3], W[:3])
case("where", lambda m, a, b: m.where(V > 0.5, a, b), V, W)
case("clip", lambda m, a, lo, hi: m.clip(a, lo, hi), V, W * 0.5, W + 0.2)
case("interp", lambda m, x, xp, fp: m.interp(x, xp, fp), Q, np.sort(V), W)
case("searchsorted", lambda m, a, v: m.searchsorted(a, v), np.sort(V), Q)
case("average", lambda m, a, w: m.average(a, weights=w), V, W)
case("percentile", lambda m, a, q: m.percentile(a, q), V, Q * 100)
case("quantile", lambda m, a, q: m.quantile(a, q), V, Q)
case("trace", lambda m, a: m.trace(a), M)
case("diagonal", lambda m, a: m.diagonal(a), M)
case("tril", lambda m, a: m.tril(a), M)
case("triu", lambda m, a: m.triu(a), M)
case("fliplr", lambda m, a: m.fliplr(a), M)
case("rot90", lambda m, a: m.rot90(a), M)
case("swapaxes", lambda m, a: m.swapaxes(a, 0, 1), M)
case("moveaxis", lambda m, a: m.moveaxis(a, 0, 1), M)
case("expand_dims", lambda m, a: m.expand_dims(a, 0), V)
case("reshape", lambda m, a: m.reshape(a, (2, 2)), V)
case("broadcast_to", lambda m, a: m.broadcast_to(a, (2, 4)), V)
case("broadcast_arrays", lambda m, a, b: m.broadcast_arrays(a, b), M, V[:3])
case("meshgrid", lambda m, a, b: m.meshgrid(a, b), V, W[:3])
case("tile", lambda m, a: m.tile(a, 2), V)
case("repeat", lambda m, a: m.repeat(a, 2), V)
case("roll", lambda m, a: m.roll(a, 1), V)
case("pad", lambda m, a: m.pad(a, 1), V)
case("take", lambda m, a: m.take(a, I3), V)
case("take_along_axis", lambda m, a: m.take_along_axis(a, I3, axis=0), V, ndarray=(0,))
case(
    "put_along_axis",
    lambda m, a, v: (
        m.put_along_axis(a, I3[:2], v, axis=0) if m is dnp else _np_put_along_axis(a, v)
    ),
    V,
    W[:2],
    ndarray=(0,),
)
case("choose", lambda m, a, b: m.choose(np.array([0, 1, 1, 0]), [a, b]), V, W)
case("compress", lambda m, a: m.compress(V > 0.4, a), W)
case("select", lambda m, a, b: m.select([V > 0.5, V <= 0.5], [a, b]), V, W)
case("partition", lambda m, a: m.partition(a, 1), V)
case("argpartition", lambda m, a: m.argpartition(a, 1), V)
case("split", lambda m, a: m.split(a, 2), V, ndarray=(0,))
case("array_split", lambda m, a: m.array_split(a, 3), V)
case("hsplit", lambda m, a: m.hsplit(a, 2), V, ndarray=(0,))
case("vsplit", lambda m, a: m.vsplit(a, 3), M, ndarray=(0,))
case("dsplit", lambda m, a: m.dsplit(a, 3), M[None], ndarray=(0,))
case("concatenate", lambda m, a, b: m.concatenate([a, b]), V, W[:3])
case("stack", lambda m, a, b: m.stack([a, b]), V, W)
case("hstack", lambda m, a, b: m.hstack([a, b]), V, W)
case("vstack", lambda m, a, b: m.vstack([a, b]), V, W)
case("dstack", lambda m, a, b: m.dstack([a, b]), V, W)
case("column_stack", lambda m, a, b: m.column_stack([a, b]), V, W)
case("array", lambda m, a: m.array(a), V)
case("asarray", lambda m, a: m.asarray(a), V)
case("astype", lambda m, a: m.astype(a, np.float32), V)
case("zeros_like", lambda m, a: m.zeros_like(a), V)
case("ones_like", lambda m, a: m.ones_like(a), V)
case("empty_like", lambda m, a: m.empty_like(a).shape, V)
case("full_like", lambda m, a, v: m.full_like(a, v), V, W)
case("full", lambda m, v: m.full((2, 4), v), W)
case("linspace", lambda m, a, b: m.linspace(a, b, 3), V, W)
case("getitem", lambda m, a: m.getitem(a, 1) if m is dnp else a[1], V)
case("shape", lambda m, a: m.shape(a), M)
case("ndim", lambda m, a: m.ndim(a), M)
case("size", lambda m, a: m.size(a), M)
case("isscalar", lambda m, a: m.isscalar(a), V)

case("linalg.cholesky", lambda m, a: m.linalg.cholesky(a), S)
case("linalg.det", lambda m, a: m.linalg.det(a), M)
case("linalg.eig", lambda m, a: m.linalg.eig(a)[1] ** 2, M)
case("linalg.eigvals", lambda m, a: m.linalg.eigvals(a), M)
case("linalg.eigh", lambda m, a: m.linalg.eigh(a)[0], S)
case("linalg.eigvalsh", lambda m, a: m.linalg.eigvalsh(a), S)
case("linalg.inv", lambda m, a: m.linalg.inv(a), M)
case("linalg.lstsq", lambda m, a, b: m.linalg.lstsq(a, b)[0], R.T, V)
case("linalg.matrix_power", lambda m, a: m.linalg.matrix_power(a, 2), M)
case("linalg.matrix_rank", lambda m, a: m.linalg.matrix_rank(a), M)
case("linalg.multi_dot", lambda m, a, b: m.linalg.multi_dot([a, b, a]), M, S)
case("linalg.norm", lambda m, a: m.linalg.norm(a), V)
case("linalg.pinv", lambda m, a: m.linalg.pinv(a), R)
case("linalg.qr", lambda m, a: m.linalg.qr(a)[1] ** 2, M)
case("linalg.slogdet", lambda m, a: m.linalg.slogdet(a)[1], M)
case("linalg.solve", lambda m, a, b: m.linalg.solve(a, b), M, V[:3])
case("linalg.svd", lambda m, a: m.linalg.svd(a, compute_uv=False), R)
case("linalg.tensorsolve", lambda m, a, b: m.linalg.tensorsolve(a, b), M, V[:3])
for _name in "fft ifft rfft ihfft hfft irfft fftshift ifftshift".split():
    case(f"fft.{_name}", lambda m, a, _n=_name: getattr(m.fft, _n)(a), V)
for _name in "fft2 ifft2 fftn ifftn rfft2 rfftn irfft2 irfftn".split():
    case(f"fft.{_name}", lambda m, a, _n=_name: getattr(m.fft, _n)(a), M)

# Public names that take no array (or only integer/boolean arrays, or are not functions
# of arrays): (name, why).
NO_ARRAY_ARGUMENT = {
    "arange": "numbers",
    "empty": "a shape",
    "eye": "sizes",
    "identity": "a size",
    "ones": "a shape",
    "zeros": "a shape",
    "at": "the functional-update helper; x.at[i] is indexed, not converted",
    "result_type": "dtypes",
    "issubdtype": "dtypes",
    "dtype": "a dtype",
    "finfo": "a dtype",
    "iinfo": "a dtype",
    "bitwise_and": "integers",
    "bitwise_or": "integers",
    "bitwise_xor": "integers",
    "invert": "integers",
    "fft.fftfreq": "sizes",
    "fft.rfftfreq": "sizes",
    "unbroadcast": "a helper of derivative rules, whose (co)tangents are arrays",
}


def _public_functions() -> list[str]:
    names = []
    for prefix, mod in (("", dnp), ("linalg.", dnp.linalg), ("fft.", dnp.fft)):
        for n in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, n)
            if n.startswith("_") or isinstance(obj, type) or inspect.ismodule(obj):
                continue
            if isinstance(obj, Primitive) or callable(obj):
                names.append(prefix + n)
    return names


def test_every_public_function_is_covered():
    names = set(_public_functions())
    missing = sorted(names - set(CASES) - set(NO_ARRAY_ARGUMENT))
    assert not missing, f"add these to CASES (or NO_ARRAY_ARGUMENT with a reason): {missing}"


def _weights(shape):
    return np.cos(np.arange(int(np.prod(shape)))).reshape(shape) + 1.5


def _score(out, like):
    """A real scalar that depends on every inexact entry of ``out`` (a pytree)."""
    total = dnp.sum(like) * 0.0
    for leaf in ds.tree_leaves(out):
        dt = dnp.result_type(leaf) if not isinstance(leaf, ds.Tracer) else leaf.dtype
        if not np.issubdtype(dt, np.inexact):
            continue
        w = _weights(dnp.shape(leaf))
        if np.issubdtype(dt, np.complexfloating):
            total = total + dnp.sum(dnp.real(leaf) * w) + dnp.sum(dnp.imag(leaf) * w[::-1])
        else:
            total = total + dnp.sum(leaf * w)
    return total


def _scalars(x, plain):
    """``x`` as nested lists of traced scalars, with flat entry 1 the plain number."""

    def build(prefix):
        if len(prefix) == len(plain.shape):
            if np.ravel_multi_index(prefix, plain.shape) == 1:
                return float(plain[prefix])
            return x[prefix]
        return [build(prefix + (i,)) for i in range(plain.shape[len(prefix)])]

    return build(())


def _rows(x, plain):
    """``x`` as a list of its rows, row 1 a list of plain numbers."""
    return [plain[i].tolist() if i == 1 else x[i] for i in range(plain.shape[0])]


def _held(plain, form):
    """1 where the mixed form keeps ``x`` traced, 0 where it holds plain numbers."""
    mask = np.ones_like(plain)
    if form == "scalars":
        mask.flat[1] = 0.0
    else:
        mask[1] = 0.0
    return mask


def _params():
    out = []
    for name, (fn, args, ndarray) in CASES.items():
        for k, a in enumerate(args):
            if k in ndarray:
                continue
            if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.ndim >= 1:
                out.append(pytest.param(name, k, "scalars", id=f"{name}-{k}-scalars"))
                if a.ndim >= 2:
                    out.append(pytest.param(name, k, "rows", id=f"{name}-{k}-rows"))
    return out


def _leaves_equal(got, want):
    got, want = ds.tree_leaves(got), ds.tree_leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert not isinstance(g, ds.Tracer)
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12)
        assert np.asarray(g).shape == np.asarray(w).shape


@pytest.mark.parametrize("name, k, form", _params())
def test_mixed_list_argument(name, k, form):
    fn, args, _ = CASES[name]
    plain = args[k]
    expected = fn(np, *args)
    make = _scalars if form == "scalars" else _rows

    def with_list(x):
        return fn(dnp, *args[:k], make(x, plain), *args[k + 1 :])

    def with_array(x):
        return fn(dnp, *args[:k], x, *args[k + 1 :])

    out, _ = ds.vjp(with_list, plain)
    _leaves_equal(out, expected)
    g_list = ds.grad(lambda x: _score(with_list(x), x))(plain)
    g_array = ds.grad(lambda x: _score(with_array(x), x))(plain)
    np.testing.assert_allclose(g_list, g_array * _held(plain, form), rtol=1e-10, atol=1e-12)
    # Forward mode, and the plain lists of numbers outside any transform.
    tangent = _weights(plain.shape)
    _, t_list = ds.jvp(lambda x: _score(with_list(x), x), (plain,), (tangent,))
    _, t_array = ds.jvp(
        lambda x: _score(with_array(x), x), (plain,), (tangent * _held(plain, form),)
    )
    np.testing.assert_allclose(t_list, t_array, rtol=1e-10, atol=1e-12)
    _leaves_equal(fn(dnp, *args[:k], plain.tolist(), *args[k + 1 :]), expected)


def test_issue_examples():
    g = ds.grad(lambda x: dnp.linalg.norm([x, x + 2.0]))(1.0)
    np.testing.assert_allclose(g, (1.0 + 3.0) / np.hypot(1.0, 3.0))
    g = ds.grad(lambda x: dnp.dot([x, 1.0], np.array([2.0, 3.0])))(1.0)
    np.testing.assert_allclose(g, 2.0)
    assert ds.grad(lambda x: dnp.sum([x, 1.0]))(1.0) == 1.0


def test_operators_take_mixed_lists():
    x0 = np.array([1.0, 2.0])
    f = lambda x: dnp.sum((x * [x[1], 3.0]) + ([x[0], 1.0] - x) / [2.0, x[0]])  # noqa: E731
    ds.check_grads(f, (x0,), order=2)
    want = np.sum(x0 * [x0[1], 3.0] + (np.array([x0[0], 1.0]) - x0) / [2.0, x0[0]])
    np.testing.assert_allclose(f(x0), want)


def test_mixed_lists_of_tracers_of_several_levels():
    """A list holding an inner transform's tracer beside an outer one's array: the list
    decides the trace (it is stacked before dispatch), so both derivatives are exact."""

    def inner(a, t):
        return ds.grad(lambda t: dnp.dot(a, [t, 1.0]) * t)(t)

    a0 = np.array([0.5, 2.0])
    # d/dt (a0 t + a1) t = 2 a0 t + a1; d/da of that = [2 t, 1].
    np.testing.assert_allclose(inner(a0, 3.0), 2 * 0.5 * 3.0 + 2.0)
    np.testing.assert_allclose(ds.grad(lambda a: inner(a, 3.0))(a0), [6.0, 1.0])
    ds.check_grads(lambda a, t: inner(a, t), (a0, 3.0), order=1)
    # Under vmap, the batched tracer inside the list is stacked at its own level.
    ts = np.array([1.0, 2.0, 3.0])
    got = ds.vmap(lambda t: dnp.dot(a0, [t, 1.0]) + dnp.sin([t, t])[0])(ts)
    np.testing.assert_allclose(got, a0[0] * ts + a0[1] + np.sin(ts))
    got = ds.vmap(lambda t: dnp.linalg.norm([t, 2.0 * t]))(ts)
    np.testing.assert_allclose(got, np.sqrt(5.0) * ts)


def test_mixed_list_inside_a_graph_trace():
    graph = ds.trace(lambda x: dnp.linalg.norm([x[0], 2.0, x[1]]))(np.array([1.0, 3.0]))
    np.testing.assert_allclose(graph(np.array([2.0, 4.0])), np.sqrt(4.0 + 4.0 + 16.0))
