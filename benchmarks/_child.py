"""Time one workload for one framework in this (fresh) process; print one JSON result line.

Usage: ``python benchmarks/_child.py WORKLOAD FRAMEWORK [--quick]``. The last line of
stdout is ``RESULT_PREFIX`` followed by a JSON object; the runner reads nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

from _env import apply_thread_env

RESULT_PREFIX = "BENCH-RESULT "

FULL = {"repeats": 7, "repeat_seconds": 0.2, "budget_seconds": 20.0}
QUICK = {"repeats": 3, "repeat_seconds": 0.05, "budget_seconds": 5.0}


def run(workload_name: str, framework: str, quick: bool) -> dict[str, Any]:
    """Build, check against the reference, then time; never raises."""
    result: dict[str, Any] = {"workload": workload_name, "framework": framework}
    try:
        from _timing import first_call, measure
        from workloads import WORKLOADS
        from workloads._common import relative_error, to_numpy

        workload = WORKLOADS[workload_name]
        try:
            thunk = workload.impls[framework].build()
        except ImportError as exc:
            return result | {"status": "not installed", "message": str(exc)}
        first_seconds, output = first_call(thunk)
        err = relative_error(to_numpy(output), workload.reference())
        timing = measure(thunk, **(QUICK if quick else FULL))
    except Exception as exc:  # reported as a row of the table, not a crash of the run
        traceback.print_exc()
        return result | {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    status = "ok" if err <= workload.tolerance else "mismatch"
    timing_dict = timing.as_dict() | {"first_call": first_seconds}
    if workload.memory:
        try:
            timing_dict["peak_bytes"] = peak_memory(thunk)
        except Exception as exc:  # the time still counts; say why memory is missing
            traceback.print_exc()
            timing_dict["memory_error"] = f"{type(exc).__name__}: {exc}"
    return result | {"status": status, "rel_error": err, **timing_dict}


def peak_memory(thunk) -> int:
    """Bytes: the thunk's own measurement (its ``memory`` attribute) or tracemalloc's peak
    during one call, above what was allocated when the call started."""
    custom = getattr(thunk, "memory", None)
    if custom is not None:
        return int(custom())
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        thunk()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload")
    parser.add_argument("framework")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    apply_thread_env()  # before the first NumPy / PyTorch / JAX import, which happen in run()
    result = run(args.workload, args.framework, args.quick)
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
