"""Render the results of one run as docs/benchmarks.md."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from _env import THREAD_ENV
from workloads import FRAMEWORKS, WORKLOADS, Workload

Result = dict[str, Any]


def fmt(value: float) -> str:
    """Three significant figures, without switching to exponent notation."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:#.3g}"


def _check(result: Result) -> str:
    status = result["status"]
    if status == "ok":
        err = result["rel_error"]
        return f"ok ({err:.0e})" if err else "ok (exact)"
    if status == "mismatch":
        return f"**WARNING: mismatch**, relative error {result['rel_error']:.1e}"
    if status == "error":
        message = result.get("message", "").replace("|", "\\|").replace("\n", " ")
        return f"**error**: {message[:160]}"
    return status


def _row(
    workload: Workload, result: Result, baseline: float | None, target: float | None = None
) -> list[str]:
    key = result["framework"]
    impl = workload.impls[key]
    if key == "diffsys":
        value = workload.target if target is None else target
        reference = f"target ≤ {fmt(value)}" if np.isfinite(value) else ""
    else:
        ref = workload.issue_refs.get(key)
        reference = fmt(ref) if ref is not None else ""
    cells = [FRAMEWORKS[key].label, impl.method]
    if "median" not in result:
        return [*cells, "—", "—", "—", reference, "—", "—", _check(result)]
    time = result["median"] * workload.scale
    spread = f"{fmt(result['min'] * workload.scale)}–{fmt(result['max'] * workload.scale)}"
    ratio = f"{fmt(time / baseline)}×" if baseline else "—"
    runs = f"{result['repeats']} × {result['number']}"
    first = fmt(result["first_call"] * 1e3)
    if key == "diffsys":
        time_cell = f"**{fmt(time)}**"
    else:
        time_cell = fmt(time)
    return [*cells, time_cell, spread, ratio, reference, first, runs, _check(result)]


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


Lookup = dict[tuple[str, str], Result]


def _target(workload: Workload, lookup: Lookup | None) -> tuple[float | None, str]:
    """The target value (in ``workload.unit``) and how to state it."""
    if workload.relative_target is None:
        return workload.target, f"≤ {fmt(workload.target)} {workload.unit}"
    name, framework, factor = workload.relative_target
    impl = WORKLOADS[name].impls[framework] if name in WORKLOADS else None
    row = f"`{framework}` row of `{name}`" + (f" ({impl.method})" if impl else "")
    what = f"≤ {factor:g} × the time of the {row}"
    ref = (lookup or {}).get((name, framework))
    if ref is None or "median" not in ref:
        return None, what + " (not measured in this run)"
    value = factor * ref["median"] * workload.scale
    return value, what + f" = {fmt(value)} {workload.unit}"


def _target_line(workload: Workload, diffsys: Result | None, lookup: Lookup | None = None) -> str:
    value, stated = _target(workload, lookup)
    source = "the project's own; no issue sets one" if workload.own_target else "from the issue"
    target = f"Target for diffsys ({source}): {stated}."
    if diffsys is None or "median" not in diffsys:
        return target + " diffsys: not measured."
    time = diffsys["median"] * workload.scale
    if value is None:
        return target + f" Measured: **{fmt(time)} {workload.unit}**."
    verdict = "met" if time <= value else "not met"
    return target + f" Measured: **{fmt(time)} {workload.unit}, {verdict}**."


def series_section(title: str, points: list[tuple[Workload, list[Result]]]) -> list[str]:
    """One scaling table: n, diffsys time, time per (rows * n log2 n), growth between rows."""
    header = ["n", "rows", "Median", "ns per row·n·log2 n", "Time ratio to previous n", "Check"]
    rows: list[list[str]] = []
    previous: tuple[float, int] | None = None  # (time, n) of the previous measured row
    for workload, results in sorted(points, key=lambda p: p[0].series[1]):
        _, n, batch = workload.series
        result = next((r for r in results if r["framework"] == "diffsys"), None)
        if result is None or "median" not in result:
            rows.append([f"{n:,}", str(batch), "—", "—", "—", _check(result or {"status": "—"})])
            continue
        t = result["median"]
        per = t / (batch * n * np.log2(n)) * 1e9
        growth = f"{t / previous[0]:.1f}× (n {n / previous[1]:g}×)" if previous else "—"
        rows.append(
            [f"{n:,}", str(batch), f"{fmt(t * 1e3)} ms", f"{per:.2f}", growth, _check(result)]
        )
        previous = (t, n)
    return [f"## Scaling: {title}", "", *_table(header, rows), ""]


MIB = 2.0**20


def _memory_cell(result: Result) -> str:
    if "peak_bytes" in result:
        return fmt(result["peak_bytes"] / MIB)
    if "memory_error" in result:
        return "error"
    return "—"


def _memory_targets(workload: Workload, lookup: Lookup | None) -> list[tuple[float | None, str]]:
    """The memory targets (MiB, or None when not measured) and how to state them."""
    targets = []
    if workload.memory_target is not None:
        targets.append((workload.memory_target, f"≤ {fmt(workload.memory_target)} MiB"))
    if workload.relative_memory_target is not None:
        name, framework, factor = workload.relative_memory_target
        what = f"≤ {factor:g} × the peak of the `{framework}` row of `{name}`"
        ref = (lookup or {}).get((name, framework))
        if ref is None or "peak_bytes" not in ref:
            targets.append((None, what + " (not measured in this run)"))
        else:
            value = factor * ref["peak_bytes"] / MIB
            targets.append((value, what + f" = {fmt(value)} MiB"))
    return targets


