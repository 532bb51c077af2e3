"""The component demos: ``diffsys demo NAME`` (the bare ``diffsys demo`` is cli/demo.py).

Each demo is a module here with a ``Config`` dataclass and ``run(config) -> summary``; it
prints short named steps and writes a report folder (``summary.json``, PNG plots).
"""

from __future__ import annotations

import argparse

__all__ = ["DEMOS", "run_named"]

#: ``name: (one-line description, module)``.
DEMOS = {
    "retrieval": "learn product-ranking weights from clicks; the learned query runs in DuckDB",
    "aggregate": "learn a WHERE threshold and value weights so a GROUP BY SUM hits targets",
    "search": "retrieval + reader trained end to end; index staleness measured",
}


def run_named(name: str, args: argparse.Namespace) -> int:
    """Run demo ``name`` with the shared ``diffsys demo`` options (``--seed``, ``--out``,
    ``--quick``, ``--no-plots``); the exit code (1 when it did not learn)."""
    out = args.out if args.out != "diffsys-demo-report" else f"diffsys-demo-{name}"
    plots = not args.no_plots
    if name == "retrieval":
        from .retrieval import RetrievalConfig, run

        cfg = RetrievalConfig(seed=args.seed, out=out, plots=plots)
        if args.quick:
            cfg = RetrievalConfig(
                seed=args.seed, out=out, plots=plots, rows=20_000, categories=12,
                train_queries=8, steps=15,
            )  # fmt: skip
        summary = run(cfg)
        ok = summary["ndcg_at_10"]["learned"] > summary["ndcg_at_10"]["before training"]
    elif name == "aggregate":
        from .aggregate import AggregateConfig, run

        cfg = AggregateConfig(seed=args.seed, out=out, plots=plots)
        if args.quick:
            cfg = AggregateConfig(seed=args.seed, out=out, plots=plots, rows=20_000, steps=60)
        summary = run(cfg)
        err = summary["max_relative_error"]
        ok = err["learned"] < err["start"]
    elif name == "search":
        from .search import SearchConfig, run

        cfg = SearchConfig(seed=args.seed, out=out, plots=plots)
        if args.quick:
            cfg = SearchConfig(
                seed=args.seed, out=out, plots=plots, questions=1200, held_out=200, steps=120,
                refresh_every=10, staleness_sweep=(1, 10, 40),
            )  # fmt: skip
        summary = run(cfg)
        acc = summary["accuracy"]
        ok = acc["end to end"] > acc["untrained encoders"]
    else:  # argparse's choices keep other names out
        raise ValueError(f"diffsys demo: unknown demo {name!r}; known: {sorted(DEMOS)}")
    return 0 if ok else 1
