"""``diffsys.numpy.linalg``: NumPy's linear algebra, differentiable in both modes.

Every function accepts stacks of matrices (``(..., m, n)``) as NumPy does. Derivative rules
use solves and factorizations, never an explicit inverse where a solve serves::

    import numpy as np
    import diffsys as ds
    import diffsys.numpy as dnp

    A = np.eye(3) * 2.0
    ds.grad(lambda a: dnp.linalg.slogdet(a)[1])(A)  # == inv(A).T

Conventions (see ``docs/numpy-linalg-fft.md``):

- ``eigh`` and ``eigvalsh`` read one triangle of their input (``UPLO``), and their
  derivatives are those of that function (as autograd's): they match finite differences of
  NumPy's results, and the gradient is zero on the triangle not read. ``cholesky`` reads
  one triangle too, but differentiates ``f(herm(A))`` with ``herm(A) = (A + A^H) / 2`` (as
  JAX): its gradient is symmetric (Hermitian) and a tangent enters through its symmetric
  (Hermitian) part.
- ``eigh``/``svd`` derivatives are finite only where eigenvalues / singular values are
  distinct (and, for non-square ``svd`` and ``pinv``, non-zero).
- Complex inputs differentiate with JAX's convention everywhere (``eigh``/``cholesky`` for
  Hermitian inputs); complex eigen- and singular vectors only through phase-invariant
  functions of them.
"""

from __future__ import annotations

import warnings
import weakref

import numpy as np

from .. import numpy as dnp
from ..core import ad_util
from ..core.primitive import Primitive
from ..core.tracer import Tracer
from ._util import align_batched, array_like, dtype_of, shape_of, unbroadcast

LinAlgError = np.linalg.LinAlgError

__all__ = [
    "LinAlgError",
    "cholesky",
    "det",
    "eig",
    "eigh",
    "eigvals",
    "eigvalsh",
    "inv",
    "lstsq",
    "matrix_power",
    "matrix_rank",
    "multi_dot",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "tensorsolve",
]


# --- helpers ----------------------------------------------------------------------------------


def _T(x):
    return dnp.swapaxes(x, -1, -2)


def _eye(n, like):
    return np.eye(n, dtype=dtype_of(like))


def _diag(x):
    return dnp.einsum("...ii->...i", x)


def _diag_embed(v):
    n = shape_of(v)[-1]
    return dnp.expand_dims(v, -1) * _eye(n, v)


def _sym(x):
    return (x + _T(x)) * 0.5


def _H(x):
    """The conjugate transpose (the transpose for real ``x``)."""
    return dnp.conjugate(_T(x)) if _is_complex(x) else _T(x)


def _herm(x):
    """The Hermitian (symmetric, for real ``x``) part."""
    return (x + _H(x)) * 0.5


def _from_triangle(x, lower: bool):
    """The Hermitian (symmetric) matrix LAPACK reads from one triangle of ``x``: the strict
    triangle, its conjugate transpose, and the real part of the diagonal. Linear in ``x``."""
    n = shape_of(x)[-1]
    real = np.real(np.zeros((), dtype_of(x))).dtype
    strict = np.tri(n, n, -1, dtype=real)
    half = x * (strict if lower else strict.T)
    diag = x * np.eye(n, dtype=real)
    if _is_complex(x):
        diag = ad_util.cast(ad_util.real_part(diag), dtype=dtype_of(x))
    return half + _H(half) + diag


def _from_triangle_transpose(g, lower: bool):
    """The transpose of :func:`_from_triangle` (its VJP): ``g + g^H`` on the strict
    triangle read, the real part of ``g``'s diagonal, zero on the triangle not read."""
    n = shape_of(g)[-1]
    real = np.real(np.zeros((), dtype_of(g))).dtype
    strict = np.tri(n, n, -1, dtype=real)
    diag = g * np.eye(n, dtype=real)
    if _is_complex(g):
        diag = ad_util.cast(ad_util.real_part(diag), dtype=dtype_of(g))
    return (g + _H(g)) * (strict if lower else strict.T) + diag


def _tril_mask(n, like, k=0):
    return np.tri(n, n, k, dtype=dtype_of(like))


def _is_complex(x) -> bool:
    return np.issubdtype(dtype_of(x), np.complexfloating)


def _check_square(name, a):
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise LinAlgError(f"linalg.{name}: expected stacked square matrices (..., n, n), got {s}")


def _unary_batch(prim):
    prim.defbatch(lambda args, batched, **params: prim(args[0], **params))


def _traced(*xs) -> bool:
    return any(isinstance(x, Tracer) for x in xs)


# --- solve ------------------------------------------------------------------------------------


# LU factorizations of the most recent large plain matrices: the forward solve (or slogdet)
# and the backward solves with A^T of one gradient computation then factor A once. An entry
# is used only for the very same array object with unchanged contents (compared with a
# private copy), and dies with the array (weak reference).
_LU_CACHE: list = []
_LU_MIN_N = 32
_LU_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def _cacheable(a) -> bool:
    return (
        a.__class__ is np.ndarray
        and a.ndim == 2
        and a.shape[0] == a.shape[1]
        and a.shape[0] >= _LU_MIN_N
        and a.dtype.type in _LU_DTYPES
    )


def _drop_lu(ref) -> None:
    _LU_CACHE[:] = [entry for entry in _LU_CACHE if entry[0] is not ref]


def _lu_factor(a):
    """``scipy.linalg.lu_factor(a)``, reused for the same unchanged array; ``None`` when
    ``a`` is exactly singular (a zero pivot) or not finite."""
    for ref, copy, fac in _LU_CACHE:
        if ref() is a and np.array_equal(copy, a):
            return fac
    import scipy.linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LinAlgWarning on singular input: handled below
        fac = scipy.linalg.lu_factor(a, check_finite=False)
    d = np.diagonal(fac[0])
    if not (np.all(d != 0) and np.all(np.isfinite(d))):
        fac = None
    try:
        ref = weakref.ref(a, _drop_lu)  # the entry (a copy and the factors) dies with ``a``
    except TypeError:  # pragma: no cover - ndarrays support weak references
        return fac
    _LU_CACHE[:] = [(ref, a.copy(), fac)] + _LU_CACHE[:1]
    return fac


