"""What `iotlake bench demo` concludes, prints and writes: verdicts, a table, JSON and a plot.

A table's backlog is bounded over a run of T seconds when both hold, with an allowance of a
minute of the table's own input (`GRACE_SECONDS` times its inflow rate, the rows/s its
upstream gained over the run; at least `MIN_ALLOWANCE_ROWS`):
- not trending up: the least-squares slope of the backlog over the second half (t >= T/2)
  is at most `SLOPE_SHARE` of the inflow rate, or adds at most the allowance over that half;
- back down at the end: the lowest backlog of the last quarter of the run (the end, taken
  where the last micro-batches or refreshes have just landed) is no higher than the peak
  of the first half, start-up included, or than the allowance.
A saw-tooth of micro-batches, or a view refreshed every 30 s, stays bounded; a table that
reflects only part of its input grows by more than the allowance once the run is long
enough (over 30 minutes: below about 93 % of its input); runs of a few minutes judge tables
whose batches take a minute only coarsely. The demo keeps up when every table is bounded,
no query restarted other than for a schema change (an Auto Loader source finding new
columns, an upstream table gaining them: restarts the runner makes on purpose), no process
stopped, and the stack's memory peak stayed within `RSS_BUDGET_MB`. Memory is judged on the
sum of PSS, which counts a page shared by several processes once (libraries, and what the
forked Python workers inherit); the sum of RSS, which counts it in every process, is
reported beside it.

Every figure printed comes from the results dictionary that goes to JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from iotlake.bench.report import machine_row, number, write_png

Report = Callable[[str], None]
SLOPE_SHARE = 0.05
GRACE_SECONDS = 60.0
MIN_ALLOWANCE_ROWS = 10.0
RSS_BUDGET_MB = 4096.0
# How the runner words its schema restarts (`spark_jobs.runner.restart_reason`).
SCHEMA_CHANGES = ("SchemaEvolutionError", "new column", "upstream table gained columns")


def slope(times: list[float], values: list[float]) -> float:
    """Least-squares slope of `values` over `times`; 0 with fewer than two distinct times."""
    if len(set(times)) < 2:
        return 0.0
    return float(np.polyfit(np.array(times), np.array(values, dtype=float), 1)[0])


def backlog_verdict(
    times: list[float], backlog: list[float], inflow: list[float]
) -> dict[str, Any]:
    """The rule of the module docstring applied to one table's series (same length)."""
    if not times:
        return {"bounded": None, "reason": "no samples"}
    duration = times[-1] - times[0]
    half, last_quarter = times[0] + duration / 2, times[0] + duration * 3 / 4
    pairs = list(zip(times, backlog, strict=True))
    second = [(t, value) for t, value in pairs if t >= half]
    rate = (inflow[-1] - inflow[0]) / duration if duration > 0 else 0.0
    allowance = max(rate * GRACE_SECONDS, MIN_ALLOWANCE_ROWS)
    trend = slope([t for t, _ in second], [value for _, value in second])
    first_peak = max((value for t, value in pairs if t < half), default=0)
    end_low = min(value for t, value in pairs if t >= last_quarter)
    flat = trend <= max(SLOPE_SHARE * rate, allowance / max(times[-1] - half, 1e-9))
    return {
        "bounded": bool(flat and end_low <= max(first_peak, allowance)),
        "inflow_rows_per_s": round(rate, 3),
        "allowance_rows": round(allowance, 1),
        "max": max(backlog),
        "end": backlog[-1],
        "first_half_peak": first_peak,
        "last_quarter_low": end_low,
        "second_half_slope_rows_per_s": round(trend, 3),
    }


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50 and p95 of `values` (None without any) and how many there were."""
    if not values:
        return {"p50": None, "p95": None, "count": 0}
    p50, p95 = np.percentile(np.array(values), [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "count": len(values)}


def conclude(results: dict[str, Any]) -> dict[str, Any]:
    """Add each table's verdict, the memory peaks and the overall verdict to `results`."""
    times = results["times_s"]
    unbounded = []
    for system, tables in results["systems"].items():
        for name, table in tables.items():
            table["verdict"] = backlog_verdict(times, table["backlog"], table["inflow"])
            if not table["verdict"]["bounded"]:
                unbounded.append(f"{system}.{name}")
    totals = results["rss"]["total_mb"]
    peak_index = int(np.argmax(totals)) if totals else None
    peak = totals[peak_index] if peak_index is not None else 0.0
    results["rss"].update(
        peak_total_mb=peak,
        peak_at_s=times[peak_index] if peak_index is not None else None,
        peak_by_process=results["rss"]["by_process"][peak_index] if totals else {},
        budget_mb=RSS_BUDGET_MB,
        within_budget=peak <= RSS_BUDGET_MB,
    )
    pss_peak = max(results["rss"].get("pss_total_mb") or [0.0])
    results["rss"].update(peak_pss_mb=pss_peak, pss_within_budget=pss_peak <= RSS_BUDGET_MB)
    verdict = {
        "all_bounded": not unbounded,
        "unbounded_tables": unbounded,
        "restarted": bool(results["restarts"]),
        "unexpected_restarts": [line for line in results["restarts"] if not expected(line)],
        "processes_stopped": results["stopped_processes"],
        "rss_within_budget": results["rss"]["within_budget"],
        "memory_within_budget": results["rss"]["pss_within_budget"],
    }
    verdict["keeps_up"] = (
        verdict["all_bounded"]
        and not verdict["unexpected_restarts"]
        and not verdict["processes_stopped"]
        and verdict["memory_within_budget"]
    )
    results["verdict"] = verdict
    return results


