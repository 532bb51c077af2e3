"""Products: matmul, einsum and the compositions built on them (dot, tensordot, outer,
inner, vdot)."""

from __future__ import annotations

import string

import numpy as np

from ..core import ad_util
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from . import _elementwise as ew
from ._shape import asarray_any, ravel, swapaxes
from ._util import array_like, ndim_of, normalize_axis, shape_of, unbroadcast

# --- matmul ----------------------------------------------------------------------------------


def _as_matrices(a, b):
    """Promote 1-D operands to matrices as ``numpy.matmul`` does; shapes of the results."""
    a2 = ad_util.reshape(a, shape=(1,) + shape_of(a)) if ndim_of(a) == 1 else a
    b2 = ad_util.reshape(b, shape=shape_of(b) + (1,)) if ndim_of(b) == 1 else b
    return a2, b2


def _matmul_vjp_a(g, ans, a, b):
    a2, b2 = _as_matrices(a, b)
    out_shape = np.broadcast_shapes(shape_of(a2)[:-2], shape_of(b2)[:-2]) + (
        shape_of(a2)[-2],
        shape_of(b2)[-1],
    )
    g2 = ad_util.reshape(g, shape=out_shape)
    ga = matmul(g2, swapaxes(b2, -1, -2))
    # Sum over broadcast batch axes in the promoted (matrix) shape, then drop the axis that
    # promoted a 1-D operand: summing first in the 1-D shape would mistake it for a batch axis.
    # unbroadcast also keeps only the real part of a complex cotangent for a real operand.
    ga = unbroadcast(ga, a2)
    return ad_util.reshape(ga, shape=shape_of(a)) if ndim_of(a) == 1 else ga


def _matmul_vjp_b(g, ans, a, b):
    a2, b2 = _as_matrices(a, b)
    out_shape = np.broadcast_shapes(shape_of(a2)[:-2], shape_of(b2)[:-2]) + (
        shape_of(a2)[-2],
        shape_of(b2)[-1],
    )
    g2 = ad_util.reshape(g, shape=out_shape)
    gb = matmul(swapaxes(a2, -1, -2), g2)
    gb = unbroadcast(gb, b2)
    return ad_util.reshape(gb, shape=shape_of(b)) if ndim_of(b) == 1 else gb


def _matmul_batch(args, batched):
    """Move the batch axis in front of both operands' stacking axes and align their ranks."""
    a, b = args
    ba, bb = batched
    a_core = ndim_of(a) - ba
    b_core = ndim_of(b) - bb
    if a_core == 1 and ba:  # (k, n): a stack of row vectors -> (k, 1, n)
        a = ad_util.reshape(a, shape=shape_of(a)[:1] + (1,) + shape_of(a)[1:])
    elif a_core == 1:
        a = ad_util.reshape(a, shape=(1,) + shape_of(a))
    if b_core == 1 and bb:  # (k, n) -> (k, n, 1)
        b = ad_util.reshape(b, shape=shape_of(b) + (1,))
    elif b_core == 1:
        b = ad_util.reshape(b, shape=shape_of(b) + (1,))
    rank = max(ndim_of(a) - ba, ndim_of(b) - bb)
    if ba and ndim_of(a) - 1 < rank:
        s = shape_of(a)
        a = ad_util.reshape(a, shape=s[:1] + (1,) * (rank - len(s) + 1) + s[1:])
    if bb and ndim_of(b) - 1 < rank:
        s = shape_of(b)
        b = ad_util.reshape(b, shape=s[:1] + (1,) * (rank - len(s) + 1) + s[1:])
    out = matmul_p(a, b)
    s = shape_of(out)  # (k, ..., m, p)
    if a_core == 1 and b_core == 1:
        return ad_util.reshape(out, shape=s[:-2])
    if a_core == 1:
        return ad_util.reshape(out, shape=s[:-2] + s[-1:])
    if b_core == 1:
        return ad_util.reshape(out, shape=s[:-1])
    return out


