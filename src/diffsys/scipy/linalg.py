"""``diffsys.scipy.linalg``: the parts of ``scipy.linalg`` that models use, differentiable.

Outside any transform every function returns SciPy's own result. Under a transform each is
a primitive (``solve_triangular``, ``lu``, ``expm``, ``solve_sylvester``, ``solve_banded``)
or a composition of primitives, with VJP, JVP and batching rules written with diffsys
operations, so derivatives of any order follow::

    import numpy as np
    import diffsys as ds
    import diffsys.numpy as dnp
    from diffsys.scipy import linalg

    A = np.array([[1.0, 0.5], [0.0, 2.0]])
    ds.grad(lambda a: dnp.sum(linalg.expm(a)))(A)

Conventions and limits:

- ``solve_triangular`` reads one triangle of ``a`` (and ignores its diagonal with
  ``unit_diagonal=True``): the gradient with respect to ``a`` is zero elsewhere.
- ``cho_factor`` returns ``(c, lower)`` with ``c`` a traced array: the factor in one triangle
  and, as in SciPy, the input's entries in the other (their derivative is the identity).
  The factor differentiates as :func:`diffsys.numpy.linalg.cholesky` (``herm(A)``
  convention: the gradient is symmetric). ``cho_solve`` reads only the factor's triangle.
- ``lu_factor`` returns ``(lu, piv)``; ``lu`` is differentiable (square inputs: the
  derivative of ``P A = L U`` with the pivoting held fixed), ``piv`` is a value.
  ``lu_solve`` is differentiable in both ``lu`` and ``b``, so ``lu_solve(lu_factor(A), b)``
  differentiates in ``A`` and ``b``. The derivative needs ``U`` non-singular.
- ``expm``: the JVP is the Fréchet derivative, the upper-right block of
  ``expm([[A, E], [0, A]])``; the VJP is the same at ``A^T``.
- ``sqrtm``: derivatives solve the Sylvester equations ``X dX + dX X = dA`` (JVP) and
  ``X^T G + G X^T = g`` (VJP); finite where no two eigenvalues of ``X`` sum to zero.
- ``solve_sylvester(a, b, q)``: differentiable in all three.
- ``solve_banded``: differentiable in ``ab`` (the band only) and ``b``; the rules stay in
  band storage (``O(n (l + u))`` memory and work besides the banded solves).
- ``eigh`` (standard and generalized, ``subset_by_index``/``subset_by_value``,
  ``eigvals_only``): derivatives of the returned eigenpairs, finite where *all* eigenvalues
  (of the full problem) are distinct; eigenvectors only up to sign. ``subset_by_value``
  needs concrete eigenvalues (not under ``vmap``).
- ``block_diag``: a composition of concatenations.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as _sl

from .. import numpy as dnp
from ..core import ad_util
from ..core.primitive import Primitive
from ..numpy import linalg as _nla
from ..numpy._util import align_batched, dtype_of, shape_of, unbroadcast_to

LinAlgError = np.linalg.LinAlgError

__all__ = [
    "LinAlgError",
    "block_diag",
    "cho_factor",
    "cho_solve",
    "eigh",
    "expm",
    "lu_factor",
    "lu_solve",
    "solve_banded",
    "solve_sylvester",
    "solve_triangular",
    "sqrtm",
]

_T = _nla._T
_H = _nla._H
_traced = _nla._traced
_is_complex = _nla._is_complex


def _conj(x):
    return dnp.conjugate(x) if _is_complex(x) else x


def _broadcast_stacks(arrays, core_ndims):
    """Broadcast the leading (stack) axes of plain arrays, keeping their core axes."""
    arrays = [np.asarray(x) for x in arrays]
    batch = np.broadcast_shapes(
        *[x.shape[: x.ndim - c] for x, c in zip(arrays, core_ndims, strict=True)]
    )
    return [
        np.broadcast_to(x, batch + x.shape[x.ndim - c :])
        for x, c in zip(arrays, core_ndims, strict=True)
    ]


def _align_batch(prim):
    prim.defbatch(lambda args, batched, **params: prim(*align_batched(args, batched), **params))


def _normalize_trans(trans) -> int:
    table = {0: 0, 1: 1, 2: 2, "N": 0, "T": 1, "C": 2, "n": 0, "t": 1, "c": 2}
    if trans not in table:
        raise ValueError(f"linalg.solve_triangular: invalid trans={trans!r}")
    return table[trans]


# --- solve_triangular -------------------------------------------------------------------------


def _tri_mask(n, lower, unit, dtype):
    m = np.tri(n, n, -1 if unit else 0, dtype=dtype)
    return m if lower else m.T.copy()


def _solve_triangular_impl(a, b, trans, lower, unit_diagonal):
    a, b = _broadcast_stacks([a, b], [2, 2])
    return _sl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


def _st_transpose_solve(a, g, trans, lower, unit_diagonal):
    """``M^-T g`` for ``M = op(tri(a))`` (the transpose, not the conjugate transpose)."""
    if trans == 0:
        return solve_triangular_p(a, g, trans=1, lower=lower, unit_diagonal=unit_diagonal)
    if trans == 1:
        return solve_triangular_p(a, g, trans=0, lower=lower, unit_diagonal=unit_diagonal)
    x = solve_triangular_p(a, _conj(g), trans=0, lower=lower, unit_diagonal=unit_diagonal)
    return _conj(x) if (_is_complex(a) or _is_complex(g)) else x


def _st_vjp_a(g, ans, a, b, trans, lower, unit_diagonal):
    gb = _st_transpose_solve(a, g, trans, lower, unit_diagonal)
    gm = -dnp.matmul(gb, _T(ans))  # the cotangent of M
    if trans == 1:
        gm = _T(gm)
    elif trans == 2:
        gm = _conj(_T(gm))
    mask = _tri_mask(
        shape_of(a)[-1], lower, unit_diagonal, np.real(np.zeros((), dtype_of(a))).dtype
    )
    return unbroadcast_to(gm * mask, shape_of(a))


def _st_vjp_b(g, ans, a, b, trans, lower, unit_diagonal):
    return unbroadcast_to(_st_transpose_solve(a, g, trans, lower, unit_diagonal), shape_of(b))


def _st_jvp_a(t, ans, a, b, trans, lower, unit_diagonal):
    mask = _tri_mask(
        shape_of(a)[-1], lower, unit_diagonal, np.real(np.zeros((), dtype_of(a))).dtype
    )
    dm = t * mask
    if trans == 1:
        dm = _T(dm)
    elif trans == 2:
        dm = _H(dm)
    rhs = dnp.matmul(dm, ans)
    return -solve_triangular_p(a, rhs, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


def _st_jvp_b(t, ans, a, b, trans, lower, unit_diagonal):
    out = solve_triangular_p(a, t, trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    return _nla._bcast(out, ans)


solve_triangular_p = Primitive("scipy.linalg.solve_triangular", _solve_triangular_impl)
solve_triangular_p.defvjp(_st_vjp_a, _st_vjp_b)
solve_triangular_p.defjvp(_st_jvp_a, _st_jvp_b)
_align_batch(solve_triangular_p)
solve_triangular_p.__doc__ = "Solve op(tri(a)) x = b for matrix b (one triangle of a read)."


def solve_triangular(
    a,
    b,
    trans=0,
    lower: bool = False,
    unit_diagonal: bool = False,
    overwrite_b: bool = False,
    check_finite: bool = True,
):
    """Solve ``op(a) x = b`` for triangular ``a`` (``trans`` 0/'N', 1/'T', 2/'C').

    >>> import numpy as np
    >>> solve_triangular(np.array([[2.0, 0.0], [1.0, 1.0]]), np.ones(2), lower=True)
    array([0.5, 0.5])
    """
    if not _traced(a, b):
        return _sl.solve_triangular(
            a,
            b,
            trans=trans,
            lower=lower,
            unit_diagonal=unit_diagonal,
            overwrite_b=overwrite_b,
            check_finite=check_finite,
        )
    _nla._check_square("solve_triangular", a)
    params = dict(
        trans=_normalize_trans(trans), lower=bool(lower), unit_diagonal=bool(unit_diagonal)
    )
    if len(shape_of(b)) == 1:
        x = solve_triangular_p(a, dnp.reshape(b, (-1, 1)), **params)
        return dnp.reshape(x, shape_of(x)[:-1])
    return solve_triangular_p(a, b, **params)


# --- Cholesky ---------------------------------------------------------------------------------


def cho_factor(a, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """``(c, lower)``: the Cholesky factor of a (stacked) Hermitian positive-definite matrix
    in one triangle of ``c``; the other holds the input's entries, as in SciPy."""
    if not _traced(a):
        return _sl.cho_factor(a, lower=lower, overwrite_a=overwrite_a, check_finite=check_finite)
    _nla._check_square("cho_factor", a)
    n = shape_of(a)[-1]
    real = np.real(np.zeros((), dtype_of(a))).dtype
    if lower:
        factor = _nla.cholesky_p(a)
        other = np.triu(np.ones((n, n), real), 1)
    else:
        factor = _H(_nla.cholesky_p(_H(a)))
        other = np.tril(np.ones((n, n), real), -1)
    return factor + a * other, bool(lower)


