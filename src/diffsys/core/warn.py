"""Warnings that point at the user's line, not at diffsys's.

A warning about user code (a traced value turned into a Python number, a graph specialised
on a value, a scan that could not replay) is reported at the first frame outside the
diffsys package, whichever path inside diffsys led to it. With a message that depends only
on that line, Python's warning registry then shows it once per call site (under the default
filter), however often the line runs: in a training loop, once.
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # .../diffsys/


class DroppedDerivativeWarning(UserWarning):
    """A value being differentiated was turned into a Python number (``float()``,
    ``int()``, ``complex()``, an index): its derivative is lost there.

    >>> import warnings, diffsys as ds
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     g = ds.grad(lambda w: float(w) * w)(2.0)
    >>> caught[0].category.__name__, float(g)  # 2.0: d/dw of 2.0 * w, not of w * w
    ('DroppedDerivativeWarning', 2.0)
    """


def user_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn`, called from the caller of this
    function, that names the first frame outside the diffsys package."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def warn_user(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` reported at the user's line (see the module)."""
    warnings.warn(message, category, stacklevel=user_stacklevel())