def _solve_impl(a, b, trans=False):
    """``solve(a, b)`` (``solve(a^T, b)`` with ``trans``), through the cached LU of ``a``."""
    if _cacheable(a) and b.__class__ is np.ndarray and b.ndim == 2 and b.dtype == a.dtype:
        fac = _lu_factor(a)
        if fac is not None:
            import scipy.linalg

            return scipy.linalg.lu_solve(fac, b, trans=int(trans), check_finite=False)
    return np.linalg.solve(np.swapaxes(a, -1, -2) if trans else a, b)


def _solve_vjp_a(g, ans, a, b, trans=False):
    gb = solve_p(a, g, trans=not trans)
    if trans:  # x = A^-T b: the cotangent of A^T is -(A^-1 g) x^T
        return unbroadcast(-dnp.matmul(ans, _T(gb)), a)
    return unbroadcast(-dnp.matmul(gb, _T(ans)), a)


def _solve_vjp_b(g, ans, a, b, trans=False):
    return unbroadcast(solve_p(a, g, trans=not trans), b)


def _solve_jvp_a(t, ans, a, b, trans=False):
    return _bcast(-solve_p(a, dnp.matmul(_T(t) if trans else t, ans), trans=trans), ans)


def _bcast(t, ans):
    if shape_of(t) == shape_of(ans):
        return t
    return dnp.broadcast_to(t, shape_of(ans))


solve_p = Primitive("linalg.solve", _solve_impl)
solve_p.defvjp(_solve_vjp_a, _solve_vjp_b)
solve_p.defjvp(
    _solve_jvp_a,
    lambda t, ans, a, b, trans=False: _bcast(solve_p(a, t, trans=trans), ans),
)
solve_p.defbatch(
    lambda args, batched, trans=False: solve_p(*align_batched(args, batched), trans=trans)
)


@array_like("a", "b")
def solve(a, b):
    """Solve ``a @ x = b`` (``b`` a vector when 1-D, else stacked matrices, as NumPy 2)."""
    if not _traced(a, b):
        return np.linalg.solve(a, b)
    _check_square("solve", a)
    if len(shape_of(b)) == 1:
        return dnp.reshape(solve_p(a, dnp.reshape(b, (-1, 1))), shape_of(a)[:-2] + (-1,))
    return solve_p(a, b)


# --- inv, det, slogdet ------------------------------------------------------------------------

inv_p = Primitive("linalg.inv", np.linalg.inv)
inv_p.defvjp(lambda g, ans, a: -dnp.matmul(_T(ans), dnp.matmul(g, _T(ans))))
inv_p.defjvp(lambda t, ans, a: -dnp.matmul(ans, dnp.matmul(t, ans)))
_unary_batch(inv_p)


@array_like("a")
def inv(a):
    """The inverse of (stacked) square matrices.

    Its VJP multiplies by the inverse it already computed (``-A^-T g A^-T``): no extra solve.
    """
    if not _traced(a):
        return np.linalg.inv(a)
    _check_square("inv", a)
    return inv_p(a)


def _inv_T_times(a, c):
    """``c[..., None, None] * A^-T`` through one solve with ``A^T`` (the gradient of log|det|
    is the whole inverse transpose, so a solve against ``c I`` is the least it can cost)."""
    n = shape_of(a)[-1]
    rhs = dnp.expand_dims(dnp.expand_dims(c, -1), -1) * _eye(n, a)
    return solve_p(a, dnp.broadcast_to(rhs, shape_of(a)) if _traced(rhs) else rhs, trans=True)


def _trace_solve(a, t):
    return dnp.sum(_diag(solve_p(a, t)), axis=-1)


def _any_singular(ans) -> bool:
    """Whether some determinant is exactly zero (a zero LU pivot: where a solve fails).
    Under ``vmap`` the values are not concrete: the solve path is used."""
    value = _concrete_or_none(ans)
    return value is not None and bool(np.any(np.asarray(value) == 0))


def _cofactor(a):
    """The cofactor matrix ``adj(A)^T`` from the SVD ``A = U S V^H``:
    ``adj(A) = det(V^H) det(U) V diag(prod_{j != i} s_j) U^H``, finite for singular ``A``."""
    u, s, vh = svd_p(a, full_matrices=False)
    n = shape_of(a)[-1]
    eye = _eye(n, s)
    others = dnp.prod(dnp.expand_dims(s, -2) * (1.0 - eye) + eye, axis=-1)  # prod_{j != i}
    phase = det_p(u) * det_p(vh)
    adj = dnp.matmul(_H(vh) * dnp.expand_dims(others, -2), _H(u))
    return _T(adj) * dnp.expand_dims(dnp.expand_dims(phase, -1), -1)


def _det_vjp(g, ans, a):
    if _any_singular(ans):
        return dnp.expand_dims(dnp.expand_dims(g, -1), -1) * _cofactor(a)
    return _inv_T_times(a, g * ans)


def _det_jvp(t, ans, a):
    if _any_singular(ans):
        return dnp.sum(_cofactor(a) * t, axis=(-2, -1))
    return ans * _trace_solve(a, t)


det_p = Primitive("linalg.det", np.linalg.det)
det_p.defvjp(_det_vjp)
det_p.defjvp(_det_jvp)
_unary_batch(det_p)


@array_like("a")
def det(a):
    """Determinant of (stacked) square matrices; derivative finite where ``a`` is invertible."""
    if not _traced(a):
        return np.linalg.det(a)
    _check_square("det", a)
    return det_p(a)


def _slogdet_jvp(t, ans, a):
    sign, _ = ans
    d = _trace_solve(a, t)
    d = ad_util.real_part(d) if _is_complex(d) else d
    return [ad_util.zeros_like_value(sign), d]  # the sign is piecewise constant


def _slogdet_vjp(g, ans, a):
    g = g[1]  # the sign has zero derivative
    if _is_complex(g):  # a real output: only the real part of a complex cotangent counts
        g = ad_util.real_part(g)
    return _inv_T_times(a, g)


