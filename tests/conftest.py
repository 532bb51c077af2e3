"""Shared by every test folder: this folder is on ``sys.path`` (the test folders are not
packages), so test modules import the shared helpers here, e.g. ``from doc_samples import
Guide``."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
