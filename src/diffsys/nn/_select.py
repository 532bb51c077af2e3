"""``where(mask, g, 0)`` without NumPy's branchy ``where`` loop, and array layouts.

``np.where`` with a random boolean mask costs several nanoseconds per element (a branch
mispredicted half the time): on a LeNet activation it was slower than the convolution that
made it. :func:`select` gives the same values (``+0`` where the mask is false, even for
``inf`` or ``nan`` entries of ``g``, which a product with the mask would turn into ``nan``)
by AND-ing the bits of ``g`` with a mask of all-ones or all-zeros words: two passes of plain
integer arithmetic. :data:`select_p` is the primitive (linear in ``g``; the mask is data),
used by the ReLU and max-pooling derivatives.

Activations of the convolution and pooling primitives are laid out channels-first with the
sample axis innermost (``(C, H, W, N)`` in memory for a logical ``(N, C, H, W)`` array);
elementwise work is only fast when every operand has the same layout, hence
:func:`empty_like_layout` and :func:`as_layout_of`.
"""

from __future__ import annotations

import numpy as np

from .. import numpy as dnp
from ..core.primitive import Primitive

_INT_OF = {
    np.dtype(np.float16): np.int16,
    np.dtype(np.float32): np.int32,
    np.dtype(np.float64): np.int64,
}


def select_scratch(g: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """A work buffer for repeated :func:`select` calls of ``g`` with masks shaped like ``m``."""
    it = _INT_OF.get(g.dtype)
    return None if it is None else np.empty_like(m, dtype=it)


def select(
    g: np.ndarray, m: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None
) -> np.ndarray:
    """``where(m, g, 0)`` in the dtype of ``g``; into ``out`` when given (``scratch``: a
    buffer from :func:`select_scratch`, overwritten)."""
    it = _INT_OF.get(g.dtype)
    if it is None or g.shape != m.shape or (out is not None and out.dtype != g.dtype):
        r = np.where(m, g, np.zeros((), g.dtype))
        if out is None:
            return r
        out[...] = r
        return out
    mk = np.empty_like(m, dtype=it) if scratch is None else scratch  # the layout of m
    np.negative(m.view(np.int8), out=mk, casting="unsafe")  # True -> all ones, False -> 0
    if out is None:
        return np.bitwise_and(g.view(it), mk, out=mk).view(g.dtype)
    np.bitwise_and(g.view(it), mk, out=out.view(it))
    return out


def _axis_order(a: np.ndarray) -> list[int]:
    """The axes of ``a`` from outermost to innermost in memory."""
    return sorted(range(a.ndim), key=lambda i: (-abs(a.strides[i]), i))


def empty_like_layout(ref: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An empty array of ``shape`` (as many axes as ``ref``) whose axes lie in memory in the
    order of ``ref``'s strides."""
    if ref.flags.c_contiguous or ref.ndim != len(shape):
        return np.empty(shape, dtype)
    order = _axis_order(ref)
    return np.empty([shape[a] for a in order], dtype).transpose(np.argsort(order))


def as_layout_of(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``a`` (shaped like ``ref``), copied into ``ref``'s memory layout if it differs."""
    if a.shape != ref.shape or a.ndim < 2:
        return a
    ours = [i for i in _axis_order(a) if a.shape[i] != 1]
    if ours == [i for i in _axis_order(ref) if ref.shape[i] != 1]:
        return a
    out = empty_like_layout(ref, ref.shape, a.dtype)
    np.copyto(out, a)
    return out


def _select_impl(g, m):
    """``where(m, g, 0)``: ``+0`` where ``m`` is false, whatever ``g`` holds there."""
    g = np.asarray(g)
    m = np.asarray(m, dtype=bool)
    if g.shape != m.shape:  # broadcasting (batched operands): the plain formula
        shape = np.broadcast_shapes(g.shape, m.shape)
        g = np.broadcast_to(g, shape)
        m = np.broadcast_to(m, shape)
        return np.where(m, g, np.zeros((), g.dtype))
    return select(as_layout_of(g, m), m)


select_p = Primitive("nn.select", _select_impl)
select_p.defvjp(lambda c, ans, g, m: dnp.unbroadcast(select_p(c, m), g), None)
select_p.defjvp(lambda t, ans, g, m: select_p(t, m), None)


def _select_batch(args, batched):
    """Both operands have one logical shape (or broadcast to it): give a batched operand of
    fewer axes its missing axes after the batch axis, then broadcast as NumPy does."""
    ranks = [dnp.ndim(a) - b for a, b in zip(args, batched, strict=True)]
    top = max(ranks)
    args = [
        dnp.reshape(a, dnp.shape(a)[:1] + (1,) * (top - r) + dnp.shape(a)[1:])
        if b and r < top
        else a
        for a, b, r in zip(args, batched, ranks, strict=True)
    ]
    return select_p(*args)


select_p.defbatch(_select_batch)