# One primitive for both results: one LU factorization in the forward pass.
def _slogdet_impl(a):
    if _cacheable(a):
        fac = _lu_factor(a)  # shared with solves of the same matrix
        if fac is not None:
            lu, piv = fac
            d = np.diagonal(lu)
            flips = np.count_nonzero(piv != np.arange(len(piv))) % 2
            absd = np.abs(d)
            phase = np.prod(d / absd) * (-1.0 if flips else 1.0)
            return a.dtype.type(phase), absd.dtype.type(np.sum(np.log(absd)))
    return tuple(np.linalg.slogdet(a))


slogdet_p = Primitive("linalg.slogdet", _slogdet_impl, multiple_results=True)
slogdet_p.defvjp(_slogdet_vjp)
slogdet_p.defjvp(_slogdet_jvp)
_unary_batch(slogdet_p)


@array_like("a")
def slogdet(a):
    """``(sign, log|det a|)``; the sign is not differentiable (zero derivative), ``logabsdet``
    is, with VJP ``g A^-T`` from one solve with ``A^T``."""
    if not _traced(a):
        return np.linalg.slogdet(a)
    _check_square("slogdet", a)
    sign, logabsdet = slogdet_p(a)
    return sign, logabsdet


def _concrete_or_none(x):
    """The plain value of ``x`` when it has one (not under ``vmap``), else ``None``."""
    try:
        from ..core.tracer import concrete

        return concrete(x)
    except TypeError:
        return None


# --- cholesky ---------------------------------------------------------------------------------


def _phi(x):
    n = shape_of(x)[-1]
    return x * (_tril_mask(n, x, -1) + 0.5 * _eye(n, x))


def _cholesky_jvp(t, ans, a):
    L = ans
    tmp = solve_p(L, _herm(t))  # L^-1 S
    x = _H(solve_p(L, _H(tmp)))  # L^-1 S L^-H
    return dnp.matmul(L, _phi(x))


def _cholesky_vjp(g, ans, a):
    L = ans
    p = _phi(dnp.matmul(_T(L), g))
    y = solve_p(_T(L), p)  # L^-T P
    s = _T(solve_p(_H(L), _T(y)))  # L^-T P conj(L)^-1
    return _herm(s)


cholesky_p = Primitive("linalg.cholesky", np.linalg.cholesky)
cholesky_p.defvjp(_cholesky_vjp)
cholesky_p.defjvp(_cholesky_jvp)
_unary_batch(cholesky_p)


@array_like("a")
def cholesky(a, /, *, upper: bool = False):
    """Lower (or upper) Cholesky factor of (stacked) symmetric positive-definite matrices."""
    if not _traced(a):
        return np.linalg.cholesky(a, upper=upper)
    _check_square("cholesky", a)
    L = cholesky_p(a)
    return _H(L) if upper else L


# --- eigh, eigvalsh ---------------------------------------------------------------------------


def _eig_F(w):
    n = shape_of(w)[-1]
    diff = dnp.expand_dims(w, -2) - dnp.expand_dims(w, -1)  # w_j - w_i
    eye = _eye(n, w)
    return (1.0 - eye) / (diff + eye)


def _eigh_jvp(t, ans, a, UPLO):
    w, v = ans
    s = dnp.matmul(_H(v), dnp.matmul(_from_triangle(t, UPLO == "L"), v))
    dw = _diag(s)
    if _is_complex(dw):
        dw = ad_util.real_part(dw)
    dv = dnp.matmul(v, _eig_F(w) * s)
    return [dw, dv]


def _eigh_vjp(g, ans, a, UPLO):
    w, v = ans
    gw, gv = g
    if _is_complex(gw):  # the eigenvalues are real
        gw = ad_util.real_part(gw)
    inner = _diag_embed(gw)
    # Eigenvalues alone (the engine passes plain zeros for unused eigenvectors): skip the
    # eigenvector term, whose 1/(w_j - w_i) factors are infinite for repeated eigenvalues.
    if isinstance(gv, Tracer) or gv.any():
        inner = inner + _eig_F(w) * dnp.matmul(_T(v), gv)
    vc = dnp.conjugate(v) if _is_complex(v) else v
    return _from_triangle_transpose(dnp.matmul(vc, dnp.matmul(inner, _T(v))), UPLO == "L")


eigh_p = Primitive(
    "linalg.eigh", lambda a, UPLO: tuple(np.linalg.eigh(a, UPLO)), multiple_results=True
)
eigh_p.defvjp(_eigh_vjp)
eigh_p.defjvp(_eigh_jvp)
_unary_batch(eigh_p)


@array_like("a")
def eigh(a, UPLO: str = "L"):
    """Eigenvalues (ascending) and eigenvectors of (stacked) symmetric matrices.

    Like NumPy, reads only the ``UPLO`` triangle of ``a`` (and the real part of its
    diagonal), and its derivatives are those of that function: the gradient is zero on the
    other triangle, and they agree with finite differences of ``numpy.linalg.eigh`` along any
    perturbation, symmetric or not. Derivatives are finite where eigenvalues are distinct;
    eigenvectors are defined up to sign (phase), so only sign-invariant functions of them
    have meaningful gradients.
    """
    if not _traced(a):
        return np.linalg.eigh(a, UPLO)
    _check_square("eigh", a)
    w, v = eigh_p(a, UPLO=UPLO)
    return w, v


@array_like("a")
def eigvalsh(a, UPLO: str = "L"):
    """Eigenvalues of (stacked) symmetric matrices, reading the ``UPLO`` triangle (as
    :func:`eigh`); the gradient is ``V diag(g) V^T`` folded onto that triangle."""
    if not _traced(a):
        return np.linalg.eigvalsh(a, UPLO)
    return eigh(a, UPLO)[0]


# --- eig, eigvals (general matrices) ----------------------------------------------------------
#
# A V = V diag(w), eigenvectors normalized to unit 2-norm (LAPACK's). Forward mode, with
# X = V^-1 dA V and F_ij = 1 / (w_j - w_i) off the diagonal (0 on it):
#     dw = diag(X),   dV = V (F o X) - V Re(diag(V^H V (F o X)))
# the last term keeping each column's norm (as PyTorch's convention). The phase of each
# eigenvector is arbitrary (LAPACK fixes it by a rule that is not differentiable), so the
# derivative of V is one representative: functions of V that do not depend on the phases
# (|V|^2, projectors v v^H / v^H v, ...) have the true derivative. The VJP is the transpose
# of this JVP (under diffsys's pairing Re sum(g * t)):
#     G_X = diag(gw) + F o (V^T gV - V^T conj(V) diag(Re diag(V^T gV))),  gA = V^-T G_X V^T.