def _memory_line(workload: Workload, diffsys: Result | None, lookup: Lookup | None) -> str:
    targets = _memory_targets(workload, lookup)
    measured = None if diffsys is None else diffsys.get("peak_bytes")
    if not targets:
        if measured is None:
            return ""
        return f"Peak memory of diffsys: **{fmt(measured / MIB)} MiB**."
    stated = " and ".join(what for _, what in targets)
    line = f"Memory target for diffsys: {stated}."
    if measured is None:
        return line + " diffsys: not measured."
    mib = measured / MIB
    values = [v for v, _ in targets]
    if any(v is None for v in values):
        return line + f" Measured: **{fmt(mib)} MiB**."
    verdict = "met" if all(mib <= v for v in values) else "not met"
    return line + f" Measured: **{fmt(mib)} MiB, {verdict}**."


def _tol(value: float) -> str:
    """A tolerance as written by hand: ``1e-8``, ``1e-4``, ``5e-6``."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _check_line(workload: Workload) -> str:
    return (
        f"Every framework computes in {workload.dtype}; its result must match the NumPy "
        f"reference to a relative error ≤ {_tol(workload.tolerance)} (norm-wise per output)."
    )


def _method(workloads: list[Workload]) -> str:
    """The method paragraph, stating the dtypes and tolerances of the workloads in this run."""
    default = Workload.__dataclass_fields__["tolerance"].default
    others = [w for w in workloads if w.dtype != "float64" or w.tolerance != default]
    exceptions = ""
    if others:
        names = ", ".join(f"`{w.name}` ({w.dtype}, ≤ {_tol(w.tolerance)})" for w in others)
        exceptions = f"; the exceptions, stated in their sections: {names}"
    env = " ".join(f'{k}="{v}"' if " " in v else f"{k}={v}" for k, v in THREAD_ENV.items())
    return (
        "Method: every (workload, framework) pair runs in a fresh Python process, pinned to one "
        f"thread (`{env}`, plus `torch.set_num_threads(1)` and "
        "`torch.set_num_interop_threads(1)`). The child first checks the framework's result "
        "against a NumPy reference computed in float64 (norm-wise relative error per output: "
        f"≤ {_tol(default)} for the float64 workloads{exceptions}), then times it: one first call "
        "(compilation for `jax.jit`, caches), warm-up calls, then the median over runs of the "
        "time per call (each run repeats the call; see above). JAX results are waited for "
        "with `block_until_ready`. Arithmetic is float64 except in the workloads listed as "
        'float32; the garbage collector stays on. "Ratio to diffsys" is the framework\'s time '
        "divided by diffsys's (below 1: faster than diffsys). \"Issue author's number\" is "
        "what the issue reported for that framework on this machine, for comparison; the "
        "diffsys row shows diffsys's target instead: the issue's, unless the section says the "
        "target is the project's own. Peers that are not installed are listed as such "
        '(`pip install -e ".[bench]"` installs them). Other work on the machine adds noise: '
        "the Range column and the load average show how much."
    )


def workload_section(
    workload: Workload, results: list[Result], lookup: Lookup | None = None
) -> list[str]:
    by_key = {r["framework"]: r for r in results}
    diffsys = by_key.get("diffsys")
    baseline = diffsys["median"] * workload.scale if diffsys and "median" in diffsys else None
    header = [
        "Framework",
        "Method",
        f"Median ({workload.unit})",
        "Range",
        "Ratio to diffsys",
        "Issue author's number",
        "First call (ms)",
        "Runs × calls",
        "Check vs NumPy",
    ]
    target, _ = _target(workload, lookup)
    rows = [_row(workload, by_key[k], baseline, target) for k in FRAMEWORKS if k in by_key]
    memory_line = []
    if workload.memory:
        header.insert(3, "Peak memory (MiB)")
        for row, k in zip(rows, [k for k in FRAMEWORKS if k in by_key], strict=True):
            row.insert(3, _memory_cell(by_key[k]))
        memory_line = [_memory_line(workload, diffsys, lookup), ""]
    return [
        f"## {workload.title} (`{workload.name}`)",
        "",
        workload.description,
        "",
        _check_line(workload),
        "",
        _target_line(workload, diffsys, lookup),
        "",
        *memory_line,
        *_table(header, rows),
        "",
    ]


def render(
    *,
    command: str,
    machine: dict[str, str],
    settings: str,
    elapsed: float,
    sections: list[tuple[Workload, list[Result]]],
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run.py; do not edit by hand. -->",
        "",
        "All numbers below come from one run of",
        "",
        "```sh",
        command,
        "```",
        "",
        f"which took {elapsed:.0f} s. {settings}",
        "",
        _method([w for w, _ in sections]),
        "",
        "## Machine",
        "",
        *_table(["", ""], ([k, v] for k, v in machine.items())),
        "",
    ]
    lookup: Lookup = {(r["workload"], r["framework"]): r for _, rs in sections for r in rs}
    series: dict[str, list[tuple[Workload, list[Result]]]] = {}
    for workload, results in sections:
        if workload.series is not None:
            series.setdefault(workload.series[0], []).append((workload, results))
            continue
        lines += workload_section(workload, results, lookup)
    for title, points in series.items():
        lines += series_section(title, points)
    return "\n".join(lines).rstrip() + "\n"
