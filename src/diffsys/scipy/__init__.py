"""``diffsys.scipy``: the parts of SciPy that models use, differentiable.

Submodules: :mod:`~diffsys.scipy.special`, :mod:`~diffsys.scipy.stats`,
:mod:`~diffsys.scipy.signal`, :mod:`~diffsys.scipy.integrate` (imported on first use).
"""

from __future__ import annotations

import importlib

_SUBMODULES = ("special", "stats", "signal", "integrate", "linalg")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