def expected(restart: str) -> bool:
    """A restart the runner makes on purpose: its source or upstream gained columns."""
    return any(mark in restart for mark in SCHEMA_CHANGES)


def table_rows(results: dict[str, Any]) -> list[str]:
    """One line per table: rule, inflow, backlog (max, end, slope), bounded, latency."""
    header = (
        f"{'system':<14} {'table':<20} {'layer':<6} {'rule':<10} {'in/s':>7} "
        f"{'backlog max':>11} {'end':>7} {'slope/s':>8} {'bounded':>8} "
        f"{'p50 s':>6} {'p95 s':>6} {'lat n':>5}"
    )
    lines = [header, "-" * len(header)]
    for system, tables in results["systems"].items():
        for name, table in tables.items():
            verdict, latency = table["verdict"], table["latency_s"]
            bounded = {True: "yes", False: "GROWING", None: "-"}[verdict["bounded"]]
            lines.append(
                f"{system:<14} {name:<20} {table['layer']:<6} {table['rule']:<10} "
                f"{number(verdict.get('inflow_rows_per_s'), ',.1f'):>7} "
                f"{number(verdict.get('max')):>11} {number(verdict.get('end')):>7} "
                f"{number(verdict.get('second_half_slope_rows_per_s'), ',.2f'):>8} "
                f"{bounded:>8} {number(latency['p50'], '.1f'):>6} "
                f"{number(latency['p95'], '.1f'):>6} {latency['count']:>5}"
            )
    return lines


def print_table(results: dict[str, Any], report: Report) -> None:
    """The table, then memory, restarts, skipped latencies and the verdict."""
    report("")
    for line in table_rows(results):
        report(line)
    report("")
    rss = results["rss"]
    report(
        f"RSS peak: {rss['peak_total_mb']:,.0f} MB at {number(rss['peak_at_s'])}s of "
        f"{results['times_s'][-1] if results['times_s'] else 0:.0f}s "
        f"(budget {rss['budget_mb']:,.0f} MB: {'within' if rss['within_budget'] else 'OVER'})"
    )
    report(
        f"PSS peak: {rss['peak_pss_mb']:,.0f} MB, the memory the stack holds: shared pages "
        f"counted once (budget {rss['budget_mb']:,.0f} MB: "
        f"{'within' if rss['pss_within_budget'] else 'OVER'})"
    )
    for name, size in sorted(rss["peak_by_process"].items()):
        indent = "    " if ": " in name else "  "
        report(f"{indent}{name:<40} {size:>8,.1f}")
    skipped = [
        f"{system}.{name}"
        for system, tables in results["systems"].items()
        for name, table in tables.items()
        if table["event_time_column"] is None
    ]
    if skipped:
        report("no event-time column, latency not measured: " + ", ".join(skipped))
    ahead = [
        f"{system}.{name} ({table['event_time_column']})"
        for system, tables in results["systems"].items()
        for name, table in tables.items()
        if (table["latency_s"]["p50"] or 0) < 0
    ]
    if ahead:
        report(
            "event times later than their commits (the column is not an arrival time): "
            + ", ".join(ahead)
        )
    for line in results["restarts"]:
        kind = " (schema change, expected)" if expected(line) else ""
        report(f"restart{kind}: {line[:200]}")
    for name in results["stopped_processes"]:
        report(f"stopped during the run: {name}")
    verdict = results["verdict"]
    problems = [f"growing: {', '.join(verdict['unbounded_tables'])}"] * (not verdict["all_bounded"])
    unexpected = len(verdict["unexpected_restarts"])
    problems += [f"{unexpected} query restart(s)"] * bool(unexpected)
    problems += ["processes stopped"] * bool(verdict["processes_stopped"])
    problems += ["memory (PSS) over budget"] * (not verdict["memory_within_budget"])
    report(
        f"verdict: {'keeps up' if verdict['keeps_up'] else 'DOES NOT KEEP UP'} for "
        f"{results['config']['minutes']:g} min" + (f" ({'; '.join(problems)})" if problems else "")
    )
    report(machine_row(results, f"demo up in {results['demo_start_s']:.0f}s, "))


def write_plot(results: dict[str, Any], path: Path) -> Path:
    """Backlog per table over time, one panel per system, and RSS over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(results["systems"])
    rows = (len(systems) + 2) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(14, 3.6 * rows), squeeze=False)
    panels = [ax for row in axes for ax in row]
    times = results["times_s"]
    for ax, system in zip(panels, systems, strict=False):
        for name, table in results["systems"][system].items():
            ax.plot(times, table["backlog"], label=name, linewidth=1)
        ax.set_title(f"{system}: backlog, rows")
    rss_ax = panels[len(systems)]
    rss_ax.plot(times, results["rss"]["total_mb"], label="total", color="black")
    by_process = results["rss"]["by_process"]
    names = sorted({name for rows_mb in by_process for name in rows_mb if ": " not in name})
    for name in names:
        rss_ax.plot(times, [rows_mb.get(name, 0.0) for rows_mb in by_process], label=name)
    rss_ax.axhline(RSS_BUDGET_MB, color="red", linewidth=0.8, linestyle="--", label="budget")
    rss_ax.set_title("RSS, MB")
    for ax in panels[len(systems) + 1 :]:
        ax.set_visible(False)
    for ax in panels[: len(systems) + 1]:
        ax.set_xlabel("seconds into the run")
        if ax.has_data():
            ax.legend(fontsize=6, ncol=2)
        ax.grid(alpha=0.3)
    return write_png(figure, path)