def cho_solve(c_and_lower, b, overwrite_b: bool = False, check_finite: bool = True):
    """Solve ``A x = b`` given ``cho_factor(A)``; differentiable in the factor and in ``b``."""
    c, lower = c_and_lower
    if not _traced(c, b):
        return _sl.cho_solve((c, lower), b, overwrite_b=overwrite_b, check_finite=check_finite)
    if lower:  # A = L L^H
        y = solve_triangular(c, b, lower=True, trans=0)
        return solve_triangular(c, y, lower=True, trans=2)
    y = solve_triangular(c, b, lower=False, trans=2)  # A = U^H U
    return solve_triangular(c, y, lower=False, trans=0)


# --- LU ---------------------------------------------------------------------------------------


def _perm_from_piv(piv):
    """The row order ``perm`` (``A[perm] = L U``) of LAPACK pivots, over stacks."""
    piv = np.asarray(piv)
    n = piv.shape[-1]
    flat = piv.reshape(-1, n)
    out = np.empty_like(flat)
    for r, p in enumerate(flat):
        perm = np.arange(n)
        for i, j in enumerate(p):
            perm[i], perm[j] = perm[j], perm[i]
        out[r] = perm
    return out.reshape(piv.shape)


def _pmat_from_piv_impl(piv, dtype):
    perm = _perm_from_piv(piv)
    n = perm.shape[-1]
    return (perm[..., :, None] == np.arange(n)).astype(dtype)  # Q with Q @ A == A[perm]