def _eig_jvp(t, ans, a):
    w, v = ans
    x = solve(v, dnp.matmul(t, v))  # V^-1 dA V
    dw = _diag(x)
    dv = dnp.matmul(v, _eig_F(w) * x)
    vc = dnp.conjugate(v) if _is_complex(v) else v
    norm = dnp.sum(vc * dv, axis=-2, keepdims=True)  # diag(V^H dV), one row
    if _is_complex(norm):
        norm = ad_util.cast(ad_util.real_part(norm), dtype=dtype_of(v))
    return [dw, dv - v * norm]


def _eig_vjp(g, ans, a):
    w, v = ans
    gw, gv = g
    inner = _diag_embed(gw)
    if isinstance(gv, Tracer) or gv.any():  # eigenvalues alone: no 1/(w_j - w_i) factors
        vtg = dnp.matmul(_T(v), gv)
        r = _diag(vtg)
        if _is_complex(r):
            r = ad_util.cast(ad_util.real_part(r), dtype=dtype_of(v))
        vc = dnp.conjugate(v) if _is_complex(v) else v
        inner = inner + _eig_F(w) * (vtg - dnp.matmul(_T(v), vc) * dnp.expand_dims(r, -2))
    ga = solve(_T(v), dnp.matmul(inner, _T(v)))
    if _is_complex(ga) and not _is_complex(a):
        ga = ad_util.real_part(ga)  # a real input receives the real part
    return ga


eig_p = Primitive("linalg.eig", lambda a: tuple(np.linalg.eig(a)), multiple_results=True)
eig_p.defvjp(_eig_vjp)
eig_p.defjvp(_eig_jvp)
_unary_batch(eig_p)


@array_like("a")
def eig(a):
    """Eigenvalues and right eigenvectors (unit 2-norm columns) of (stacked) square matrices,
    as ``numpy.linalg.eig`` (complex where the spectrum is; real when all are real).

    Derivatives (both modes, any order) are finite where eigenvalues are distinct. Each
    eigenvector is defined up to a phase (a sign, when real): the derivative of ``V`` keeps
    the unit norm and is one representative, exact for phase-invariant functions of it such
    as ``abs(V) ** 2`` or projectors ``v v^H``.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> a = np.array([[2.0, 1.0], [0.0, 3.0]])
    >>> ds.grad(lambda a: dnp.sum(dnp.linalg.eig(a)[0]))(a)  # d trace / dA
    array([[1., 0.],
           [0., 1.]])
    """
    if not _traced(a):
        return np.linalg.eig(a)
    _check_square("eig", a)
    w, v = eig_p(a)
    return w, v


@array_like("a")
def eigvals(a):
    """Eigenvalues of (stacked) square matrices, as ``numpy.linalg.eigvals`` (see
    :func:`eig`); the derivative ``diag(V^-1 dA V)`` has no ``1 / (w_j - w_i)`` factors."""
    if not _traced(a):
        return np.linalg.eigvals(a)
    return eig(a)[0]


# --- svd --------------------------------------------------------------------------------------


def _svd_impl(a, full_matrices):
    return tuple(np.linalg.svd(a, full_matrices=full_matrices))


def _reduced(ans, a):
    """The reduced factors (the first k columns of U, rows of Vh) of possibly full ones."""
    u, s, vh = ans
    m, n = shape_of(a)[-2:]
    k = min(m, n)
    if shape_of(u)[-1] != k:
        u = ad_util.slice_axis(u, start=0, stop=k, axis=len(shape_of(u)) - 1)
    if shape_of(vh)[-2] != k:
        vh = ad_util.slice_axis(vh, start=0, stop=k, axis=len(shape_of(vh)) - 2)
    return u, s, vh


def _svd_jvp(t, ans, a, full_matrices):
    if _is_complex(a) or _is_complex(t):
        return _pad_full(_svd_jvp_complex(t, ans, a), ans, a)
    u, s, vh = _reduced(ans, a)
    ut, v = _T(u), _T(vh)
    m, n = shape_of(a)[-2:]
    k = min(m, n)
    eye = _eye(k, s)
    s_row = dnp.expand_dims(s, -2)  # s_j
    s_col = dnp.expand_dims(s, -1)  # s_i
    dS = dnp.matmul(ut, dnp.matmul(t, v))
    ds = _diag(dS)
    F = (1.0 - eye) / ((s_row + s_col) * (s_row - s_col) + eye)
    dSS = dS * s_row
    SdS = s_col * dS
    du = dnp.matmul(u, F * (dSS + _T(dSS)))
    dv = dnp.matmul(v, F * (SdS + _T(SdS)))
    if m > n:
        dAV = dnp.matmul(t, v)
        du = du + (dAV - dnp.matmul(u, dnp.matmul(ut, dAV))) / s_row
    if n > m:
        dAHU = dnp.matmul(_T(t), u)
        dv = dv + (dAHU - dnp.matmul(v, dnp.matmul(vh, dAHU))) / s_row
    return _pad_full([du, ds, _T(dv)], ans, a)


def _pad_full(tangents, ans, a):
    """Zero tangents for the extra (non-unique, held constant) columns of full factors."""
    du, ds, dvh = tangents
    k = min(shape_of(a)[-2:])
    U, _, VH = ans
    if shape_of(U)[-1] != k:  # full_matrices: the extra columns are held constant
        du = ad_util.pad_axis(du, before=0, after=shape_of(U)[-1] - k, axis=len(shape_of(U)) - 1)
    if shape_of(VH)[-2] != k:
        dvh = ad_util.pad_axis(
            dvh, before=0, after=shape_of(VH)[-2] - k, axis=len(shape_of(VH)) - 2
        )
    return [du, ds, dvh]


