"""``diffsys.scan``: a differentiable loop over a carried state, with checkpointing policies
(store all, every k-th carry, sqrt, binomial/Revolve) and graph replay of the step.

``diffsys.scan`` is this package and is callable: ``ds.scan(step, init, xs)`` calls
:func:`diffsys.scan.scan`, so ``import diffsys.scan.revolve`` keeps working too.

>>> import numpy as np, diffsys as ds
>>> carry, ys = ds.scan(lambda c, x: (c + x, 2 * c), 0.0, np.arange(4.0))
>>> float(carry), ys.tolist()
(6.0, [0.0, 0.0, 2.0, 6.0])

See docs/scan.md.
"""

import inspect as _inspect
import sys as _sys
import types as _types

from . import policies, revolve
from . import policies as scan_policies
from ._replay import ReplayFallbackWarning
from ._scan import scan


class _CallableModule(_types.ModuleType):
    """The package, callable as :func:`scan`."""

    def __call__(self, *args, **kwargs):
        return scan(*args, **kwargs)


__signature__ = _inspect.signature(scan)
_sys.modules[__name__].__class__ = _CallableModule

__all__ = ["ReplayFallbackWarning", "policies", "revolve", "scan", "scan_policies"]