def _piv_from_pmat_impl(q):
    perm = np.argmax(np.asarray(q), axis=-1)
    n = perm.shape[-1]
    flat = perm.reshape(-1, n)
    out = np.empty(flat.shape, dtype=np.int32)
    for r, target in enumerate(flat):
        cur = list(range(n))
        where = {v: k for k, v in enumerate(cur)}
        for i in range(n):
            j = where[target[i]]
            out[r, i] = j
            cur[i], cur[j] = cur[j], cur[i]
            where[cur[i]], where[cur[j]] = i, j
    return out.reshape(perm.shape)


pmat_from_piv_p = Primitive(
    "scipy.linalg.lu_permutation", _pmat_from_piv_impl, zero_derivative=True
)
pmat_from_piv_p.defbatch(lambda args, batched, **params: pmat_from_piv_p(args[0], **params))
piv_from_pmat_p = Primitive("scipy.linalg.lu_pivots", _piv_from_pmat_impl, zero_derivative=True)
piv_from_pmat_p.defbatch(lambda args, batched: piv_from_pmat_p(args[0]))
pmat_from_piv_p.__doc__ = "The permutation matrix of LAPACK pivots (a value)."
piv_from_pmat_p.__doc__ = "LAPACK pivots of a permutation matrix (a value)."


def _lu_impl(a):
    lu, piv = _sl.lu_factor(a)
    return lu, _pmat_from_piv_impl(piv, lu.dtype)


def _lu_L_solve(lu, x, trans=0):
    return solve_triangular_p(lu, x, trans=trans, lower=True, unit_diagonal=True)


def _lu_U_solve(lu, x, trans=0):
    return solve_triangular_p(lu, x, trans=trans, lower=False, unit_diagonal=False)


