"""Values that outlive a call own their arrays.

A ``vjp`` function, a traced graph's constants and example values are read again after
the call that made them returned. NumPy arrays are mutable, so whatever such an object
keeps from its caller (inputs, closure constants, index arrays) is copied once when the
caller could still change it, and whatever it hands back that it also keeps is read-only
(``y -= 1`` raises instead of silently changing a later backward pass). JAX arrays are
immutable, so JAX needs none of this; PyTorch detects it with version counters.
"""

from __future__ import annotations

import numpy as np


def mutable(x) -> bool:
    """Whether code holding ``x`` (or the array it is a view of) can still change its
    values: a writeable ndarray, or a view of one. Tracers, scalars and read-only arrays
    that own their memory cannot be changed."""
    while isinstance(x, np.ndarray):
        if x.flags.writeable:
            return True
        x = x.base
    return False


def frozen(x):
    """``x`` itself when nobody can change it, else a read-only private copy."""
    if not mutable(x):
        return x
    x = x.copy()
    x.flags.writeable = False
    return x


def read_only(x):
    """``x``, or a read-only view of it when it is a mutable array: for handing out an
    array that is also kept (no copy)."""
    if mutable(x):
        x = x.view()
        x.flags.writeable = False
    return x
