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

Derivatives of any order: on plain values (first order) the adjoint and the sensitivity
solves run as primitives on float64 arrays. When an outer transform differentiates them
(``hessian``, ``jvp`` of ``grad``, ``grad`` of ``grad``, ``jacfwd`` of ``jacfwd``), they are
computed instead by ``odeint`` itself on augmented states (``[y, a, a_args]`` backward
between output times, ``[y, s]`` forward), with dynamics written with :func:`diffsys.vjp` and
:func:`diffsys.jvp` of ``func``, so that the outer transform differentiates them through
``odeint``'s own rules again. ``func`` must not close over traced values: pass them in
``args``.

>>> import numpy as np, diffsys as ds
>>> from diffsys.scipy.integrate import odeint
>>> decay = lambda y, t, k: -k * y
>>> ts = np.array([0.0, 1.0])
>>> g = ds.grad(lambda k: odeint(decay, 1.0, ts, k)[-1])(0.5)  # d/dk exp(-k) = -exp(-k)
>>> bool(abs(g + np.exp(-0.5)) < 1e-8)
True
>>> h = ds.grad(ds.grad(lambda k: odeint(decay, 1.0, ts, k)[-1]))(0.5)  # exp(-k)
>>> bool(abs(h - np.exp(-0.5)) < 1e-7)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.integrate import solve_ivp

import diffsys.numpy as dnp

from ..core.custom import custom_vjp
from ..core.forward import JVPTracer
from ..core.primitive import Primitive
from ..core.reverse import ReverseTracer
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
    dtype = a.dtype if isinstance(a, Tracer) else np.asarray(a).dtype
    return np.issubdtype(dtype, np.inexact)


def _differentiated(*xs) -> bool:
    """Whether a forward- or reverse-mode transform traces any of ``xs`` (at any level): then
    a derivative computed from them must itself be differentiable. ``vmap`` and graph
    tracing alone do not count: they loop or record the plain primitives."""
    for x in xs:
        while isinstance(x, Tracer):
            if isinstance(x, JVPTracer | ReverseTracer):
                return True
            x = x._value
    return False


def _with_diff_args(func, t, args, diff):
    """``func(y, t, *args)`` as a function of ``y`` and the arguments numbered ``diff``."""

    def f_of(y, *diff_args):
        full = list(args)
        for i, v in zip(diff, diff_args, strict=True):
            full[i] = v
        return func(y, t, *full)

    return f_of


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
    (shape ``(len(t),) + y0.shape``), differentiable to any order in ``y0``, ``t`` and
    ``args`` (the adjoint method in reverse mode, the sensitivity equations in forward mode).

    ``t`` is a 1-d strictly monotonic sequence; ``args`` are arrays or scalars (integer ones
    are held fixed; traced values ``func`` uses must come in through them, not a closure).
    ``rtol``/``atol`` apply to the forward, adjoint and sensitivity solves.
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
    options = {"rtol": rtol, "atol": atol, "method": method}

    def forward(y0, t, *args):
        # a primitive: forward mode (its JVP rule solves the sensitivity equations) and vmap
        # (the engine loops it) go through it; reverse mode is the custom_vjp below
        return _odeint_p(y0, t, *args, func=func, **options)

    solve = custom_vjp(forward)

    def fwd(y0, t, *args):
        # ``solve``, not ``forward``: values traced by an outer reverse transform (grad of
        # grad) meet this rule again, one adjoint for all arguments, rather than the
        # primitive's per-argument VJP rules
        ys = solve(y0, t, *args)
        return ys, (ys, t, args)

    def bwd(res, g):
        ys, ts, fargs = res
        return _cotangents(func, g, ys, ts, fargs, options)

    solve.defvjp(fwd, bwd)
    if not isinstance(t, Tracer):
        t = t_arr.astype(np.float64)
    if not isinstance(y0, Tracer):
        y0 = np.asarray(y0)
    return solve(y0, t, *args)