def _lu_masks(lu):
    n = shape_of(lu)[-1]
    real = np.real(np.zeros((), dtype_of(lu))).dtype
    return np.tri(n, n, -1, dtype=real), np.triu(np.ones((n, n), real))


def _lu_jvp(t, ans, a):
    lu, q = ans
    strict_lower, upper = _lu_masks(lu)
    y = _lu_L_solve(lu, dnp.matmul(q, t))  # L^-1 Q dA
    x = _T(_lu_U_solve(lu, _T(y), trans=1))  # ... U^-1
    low = dnp.matmul(lu * strict_lower, x * strict_lower) + x * strict_lower  # L (X o sl)
    up = dnp.matmul(x * upper, lu * upper)  # (X o u) U
    return [low + up, ad_util.zeros_like_value(q)]


def _lu_vjp(g, ans, a):
    lu, q = ans
    g = g[0]
    strict_lower, upper = _lu_masks(lu)
    lmat = lu * strict_lower + np.eye(shape_of(lu)[-1], dtype=strict_lower.dtype)
    gx = strict_lower * dnp.matmul(_T(lmat), g) + upper * dnp.matmul(g, _T(lu * upper))
    z = _lu_L_solve(lu, gx, trans=1)  # L^-T gX
    w = _T(_lu_U_solve(lu, _T(z), trans=0))  # ... U^-T
    return dnp.matmul(_T(q), w)


lu_p = Primitive("scipy.linalg.lu", _lu_impl, multiple_results=True)
lu_p.defvjp(_lu_vjp)
lu_p.defjvp(_lu_jvp)
lu_p.defbatch(lambda args, batched: lu_p(args[0]))
lu_p.__doc__ = "Packed LU factor and the row permutation Q (Q a = L U); Q has zero derivative."


def lu_factor(a, overwrite_a: bool = False, check_finite: bool = True):
    """``(lu, piv)`` as SciPy; ``lu`` is differentiable (square inputs), ``piv`` a value."""
    if not _traced(a):
        return _sl.lu_factor(a, overwrite_a=overwrite_a, check_finite=check_finite)
    _nla._check_square("lu_factor", a)
    lu, q = lu_p(a)
    return lu, piv_from_pmat_p(q)


def lu_solve(lu_and_piv, b, trans=0, overwrite_b: bool = False, check_finite: bool = True):
    """Solve ``op(A) x = b`` given ``lu_factor(A)``; differentiable in ``lu`` and ``b``."""
    lu, piv = lu_and_piv
    if not _traced(lu, b):
        return _sl.lu_solve(
            (lu, piv), b, trans=trans, overwrite_b=overwrite_b, check_finite=check_finite
        )
    trans = _normalize_trans(trans)
    dtype = np.result_type(dtype_of(lu), dtype_of(b))
    q = pmat_from_piv_p(piv, dtype=dtype)
    vec = len(shape_of(b)) == 1
    if vec:
        b = dnp.reshape(b, (-1, 1))
    if trans == 0:
        x = _lu_U_solve(lu, _lu_L_solve(lu, dnp.matmul(q, b)))
    else:
        x = dnp.matmul(_T(q), _lu_L_solve(lu, _lu_U_solve(lu, b, trans), trans))
    return dnp.reshape(x, shape_of(x)[:-1]) if vec else x


# --- expm -------------------------------------------------------------------------------------


def _block(a, e):
    """``[[a, e], [0, a]]`` over stacks."""
    zero = a * 0.0
    top = dnp.concatenate([a, e], axis=-1)
    bottom = dnp.concatenate([zero, a], axis=-1)
    return dnp.concatenate([top, bottom], axis=-2)


def _frechet(a, e):
    """The Fréchet derivative of ``expm`` at ``a`` in the direction ``e``."""
    n = shape_of(a)[-1]
    if _is_complex(e) and not _is_complex(a):
        a = a + 0j
    big = expm_p(_block(a, e))
    nd = len(shape_of(big))
    top = ad_util.slice_axis(big, start=0, stop=n, axis=nd - 2)
    return ad_util.slice_axis(top, start=n, stop=2 * n, axis=nd - 1)