def _svd_factors_complex(ans, a):
    u, s, vh = _reduced(ans, a)
    m, n = shape_of(a)[-2:]
    k = min(m, n)
    eye = _eye(k, s)
    s_row = dnp.expand_dims(s, -2)  # s_j
    s_col = dnp.expand_dims(s, -1)  # s_i
    F = (1.0 - eye) / ((s_row + s_col) * (s_row - s_col) + eye)
    s_inv = eye / (s_row + (1.0 - eye))  # diag(1 / s)
    return u, s, vh, m, n, s_row, s_col, F, s_inv


def _svd_jvp_complex(t, ans, a):
    """JAX's SVD JVP (with the phase term for complex inputs)."""
    u, s, vh, m, n, s_row, s_col, F, s_inv = _svd_factors_complex(ans, a)
    uh, v = _H(u), _H(vh)
    dS = dnp.matmul(uh, dnp.matmul(t, v))
    ds = ad_util.real_part(_diag(dS))
    dSS = dS * s_row
    SdS = s_col * dS
    du = dnp.matmul(u, F * (dSS + _H(dSS)) + 0.5 * (dS - _H(dS)) * s_inv)
    dv = dnp.matmul(v, F * (SdS + _H(SdS)))
    if m > n:
        dAV = dnp.matmul(t, v)
        du = du + (dAV - dnp.matmul(u, dnp.matmul(uh, dAV))) / s_row
    if n > m:
        dAHU = dnp.matmul(_H(t), u)
        dv = dv + (dAHU - dnp.matmul(v, dnp.matmul(vh, dAHU))) / s_row
    return [du, ds, _H(dv)]


def _svd_vjp_complex(g, ans, a):
    """The transpose of :func:`_svd_jvp_complex` under ``Re(sum(a * b))``, piece by piece."""
    u, s, vh, m, n, s_row, s_col, F, s_inv = _svd_factors_complex(ans, a)
    gu, gs, gvh = _reduced(g, a)
    if _is_complex(gs):
        gs = ad_util.real_part(gs)
    v = _H(vh)
    gdv = _H(gvh)
    # dv = v W, W = F o (Y + Y^H), Y = s_col o dS
    gW = dnp.matmul(_T(v), gdv)
    gY = F * gW
    gY = gY + _H(gY)
    gdS = s_col * gY
    # du = u Z, Z = F o (X + X^H) + (dS - dS^H)/2 o s_inv, X = dS o s_row
    gZ = dnp.matmul(_T(u), gu)
    gX = F * gZ
    gX = gX + _H(gX)
    gdS = gdS + s_row * gX
    d = gZ * s_inv
    gdS = gdS + 0.5 * (d - _H(d))
    gdS = gdS + _diag_embed(gs)
    # dS = u^H t v
    ga = dnp.matmul(dnp.conjugate(u), dnp.matmul(gdS, _T(v)))
    if m > n:  # du += (P - u u^H P) / s_row, P = t v
        gp = gu / s_row
        gp = gp - dnp.matmul(dnp.conjugate(u), dnp.matmul(_T(u), gp))
        ga = ga + dnp.matmul(gp, _T(v))
    if n > m:  # dv += (Q - v vh Q) / s_row, Q = t^H u
        gq = gdv / s_row
        gq = gq - dnp.matmul(_T(vh), dnp.matmul(_T(v), gq))
        ga = ga + _H(dnp.matmul(gq, _T(u)))
    return ga


def _svd_vjp(g, ans, a, full_matrices):
    if _is_complex(a):
        return _svd_vjp_complex(g, ans, a)
    u, s, vh = _reduced(ans, a)
    gu, gs, gvh = _reduced(g, a)
    m, n = shape_of(a)[-2:]
    k = min(m, n)
    v = _T(vh)
    gv = _T(gvh)
    eye = _eye(k, s)
    s_row = dnp.expand_dims(s, -2)
    s_col = dnp.expand_dims(s, -1)
    f = (1.0 - eye) / (s_row * s_row - s_col * s_col + eye)
    utgu = dnp.matmul(_T(u), gu)
    vtgv = dnp.matmul(_T(v), gv)
    t1 = (f * (utgu - _T(utgu))) * s_row
    t1 = t1 + _diag_embed(gs)
    t1 = t1 + s_col * (f * (vtgv - _T(vtgv)))
    t1 = dnp.matmul(u, dnp.matmul(t1, vh))
    if m < n:
        proj = gvh - dnp.matmul(dnp.matmul(gvh, v), vh)  # gv^T (I - V V^T)
        t1 = t1 + dnp.matmul(u / s_row, proj)
    elif m > n:
        proj = gu - dnp.matmul(u, dnp.matmul(_T(u), gu))  # (I - U U^T) gu
        t1 = t1 + dnp.matmul(proj / s_row, vh)
    return t1


svd_p = Primitive("linalg.svd", _svd_impl, multiple_results=True)
svd_p.defvjp(_svd_vjp)
svd_p.defjvp(_svd_jvp)
_unary_batch(svd_p)


@array_like("a")
def svd(a, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False):
    """Singular value decomposition ``u, s, vh`` of (stacked) matrices.

    Derivatives are finite where singular values are distinct (and non-zero for non-square
    inputs). With ``full_matrices=True`` on a non-square input, the extra columns of ``u``
    (rows of ``vh``) are not unique: they are held constant (zero derivative).
    """
    if not _traced(a):
        return np.linalg.svd(
            a, full_matrices=full_matrices, compute_uv=compute_uv, hermitian=hermitian
        )
    if len(shape_of(a)) < 2:
        raise LinAlgError(f"linalg.svd: expected (stacked) matrices, got shape {shape_of(a)}")
    u, s, vh = svd_p(a, full_matrices=bool(full_matrices))
    if not compute_uv:
        return s
    return u, s, vh


# --- qr ---------------------------------------------------------------------------------------


def _right_solve_T(x, r):
    """``x @ r^-T`` by a solve with ``r``."""
    return _T(solve_p(r, _T(x)))


def _imag_diag(x, n):
    """``I o (i Im x)``: the diagonal's imaginary part, kept complex (the phase term that
    keeps ``diag(R)`` real)."""
    return (x - ad_util.cast(ad_util.real_part(x), dtype=dtype_of(x))) * _eye(n, x)


