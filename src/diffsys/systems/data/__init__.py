"""``diffsys.systems.data``: differentiable data-pipeline stages.

Each stage is an :class:`diffsys.nn.Module` (a pytree that owns its parameters) that takes
images ``(B, C, H, W)`` in float32 or float64 and keeps the dtype:

- :class:`LearnableBlur`: separable Gaussian blur, learnable ``sigma`` (as ``log_sigma``).
- :class:`Binarize`: ``x > t`` with learnable threshold and sharpness; ``relaxed``
  (``relax.soft_step``) / ``hard`` (step) / ``straight_through``. (Formerly
  ``SoftThreshold``: that name still works, with a DeprecationWarning.)
- :class:`Normalize`: per-channel standardization (fixed or per-image statistics) and a
  learnable scale and shift.
- :class:`Resize`, :class:`AffineWarp`, and the functions :func:`resize`,
  :func:`affine_grid`, :func:`grid_sample`: bilinear resampling, differentiable in the image
  and in the warp's parameters (spatial transformer networks).
- :class:`ColorJitter`: brightness/contrast/saturation with learnable ranges and an
  explicit RNG key; ``relaxed`` (random, smooth clip) / ``hard`` (inference: none).

Stages with a relaxed/hard pair follow :mod:`diffsys.pipeline`'s protocol: methods
``relaxed(x)`` and ``hard(x)``, and ``__call__`` is the relaxed one. Bad shapes and dtypes
raise errors that name the stage. See docs/systems-data.md.
"""

from .blur import PADDING_MODES, LearnableBlur, gaussian_blur, gaussian_kernel
from .jitter import ColorJitter, jitter_factors
from .metrics import psnr
from .normalize import Normalize
from .threshold import Binarize, binarization_penalty
from .warp import AffineWarp, Resize, affine_grid, grid_sample, resize

__all__ = [
    "PADDING_MODES",
    "AffineWarp",
    "Binarize",
    "ColorJitter",
    "LearnableBlur",
    "Normalize",
    "Resize",
    "affine_grid",
    "binarization_penalty",
    "gaussian_blur",
    "gaussian_kernel",
    "grid_sample",
    "jitter_factors",
    "psnr",
    "resize",
]


#: Old names, kept working with a DeprecationWarning.
_DEPRECATED = {"SoftThreshold": Binarize}


def _register_stage_types() -> None:
    """Register the stage types with diffsys.pipeline's serialization registry, under stable
    names (``systems.data.LearnableBlur``, ...), so saved pipelines that use them load."""
    try:
        from ...pipeline import register
    except ImportError:  # pragma: no cover - the pipeline layer is optional here
        return
    for cls in (AffineWarp, Binarize, ColorJitter, LearnableBlur, Normalize, Resize):
        register(cls, name=f"systems.data.{cls.__name__}")
    # old names: pipelines saved with them still load (saving uses the first name above)
    for old, cls in _DEPRECATED.items():
        register(cls, name=f"systems.data.{old}")
    register(binarization_penalty, name="systems.data.binarization_penalty")


def __getattr__(name: str):
    if name in _DEPRECATED:
        import warnings

        new = _DEPRECATED[name].__name__
        warnings.warn(
            f"diffsys.systems.data.{name} is deprecated: use diffsys.systems.data.{new} (the "
            f"same class; {name!r} also named other formulas in diffsys)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _DEPRECATED[name]
    raise AttributeError(f"module 'diffsys.systems.data' has no attribute {name!r}")


_register_stage_types()