def _cotangents(func, g, ys, ts, args, options) -> tuple:
    """The cotangents of ``(y0, t, *args)`` for the cotangent ``g`` of ``ys = odeint(...)``
    (``None`` for integer arguments): by the adjoint primitive on plain float64 arrays, or,
    when a transform differentiates them, by :func:`_adjoint_traced`."""
    diff = tuple(_is_diff(a) for a in args)
    if _differentiated(g, ys, ts, *args):
        cts = _adjoint_traced(func, g, ys, ts, args, options)
    else:
        cts = _adjoint_p(g, ys, ts, *args, func=func, diff=diff, **options)
    return (cts[0], cts[1], *[c if d else None for c, d in zip(cts[2:], diff, strict=True)])


# --- the forward solve ---------------------------------------------------------------------


def _plain_rhs(func, shape, args):
    """``func`` on flat float64 states, for solve_ivp: ``rhs(s, y) -> dy/dt`` flattened."""

    def rhs(s, y):
        out = func(y.reshape(shape), s, *args)
        if isinstance(out, Tracer):
            raise TypeError(
                "odeint: func returned a traced value for a plain state: it reads a value "
                "traced by an outer transform from its closure; pass such values to odeint "
                "in args (odeint(func, y0, t, *args)) so that they are differentiated"
            )
        return np.ravel(np.asarray(out, dtype=np.float64))

    return rhs


def _solve_impl(y0, t, *args, func, rtol, atol, method):
    y0 = np.asarray(y0)
    t = np.asarray(t, dtype=np.float64)
    shape, dtype = y0.shape, np.result_type(y0.dtype, np.float32)
    rhs = _plain_rhs(func, shape, args)
    y0_flat = np.ravel(y0).astype(np.float64)
    if t.size == 1:
        ys = y0_flat[None, :]
    else:
        ys = _solve(rhs, y0_flat, (t[0], t[-1]), t, rtol, atol, method, "odeint").T
    return ys.reshape((t.size,) + shape).astype(dtype, copy=False)


# --- forward mode: the sensitivity equations -----------------------------------------------


def _sensitivity_jvp(primals, tangents, ans, func, rtol, atol, method):
    if _differentiated(ans, *primals, *tangents):
        options = {"rtol": rtol, "atol": atol, "method": method}
        return _sensitivity_traced(func, ans, primals, tangents, options)
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
    ys = np.asarray(ans, dtype=np.float64).reshape(len(ts), n)
    f_raw = _plain_rhs(func, shape, args)

    def f_jvp(y, s, sens):
        primal_in = (y.reshape(shape), *[np.asarray(args[i], np.float64) for i in diff])
        tangent_in = (
            sens.reshape(shape),
            *[np.asarray(args_dot[i], np.float64) for i in diff],
        )
        out, tout = jvp(_with_diff_args(func, s, args, diff), primal_in, tangent_in)
        return np.ravel(np.asarray(out, np.float64)), np.ravel(np.asarray(tout, np.float64))

    s0 = np.zeros(n) if y0_dot is None else np.ravel(np.asarray(y0_dot, np.float64))
    if t_dot is not None:
        t_dot = np.asarray(t_dot, dtype=np.float64)
        s0 = s0 - f_raw(ts[0], ys[0]) * t_dot[0]
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
        sens = sens + np.stack([f_raw(ts[i], ys[i]) for i in range(len(ts))]) * t_dot[:, None]
    return sens.reshape(np.shape(ans)).astype(np.asarray(ans).dtype, copy=False)