expm_p = Primitive("scipy.linalg.expm", _sl.expm)
expm_p.defjvp(lambda t, ans, a: _frechet(a, t))
expm_p.defvjp(lambda g, ans, a: _frechet(_T(a), g))
expm_p.defbatch(lambda args, batched: expm_p(args[0]))
expm_p.__doc__ = "Matrix exponential; derivatives by the block-matrix Frechet derivative."


def expm(A):
    """The matrix exponential of (stacked) square matrices."""
    if not _traced(A):
        return _sl.expm(A)
    _nla._check_square("expm", A)
    return expm_p(A)


# --- Sylvester, sqrtm -------------------------------------------------------------------------


def _sylvester_impl(a, b, q):
    a, b, q = _broadcast_stacks([a, b, q], [2, 2, 2])
    return _sl.solve_sylvester(a, b, q)


def _syl_adjoint(g, a, b):
    """The cotangent of ``q``: solves ``a^T Y + Y b^T = g``."""
    return solve_sylvester_p(_T(a), _T(b), g)


def _syl_vjp_a(g, ans, a, b, q):
    y = _syl_adjoint(g, a, b)
    return unbroadcast_to(-dnp.matmul(y, _T(ans)), shape_of(a))


def _syl_vjp_b(g, ans, a, b, q):
    y = _syl_adjoint(g, a, b)
    return unbroadcast_to(-dnp.matmul(_T(ans), y), shape_of(b))


def _syl_vjp_q(g, ans, a, b, q):
    return unbroadcast_to(_syl_adjoint(g, a, b), shape_of(q))


solve_sylvester_p = Primitive("scipy.linalg.solve_sylvester", _sylvester_impl)
solve_sylvester_p.defvjp(_syl_vjp_a, _syl_vjp_b, _syl_vjp_q)
solve_sylvester_p.defjvp(
    lambda t, ans, a, b, q: _nla._bcast(solve_sylvester_p(a, b, -dnp.matmul(t, ans)), ans),
    lambda t, ans, a, b, q: _nla._bcast(solve_sylvester_p(a, b, -dnp.matmul(ans, t)), ans),
    lambda t, ans, a, b, q: _nla._bcast(solve_sylvester_p(a, b, t), ans),
)
_align_batch(solve_sylvester_p)
solve_sylvester_p.__doc__ = "Solve a x + x b = q (Bartels-Stewart)."


def solve_sylvester(a, b, q):
    """Solve ``a x + x b = q`` for ``x`` (Bartels-Stewart); differentiable in all three."""
    if not _traced(a, b, q):
        return _sl.solve_sylvester(a, b, q)
    return solve_sylvester_p(a, b, q)


def _sqrtm_impl(a):
    return _sl.sqrtm(a)


sqrtm_p = Primitive("scipy.linalg.sqrtm", _sqrtm_impl)
sqrtm_p.defjvp(lambda t, ans, a: solve_sylvester_p(ans, ans, t))
sqrtm_p.defvjp(lambda g, ans, a: solve_sylvester_p(_T(ans), _T(ans), g))
sqrtm_p.defbatch(lambda args, batched: sqrtm_p(args[0]))
sqrtm_p.__doc__ = "Principal matrix square root; derivatives solve Sylvester equations."


def sqrtm(A, **kwargs):
    """The principal square root ``X`` (``X @ X == A``) of (stacked) square matrices."""
    if not _traced(A):
        return _sl.sqrtm(A, **kwargs)
    _nla._check_square("sqrtm", A)
    return sqrtm_p(A)


# --- banded -----------------------------------------------------------------------------------


def _real_dtype(x):
    return np.real(np.zeros((), dtype_of(x))).dtype


def _band_transpose(ab, l, u):
    """The band storage of ``A^T`` (``u`` rows above, ``l`` below): ``O(n (l + u))``."""
    s = shape_of(ab)
    n = s[-1]
    k, j = np.meshgrid(np.arange(l + u + 1), np.arange(n), indexing="ij")
    col = k - l + j
    valid = (col >= 0) & (col < n)
    idx = np.where(valid, (u + l - k) * n + col, 0)
    flat = dnp.reshape(ab, tuple(s[:-2]) + (-1,))
    return dnp.take(flat, idx, axis=-1) * valid.astype(_real_dtype(ab))


