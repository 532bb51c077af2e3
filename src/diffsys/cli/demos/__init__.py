"""The component demos: ``diffsys demo NAME`` (the bare ``diffsys demo`` is cli/demo.py).

Each demo is a module here with ``main(args) -> int``: it reads the shared ``diffsys demo``
options (``--seed``, ``--out``, ``--quick``, ``--no-plots``), prints short named steps,
writes a report folder (``summary.json``, PNG plots) and returns the exit code (1 when it
did not learn). A demo is listed in :data:`DEMOS`, so ``diffsys demo --help`` describes it
without importing it.
"""

from __future__ import annotations

import argparse
import importlib

from ._common import one_blas_thread

__all__ = ["DEMOS", "one_blas_thread", "report_folder", "run_named"]

#: ``name: (one-line description, module in this package)``.
DEMOS: dict[str, tuple[str, str]] = {
    "retrieval": (
        "learn product-ranking weights from clicks; the learned query runs in DuckDB",
        "retrieval",
    ),
    "aggregate": (
        "learn a WHERE threshold and value weights so a GROUP BY SUM hits targets",
        "aggregate",
    ),
    "search": ("retrieval + reader trained end to end; index staleness measured", "search"),
    "scheduler": ("dispatch and eviction policies learned through relaxed simulation", "scheduler"),
    "tiling": ("tile shape and matmul schedule chosen through a learned cost model", "tiling"),
    "render": ("fit coloured discs and triangles to an image with the soft rasterizer", "render"),
    "logic": ("learn edge probabilities through a recursive Datalog program; soft-DTW", "logic"),
    "distributed": ("data-parallel training and a sweep on a local Dask cluster", "distributed"),
    "physics": ("billiards shot and system identification through smooth contact", "physics"),
    "compress": ("learned image codec, really range-coded, rate-distortion vs JPEG", "compress"),
    "augment": ("augmentation policy learned by gradient on noisy, shifted digits", "augment"),
    "nas": ("DARTS architecture search on digits; found cell vs random cells, same budget", "nas"),
    "vi": ("variational inference: conjugate checks, Bayesian logistic regression, a VAE", "vi"),
}


def report_folder(name: str, args: argparse.Namespace) -> str:
    """The report folder of demo ``name``: ``--out`` when given, else ``diffsys-demo-NAME``."""
    return args.out if args.out != "diffsys-demo-report" else f"diffsys-demo-{name}"


def run_named(name: str, args: argparse.Namespace) -> int:
    """Run demo ``name`` with the parsed ``diffsys demo`` options; its exit code."""
    if name not in DEMOS:
        raise ValueError(f"diffsys demo: unknown demo {name!r}; known: {sorted(DEMOS)}")
    module = importlib.import_module(f".{DEMOS[name][1]}", __name__)
    return module.main(args)
