"""What `iotlake bench` prints and writes: a table, a JSON file and a PNG plot.

Every figure in the table is read from the results dictionary that goes to JSON, so the
printed table, the file and the plot always agree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Report = Callable[[str], None]


def number(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def level_rows(results: dict[str, Any]) -> list[str]:
    """One line per transport and load: rates, lag, latency, ratio to the bare loop."""
    header = (
        f"{'path':<8} {'load':>5} {'phones':>6} {'pack':>4} {'offered/s':>9} "
        f"{'produced/s':>10} {'gold ev/s':>9} {'x bare':>6} {'lag max':>8} {'lag s':>6} "
        f"{'slope/s':>8} {'lag':>8} {'gold':>6} {'p50 s':>6} {'p95 s':>6} {'p99 s':>6} "
        f"{'probes':>7}"
    )
    lines = [header, "-" * len(header)]
    for transport in results["transports"]:
        for level in transport["levels"]:
            latency = level["latency_s"]
            lines.append(
                f"{level['transport']:<8} {level['load']:>4g}x {level['phones']:>6} "
                f"{level['pack']:>4} {number(level['offered_events_per_s']):>9} "
                f"{number(level['producer_events_per_s']):>10} "
                f"{number(level['gold_events_per_s']):>9} "
                f"{number(level.get('ratio_to_bare'), '.2f'):>6} "
                f"{level['lag_records_max']:>8,} {level['lag_seconds_max']:>6.1f} "
                f"{level['lag_records_slope_per_s']:>8.1f} "
                f"{'bounded' if level['lag_bounded'] else 'GROWING':>8} "
                f"{'ok' if level['gold_keeps_up'] else 'BEHIND':>6} "
                f"{number(latency['p50'], '.1f'):>6} {number(latency['p95'], '.1f'):>6} "
                f"{number(latency['p99'], '.1f'):>6} "
                f"{level['probes_in_gold']:>3}/{level['probes_sent']:<3}"
            )
    return lines


def baseline_rows(baseline: dict[str, Any] | None) -> list[str]:
    if not baseline:
        return ["bare client -> delta-rs baseline: not measured"]
    lines = []
    for name in ("kafka", "kinesis"):
        figures = baseline.get(name)
        if figures:
            lines.append(
                f"bare {name} client -> delta-rs: "
                f"{figures['bare_client_to_delta_rows_per_s']:,.0f} rows/s "
                f"({figures['rows']:,} rows; Spark source -> Delta "
                f"{figures['spark_to_delta_rows_per_s']:,.0f} rows/s)"
            )
    return lines


def rss_rows(results: dict[str, Any]) -> list[str]:
    """Resident memory per process at the highest load of each transport, and the total."""
    lines = []
    for transport in results["transports"]:
        if not transport["levels"]:
            continue
        top = max(transport["levels"], key=lambda level: level["load"])
        lines.append(
            f"RSS at {top['load']:g}x on {transport['transport']} (peak sample), MB: "
            f"total {top['rss_total_mb']:,.0f}"
        )
        for name, size in sorted(top["rss_mb"].items()):
            indent = "    " if ": " in name else "  "
            lines.append(f"{indent}{name:<40} {size:>8,.1f}")
    return lines


def cold_start_row(cold: dict[str, Any] | None) -> str:
    if cold is None:
        return "cold start: skipped"
    figure = f"{cold['seconds']:.1f}s" if cold["seconds"] is not None else cold["error"]
    left = cold["left_running_after"]
    return (
        f"cold start, iotlake demo -> first non-empty chart: {figure} "
        f"({cold['processes_started']} processes started, "
        f"{len(cold['left_running_killed'])} killed after iotlake down, {left} left)"
    )


def machine_row(results: dict[str, Any], timings: str = "") -> str:
    """CPUs, load average before and after, then `timings` and the run's wall time."""
    machine = results["machine"]
    return (
        f"machine: {machine['cpus']} CPUs, load average {machine['load_before']} before, "
        f"{machine['load_after']} after; {timings}{results['wall_seconds']:.0f}s in all"
    )