def _band_outer(gb, x, l, u):
    """The band of ``gb @ x^T`` (``gab[k, j] = gb[k - u + j] . x[j]``): ``O(n (l + u) k)``."""
    n = shape_of(x)[-2]
    k, j = np.meshgrid(np.arange(l + u + 1), np.arange(n), indexing="ij")
    i = k - u + j
    valid = (i >= 0) & (i < n)
    rows = dnp.take(gb, np.where(valid, i, 0), axis=-2)  # (..., l + u + 1, n, k)
    out = dnp.sum(rows * dnp.expand_dims(x, -3), axis=-1)
    return out * valid.astype(_real_dtype(out))


def _band_matmul(t, x, l, u):
    """``A @ x`` for ``A`` in band storage ``t``: ``y[i] = sum_k t[k, j] x[j]``,
    ``j = i - k + u``; ``O(n (l + u) k)``."""
    s = shape_of(t)
    n = s[-1]
    k, i = np.meshgrid(np.arange(l + u + 1), np.arange(n), indexing="ij")
    j = i - k + u
    valid = (j >= 0) & (j < n)
    jj = np.where(valid, j, 0)
    flat = dnp.reshape(t, tuple(s[:-2]) + (-1,))
    coef = dnp.take(flat, k * n + jj, axis=-1) * valid.astype(_real_dtype(t))  # (..., K, n)
    rows = dnp.take(x, jj, axis=-2)  # (..., K, n, k)
    return dnp.sum(dnp.expand_dims(coef, -1) * rows, axis=-3)


def _solve_banded_impl(ab, b, l, u):
    ab, b = _broadcast_stacks([ab, b], [2, 2])
    if ab.ndim == 2:
        return _sl.solve_banded((l, u), ab, b)
    out = np.empty(b.shape, np.result_type(ab, b, 1.0))
    for idx in np.ndindex(ab.shape[:-2]):
        out[idx] = _sl.solve_banded((l, u), ab[idx], b[idx])
    return out


def _banded_vjp_ab(g, ans, ab, b, l, u):
    gb = _banded_vjp_b_full(g, ab, l, u)
    return unbroadcast_to(-_band_outer(gb, ans, l, u), shape_of(ab))


def _banded_vjp_b_full(g, ab, l, u):
    return solve_banded_p(_band_transpose(ab, l, u), g, l=u, u=l)


solve_banded_p = Primitive("scipy.linalg.solve_banded", _solve_banded_impl)
solve_banded_p.defvjp(
    _banded_vjp_ab,
    lambda g, ans, ab, b, l, u: unbroadcast_to(_banded_vjp_b_full(g, ab, l, u), shape_of(b)),
)
solve_banded_p.defjvp(
    lambda t, ans, ab, b, l, u: -solve_banded_p(ab, _band_matmul(t, ans, l, u), l=l, u=u),
    lambda t, ans, ab, b, l, u: _nla._bcast(solve_banded_p(ab, t, l=l, u=u), ans),
)
_align_batch(solve_banded_p)
solve_banded_p.__doc__ = (
    "Solve A x = b for matrix b, A in LAPACK band storage; rules in band storage."
)


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """Solve ``A x = b`` with ``A`` in banded storage ``ab`` (``ab[u + i - j, j] = A[i, j]``).

    Under a transform ``ab`` may be a stack ``(..., l + u + 1, n)`` with ``b`` stacked
    matrices ``(..., n, k)``; a 1-D ``b`` is a vector.
    """
    l, u = (int(v) for v in l_and_u)
    if not _traced(ab, b):
        return _sl.solve_banded(
            (l, u),
            ab,
            b,
            overwrite_ab=overwrite_ab,
            overwrite_b=overwrite_b,
            check_finite=check_finite,
        )
    if shape_of(ab)[-2] != l + u + 1:
        raise ValueError(
            f"linalg.solve_banded: ab has shape {shape_of(ab)}, expected {l + u + 1} rows "
            f"for (l, u) = ({l}, {u})"
        )
    if len(shape_of(b)) == 1:
        x = solve_banded_p(ab, dnp.reshape(b, (-1, 1)), l=l, u=u)
        return dnp.reshape(x, shape_of(x)[:-1])
    return solve_banded_p(ab, b, l=l, u=u)


# --- eigh -------------------------------------------------------------------------------------




