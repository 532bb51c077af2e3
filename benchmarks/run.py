"""Time diffsys against HIPS autograd, PyTorch and JAX, and write docs/benchmarks.md.

    python benchmarks/run.py [--quick] [--workload NAME ...] [--framework NAME ...]
                             [--output docs/benchmarks.md]

Each (workload, framework) pair runs in its own fresh process (``benchmarks/_child.py``),
pinned to one thread. Frameworks that are not installed are reported as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _child import FULL, QUICK, RESULT_PREFIX
from _env import child_env
from _machine import LOAD_KEY, load_average, machine_info
from _report import Result, fmt, render
from workloads import FRAMEWORKS, WORKLOADS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD_TIMEOUT_S = 300
# The quality of decisions (issue 21: learned policies and schedules against baselines and
# search) is not a timing: benchmarks/decisions.py measures it in its own run and writes this
# file, which the report includes as its last section.
DECISIONS = REPO / "docs" / "benchmarks-decisions.md"


def installed(framework: str) -> bool:
    return all(
        importlib.util.find_spec(name) is not None for name in FRAMEWORKS[framework].requires
    )


def run_child(workload: str, framework: str, quick: bool) -> Result:
    """Run one measurement in a fresh interpreter and parse its result line."""
    base: Result = {"workload": workload, "framework": framework}
    if not installed(framework):
        return base | {"status": "not installed"}
    cmd = [sys.executable, str(HERE / "_child.py"), workload, framework]
    if quick:
        cmd.append("--quick")
    try:
        proc = subprocess.run(
            cmd,
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return base | {"status": "error", "message": f"timed out after {CHILD_TIMEOUT_S} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: Result = json.loads(line[len(RESULT_PREFIX) :])
            if result["status"] == "error":
                print(proc.stderr, file=sys.stderr)
            return result
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return base | {"status": "error", "message": f"exit code {proc.returncode}: {tail}"}


def decisions_section(text: str) -> str:
    """benchmarks/decisions.py's tables as the report's last section (headings one level
    down, and where they come from)."""
    lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
    note = (
        f"(Included from `{DECISIONS.relative_to(REPO)}`, written by its own run of "
        "`benchmarks/decisions.py`; the command, date and load are its first line.)"
    )
    return "\n".join([lines[0], "", note, *lines[1:]]) + "\n"


def describe(result: Result) -> str:
    workload = WORKLOADS[result["workload"]]
    if "median" in result:
        return f"{fmt(result['median'] * workload.scale)} {workload.unit} ({result['status']})"
    return f"{result['status']} {result.get('message', '')}".strip()


def describe_settings(settings: dict[str, float], quick: bool) -> str:
    repeats, seconds, budget = (
        settings[k] for k in ("repeats", "repeat_seconds", "budget_seconds")
    )
    text = (
        f"Median of {repeats} runs of about {seconds} s each, after warm-up (fewer runs, at "
        f"least 3, only when one call takes over {budget / repeats:.1f} s)."
    )
    return ("Quick mode (`--quick`), for a rough look only. " if quick else "") + text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs per measurement")
    parser.add_argument(
        "--workload",
        nargs="+",
        choices=list(WORKLOADS),
        default=list(WORKLOADS),
        metavar="NAME",
        help=f"workloads to run (default: all of {', '.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--framework",
        nargs="+",
        choices=list(FRAMEWORKS),
        default=list(FRAMEWORKS),
        metavar="NAME",
        help=f"frameworks to run (default: all of {', '.join(FRAMEWORKS)})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "docs" / "benchmarks.md",
        help="markdown file to write (default: docs/benchmarks.md)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = shlex.join(["python", *(sys.argv if argv is None else ["benchmarks/run.py", *argv])])
    machine = machine_info(REPO)
    start = time.perf_counter()
    sections = []
    for name in args.workload:
        workload = WORKLOADS[name]
        results = []
        for framework in FRAMEWORKS:
            if framework in workload.impls and framework in args.framework:
                result = run_child(name, framework, args.quick)
                print(f"[{name}] {framework}: {describe(result)}", file=sys.stderr, flush=True)
                results.append(result)
        sections.append((workload, results))
    elapsed = time.perf_counter() - start
    machine[LOAD_KEY] += f"; {load_average()} at end"
    settings = describe_settings(QUICK if args.quick else FULL, args.quick)
    markdown = render(
        command=command, machine=machine, settings=settings, elapsed=elapsed, sections=sections
    )
    if DECISIONS.exists():
        markdown = markdown.rstrip("\n") + "\n\n" + decisions_section(DECISIONS.read_text())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(markdown)
    print(markdown)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
