"""Forward mode: tangents travel with the values through the primitives' JVP rules.

JVP rules are written with :mod:`diffsys.numpy`, so tangents may themselves be traced by an
outer transform (``jvp`` of ``grad``, ``vmap`` of ``jvp`` for ``jacfwd``, ...).
"""

from __future__ import annotations

from .ad_util import add_values, zeros_like_value
from .tracer import _NO_PARAMS, Trace, Tracer


class JVPTracer(Tracer):
    __slots__ = ("_tangent",)

    def __init__(self, trace: JVPTrace, value, tangent) -> None:
        self._trace = trace
        self._value = value
        self._tangent = tangent


class JVPTrace(Trace):
    """Carries a tangent beside each traced value for one forward-mode transform."""

    __slots__ = ()
    differentiates = True

    def process(self, prim, args, params):
        if len(args) == 1:  # this trace is the top one, so the only argument is ours
            a = args[0]
            v = a._value
            primals = (v,)
            tangents = (a._tangent,)
            out = prim(v, **params) if isinstance(v, Tracer) else prim.impl(v, **params)
        else:
            primals = list(args)
            tangents = [None] * len(args)
            lower = False  # does a value beneath still carry an outer trace?
            for i, a in enumerate(args):
                if a.__class__ is JVPTracer and a._trace is self:
                    v = primals[i] = a._value
                    tangents[i] = a._tangent
                else:
                    v = a
                if not lower and isinstance(v, Tracer):
                    lower = True
            out = prim(*primals, **params) if lower else prim.impl(*primals, **params)
        if prim.zero_derivative:
            return out
        if prim.jvp_all is not None:
            t_out = prim.jvp_all(primals, tangents, out, **params)
        else:
            t_out = None
            rules = prim.jvps
            for i, t in enumerate(tangents):
                if t is None:
                    continue
                rule = rules[i] if i < len(rules) else None
                if rule is None:
                    prim.jvp_rule(i)  # raises NotImplementedError naming the primitive
                ti = rule(t, out, *primals, **params)
                t_out = ti if t_out is None else _add_tangents(t_out, ti, prim)
        if prim.multiple_results:
            return [JVPTracer(self, o, t) for o, t in zip(out, t_out, strict=True)]
        return JVPTracer(self, out, t_out)

    def process2(self, prim, a, b):
        """``process`` for two arguments without parameters (arithmetic operators)."""
        rules = prim.jvps
        if prim.special or prim.jvp_all is not None or len(rules) < 2:
            return self.process(prim, (a, b), _NO_PARAMS)
        if a.__class__ is JVPTracer and a._trace is self:
            pa, ta = a._value, a._tangent
        else:
            pa, ta = a, None
        if b.__class__ is JVPTracer and b._trace is self:
            pb, tb = b._value, b._tangent
        else:
            pb, tb = b, None
        if isinstance(pa, Tracer) or isinstance(pb, Tracer):
            out = prim(pa, pb)
        else:
            out = prim.impl(pa, pb)
        t_out = None
        if ta is not None:
            rule = rules[0] or prim.jvp_rule(0)
            t_out = rule(ta, out, pa, pb)
        if tb is not None:
            rule = rules[1] or prim.jvp_rule(1)
            tb_out = rule(tb, out, pa, pb)
            t_out = tb_out if t_out is None else add_values(t_out, tb_out)
        return JVPTracer(self, out, t_out)


def split_tangents(trace: JVPTrace, leaves) -> tuple[list, list]:
    """Primal values and tangents of ``leaves`` (zeros for those not traced by ``trace``)."""
    primals, tangents = [], []
    for x in leaves:
        if isinstance(x, JVPTracer) and x._trace is trace:
            primals.append(x._value)
            tangents.append(x._tangent)
        else:
            primals.append(x)
            tangents.append(zeros_like_value(x))
    return primals, tangents


def _add_tangents(a, b, prim):
    if prim.multiple_results:
        return [add_values(x, y) for x, y in zip(a, b, strict=True)]
    return add_values(a, b)