matmul_p = Primitive("matmul", np.matmul)
matmul_p.defvjp(_matmul_vjp_a, _matmul_vjp_b)
matmul_p.defjvp(lambda t, ans, a, b: matmul_p(t, b), lambda t, ans, a, b: matmul_p(a, t))
matmul_p.defbatch(_matmul_batch)


@array_like("a", "b")
def matmul(a, b):
    """Matrix product with NumPy's broadcasting rules (also ``a @ b``)."""
    if not isinstance(a, Tracer) and not isinstance(b, Tracer):
        return np.matmul(a, b)
    a, b = asarray_any(a), asarray_any(b)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        raise ValueError(
            f"matmul: input operands must have at least one dimension, got shapes {sa} and {sb}"
        )
    k_a = sa[-1]
    k_b = sb[-2] if len(sb) > 1 else sb[0]
    if k_a != k_b:
        raise ValueError(
            f"matmul: mismatch in the contracted dimension: shapes {sa} and {sb} ({k_a} != {k_b})"
        )
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: the stacking (batch) dimensions of shapes {sa} and {sb} do not broadcast "
            f"({sa[:-2]} and {sb[:-2]})"
        ) from None
    return matmul_p(a, b)


# --- einsum ----------------------------------------------------------------------------------


def _parse_einsum(subscripts: str, shapes) -> tuple[list[str], str]:
    """Explicit per-operand subscripts and output, with ``...`` spelled out."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        lhs, out = subscripts.split("->")
    else:
        lhs, out = subscripts, None
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(
            f"einsum: {len(ins)} operand subscripts in {subscripts!r} but {len(shapes)} operands"
        )
    used = set(subscripts) - set(".,->")
    free = [c for c in string.ascii_letters if c not in used]
    ell_rank = 0
    for s, shape in zip(ins, shapes, strict=True):
        if "..." in s:
            ell_rank = max(ell_rank, len(shape) - (len(s) - 3))
    ell = "".join(free[:ell_rank])
    expanded = []
    for s, shape in zip(ins, shapes, strict=True):
        if "..." in s:
            r = len(shape) - (len(s) - 3)
            s = s.replace("...", ell[ell_rank - r :] if r else "")
        if len(s) != len(shape):
            raise ValueError(
                f"einsum: operand subscripts {s!r} do not match an operand of shape {shape}"
            )
        expanded.append(s)
    if out is None:
        counts = {}
        for s in expanded:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        if ell_rank and "..." not in out:
            raise ValueError(
                f"einsum: the operands' '...' covers {ell_rank} dimension(s) but the output "
                f"subscripts {out!r} have no '...' to keep them ({subscripts!r}, shapes "
                f"{', '.join(str(tuple(s)) for s in shapes)})"
            )
        out = out.replace("...", ell)
    return expanded, out


def _einsum_impl(*operands, subscripts):
    return np.einsum(subscripts, *operands, optimize=len(operands) > 2)


def _letter_sizes(ins, operands):
    sizes = {}
    for s, op in zip(ins, operands, strict=True):
        for c, d in zip(s, shape_of(op), strict=True):
            sizes[c] = max(d, sizes.get(c, 1))  # a letter of size 1 broadcasts (``...``)
    return sizes


def _einsum_operand_vjp(k):
    def rule(g, ans, *operands, subscripts):
        ins, out = subscripts.split("->")
        ins = ins.split(",")
        target = ins[k]
        sizes = _letter_sizes(ins, operands)
        # Letters of size 1 in operand k that broadcast against a larger size elsewhere (from
        # ``...``): the gradient sums over them, so leave them out and put them back after.
        shape_k = shape_of(operands[k])
        squeezed = {c for c, d in zip(target, shape_k, strict=True) if d == 1 and sizes[c] > 1}
        if squeezed:
            kept = "".join(c for c in target if c not in squeezed)
            sub = list(ins)
            sub[k] = kept
            kept_op = ad_util.reshape(
                operands[k],
                shape=tuple(d for c, d in zip(target, shape_k, strict=True) if c not in squeezed),
            )
            ops = list(operands)
            ops[k] = kept_op
            gk = _einsum_operand_vjp(k)(g, ans, *ops, subscripts=",".join(sub) + "->" + out)
            return ad_util.reshape(gk, shape=shape_k)
        others = [(s, op) for i, (s, op) in enumerate(zip(ins, operands, strict=True)) if i != k]
        available = set(out).union(*[set(s) for s, _ in others])
        # Letters summed only inside operand k: their gradient is broadcast (ones).
        extra = [c for c in dict.fromkeys(target) if c not in available]
        # Repeated letters (diagonals): compute on unique letters, then embed with deltas.
        unique = "".join(dict.fromkeys(target))
        terms = [out] + [s for s, _ in others]
        args = [g] + [op for _, op in others]
        for c in extra:
            terms.append(c)
            args.append(np.ones(sizes[c], dtype=ad_util._dtype_of(g)))
        if unique != target:
            fresh = iter(c for c in string.ascii_letters if c not in set("".join(ins) + out))
            relabeled, seen = [], set()
            for c in target:
                if c in seen:
                    d = next(fresh)
                    terms.append(c + d)
                    args.append(np.eye(sizes[c], dtype=ad_util._dtype_of(g)))
                    relabeled.append(d)
                else:
                    seen.add(c)
                    relabeled.append(c)
            result = "".join(relabeled)
        else:
            result = target
        gk = einsum_p(*args, subscripts=",".join(terms) + "->" + result)
        return unbroadcast(gk, operands[k])  # same shape: only a real operand's projection

    return rule


def _einsum_jvp(primals, tangents, ans, subscripts):
    out = None
    for k, t in enumerate(tangents):
        if t is None:
            continue
        args = list(primals)
        args[k] = t
        term = einsum_p(*args, subscripts=subscripts)
        out = term if out is None else ad_util.add_any(out, term)
    return out


def _einsum_batch(args, batched, subscripts):
    ins, out = subscripts.split("->")
    ins = ins.split(",")
    b = next(c for c in string.ascii_letters if c not in subscripts)
    ins = [b + s if flag else s for s, flag in zip(ins, batched, strict=True)]
    return einsum_p(*args, subscripts=",".join(ins) + "->" + b + out)


einsum_p = Primitive("einsum", _einsum_impl)
einsum_p.defvjp_variadic(_einsum_operand_vjp)
einsum_p.defjvp_all(_einsum_jvp)
einsum_p.defbatch(_einsum_batch)


def _sublist_letters(sublist) -> str:
    letters = []
    for item in sublist:
        if item is Ellipsis:
            letters.append("...")
        elif isinstance(item, int | np.integer) and 0 <= item < len(string.ascii_letters):
            letters.append(string.ascii_letters[item])
        else:
            raise ValueError(
                f"einsum: subscripts in the sublist form must be integers in [0, 52) or ..., "
                f"got {item!r}"
            )
    return "".join(letters)


def _from_sublists(args) -> tuple[str, list]:
    """``einsum(op0, sublist0, op1, sublist1, ..., [sublist_out])`` as a string and operands."""
    operands = list(args[0::2])
    sublists = list(args[1::2])
    out = None
    if len(args) % 2:  # an odd count: the last item is the output sublist
        out = operands.pop()
    subscripts = ",".join(_sublist_letters(s) for s in sublists)
    if out is not None:
        subscripts += "->" + _sublist_letters(out)
    return subscripts, operands


def _check_letter_sizes(subscripts, ins, operands) -> None:
    """Every letter has one size across operands (or 1, which broadcasts, as in NumPy)."""
    sizes: dict[str, tuple[int, int]] = {}
    for k, (s, op) in enumerate(zip(ins, operands, strict=True)):
        for c, d in zip(s, shape_of(op), strict=True):
            if c in sizes and d != 1 and sizes[c][0] != 1 and sizes[c][0] != d:
                shapes = ", ".join(str(shape_of(o)) for o in operands)
                raise ValueError(
                    f"einsum: subscript {c!r} in {subscripts!r} has size {sizes[c][0]} in "
                    f"operand {sizes[c][1]} but size {d} in operand {k} (operand shapes "
                    f"{shapes})"
                )
            if c not in sizes or sizes[c][0] == 1:
                sizes[c] = (d, k)


@array_like("operands")
def einsum(subscripts, *operands, optimize=None):
    """Einstein summation (explicit and implicit modes, ``...`` broadcasting, and NumPy's
    sublist form ``einsum(a, [0, 1], b, [1, 2], [0, 2])``)."""
    if not isinstance(subscripts, str):
        subscripts, operands = _from_sublists((subscripts, *operands))
    if not any(isinstance(op, Tracer) for op in operands):
        return np.einsum(subscripts, *operands, optimize=bool(optimize) or len(operands) > 2)
    operands = [asarray_any(op) for op in operands]
    ins, out = _parse_einsum(subscripts, [shape_of(op) for op in operands])
    _check_letter_sizes(subscripts, ins, operands)
    return einsum_p(*operands, subscripts=",".join(ins) + "->" + out)


# --- compositions ------------------------------------------------------------------------------


@array_like("a", "b")
def tensordot(a, b, axes=2, *, _op: str = "tensordot"):
    """Sum of products over the given axes of ``a`` and ``b``."""
    if not isinstance(a, Tracer) and not isinstance(b, Tracer):
        return np.tensordot(a, b, axes)
    sa_, sb_ = shape_of(a), shape_of(b)
    na, nb = len(sa_), len(sb_)
    if isinstance(axes, int | np.integer):
        if not 0 <= axes <= min(na, nb):
            raise ValueError(f"{_op}: axes={int(axes)} is out of range for shapes {sa_} and {sb_}")
        axes_a = list(range(na - int(axes), na))
        axes_b = list(range(int(axes)))
    else:
        axes_a, axes_b = axes
        axes_a = [axes_a] if isinstance(axes_a, int | np.integer) else list(axes_a)
        axes_b = [axes_b] if isinstance(axes_b, int | np.integer) else list(axes_b)
        if len(axes_a) != len(axes_b):
            raise ValueError(
                f"{_op}: axes {axes_a} and {axes_b} must have the same length (shapes {sa_} "
                f"and {sb_})"
            )
    axes_a = [normalize_axis(x, na, _op) for x in axes_a]
    axes_b = [normalize_axis(x, nb, _op) for x in axes_b]
    for i, j in zip(axes_a, axes_b, strict=True):
        if sa_[i] != sb_[j]:
            raise ValueError(
                f"{_op}: shape mismatch in the summed dimensions: axis {i} of shape {sa_} has "
                f"size {sa_[i]}, axis {j} of shape {sb_} has size {sb_[j]}"
            )
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(na)]
    sb = [next(letters) for _ in range(nb)]
    for i, j in zip(axes_a, axes_b, strict=True):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in axes_a] + [
        c for j, c in enumerate(sb) if j not in axes_b
    ]
    return einsum("".join(sa) + "," + "".join(sb) + "->" + "".join(out), a, b)


@array_like("a", "b")
def dot(a, b):
    """Dot product as ``numpy.dot`` (matrix product for 2-D, sum-product over the last axis
    of ``a`` and the second-to-last of ``b`` in general)."""
    if not isinstance(a, Tracer) and not isinstance(b, Tracer):
        return np.dot(a, b)
    na, nb = ndim_of(a), ndim_of(b)
    if na == 0 or nb == 0:
        return ew.multiply(a, b)
    if nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([-1], [-2]), _op="dot")


@array_like("a", "b")
def outer(a, b):
    """Outer product of two vectors (inputs are flattened)."""
    a, b = ravel(asarray_any(a)), ravel(asarray_any(b))
    return ew.multiply(ad_util.reshape(a, shape=shape_of(a) + (1,)), b)


@array_like("a", "b")
def inner(a, b):
    """Inner product over the last axes."""
    if not isinstance(a, Tracer) and not isinstance(b, Tracer):
        return np.inner(a, b)
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return ew.multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]), _op="inner")


@array_like("a", "b")
def vdot(a, b):
    """Dot product of flattened inputs, conjugating the first."""
    from ._reductions import sum as _sum

    return _sum(ew.multiply(ew.conjugate(ravel(asarray_any(a))), ravel(asarray_any(b))))
