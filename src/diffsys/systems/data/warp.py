"""Bilinear resampling: ``resize``, ``affine_grid`` + ``grid_sample`` (spatial transformer
networks), and the ``Resize`` and ``AffineWarp`` stages.

Coordinates follow PyTorch's ``F.affine_grid`` / ``F.grid_sample`` / ``F.interpolate``: a
grid holds ``(x, y)`` in ``[-1, 1]`` (-1 the left/top edge, +1 the right/bottom), with
``align_corners`` choosing whether +-1 are the centres of the corner pixels (True) or
their outer edges (False). Gradients flow to the image and to the sampling locations (so
to the warp's parameters); the bilinear weights are piecewise linear in the locations.
"""

from __future__ import annotations

import functools

import numpy as np

from ... import numpy as dnp
from ...nn.module import Module
from ._common import as_float_array, cast_like, check_images

__all__ = [
    "AffineWarp",
    "Resize",
    "affine_grid",
    "grid_sample",
    "resize",
]

_SAMPLE_MODES = ("bilinear", "nearest")
_PAD_MODES = ("zeros", "border", "reflection")


def _size2(who: str, size) -> tuple[int, int]:
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: size must be an int or a pair (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{who}: size must be positive, got {(h, w)}")
    return h, w


# --- resize: separable interpolation matrices ------------------------------------------------


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_out: int, n_in: int, align_corners: bool, mode: str) -> np.ndarray:
    """``R`` (n_out, n_in) with ``out = R @ in`` along one axis (PyTorch's ``interpolate``)."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        src = (dst + 0.5) * (n_in / n_out) - 0.5
    r = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if mode == "nearest":
        # PyTorch's "nearest": floor(dst * in / out), i.e. the legacy rule
        idx = np.minimum(np.floor(dst * (n_in / n_out)).astype(int), n_in - 1)
        r[rows, idx] = 1.0
    else:
        src = np.clip(src, 0.0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        frac = src - i0
        np.add.at(r, (rows, i0), 1.0 - frac)
        np.add.at(r, (rows, i1), frac)
    r.setflags(write=False)
    return r


def resize(x, size, *, align_corners: bool = False, mode: str = "bilinear"):
    """Resize images ``(B, C, H, W)`` to ``size = (h, w)`` by separable bilinear (or nearest)
    interpolation, as PyTorch's ``F.interpolate`` (no antialiasing). Two matmuls with fixed
    interpolation matrices: differentiable in ``x`` to any order.

    >>> import numpy as np
    >>> from diffsys.systems.data import resize
    >>> resize(np.arange(4.0).reshape(1, 1, 2, 2), (3, 3), align_corners=True)[0, 0]
    array([[0. , 0.5, 1. ],
           [1. , 1.5, 2. ],
           [2. , 2.5, 3. ]])
    """
    who = "resize"
    if mode not in _SAMPLE_MODES:
        raise ValueError(f"{who}: mode must be one of {_SAMPLE_MODES}, got {mode!r}")
    x = check_images(who, x)
    h, w = _size2(who, size)
    H, W = x.shape[2], x.shape[3]
    rh = _interp_matrix(h, H, bool(align_corners), mode).astype(x.dtype)
    rw = _interp_matrix(w, W, bool(align_corners), mode).astype(x.dtype)
    if (h, w) == (H, W) and mode == "bilinear":
        return x
    return dnp.matmul(dnp.matmul(rh, x), rw.T)


class Resize(Module):
    """Resize to a fixed ``size`` (no parameters; see :func:`resize`)."""

    size: tuple
    align_corners: bool
    mode: str

    def __init__(self, size, *, align_corners: bool = False, mode: str = "bilinear") -> None:
        if mode not in _SAMPLE_MODES:
            raise ValueError(f"Resize: mode must be one of {_SAMPLE_MODES}, got {mode!r}")
        self.size = _size2("Resize", size)
        self.align_corners = bool(align_corners)
        self.mode = mode

    def _describe(self) -> str:
        return f"Resize(size={self.size})"

    def __call__(self, x, *, key=None):
        x = check_images(self._describe(), x)
        return resize(x, self.size, align_corners=self.align_corners, mode=self.mode)


# --- affine grids and grid sampling ---------------------------------------------------------


def _base_coords(n: int, align_corners: bool) -> np.ndarray:
    if align_corners:
        return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return (2.0 * np.arange(n) + 1.0) / n - 1.0


def affine_grid(theta, size, *, align_corners: bool = False):
    """The sampling grid ``(B, H, W, 2)`` of the affine maps ``theta`` ``(B, 2, 3)`` (or one
    ``(2, 3)`` for the whole batch) for an output of ``size`` ``(B, C, H, W)`` or ``(H, W)``:
    ``grid[b, i, j] = theta[b] @ (x_j, y_i, 1)`` in normalized coordinates. Differentiable in
    ``theta``.

    >>> import numpy as np
    >>> from diffsys.systems.data import affine_grid
    >>> affine_grid(np.eye(2, 3), (2, 2), align_corners=True)[0, :, :, 0]
    array([[-1.,  1.],
           [-1.,  1.]])
    """
    who = "affine_grid"
    theta = as_float_array(who, theta)
    tshape = tuple(theta.shape)
    if tshape == (2, 3):
        theta = theta[None]
    elif len(tshape) != 3 or tshape[1:] != (2, 3):
        raise ValueError(f"{who}: theta must have shape (B, 2, 3) or (2, 3), got {tshape}")
    size = tuple(int(s) for s in size)
    if len(size) == 4:
        if tshape != (2, 3) and size[0] != tshape[0]:
            raise ValueError(
                f"{who}: theta holds {tshape[0]} transform(s) but size asks for batch {size[0]}"
            )
        size = size[2:]
    h, w = _size2(who, size)
    xs = _base_coords(w, align_corners)
    ys = _base_coords(h, align_corners)
    base = np.stack(
        [
            np.broadcast_to(xs[None, :], (h, w)),
            np.broadcast_to(ys[:, None], (h, w)),
            np.ones((h, w)),
        ],
        axis=-1,
    ).astype(theta.dtype)  # (H, W, 3)
    return dnp.einsum("hwk,bjk->bhwj", base, theta)


def _unnormalize(coord, n: int, align_corners: bool):
    if align_corners:
        return (coord + 1.0) * (0.5 * (n - 1))
    return ((coord + 1.0) * n - 1.0) * 0.5


def _reflect(coord, twice_low: float, twice_high: float):
    """Reflect coordinates into ``[twice_low / 2, twice_high / 2]`` (PyTorch's rule)."""
    if twice_low == twice_high:
        return coord * 0.0
    low = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    c = dnp.abs(coord - low)
    extra = dnp.fmod(c, span)
    flips = dnp.floor(c / span)
    even = dnp.equal(dnp.fmod(flips, 2.0), 0.0)
    return dnp.where(even, extra + low, span - extra + low)


def _pad_coords(coord, n: int, padding_mode: str, align_corners: bool):
    if padding_mode == "border":
        return dnp.clip(coord, 0.0, n - 1.0)
    if padding_mode == "reflection":
        if align_corners:
            coord = _reflect(coord, 0.0, 2.0 * (n - 1))
        else:
            coord = _reflect(coord, -1.0, 2.0 * n - 1.0)
        return dnp.clip(coord, 0.0, n - 1.0)
    return coord


def _gather(xf, yi, xi, H: int, W: int, check_bounds: bool):
    """``x[b, :, yi, xi]`` for integer-valued arrays ``yi, xi`` (B, P) from ``xf`` (B, C, H W);
    zero where out of range (``check_bounds``)."""
    yi_c = dnp.clip(yi, 0, H - 1)
    xi_c = dnp.clip(xi, 0, W - 1)
    idx = dnp.astype(yi_c * W + xi_c, np.int64)
    vals = dnp.take_along_axis(xf, dnp.expand_dims(idx, 1), axis=2)  # (B, C, P)
    if check_bounds:
        inside = (
            dnp.greater_equal(yi, 0)
            & dnp.less_equal(yi, H - 1)
            & dnp.greater_equal(xi, 0)
            & dnp.less_equal(xi, W - 1)
        )
        vals = vals * dnp.expand_dims(dnp.astype(inside, xf.dtype), 1)
    return vals


def grid_sample(
    x,
    grid,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
):
    """Sample images ``x`` ``(B, C, H, W)`` at the locations ``grid`` ``(B, h, w, 2)``
    (normalized ``(x, y)``), giving ``(B, C, h, w)``; PyTorch's ``F.grid_sample`` for 4-d
    input. ``mode``: ``"bilinear"`` or ``"nearest"`` (no gradient to the grid);
    ``padding_mode``: ``"zeros"``, ``"border"`` or ``"reflection"``. Differentiable in ``x``
    and (bilinear) in ``grid``, to any order.
    """
    who = "grid_sample"
    if mode not in _SAMPLE_MODES:
        raise ValueError(f"{who}: mode must be one of {_SAMPLE_MODES}, got {mode!r}")
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"{who}: padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}")
    x = check_images(who, x)
    grid = as_float_array(who, grid)
    B, C, H, W = (int(s) for s in x.shape)
    gshape = tuple(grid.shape)
    if len(gshape) != 4 or gshape[3] != 2 or gshape[0] != B:
        raise ValueError(
            f"{who}: grid must have shape (B, h, w, 2) with B = {B} (the images' batch), got "
            f"{gshape}"
        )
    h, w = gshape[1], gshape[2]
    grid = cast_like(grid, x)
    gx = dnp.reshape(grid[..., 0], (B, h * w))
    gy = dnp.reshape(grid[..., 1], (B, h * w))
    ix = _pad_coords(_unnormalize(gx, W, align_corners), W, padding_mode, align_corners)
    iy = _pad_coords(_unnormalize(gy, H, align_corners), H, padding_mode, align_corners)
    xf = dnp.reshape(x, (B, C, H * W))
    zeros = padding_mode == "zeros"
    if mode == "nearest":
        out = _gather(xf, dnp.rint(iy), dnp.rint(ix), H, W, zeros)
        return dnp.reshape(out, (B, C, h, w))
    x0 = dnp.floor(ix)
    y0 = dnp.floor(iy)
    wx1 = ix - x0
    wy1 = iy - y0
    wx0 = 1.0 - wx1
    wy0 = 1.0 - wy1
    e = lambda a: dnp.expand_dims(a, 1)  # noqa: E731 - weights broadcast over channels
    out = (
        _gather(xf, y0, x0, H, W, zeros) * e(wy0 * wx0)
        + _gather(xf, y0, x0 + 1.0, H, W, zeros) * e(wy0 * wx1)
        + _gather(xf, y0 + 1.0, x0, H, W, zeros) * e(wy1 * wx0)
        + _gather(xf, y0 + 1.0, x0 + 1.0, H, W, zeros) * e(wy1 * wx1)
    )
    return dnp.reshape(out, (B, C, h, w))