def _qr_jvp_complex(t, ans, a):
    """JAX's QR JVP (``m >= n``) with its correction for complex inputs."""
    q, r = ans
    n = shape_of(r)[-1]
    dx_rinv = _T(solve_p(_T(r), _T(t)))  # dA r^-1
    qt = dnp.matmul(_H(q), dx_rinv)
    low = qt * _tril_mask(n, qt, -1)
    do = low - _H(low) + _imag_diag(qt, n)
    dq = dnp.matmul(q, do - qt) + dx_rinv
    dr = dnp.matmul(qt - do, r)
    return [dq, dr]


def _qr_vjp_complex(g, ans, a):
    """The transpose of :func:`_qr_jvp_complex` under ``Re(sum(a * b))``."""
    q, r = ans
    gq, gr = g
    n = shape_of(r)[-1]
    d = dnp.matmul(_T(q), gq) - dnp.matmul(gr, _T(r))  # the cotangent of ``do``
    g_qt = -d + (d - _H(d)) * _tril_mask(n, d, -1) + _imag_diag(d, n)
    g_p = gq + dnp.matmul(dnp.conjugate(q), g_qt)
    return _right_solve_T(g_p, r)  # g_p r^-T


def _qr_jvp(t, ans, a):
    if _is_complex(a):
        return _qr_jvp_complex(t, ans, a)
    q, r = ans
    n = shape_of(r)[-1]
    dx_rinv = _T(solve_p(_T(r), _T(t)))  # dA r^-1
    qt = dnp.matmul(_T(q), dx_rinv)
    low = qt * _tril_mask(n, qt, -1)
    do = low - _T(low)
    dq = dnp.matmul(q, do - qt) + dx_rinv
    dr = dnp.matmul(qt - do, r)
    return [dq, dr]


def _qr_vjp(g, ans, a):
    if _is_complex(a):
        return _qr_vjp_complex(g, ans, a)
    q, r = ans
    gq, gr = g
    n = shape_of(r)[-1]
    qdq = dnp.matmul(_T(q), gq)
    rdr = dnp.matmul(r, _T(gr))
    low = (qdq - _T(qdq) + rdr - _T(rdr)) * _tril_mask(n, r)
    grad_a = dnp.matmul(q, gr + _right_solve_T(low, r))
    grad_b = _right_solve_T(gq - dnp.matmul(q, qdq), r)
    return grad_a + grad_b


qr_p = Primitive("linalg.qr", lambda a: tuple(np.linalg.qr(a)), multiple_results=True)
qr_p.defvjp(_qr_vjp)
qr_p.defjvp(_qr_jvp)
_unary_batch(qr_p)


@array_like("a")
def qr(a, mode: str = "reduced"):
    """QR factorization of (stacked) matrices; ``mode`` in ``reduced``, ``complete``, ``r``
    (``raw`` gives values only). Derivatives need ``r`` with a non-zero diagonal on the first
    ``min(m, n)`` columns; for ``complete`` with m > n the extra columns of ``q`` are constant.
    """
    if not _traced(a):
        return np.linalg.qr(a, mode=mode)
    if mode not in ("reduced", "complete", "r"):
        raise NotImplementedError(f"linalg.qr: mode={mode!r} is not differentiable")
    m, n = shape_of(a)[-2:]
    if m >= n:
        q, r = qr_p(a)
    else:  # wide: A = [X | Y] with X square; Q R_x = X, R = [R_x | Q^H Y]
        x = ad_util.slice_axis(a, start=0, stop=m, axis=len(shape_of(a)) - 1)
        y = ad_util.slice_axis(a, start=m, stop=n, axis=len(shape_of(a)) - 1)
        q, rx = qr_p(x)
        r = dnp.concatenate([rx, dnp.matmul(_H(q), y)], axis=-1)
    if mode == "r":
        return r
    if mode == "complete" and m > n:
        full = np.linalg.qr(_concrete(a), mode="complete")[0]
        extra = full[..., :, n:]
        q = dnp.concatenate([q, extra], axis=-1)
        r = ad_util.pad_axis(r, before=0, after=m - n, axis=len(shape_of(r)) - 2)
    return q, r


def _concrete(x):
    v = _concrete_or_none(x)
    if v is None:
        raise NotImplementedError(
            "this linalg operation needs the concrete value of its input and is not "
            "available under vmap/jacfwd/jacrev"
        )
    return v


# --- pinv -------------------------------------------------------------------------------------


def _pinv_impl(a, rcond, hermitian):
    return np.linalg.pinv(a, rcond=rcond, hermitian=hermitian)


def _pinv_jvp(t, ans, a, rcond, hermitian):
    p = ans
    pH = _H(p)
    tH = _H(t)
    out = -dnp.matmul(p, dnp.matmul(t, p))
    # + P P^H dA^H (I - A P) + (I - P A) dA^H P^H P
    left = dnp.matmul(dnp.matmul(p, pH), tH)
    out = out + left - dnp.matmul(left, dnp.matmul(a, p))
    right = dnp.matmul(tH, dnp.matmul(pH, p))
    out = out + right - dnp.matmul(dnp.matmul(p, a), right)
    return out


def _pinv_vjp(g, ans, a, rcond, hermitian):
    """The transpose of :func:`_pinv_jvp` under ``Re(sum(a * b))`` (a map ``t -> M t^H N``
    transposes to ``G -> conj(N) G^H conj(M)``)."""
    p = ans
    pT = _T(p)
    out = -dnp.matmul(pT, dnp.matmul(g, pT))
    complex_ = _is_complex(p) or _is_complex(g)
    pc = dnp.conjugate(p) if complex_ else p
    ac = dnp.conjugate(a) if complex_ else a
    gH = _H(g)
    # conj(I - A P) G^H conj(P P^H)
    x = dnp.matmul(gH, dnp.matmul(pc, pT))
    out = out + x - dnp.matmul(ac, dnp.matmul(pc, x))
    # conj(P^H P) G^H conj(I - P A)
    y = dnp.matmul(dnp.matmul(pT, pc), gH)
    out = out + y - dnp.matmul(dnp.matmul(y, pc), ac)
    return out