def _sensitivity_traced(func, ans, primals, tangents, options):
    """The output tangent of :func:`_sensitivity_impl`, computed by ``odeint`` on the state
    ``[y, s]`` with diffsys operations, so that an outer transform differentiates it."""
    y0, ts, *args = primals
    y0_dot, t_dot, *args_dot = tangents
    shape = np.shape(y0)
    n = math.prod(shape)
    n_t = np.shape(ts)[0]
    diff = tuple(i for i, d in enumerate(args_dot) if d is not None)
    y0_flat = dnp.ravel(y0)

    def f_flat(y, s):
        return dnp.ravel(func(dnp.reshape(y, shape), s, *args))

    s0 = dnp.zeros(n, dtype=y0_flat.dtype) if y0_dot is None else dnp.ravel(y0_dot)
    if t_dot is not None:
        s0 = s0 - f_flat(y0_flat, ts[0]) * t_dot[0]
    if n_t == 1:
        sens = dnp.reshape(s0, (1, n))
    else:
        dynamics = _sensitivity_dynamics(func, shape, len(args), diff)
        dots = [args_dot[i] for i in diff]
        ws = odeint(dynamics, dnp.concatenate([y0_flat, s0]), ts, *args, *dots, **options)
        sens = ws[:, n:]
    if t_dot is not None:
        ys = dnp.reshape(ans, (n_t, n))
        f_out = dnp.stack([f_flat(ys[i], ts[i]) for i in range(n_t)])
        sens = sens + f_out * dnp.reshape(t_dot, (n_t, 1))
    return dnp.reshape(sens, np.shape(ans))


def _sensitivity_dynamics(func, shape, n_args, diff):
    """``d/dt [y, s] = [f, df/dy s + df/dargs args_dot]`` on flat states, as a function
    ``(w, t, *args, *args_dot)`` for ``odeint`` (the tangents of the arguments numbered
    ``diff`` come after the arguments)."""
    n = math.prod(shape)

    def dynamics(w, t, *args_and_dots):
        args, dots = args_and_dots[:n_args], args_and_dots[n_args:]
        primals = (dnp.reshape(w[:n], shape), *[args[i] for i in diff])
        tangents = (dnp.reshape(w[n:], shape), *dots)
        out, out_dot = jvp(_with_diff_args(func, t, args, diff), primals, tangents)
        return dnp.concatenate([dnp.ravel(out), dnp.ravel(out_dot)])

    return dynamics


def _odeint_vjp(argnum: int):
    """The VJP rule of the odeint primitive for its argument ``argnum``."""

    def rule(g, ans, y0, t, *args, func, rtol, atol, method):
        options = {"rtol": rtol, "atol": atol, "method": method}
        return _cotangents(func, g, ans, t, args, options)[argnum]

    return rule


# VJP rules of the odeint primitive, for any number of arguments. odeint's custom_vjp runs the
# adjoint once for all arguments; these rules serve when the primitive itself meets a reverse
# transform (a forward-mode or vmap transform above it, as in ``jacrev(jacfwd(f))`` or
# ``grad`` of ``vmap``): each runs the adjoint and keeps the cotangent of its own argument.
_odeint_p = Primitive("scipy.integrate.odeint", _solve_impl)
_odeint_p.defvjp_variadic(_odeint_vjp)
_odeint_p.defjvp_all(_sensitivity_jvp)
# No derivative rules: _sensitivity_jvp calls it on values no transform differentiates.
_sensitivity_p = Primitive("scipy.integrate.odeint_sensitivities", _sensitivity_impl)


# --- reverse mode: the adjoint method ------------------------------------------------------


def _adjoint_impl(g, ys, ts, *args, func, rtol, atol, method, diff):
    ts = np.asarray(ts, dtype=np.float64)
    cts = _adjoint(func, ys, ts, args, np.asarray(g), rtol, atol, method)
    # a primitive returns arrays: zeros stand for the held-fixed (integer) arguments
    inputs = (None, None, *args)
    return [c if c is not None else np.zeros(np.shape(a)) for c, a in zip(cts, inputs, strict=True)]


