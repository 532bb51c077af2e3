"""The shared check for NumPy-surface tests that compare diffsys.numpy with numpy."""

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp


def check(fn, *args, order=2, vmap=True, rtol=1e-12, atol=1e-14, shift=1.0):
    """``fn(m, *args)`` with ``m`` = numpy or diffsys.numpy: same values plain and traced,
    derivatives to ``order``, vmap over the first argument equal to stacking (the batch is
    ``x``, ``x / 2 + shift`` and ``-x``), float32 kept as NumPy keeps it."""
    expected = np.asarray(fn(np, *args))
    plain = fn(dnp, *args)
    assert not isinstance(plain, ds.Tracer)
    np.testing.assert_array_equal(np.asarray(plain), expected)
    f = lambda *a: fn(dnp, *a)  # noqa: E731
    out, _ = ds.vjp(f, *args)
    assert np.asarray(out).shape == expected.shape
    assert np.asarray(out).dtype == expected.dtype
    np.testing.assert_allclose(np.asarray(out), expected, rtol=rtol, atol=atol)
    ds.check_grads(f, args, order=order, modes=("fwd", "rev"))
    if vmap:
        batch = np.stack([args[0], args[0] * 0.5 + shift, -args[0]])
        got = ds.vmap(lambda x: f(x, *args[1:]))(batch)
        want = np.stack([fn(np, b, *args[1:]) for b in batch])
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=atol)
    x32 = args[0].astype(np.float32)
    out32, vjp32 = ds.vjp(lambda x: f(x, *args[1:]), x32)
    assert np.asarray(out32).dtype == np.asarray(fn(np, x32, *args[1:])).dtype
    (g32,) = vjp32(np.ones_like(np.asarray(out32)))
    assert np.asarray(g32).dtype == np.float32