pinv_p = Primitive("linalg.pinv", _pinv_impl)
pinv_p.defvjp(_pinv_vjp)
pinv_p.defjvp(_pinv_jvp)
_unary_batch(pinv_p)


@array_like("a")
def pinv(a, rcond=None, hermitian: bool = False, *, rtol=None):
    """Moore-Penrose pseudo-inverse of (stacked) matrices.

    Derivatives assume the rank is constant near ``a`` (Golub & Pereyra); they are finite where
    the singular values kept are bounded away from the cutoff.
    """
    if not _traced(a):
        if rtol is not None:
            return np.linalg.pinv(a, hermitian=hermitian, rtol=rtol)
        return np.linalg.pinv(a, rcond=rcond, hermitian=hermitian)
    if rtol is not None:
        rcond = rtol
    if rcond is None:
        m, n = shape_of(a)[-2:]
        rcond = float(max(m, n) * np.finfo(dtype_of(a)).eps)
    return pinv_p(a, rcond=float(rcond), hermitian=bool(hermitian))


# --- values only: matrix_rank -----------------------------------------------------------------


def _rank_impl(a, tol, hermitian):
    return np.linalg.matrix_rank(a, tol=tol, hermitian=hermitian)


matrix_rank_p = Primitive("linalg.matrix_rank", _rank_impl, zero_derivative=True)
_unary_batch(matrix_rank_p)


@array_like("A")
def matrix_rank(A, tol=None, hermitian: bool = False, *, rtol=None):
    """The rank (a value: not differentiable)."""
    if not _traced(A):
        return np.linalg.matrix_rank(A, tol=tol, hermitian=hermitian, rtol=rtol)
    if rtol is not None and tol is None:
        s = np.linalg.svd(_concrete(A), compute_uv=False)
        tol = float(np.max(s) * rtol)
    return matrix_rank_p(A, tol=tol, hermitian=bool(hermitian))


# --- compositions -----------------------------------------------------------------------------


@array_like("a")
def matrix_power(a, n: int):
    """``a`` raised to the integer power ``n`` (negative: of its inverse), by squaring."""
    if not _traced(a):
        return np.linalg.matrix_power(a, n)
    n = int(n)
    _check_square("matrix_power", a)
    if n == 0:
        k = shape_of(a)[-1]
        return np.broadcast_to(np.eye(k, dtype=dtype_of(a)), shape_of(a)).copy()
    if n < 0:
        a = inv(a)
        n = -n
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else dnp.matmul(result, base)
        n >>= 1
        if n:
            base = dnp.matmul(base, base)
    return result


@array_like(sequences=("arrays",))
def multi_dot(arrays, *, out=None):
    """Chained matrix product; a 1-D first (last) array is a row (column) vector."""
    if out is not None:
        raise TypeError("linalg.multi_dot: out= is not supported")
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("linalg.multi_dot: expecting at least two arrays")
    if not _traced(*arrays):
        return np.linalg.multi_dot(arrays)
    for i, x in enumerate(arrays):
        nd = len(shape_of(x))
        if (i in (0, len(arrays) - 1) and nd not in (1, 2)) or (
            0 < i < len(arrays) - 1 and nd != 2
        ):
            raise ValueError(f"linalg.multi_dot: array {i} has shape {shape_of(x)}")
    result = arrays[0]
    for x in arrays[1:]:
        result = dnp.matmul(result, x)
    return result


@array_like("a", "b")
def tensorsolve(a, b, axes=None):
    """Solve the tensor equation ``tensordot(a, x, x.ndim) = b`` for ``x``."""
    if not _traced(a, b):
        return np.linalg.tensorsolve(a, b, axes=axes)
    an = len(shape_of(a))
    if axes is not None:
        allaxes = list(range(an))
        for k in axes:
            allaxes.remove(k)
            allaxes.insert(an, k)
        a = dnp.transpose(a, allaxes)
    bn = len(shape_of(b))
    oldshape = shape_of(a)[-(an - bn) :]
    prod = int(np.prod(oldshape))
    if int(np.prod(shape_of(a))) != prod * prod:
        raise LinAlgError(
            f"linalg.tensorsolve: input arrays must satisfy prod(a.shape[b.ndim:]) ** 2 == "
            f"a.size (shapes {shape_of(a)} and {shape_of(b)})"
        )
    x = solve(dnp.reshape(a, (prod, prod)), dnp.reshape(b, (prod,)))
    return dnp.reshape(x, oldshape)


def _check_lstsq_shapes(a, b):
    """NumPy's contract: ``a`` is one ``(M, N)`` matrix, ``b`` is ``(M,)`` or ``(M, K)``."""
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) != 2:
        raise LinAlgError(
            f"linalg.lstsq: a must be one (M, N) matrix (use vmap for a stack), got shape {sa}"
        )
    if len(sb) not in (1, 2) or sb[0] != sa[0]:
        raise LinAlgError(
            f"linalg.lstsq: b must have shape ({sa[0]},) or ({sa[0]}, K) to match a of shape "
            f"{sa}, got shape {sb}"
        )


def _lstsq_residuals(a, b, x):
    """Sums of squared residuals ``|b - a x|^2`` per column of ``b`` (shape ``(1,)`` for a
    vector ``b``), differentiable."""
    r = b - dnp.matmul(a, x)
    if _is_complex(r):
        r2 = ad_util.real_part(r * dnp.conjugate(r))
    else:
        r2 = r * r
    residuals = dnp.sum(r2, axis=0)
    if len(shape_of(b)) == 1:
        residuals = dnp.reshape(residuals, (1,))
    return residuals


def _no_residuals(a):
    """NumPy's empty residuals (rank-deficient or not tall ``a``), in ``a``'s real dtype."""
    return np.empty((0,), dtype=np.real(np.zeros((), dtype_of(a))).dtype)


def _traced_rank(s, rcond):
    """The number of singular values above ``rcond * max(s)``, as an integer array computed
    with diffsys operations (no derivative): it works where ``s`` has no single concrete
    value, e.g. one rank per matrix under ``vmap``."""
    cutoff = rcond * dnp.max(s, axis=-1, keepdims=True)
    return dnp.sum(dnp.greater(s, cutoff), axis=-1)


