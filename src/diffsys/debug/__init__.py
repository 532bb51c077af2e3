"""``diffsys.debug``: anomaly mode, taps and gradient reports.

- ``with ds.debug.anomalies():`` names the first operation that produces NaN or Inf, in the
  forward or the backward pass, with shapes, dtypes and the user's source line.
- ``ds.debug.tap(x, name)`` records a value and the cotangent (or tangent) that flows
  through it, into a :class:`Recorder` or a callback, without changing any result.
- ``ds.debug.grad_report(fun, *args)`` summarizes a gradient per named leaf: norm, max abs,
  NaN/Inf, and leaves whose gradient is exactly zero.
"""

from ._anomalies import AnomalyError, AnomalyWarning, anomalies
from ._report import GradReport, LeafGrad, grad_report
from ._taps import Recorder, TapEvent, tap

__all__ = [
    "AnomalyError",
    "AnomalyWarning",
    "GradReport",
    "LeafGrad",
    "Recorder",
    "TapEvent",
    "anomalies",
    "grad_report",
    "tap",
]