def print_table(results: dict[str, Any], report: Report) -> None:
    """The whole printed report, with the honest notes about loads not sustained."""
    report("")
    for line in level_rows(results):
        report(line)
    report("")
    for line in baseline_rows(results.get("baseline")):
        report(line)
    for line in rss_rows(results):
        report(line)
    report(cold_start_row(results.get("cold_start")))
    report(machine_row(results))
    for transport in results["transports"]:
        if transport.get("error"):
            report(f"{transport['transport']}: stopped early: {transport['error']}")
        for level in transport["levels"]:
            for reason in level.get("pipeline_restarts", []):
                report(
                    f"{level['transport']} {level['load']:g}x: the pipeline driver stopped "
                    f"and was started again ({reason})"
                )
    growing = [
        f"{level['transport']} {level['load']:g}x"
        for transport in results["transports"]
        for level in transport["levels"]
        if not level["lag_bounded"] or not level["gold_keeps_up"]
    ]
    if growing:
        report(
            "not sustained (consumer lag grows, or gold falls behind the producers): "
            + ", ".join(growing)
            + "; gold events/s there is what the pipeline managed, not the offered load"
        )


def write_json(results: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    return path


def write_png(figure: Figure, path: Path) -> Path:
    """Lay the figure out, write it to `path` (its folder made as needed) and free it: a
    benchmark draws figures in a long-lived process, where pyplot would keep each one."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def write_files(
    results: dict[str, Any],
    prefix: Path,
    plot: Callable[[dict[str, Any], Path], Path],
    report: Report,
) -> tuple[Path, Path]:
    """`<prefix>-<UTC stamp>.json` and `.png`: the results and their plot; says where."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    json_path = write_json(results, prefix.with_name(f"{prefix.name}-{stamp}.json"))
    png_path = plot(results, prefix.with_name(f"{prefix.name}-{stamp}.png"))
    report(f"wrote {json_path} and {png_path}")
    return json_path, png_path


def _rates(
    samples: list[dict[str, Any]], key: str, window: float = 5.0
) -> tuple[list[float], list[float]]:
    """Per-second rate of a cumulative series over a trailing window (smooths batch steps)."""
    times, rates = [], []
    for index, sample in enumerate(samples):
        earlier = [s for s in samples[: index + 1] if sample["t"] - s["t"] <= window]
        first = earlier[0]
        span = sample["t"] - first["t"]
        if span > 0:
            times.append(sample["t"])
            rates.append((sample[key] - first[key]) / span)
    return times, rates


def write_plot(results: dict[str, Any], path: Path) -> Path:
    """Throughput, lag and probe latency over the run, one column per transport."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transports = [t for t in results["transports"] if t["levels"]] or results["transports"]
    columns = max(1, len(transports))
    figure, axes = plt.subplots(3, columns, figsize=(7 * columns, 10), squeeze=False)
    for column, transport in enumerate(transports):
        rate_ax, lag_ax, latency_ax = (axes[row][column] for row in range(3))
        offset = 0.0
        for level in transport["levels"]:
            samples = [dict(s, t=s["t"] + offset) for s in level["samples"]]
            label = f"{level['load']:g}x"
            times, produced = _rates(samples, "produced_events")
            rate_ax.plot(times, produced, color="tab:gray", linewidth=0.8)
            times, gold = _rates(samples, "gold_events")
            rate_ax.plot(times, gold, label=f"gold {label}")
            lag_ax.plot(
                [s["t"] for s in samples],
                [s["produced_records"] - s["raw_records"] for s in samples],
                label=label,
            )
            points = level["probe_points"]
            latency_ax.scatter(
                [offset + p[0] for p in points], [p[1] for p in points], s=8, label=label
            )
            rate_ax.axvline(offset, color="black", linewidth=0.5)
            offset = samples[-1]["t"] + 1 if samples else offset
        rate_ax.set_title(f"{transport['transport']}: events/s (grey: produced)")
        lag_ax.set_title("consumer lag, records (produced - raw_stream)")
        latency_ax.set_title("probe event -> gold commit latency, s")
        latency_ax.set_xlabel("seconds into the run")
        for ax in (rate_ax, lag_ax, latency_ax):
            if ax.has_data():
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    return write_png(figure, path)
