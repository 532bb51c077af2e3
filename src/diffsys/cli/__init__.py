"""The ``diffsys`` command (also ``python -m diffsys``).

    diffsys demo [--seed N] [--epochs N] [--noise STD] [--out DIR] [--quick]

``diffsys demo`` trains noisy digits -> LearnableBlur -> SoftThreshold -> CNN -> classifier
end to end with :mod:`diffsys.pipeline` and writes a report folder; see docs/demo.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__

__all__ = ["build_parser", "main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _noise(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffsys",
        description="diffsys: end-to-end differentiable systems over NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"diffsys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train a learnable preprocessing pipeline end to end on noisy digits",
        description=(
            "Train noisy digit -> LearnableBlur -> SoftThreshold -> CNN encoder -> classifier "
            "end to end (scikit-learn's digits, or synthetic digits without scikit-learn), "
            "compare with the same pipeline whose blur and threshold are frozen, print a "
            "per-stage gradient-norm table and the relaxation mismatch, and write a report "
            "folder (summary.json, telemetry, PNG plots, the trained pipeline)."
        ),
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--epochs", type=_positive_int, default=None, help="epochs per run (default 15; 4 quick)"
    )
    demo.add_argument(
        "--noise", type=_noise, default=0.5, help="std of the pixel noise (default 0.5)"
    )
    demo.add_argument(
        "--out",
        default="diffsys-demo-report",
        help="report folder (default ./diffsys-demo-report)",
    )
    demo.add_argument("--quick", action="store_true", help="a short run (4 epochs) for smoke tests")
    demo.add_argument(
        "--synthetic",
        action="store_true",
        help="use synthetic digits even when scikit-learn is installed",
    )
    demo.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "none"),
        default="auto",
        help="progress display (default auto: rich on a terminal, plain lines otherwise)",
    )
    demo.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    from .demos import DEMOS

    demo.add_argument(
        "name",
        nargs="?",
        choices=sorted(DEMOS),
        help="a component demo instead: "
        + "; ".join(f"{k}: {v}" for k, v in sorted(DEMOS.items())),
    )
    demo.set_defaults(func=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.name is not None:
        from .demos import run_named

        return run_named(args.name, args)
    from .demo import DemoConfig, run_demo

    config = DemoConfig(
        seed=args.seed,
        epochs=args.epochs,
        noise=args.noise,
        out=args.out,
        quick=args.quick,
        synthetic=args.synthetic,
        progress=args.progress,
        plots=not args.no_plots,
    )
    result = run_demo(config, argv=list(argv))
    if not result.ok:
        print("diffsys demo: the training loss did not fall", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``diffsys`` command with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args, argv)