class AffineWarp(Module):
    """A learnable affine warp, a spatial transformer with a global transform: the images are
    resampled at ``affine_grid(theta)`` by bilinear :func:`grid_sample`.

    ``theta`` ``(2, 3)`` starts at ``init`` (the identity by default) and receives gradients
    through the sampling locations. :meth:`warp` applies per-sample transforms ``(B, 2, 3)``
    given by another model (a localisation network). ``size``: the output ``(h, w)`` (the
    input's size by default).

    >>> import numpy as np
    >>> from diffsys.systems.data import AffineWarp
    >>> x = np.random.default_rng(0).random((2, 1, 5, 5))
    >>> bool(np.allclose(AffineWarp()(x), x))          # the identity warp
    True
    """

    theta: np.ndarray
    size: tuple | None
    padding_mode: str
    align_corners: bool

    def __init__(
        self,
        init=None,
        *,
        size=None,
        padding_mode: str = "zeros",
        align_corners: bool = False,
        dtype=np.float64,
    ) -> None:
        who = "AffineWarp"
        theta = np.eye(2, 3) if init is None else np.asarray(init, dtype=np.float64)
        if theta.shape != (2, 3) or not np.all(np.isfinite(theta)):
            raise ValueError(f"{who}: init must be a finite (2, 3) matrix, got shape {theta.shape}")
        if padding_mode not in _PAD_MODES:
            raise ValueError(
                f"{who}: padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}"
            )
        self.theta = theta.astype(dtype)
        self.size = None if size is None else _size2(who, size)
        self.padding_mode = padding_mode
        self.align_corners = bool(align_corners)

    def _describe(self) -> str:
        return f"AffineWarp(size={self.size}, padding_mode={self.padding_mode!r})"

    def warp(self, x, theta):
        """Warp ``x`` by per-sample (``(B, 2, 3)``) or shared (``(2, 3)``) transforms."""
        x = check_images(self._describe(), x)
        B = int(x.shape[0])
        size = self.size or (int(x.shape[2]), int(x.shape[3]))
        theta = cast_like(as_float_array(self._describe(), theta), x)
        if tuple(theta.shape) == (2, 3):
            theta = dnp.broadcast_to(theta, (B, 2, 3))
        grid = affine_grid(
            theta, (B, int(x.shape[1])) + tuple(size), align_corners=self.align_corners
        )
        return grid_sample(
            x, grid, padding_mode=self.padding_mode, align_corners=self.align_corners
        )

    def __call__(self, x, *, key=None):
        return self.warp(x, self.theta)
