"""``ds.jit(f, backend="numba")``: compiled results equal the graph executor's to rounding
(values and gradients, float32 and float64), fallback operations are named, bad input fails
clearly, shapes that change retrace, and the disk cache serves another process.

Numba compiles slowly, so each test compiles few functions: one function covers the
elementwise surface, reductions, indexing and products at once.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp

pytest.importorskip("numba")

UNARY = ["negative", "reciprocal", "exp", "log", "log1p", "sqrt", "cbrt", "sin", "tan",
         "arcsin", "tanh", "arctanh", "abs"]  # fmt: skip
BINARY = ["subtract", "divide", "power", "maximum", "hypot", "arctan2"]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    # one cache directory for the session: the module's tests share compiled code
    monkeypatch.setenv("DIFFSYS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ds_numba"))


def surface(x, y, m, v):
    """Elementwise ops (inputs in (0.2, 0.7): every domain), broadcasting (2,3)-(3,)-(),
    reductions, basic indexing, reshape, transpose, concatenation, matmul and where."""
    out = [getattr(dnp, name)(x) for name in UNARY]
    out += [getattr(dnp, name)(x, y) for name in BINARY]  # (2, 3) with (3,)
    out.append(x * 2.0 + x**2 - x**3)  # Python scalars, integer powers
    out.append(dnp.where(x > y, x, -y))
    out.append(dnp.sum(x, axis=0) + dnp.sum(x, axis=1, keepdims=True).T[0, :2].sum())
    out.append(dnp.reshape(x, (3, 2))[1:, :] @ m)  # (2, 2) @ (2, 2)
    out.append(dnp.concatenate([x[:, 1:], x[:, :1]], axis=1) * v)
    out.append(dnp.transpose(x)[::2] + dnp.mean(x))
    out.append(dnp.broadcast_to(y, (2, 3)) / (1.0 + x))
    return out


def _loss(x, y, m, v):
    return sum(dnp.sum(o * (k + 1.0)) for k, o in enumerate(surface(x, y, m, v)))


def _inputs(dtype):
    rng = np.random.default_rng(0)
    return (
        rng.uniform(0.2, 0.7, (2, 3)).astype(dtype),
        rng.uniform(0.2, 0.7, (3,)).astype(dtype),
        rng.uniform(0.2, 0.7, (2, 2)).astype(dtype),
        np.asarray(rng.uniform(0.2, 0.7), dtype=dtype),
    )


def _close(got, want, dtype):
    got, want = ds.tree_leaves(got), ds.tree_leaves(want)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype])


@functools.cache
def _compiled(dtype):
    """The value and gradients of ``_loss``, compiled (once per dtype for the module)."""
    return ds.jit(ds.value_and_grad(_loss, argnums=(0, 1, 2, 3)), backend="numba")


@pytest.mark.parametrize("dtype", [np.float64])
def test_values_and_gradients_equal_the_executor_to_rounding(dtype):
    args = _inputs(dtype)
    fun = ds.value_and_grad(_loss, argnums=(0, 1, 2, 3))
    compiled = _compiled(dtype)
    _close(compiled(*args), ds.jit(fun)(*args), dtype)
    _close(compiled(*args), fun(*args), dtype)  # and eager mode
    report = compiled.explain(*args)
    assert report.fallbacks == () and report.compiled == report.operations > 100
    assert compiled.cache_info().compile_seconds > 0
    assert compiled.cache_info().misses == 1


def test_float32_stays_float32_and_equals_the_executor():
    x, y = _inputs(np.float32)[:2]

    def f(x, y):
        return dnp.sum(dnp.tanh(x) * y + dnp.sqrt(x) / 3.0 - dnp.exp(y) ** 2)

    fun = ds.value_and_grad(f, argnums=(0, 1))
    _close(ds.jit(fun, backend="numba")(x, y), fun(x, y), np.float32)


def test_gradients_pass_check_grads():
    args = _inputs(np.float64)
    compiled = _compiled(np.float64)
    _, grads = compiled(*args)
    eps = 1e-6
    for k, arg in enumerate(args):  # central differences of the compiled function itself
        fd = np.zeros(arg.shape)
        for i in np.ndindex(arg.shape):
            up, down = list(args), list(args)
            up[k], down[k] = arg.copy(), arg.copy()
            up[k][i] += eps
            down[k][i] -= eps
            fd[i] = (compiled(*up)[0] - compiled(*down)[0]) / (2 * eps)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-6, atol=1e-6)
    assert compiled.cache_info().misses == 1  # no compile beyond the first

    # and check_grads of a compiled function (its derivatives replay the graph)
    f = ds.jit(lambda x: dnp.sum(dnp.sin(x) * x), backend="numba")
    ds.check_grads(f, (args[0],), order=2)


def test_fallback_operations_are_named_and_still_run():
    def f(x):
        return dnp.cumsum(dnp.sin(x)) * 2.0 + dnp.sort(x)

    compiled = ds.jit(f, backend="numba")
    x = np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(compiled(x), f(x), rtol=1e-15)
    report = compiled.explain(x)
    names = {fb.primitive for fb in report.fallbacks}
    assert "cumsum" in names and "sin" not in names
    assert all("no compiled kernel" in fb.reason for fb in report.fallbacks)
    text = str(report)
    assert "cumsum" in text and "graph executor" in text
    assert report.compiled >= 2  # sin, and the multiply-add after the fallback


def test_changing_shapes_retrace_and_integers_pass_through():
    compiled = ds.jit(lambda x, n: dnp.exp(x) * n, backend="numba")
    for size in (3, 5, 3):
        x = np.linspace(0.0, 1.0, size)
        np.testing.assert_allclose(compiled(x, np.int64(4)), np.exp(x) * 4, rtol=1e-15)
    info = compiled.cache_info()
    assert (info.misses, info.hits, info.currsize) == (2, 1, 2)


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.array([1.0, None], dtype=object)])
def test_object_and_string_arrays_are_a_clear_error(bad):
    compiled = ds.jit(lambda x: x, backend="numba")
    with pytest.raises(TypeError, match=r"backend='numba'.*dtype.*backend='numpy'"):
        compiled(bad)


def test_without_numba_the_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` fails
    with pytest.raises(ImportError, match=r"`jit` extra.*diffsys\[jit\]"):
        ds.jit(lambda x: x, backend="numba")
    ds.jit(lambda x: x)(np.ones(2))  # the default backend needs nothing
    with pytest.raises(ValueError, match="backend"):
        ds.jit(lambda x: x, backend="cuda")


def test_the_disk_cache_serves_another_process(tmp_path):
    env = dict(os.environ, DIFFSYS_CACHE_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join(sys.path))
    code = textwrap.dedent(
        """
        import numpy as np, diffsys as ds, diffsys.numpy as dnp
        f = ds.jit(lambda x: dnp.sum(dnp.tanh(x) * 3.0), backend="numba")
        print(float(f(np.ones(4))), f.explain(np.ones(4)).source_file)
        """
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    (v1, path1), (v2, path2) = (r.stdout.split() for r in runs)
    assert v1 == v2 == repr(float(np.sum(np.tanh(np.ones(4)) * 3.0)))
    assert path1 == path2 and path1.startswith(str(tmp_path))
    # Numba's index of compiled machine code sits beside the source
    assert any(p.suffix == ".nbi" for p in (tmp_path / "numba" / "__pycache__").iterdir())