@array_like("a", "b")
def lstsq(a, b, rcond=None):
    """Least-squares solution ``(x, residuals, rank, s)`` as ``numpy.linalg.lstsq``.

    Under a transform ``x = pinv(a) @ b`` (same cutoff ``rcond * max(s)`` as NumPy); ``x``,
    ``residuals`` and ``s`` are differentiable (assuming the rank is locally constant),
    ``rank`` is a value. Where the singular values have one concrete value (``grad``, ``jvp``,
    and ``jacfwd``/``jacrev``/``hessian`` of an unbatched matrix) the outputs are NumPy's:
    ``rank`` a Python int, ``residuals`` empty unless ``rank == N`` and ``M > N``.

    Where they do not (``a`` batched under ``vmap``, also ``jacfwd``/``jacrev``/``hessian`` of
    a vmapped function and ``vmap`` of them), one output shape must serve the whole batch, as
    in ``jax.numpy.linalg.lstsq``: ``rank`` is an integer array (NumPy's default integer, one
    rank per matrix, no derivative) and, when ``M > N``, ``residuals``
    are the sums of squared residuals ``|b - a x|^2`` of every matrix, including a
    rank-deficient one (where NumPy would return an empty array): that is the residual of
    the minimum-norm solution ``x = pinv(a) @ b``. For ``M <= N`` they are empty, as in NumPy.

    >>> import numpy as np, diffsys as ds, diffsys.numpy as dnp
    >>> a = np.stack([np.eye(3, 2), np.ones((3, 2))])
    >>> ds.vmap(lambda m: dnp.linalg.lstsq(m, np.ones(3))[2])(a)
    array([2, 1])
    """
    if not _traced(a, b):
        return np.linalg.lstsq(a, b, rcond=rcond)
    _check_lstsq_shapes(a, b)
    m, n = shape_of(a)
    if rcond is None:
        rcond = float(np.finfo(dtype_of(a)).eps * max(m, n))
    x = dnp.matmul(pinv(a, rcond=rcond), b)
    s = svd(a, compute_uv=False)
    s_value = _concrete_or_none(s)
    if s_value is None:
        rank = _traced_rank(s, rcond)
        residuals = _lstsq_residuals(a, b, x) if m > n else _no_residuals(a)
        return x, residuals, rank, s
    rank = int(np.sum(s_value > rcond * np.max(s_value)))
    if rank == n and m > n:
        residuals = _lstsq_residuals(a, b, x)
    else:
        residuals = _no_residuals(a)
    return x, residuals, rank, s


# --- norm -------------------------------------------------------------------------------------


def _abs2(x):
    if _is_complex(x):
        return ad_util.real_part(x * dnp.conjugate(x))
    return x * x


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return dnp.sqrt(dnp.sum(_abs2(x), axis=axis, keepdims=keepdims))
    if isinstance(ord, str):
        raise ValueError(f"linalg.norm: invalid norm order {ord!r} for vectors")
    ax = dnp.abs(x)
    if ord == np.inf:
        return dnp.max(ax, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return dnp.min(ax, axis=axis, keepdims=keepdims)
    if ord == 0:
        nz = dnp.where(dnp.not_equal(x, 0), 1.0, 0.0)
        nz = dnp.astype(nz, ad_util._dtype_of(ax)) if dtype_of(nz) != dtype_of(ax) else nz
        return dnp.sum(nz, axis=axis, keepdims=keepdims)
    if ord == 1:
        return dnp.sum(ax, axis=axis, keepdims=keepdims)
    ord = float(ord)
    return dnp.sum(ax**ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _matrix_norm(x, ord, axis, keepdims):
    nd = len(shape_of(x))
    row, col = (a % nd for a in axis)
    if row == col:
        raise ValueError("linalg.norm: duplicate axes given")
    if ord in (2, -2, "nuc"):
        y = dnp.moveaxis(x, (row, col), (-2, -1))
        s = svd(y, compute_uv=False)
        if ord == 2:
            out = dnp.max(s, axis=-1)
        elif ord == -2:
            out = dnp.min(s, axis=-1)
        else:
            out = dnp.sum(s, axis=-1)
    elif ord in (None, "fro", "f"):
        out = dnp.sqrt(dnp.sum(_abs2(x), axis=(row, col)))
    elif ord in (1, -1, np.inf, -np.inf):
        ax = dnp.abs(x)
        if ord in (1, -1):  # max/min column sum: sum over rows, then over columns
            s = dnp.sum(ax, axis=row)
            c = col - 1 if col > row else col
        else:  # max/min row sum
            s = dnp.sum(ax, axis=col)
            c = row - 1 if row > col else row
        out = dnp.max(s, axis=c) if ord in (1, np.inf) else dnp.min(s, axis=c)
    else:
        raise ValueError(f"linalg.norm: invalid norm order {ord!r} for matrices")
    if keepdims:
        out = dnp.expand_dims(out, tuple(sorted((row, col))))
    return out


@array_like("x")
def norm(x, ord=None, axis=None, keepdims: bool = False):
    """Vector or matrix norm, with every ``ord``/``axis`` combination NumPy accepts.

    Non-smooth points (zero vectors for the 2-norm, ties in ``max``/``min`` norms, repeated
    singular values for the spectral norm) get a subgradient; ``ord=0`` counts non-zeros and
    has zero derivative.
    """
    if not _traced(x):
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    nd = len(shape_of(x))
    if axis is None:
        if ord is None:
            out = dnp.sqrt(dnp.sum(_abs2(x)))
            if keepdims:
                out = dnp.reshape(out, (1,) * nd)
            return out
        if nd == 1:
            axis = (0,)
        elif nd == 2:
            axis = (0, 1)
        else:
            raise ValueError("linalg.norm: improper number of dimensions to norm")
    elif isinstance(axis, int | np.integer):
        axis = (int(axis),)
    else:
        axis = tuple(int(a) for a in axis)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis[0] % nd, keepdims)
    if len(axis) == 2:
        return _matrix_norm(x, ord, axis, keepdims)
    raise ValueError("linalg.norm: improper number of dimensions to norm")