# The backward pass on plain values as a primitive: under vmap (jacrev) the engine loops it
# over the batch of cotangents. It has no derivative rules: when a transform differentiates
# the backward pass, odeint's bwd calls _adjoint_traced instead.
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
    f_raw = _plain_rhs(func, shape, args)

    def f_vjp(y, s, a):
        """f(y, s) and a^T df/dy, a^T df/dargs (flattened)."""
        out, pull = vjp(
            _with_diff_args(func, s, args, diff),
            y.reshape(shape),
            *[np.asarray(args[i], np.float64) for i in diff],
        )
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
        t_bar[i] = g64[i] @ f_raw(ts[i], ys64[i])
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
    t_bar[0] = -(a @ f_raw(ts[0], ys64[0])) if len(ts) > 1 else 0.0
    y0_bar = a + g64[0] if len(ts) > 1 else g64[0]

    y0_dtype = ys.dtype
    cts = [y0_bar.reshape(shape).astype(y0_dtype, copy=False), t_bar]
    offsets = np.cumsum([0, *arg_sizes])
    arg_cts: list = [None] * len(args)
    for k, i in enumerate(diff):
        ct = args_bar[offsets[k] : offsets[k + 1]].reshape(arg_shapes[k])
        arg_cts[i] = ct.astype(np.result_type(np.asarray(args[i]).dtype), copy=False)
    return (*cts, *arg_cts)


def _adjoint_traced(func, g, ys, ts, args, options):
    """The cotangents of :func:`_adjoint`, computed by ``odeint`` on the state ``[y, a,
    a_args]`` backward over each interval between output times, with diffsys operations, so
    that an outer transform (grad of grad, jvp of grad, hessian) differentiates them."""
    n_t = np.shape(ys)[0]
    shape = np.shape(ys)[1:]
    n = math.prod(shape)
    diff = tuple(i for i, a in enumerate(args) if _is_diff(a))
    arg_shapes = [np.shape(args[i]) for i in diff]
    offsets = np.cumsum([0, *[math.prod(s) for s in arg_shapes]])
    ys_flat = dnp.reshape(ys, (n_t, n))
    gs = dnp.reshape(g, (n_t, n))

    def f_flat(y, s):
        return dnp.ravel(func(dnp.reshape(y, shape), s, *args))

    dynamics = _adjoint_dynamics(func, shape, diff)
    a = gs[-1]
    args_bar = dnp.zeros(int(offsets[-1]))
    t_bar: list = [dnp.zeros(())] * n_t
    for i in range(n_t - 1, 0, -1):
        # moving an output time moves that output along the trajectory
        t_bar[i] = dnp.sum(gs[i] * f_flat(ys_flat[i], ts[i]))
        z0 = dnp.concatenate([ys_flat[i], a, args_bar])
        span = dnp.stack([ts[i], ts[i - 1]])
        z = odeint(dynamics, z0, span, *args, **options)[-1]
        a = z[n : 2 * n]
        args_bar = z[2 * n :]
        if i > 1:
            a = a + gs[i - 1]
    if n_t > 1:
        # moving t0 shifts the whole trajectory (y(t0) = y0 is fixed): -a(t0) . f(y0, t0)
        t_bar[0] = -dnp.sum(a * f_flat(ys_flat[0], ts[0]))
        y0_bar = a + gs[0]
    else:
        y0_bar = gs[0]
    arg_cts: list = [None] * len(args)
    for k, i in enumerate(diff):
        arg_cts[i] = dnp.reshape(args_bar[offsets[k] : offsets[k + 1]], arg_shapes[k])
    return (dnp.reshape(y0_bar, shape), dnp.stack(t_bar), *arg_cts)


def _adjoint_dynamics(func, shape, diff):
    """``d/dt [y, a, a_args] = [f, -a df/dy, -a df/dargs]`` on flat states, as a function
    ``(z, t, *args)`` for ``odeint`` (``a_args`` for the arguments numbered ``diff``)."""
    n = math.prod(shape)

    def dynamics(z, t, *args):
        y = dnp.reshape(z[:n], shape)
        out, pull = vjp(_with_diff_args(func, t, args, diff), y, *[args[i] for i in diff])
        cts = pull(dnp.reshape(z[n : 2 * n], np.shape(out)))
        return dnp.concatenate([dnp.ravel(out), *[-dnp.ravel(c) for c in cts]])

    return dynamics