def eigh(
    a,
    b=None,
    *,
    lower: bool = True,
    eigvals_only: bool = False,
    overwrite_a: bool = False,
    overwrite_b: bool = False,
    type: int = 1,
    check_finite: bool = True,
    subset_by_index=None,
    subset_by_value=None,
    driver=None,
):
    """Eigenvalues (ascending) and eigenvectors of a Hermitian matrix, optionally generalized
    (``a v = w b v``, ``type=1``) and restricted to a subset, as ``scipy.linalg.eigh``.

    Derivatives are those of the returned eigenpairs; finite where the eigenvalues of the
    whole problem are distinct. Eigenvectors are defined up to sign.
    """
    if not _traced(a, b):
        return _sl.eigh(
            a,
            b,
            lower=lower,
            eigvals_only=eigvals_only,
            overwrite_a=overwrite_a,
            overwrite_b=overwrite_b,
            type=type,
            check_finite=check_finite,
            subset_by_index=subset_by_index,
            subset_by_value=subset_by_value,
            driver=driver,
        )
    if type != 1:
        raise NotImplementedError("linalg.eigh: only type=1 is differentiable")
    if subset_by_index is not None and subset_by_value is not None:
        raise ValueError("linalg.eigh: give subset_by_index or subset_by_value, not both")
    uplo = "L" if lower else "U"
    _nla._check_square("eigh", a)
    if b is None:
        w, v = _nla.eigh(a, UPLO=uplo)
    else:
        c = _nla.cholesky(b if lower else _H(b))  # b = c c^H, reading b's chosen triangle
        y = solve_triangular(c, _nla._from_triangle(a, lower), lower=True)  # c^-1 a
        m = _H(solve_triangular(c, _H(y), lower=True))  # c^-1 a c^-H
        w, z = _nla.eigh(m, UPLO="L")
        v = solve_triangular(c, z, lower=True, trans=2)  # c^-H z
    n = shape_of(w)[-1]
    lo, hi = 0, n
    if subset_by_index is not None:
        lo, hi = int(subset_by_index[0]), int(subset_by_index[1]) + 1
        if not (0 <= lo < hi <= n):
            raise ValueError(f"linalg.eigh: invalid subset_by_index {subset_by_index!r}")
    elif subset_by_value is not None:
        vl, vu = subset_by_value
        wv = _nla._concrete(w)
        if np.ndim(wv) != 1:
            raise NotImplementedError("linalg.eigh: subset_by_value takes a single matrix")
        inside = np.nonzero((wv > vl) & (wv <= vu))[0]
        lo, hi = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
    if (lo, hi) != (0, n):
        w = ad_util.slice_axis(w, start=lo, stop=hi, axis=len(shape_of(w)) - 1)
        v = ad_util.slice_axis(v, start=lo, stop=hi, axis=len(shape_of(v)) - 1)
    return w if eigvals_only else (w, v)


# --- block_diag -------------------------------------------------------------------------------


def block_diag(*arrs):
    """The block-diagonal matrix of the given blocks (1-D: a row, 0-D: 1 x 1), as SciPy."""
    if not _traced(*arrs):
        return _sl.block_diag(*arrs)
    blocks = [dnp.atleast_2d(x) for x in arrs]
    for i, x in enumerate(blocks):
        if len(shape_of(x)) > 2:
            raise ValueError(
                f"linalg.block_diag: argument {i} has shape {shape_of(x)}; "
                "arguments must be at most 2-D"
            )
    dtype = np.result_type(*[dtype_of(x) for x in blocks])
    widths = [shape_of(x)[1] for x in blocks]
    total = sum(widths)
    rows = []
    col = 0
    for x, w in zip(blocks, widths, strict=True):
        r = shape_of(x)[0]
        parts = []
        if col:
            parts.append(np.zeros((r, col), dtype))
        parts.append(dnp.astype(x, dtype) if dtype_of(x) != dtype else x)
        if total - col - w:
            parts.append(np.zeros((r, total - col - w), dtype))
        rows.append(parts[0] if len(parts) == 1 else dnp.concatenate(parts, axis=1))
        col += w
    return rows[0] if len(rows) == 1 else dnp.concatenate(rows, axis=0)
