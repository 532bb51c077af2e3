"""``diffsys.scipy.integrate``: ODE integration differentiable by the adjoint method.

:func:`odeint` solves ``dy/dt = func(y, t, *args)`` with :func:`scipy.integrate.solve_ivp`
and differentiates the solution with respect to the initial state ``y0``, the time points
``t`` and the parameters ``args`` by solving the adjoint ODE backward in time (Pontryagin;
Chen et al. 2018, as ``jax.experimental.ode.odeint``). The backward pass stores only the
solution at the requested time points, never the solver's internal steps, so memory does not
grow with the number of steps.

``func`` is written with :mod:`diffsys.numpy`: the backward pass takes its vector-Jacobian
products with :func:`diffsys.vjp`.

Forward mode (``jvp``, ``jacfwd``) solves the forward sensitivity equations alongside the
state instead. ``vmap`` over ``odeint`` loops the solver over the batch.

Limits: first order only: derivatives of derivatives (``hessian``, ``jvp`` of ``grad``)
raise ``NotImplementedError`` naming the adjoint or sensitivity primitive.

>>> import numpy as np, diffsys as ds
>>> from diffsys.scipy.integrate import odeint
>>> decay = lambda y, t, k: -k * y
>>> ts = np.array([0.0, 1.0])
>>> g = ds.grad(lambda k: odeint(decay, 1.0, ts, k)[-1])(0.5)  # d/dk exp(-k) = -exp(-k)
>>> bool(abs(g + np.exp(-0.5)) < 1e-8)
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate import solve_ivp

from ..core.custom import custom_vjp
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ..core.transforms import jvp, vjp

__all__ = ["odeint"]


def _solve(rhs, y0_flat, t_span, t_eval, rtol, atol, method, op):
    sol = solve_ivp(
        rhs, t_span, y0_flat, method=method, t_eval=t_eval, rtol=rtol, atol=atol, dense_output=False
    )
    if not sol.success:
        raise RuntimeError(f"{op}: the ODE solver failed: {sol.message}")
    return sol.y


def _is_diff(a) -> bool:
    return np.issubdtype(np.asarray(a).dtype, np.inexact)


def odeint(
    func: Callable,
    y0,
    t,
    *args,
    rtol: float = 1.4e-8,
    atol: float = 1.4e-8,
    method: str = "DOP853",
):
    """Solve ``dy/dt = func(y, t, *args)`` from ``y(t[0]) = y0``; return ``y`` at every ``t``
    (shape ``(len(t),) + y0.shape``), differentiable in ``y0``, ``t`` and ``args`` by the
    adjoint method.

    ``t`` is a 1-d strictly monotonic sequence; ``args`` are arrays or scalars (integer ones
    are held fixed). ``rtol``/``atol`` apply to the forward and the adjoint solves.
    """
    t_arr = np.asarray(t.concrete() if isinstance(t, Tracer) else t)
    if t_arr.ndim != 1 or t_arr.size < 1:
        raise ValueError(
            f"odeint: t must be a 1-d sequence of time points, got shape {t_arr.shape}"
        )
    if t_arr.size > 1:
        steps = np.diff(t_arr)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError("odeint: t must be strictly increasing or strictly decreasing")

    def forward(y0, t, *args):
        # a primitive: forward mode (its JVP rule solves the sensitivity equations) and vmap
        # (the engine loops it) go through it; reverse mode is the custom_vjp below
        return _odeint_p(y0, t, *args, func=func, rtol=rtol, atol=atol, method=method)

    solve = custom_vjp(forward)

    def fwd(y0, t, *args):
        ys = forward(y0, t, *args)
        return ys, (ys, t, args)

    def bwd(res, g):
        ys, ts, fargs = res
        diff = tuple(_is_diff(a) for a in fargs)
        cts = _adjoint_p(
            g, ys, ts, *fargs, func=func, rtol=rtol, atol=atol, method=method, diff=diff
        )
        return (cts[0], cts[1], *[c if d else None for c, d in zip(cts[2:], diff, strict=True)])

    solve.defvjp(fwd, bwd)
    if not isinstance(t, Tracer):
        t = t_arr.astype(np.float64)
    if not isinstance(y0, Tracer):
        y0 = np.asarray(y0)
    return solve(y0, t, *args)


def _no_tracers(*xs):
    for x in xs:
        if isinstance(x, Tracer):
            raise NotImplementedError(
                "odeint: derivatives of odeint's derivatives (hessian, jvp of grad, jvp of "
                "jvp) are not supported; odeint is differentiable to first order in forward "
                "mode (jvp, jacfwd) and reverse mode (grad, vjp, jacrev)"
            )


def _solve_impl(y0, t, *args, func, rtol, atol, method):
    y0 = np.asarray(y0)
    t = np.asarray(t, dtype=np.float64)
    shape, dtype = y0.shape, np.result_type(y0.dtype, np.float32)

    def rhs(s, y):
        return np.ravel(np.asarray(func(y.reshape(shape), s, *args), dtype=np.float64))

    y0_flat = np.ravel(y0).astype(np.float64)
    if t.size == 1:
        ys = y0_flat[None, :]
    else:
        ys = _solve(rhs, y0_flat, (t[0], t[-1]), t, rtol, atol, method, "odeint").T
    return ys.reshape((t.size,) + shape).astype(dtype, copy=False)


def _sensitivity_jvp(primals, tangents, ans, func, rtol, atol, method):
    # a primitive of its own: under vmap (jacfwd) the engine loops it over the tangents
    return _sensitivity_p(
        ans, *primals, *tangents, n=len(primals), func=func, rtol=rtol, atol=atol, method=method
    )


def _sensitivity_impl(ans, *flat, n, func, rtol, atol, method):
    """Forward sensitivities: s' = df/dy s + df/dargs args_dot with s(t0) = y0_dot -
    f(y0, t0) t0_dot; the output tangent at t_i is s(t_i) + f(y_i, t_i) t_i_dot
    (``None`` tangents are zero)."""
    y0, ts, *args = flat[:n]
    y0_dot, t_dot, *args_dot = flat[n:]
    y0 = np.asarray(y0)
    ts = np.asarray(ts, dtype=np.float64)
    shape = y0.shape
    n = y0.size
    diff = [i for i, d in enumerate(args_dot) if d is not None]
    _no_tracers(ans, *flat)
    ys = np.asarray(ans, dtype=np.float64).reshape(len(ts), n)

    def f_raw(y, s):
        return np.ravel(np.asarray(func(y.reshape(shape), s, *args), dtype=np.float64))

    def f_jvp(y, s, sens):
        def f_of(y_, *dargs):
            full = list(args)
            for i, v in zip(diff, dargs, strict=True):
                full[i] = v
            return func(y_, s, *full)

        primal_in = (y.reshape(shape), *[np.asarray(args[i], np.float64) for i in diff])
        tangent_in = (
            sens.reshape(shape),
            *[np.asarray(args_dot[i], np.float64) for i in diff],
        )
        out, tout = jvp(f_of, primal_in, tangent_in)
        return np.ravel(np.asarray(out, np.float64)), np.ravel(np.asarray(tout, np.float64))

    s0 = np.zeros(n) if y0_dot is None else np.ravel(np.asarray(y0_dot, np.float64))
    if t_dot is not None:
        t_dot = np.asarray(t_dot, dtype=np.float64)
        s0 = s0 - f_raw(ys[0], ts[0]) * t_dot[0]
    if len(ts) == 1:
        sens = s0[None, :]
    else:

        def aug(s, z):
            f, df = f_jvp(z[:n], s, z[n:])
            return np.concatenate([f, df])

        z = _solve(
            aug,
            np.concatenate([ys[0], s0]),
            (ts[0], ts[-1]),
            ts,
            rtol,
            atol,
            method,
            "odeint sensitivities",
        )
        sens = z[n:].T
    if t_dot is not None:
        sens = sens + np.stack([f_raw(ys[i], ts[i]) for i in range(len(ts))]) * t_dot[:, None]
    return sens.reshape(np.shape(ans)).astype(np.asarray(ans).dtype, copy=False)


_odeint_p = Primitive("scipy.integrate.odeint", _solve_impl)
_odeint_p.defjvp_all(_sensitivity_jvp)
_sensitivity_p = Primitive("scipy.integrate.odeint_sensitivities", _sensitivity_impl)


def _adjoint_impl(g, ys, ts, *args, func, rtol, atol, method, diff):
    ts = np.asarray(ts, dtype=np.float64)
    cts = _adjoint(func, ys, ts, args, np.asarray(g), rtol, atol, method)
    # a primitive returns arrays: zeros stand for the held-fixed (integer) arguments
    inputs = (None, None, *args)
    return [c if c is not None else np.zeros(np.shape(a)) for c, a in zip(cts, inputs, strict=True)]


# The backward pass as a primitive: under vmap (jacrev) the engine loops it over the batch of
# cotangents; it has no derivative rules, so differentiating it again raises a clear error.
_adjoint_p = Primitive("scipy.integrate.odeint_adjoint", _adjoint_impl, multiple_results=True)


def _adjoint(func, ys, ts, args, g, rtol, atol, method):
    """Cotangents of ``(y0, t, *args)`` for output cotangent ``g`` (shaped like ``ys``)."""
    shape = ys.shape[1:]
    n = int(np.prod(shape, dtype=np.int64))
    diff = [i for i, a in enumerate(args) if _is_diff(a)]
    arg_shapes = [np.shape(args[i]) for i in diff]
    arg_sizes = [int(np.prod(s, dtype=np.int64)) for s in arg_shapes]
    n_args = sum(arg_sizes)
    ys64 = ys.astype(np.float64).reshape(len(ts), n)
    g64 = np.asarray(g, dtype=np.float64).reshape(len(ts), n)

    def f_raw(y, s):
        return np.ravel(np.asarray(func(y.reshape(shape), s, *args), dtype=np.float64))

    def f_vjp(y, s, a):
        """f(y, s) and a^T df/dy, a^T df/dargs (flattened)."""

        def f_of(y_, *dargs):
            full = list(args)
            for i, v in zip(diff, dargs, strict=True):
                full[i] = v
            return func(y_, s, *full)

        out, pull = vjp(f_of, y.reshape(shape), *[np.asarray(args[i], np.float64) for i in diff])
        cts = pull(np.asarray(a, dtype=np.float64).reshape(np.shape(out)))
        parts = [np.ravel(np.asarray(c, dtype=np.float64)) for c in cts]
        return np.ravel(np.asarray(out, dtype=np.float64)), parts[0], parts[1:]

    def aug_rhs(s, z):
        y, a = z[:n], z[n : 2 * n]
        f, a_fy, a_fargs = f_vjp(y, s, a)
        parts = [f, -a_fy] + [-p for p in a_fargs]
        return np.concatenate(parts) if parts else np.zeros(0)

    a = g64[-1].copy()
    args_bar = np.zeros(n_args)
    t_bar = np.zeros(len(ts))
    for i in range(len(ts) - 1, 0, -1):
        # moving an output time moves that output along the trajectory
        t_bar[i] = g64[i] @ f_raw(ys64[i], ts[i])
        z0 = np.concatenate([ys64[i], a, args_bar])
        # t_eval at the end point only: solve_ivp keeps no step history, so memory stays
        # independent of the number of steps
        z = _solve(
            aug_rhs, z0, (ts[i], ts[i - 1]), ts[i - 1 : i], rtol, atol, method, "odeint adjoint"
        )
        z = z[:, -1]
        a = z[n : 2 * n]
        args_bar = z[2 * n :]
        if i - 1 > 0:
            a = a + g64[i - 1]
    # moving t0 shifts the whole trajectory (y(t0) = y0 is fixed): -a(t0) . f(y0, t0)
    t_bar[0] = -(a @ f_raw(ys64[0], ts[0])) if len(ts) > 1 else 0.0
    y0_bar = a + g64[0] if len(ts) > 1 else g64[0]

    y0_dtype = ys.dtype
    cts = [y0_bar.reshape(shape).astype(y0_dtype, copy=False), t_bar]
    offsets = np.cumsum([0, *arg_sizes])
    arg_cts: list = [None] * len(args)
    for k, i in enumerate(diff):
        ct = args_bar[offsets[k] : offsets[k + 1]].reshape(arg_shapes[k])
        arg_cts[i] = ct.astype(np.result_type(np.asarray(args[i]).dtype), copy=False)
    return (*cts, *arg_cts)
