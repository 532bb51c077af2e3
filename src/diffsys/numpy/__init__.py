"""``diffsys.numpy``: the NumPy API as differentiable primitives.

Port NumPy code by changing one import::

    import diffsys as ds
    import diffsys.numpy as dnp

    def loss(w):
        return dnp.sum(dnp.tanh(w) ** 2)

    ds.grad(loss)(dnp.ones(3))

Outside any transform these functions take and return plain ``numpy.ndarray``s and scalars;
inside a transform they accept tracers, which support operators, indexing and the common
array methods. Wherever NumPy takes ``array_like``, a list or tuple may mix tracers and
numbers (``dnp.dot([x, 1.0], y)``, ``x * [y, 2.0]``, ``x[(i, 0), (1, j)]``): it is read as
one traced array, as ``dnp.asarray`` builds it.
"""

from __future__ import annotations

import numpy as _np

from ..core.ad_util import real_part as real
from ..core.tracer import Tracer as _Tracer
from . import _fallback  # noqa: F401 - installs the batching fallback rule
from ._creation import (
    arange,
    array,
    asarray,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    identity,
    linspace,
    ones,
    ones_like,
    zeros,
    zeros_like,
)
from ._elementwise import (
    abs,
    absolute,
    add,
    angle,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    around,
    bitwise_and,
    bitwise_or,
    bitwise_xor,
    cbrt,
    ceil,
    clip,
    conj,
    conjugate,
    cos,
    cosh,
    divide,
    equal,
    exp,
    exp2,
    expm1,
    fabs,
    floor,
    floor_divide,
    fmax,
    fmin,
    greater,
    greater_equal,
    hypot,
    imag,
    invert,
    iscomplex,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    positive,
    power,
    real_if_close,
    reciprocal,
    remainder,
    rint,
    round,
    sign,
    signbit,
    sin,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    true_divide,
    trunc,
    where,
)
from ._indexing import argmax, argmin, argwhere, at, getitem, nonzero
from ._numerics import (
    convolve,
    copysign,
    correlate,
    deg2rad,
    degrees,
    fix,
    float_power,
    fmod,
    gradient,
    heaviside,
    interp,
    logaddexp2,
    nan_to_num,
    polyval,
    rad2deg,
    radians,
    sinc,
)
from ._ordering import (
    argpartition,
    argsort,
    c_,
    choose,
    compress,
    cross,
    diag,
    diagflat,
    diagonal,
    diff,
    flip,
    fliplr,
    flipud,
    kron,
    meshgrid,
    pad,
    partition,
    put_along_axis,
    r_,
    repeat,
    roll,
    rot90,
    searchsorted,
    select,
    sort,
    take,
    take_along_axis,
    tile,
    trace,
    tril,
    triu,
    unique,
)
from ._products import dot, einsum, inner, matmul, outer, tensordot, vdot
from ._reductions import (
    all,
    amax,
    amin,
    any,
    cumprod,
    cumsum,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from ._shape import (
    append,
    array_split,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    broadcast_arrays,
    broadcast_to,
    column_stack,
    concatenate,
    dsplit,
    dstack,
    expand_dims,
    hsplit,
    hstack,
    moveaxis,
    ravel,
    reshape,
    rollaxis,
    row_stack,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    vsplit,
    vstack,
)
from ._statistics import (
    allclose,
    average,
    count_nonzero,
    isclose,
    median,
    nancumprod,
    nancumsum,
    nanmax,
    nanmean,
    nanmin,
    nanstd,
    nansum,
    nanvar,
    percentile,
    ptp,
    quantile,
)
from ._tracer_methods import astype
from ._tracer_methods import install as _install
from ._util import array_like as _array_like
from ._util import unbroadcast

_install()

from . import fft, linalg, random  # noqa: E402 - after the names they build on

# Names that are plain NumPy (dtypes, constants, introspection).
pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
newaxis = None
euler_gamma = _np.euler_gamma
ndarray = _np.ndarray
dtype = _np.dtype
finfo = _np.finfo
iinfo = _np.iinfo
result_type = _np.result_type
issubdtype = _np.issubdtype
float16, float32, float64 = _np.float16, _np.float32, _np.float64
complex64, complex128 = _np.complex64, _np.complex128
int8, int16, int32, int64 = _np.int8, _np.int16, _np.int32, _np.int64
uint8, uint16, uint32, uint64 = _np.uint8, _np.uint16, _np.uint32, _np.uint64
bool_ = _np.bool_
floating, integer, inexact, complexfloating, number = (
    _np.floating,
    _np.integer,
    _np.inexact,
    _np.complexfloating,
    _np.number,
)


@_array_like("a")
def shape(a) -> tuple[int, ...]:
    """The shape of an array, tracer or scalar."""
    return a.shape if isinstance(a, _Tracer) else _np.shape(a)


@_array_like("a")
def ndim(a) -> int:
    """The number of dimensions of an array, tracer or scalar."""
    return a.ndim if isinstance(a, _Tracer) else _np.ndim(a)


@_array_like("a")
def size(a, axis: int | None = None) -> int:
    """The number of elements of an array, tracer or scalar (along ``axis`` if given)."""
    if not isinstance(a, _Tracer):
        return _np.size(a, axis)
    return a.size if axis is None else a.shape[axis]


def isscalar(a) -> bool:
    return ndim(a) == 0 if isinstance(a, _Tracer) else _np.isscalar(a)


__all__ = [n for n in dir() if not n.startswith("_")]

# NumPy's own functions on tracers run the functions above (np.exp(x) is dnp.exp(x)).
from . import _dispatch  # noqa: E402 - builds its tables from the names above

_dispatch.install()
