"""`iotlake bench demo`: does everything `iotlake demo` runs keep up for the length of a talk?

`iotlake demo` itself runs as a child on a private stack (free ports, a temporary state
directory, every process recorded in PID files): the services, provisioning, 130 phones at
5 events/s, the AWS IoT producer, the Arduino board and its bridge, live manufacturing files,
5 posts/s, the pipelines driver, the gateway and the dashboard. Once it is up, this process
samples every `sample_seconds` for `minutes`: each table's backlog (`demo_backlog` defines
it) and the RSS of every process. At the end it takes each table's event -> table latency
from the commits made during the run, greps the pipelines driver's log for restarts, stops
the stack by PID, and concludes (`demo_report`): bounded backlogs, restarts, memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from iotlake.bench.demo_backlog import (
    LAYERS,
    Backlogs,
    commit_latencies,
    event_time_column,
    plan_tables,
)
from iotlake.bench.demo_report import conclude, percentiles, print_table, write_plot
from iotlake.bench.processes import (
    BenchError,
    descendants,
    kill_survivors,
    private_settings,
    pss_total,
    rss_by_process,
    rss_total,
    start_child,
)
from iotlake.bench.report import write_files
from iotlake.config import Settings

Report = Callable[[str], None]
DEMO_PHONES = 130  # what `iotlake demo` runs by default, the DAIS load


@dataclass(frozen=True)
class DemoBenchConfig:
    """How long to watch the demo and how often to sample it."""

    minutes: float = 30.0
    sample_seconds: float = 10.0
    out_dir: Path = Path("bench-results")
    keep_state: bool = False
    state_dir: Path | None = None
    start_timeout: float = 900.0

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.sample_seconds <= 0:
            raise BenchError("--minutes and --sample-seconds must be positive")
        if self.minutes * 60 < 2 * self.sample_seconds:
            raise BenchError("--minutes must cover at least two samples of --sample-seconds")


def _remember(seen: dict[int, psutil.Process], settings: Settings) -> None:
    """Note every process of the private stack, so that none outlives the benchmark."""
    for proc in descendants(settings):
        seen.setdefault(proc.pid, proc)


def _start_demo(settings: Settings, timeout: float, seen: dict[int, psutil.Process]) -> float:
    """Run `iotlake demo` on the private stack; the seconds it took to return, all up."""
    began = time.monotonic()
    demo = start_child(settings, "bench-demo", ["-m", "iotlake", "demo"])
    while demo.exit_code() is None:
        _remember(seen, settings)
        if time.monotonic() - began > timeout:
            demo.stop()
            raise BenchError(f"iotlake demo was not up after {timeout:.0f}s; see {demo.log}")
        time.sleep(1.0)
    if demo.exit_code() != 0:
        raise BenchError(f"iotlake demo exited with {demo.exit_code()}: {demo.last_line()}")
    return round(time.monotonic() - began, 1)


@dataclass
class Watch:
    """The samples of one run: times, each table's figures, RSS, processes that stopped."""

    backlogs: Backlogs
    times_s: list[float]
    tables: dict[str, list[dict[str, Any]]]
    rss_total_mb: list[float]
    rss_by_process: list[dict[str, float]]
    pss_total_mb: list[float]
    stopped: list[str]
    window_ms: tuple[int, int] = (0, 0)


def _watch(
    settings: Settings, config: DemoBenchConfig, seen: dict[int, psutil.Process], report: Report
) -> Watch:
    """Sample every table's backlog and every process's RSS for `minutes`."""
    watch = Watch(Backlogs(settings, plan_tables(settings)), [], {}, [], [], [], [])
    running = set(rss_by_process(settings)) - {"bench-demo"}
    began, began_ms = time.monotonic(), round(time.time() * 1000)
    next_at = began
    try:
        while True:
            now = time.monotonic()
            _remember(seen, settings)
            tables = watch.backlogs.sample()
            rows = rss_by_process(settings)
            watch.stopped += sorted(running - set(rows) - set(watch.stopped))
            watch.times_s.append(round(now - began, 1))
            watch.rss_total_mb.append(rss_total(rows))
            watch.rss_by_process.append(rows)
            watch.pss_total_mb.append(pss_total(settings))
            for name, figures in tables.items():
                watch.tables.setdefault(name, []).append(figures)
            worst, figures = max(tables.items(), key=lambda item: item[1]["backlog"])
            report(
                f"{now - began:5.0f}s: RSS {rss_total(rows):,.0f} MB "
                f"(PSS {watch.pss_total_mb[-1]:,.0f} MB), largest backlog {worst} "
                f"{figures['backlog']:,} rows (sampled in {time.monotonic() - now:.1f}s)"
            )
            if now - began >= config.minutes * 60:
                break
            next_at += config.sample_seconds
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        watch.backlogs.sources.close()
    watch.window_ms = (began_ms, round(time.time() * 1000))
    return watch


def _systems(watch: Watch) -> dict[str, Any]:
    """Per system and table: its series, rule, event-log totals and commit latencies."""
    systems: dict[str, Any] = {}
    plans = watch.backlogs.plans
    for plan in sorted(plans, key=lambda p: (p.system, -LAYERS.get(p.layer, 1), p.name)):
        samples = watch.tables[f"{plan.system}.{plan.name}"]
        log = watch.backlogs.logs[(plan.system, plan.name)]
        column = event_time_column(plan.uri) if log.commits else None
        latencies = commit_latencies(log, column, *watch.window_ms) if column else []
        events = watch.backlogs.events[plan.system]
        systems.setdefault(plan.system, {})[plan.name] = {
            "layer": plan.layer,
            "rule": samples[-1]["rule"],
            "source": ":".join(plan.source) if plan.source else None,
            "upstream": list(plan.upstream),
            "backlog": [sample["backlog"] for sample in samples],
            "inflow": [sample["inflow"] for sample in samples],
            "event_log_rows_in": events.rows_in[plan.name],
            "event_log_rows_out": events.rows_out[plan.name],
            "commits": len(log.commits),
            "event_time_column": column,
            "latency_s": percentiles(latencies),
            "latencies_s": latencies,
        }
    return systems


def _restarts(settings: Settings) -> list[str]:
    """The pipelines driver's lines saying it restarts a query (`<query>: <why>; restarting`)."""
    log = settings.log_dir / "pipelines.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line.endswith("; restarting")]


def run_demo_bench(
    base: Settings, config: DemoBenchConfig, report: Report = print
) -> tuple[dict[str, Any], Path, Path]:
    """Run the demo on a private stack for `config.minutes`; print the table; return the
    results and the paths of the JSON file and the PNG plot under `config.out_dir`."""
    from services.embedded.stack import down as stack_down

    began = time.monotonic()
    load_before = [round(value, 2) for value in os.getloadavg()]
    state_dir = (config.state_dir or Path(tempfile.mkdtemp(prefix="iotlake-bench-demo-"))).resolve()
    settings = private_settings(base, state_dir / "stack")
    report(f"iotlake bench demo: private stack under {state_dir}")
    seen: dict[int, psutil.Process] = {}
    try:
        demo_start_s = _start_demo(settings, config.start_timeout, seen)
        report(f"iotlake demo up in {demo_start_s:.0f}s; watching it for {config.minutes:g} min")
        watch = _watch(settings, config, seen, report)
        restarts = _restarts(settings)
    except BaseException:
        report(f"the private stack's logs stay under {settings.log_dir}")
        raise
    finally:
        _remember(seen, settings)
        stack_down(settings, report=lambda line: None)
        killed = kill_survivors(list(seen.values()))
    results = {
        "config": {
            "minutes": config.minutes,
            "sample_seconds": config.sample_seconds,
            "phones": DEMO_PHONES,
            "trigger_seconds": base.pipelines.trigger_seconds,
            "refresh_seconds": base.pipelines.refresh_seconds,
            "seismograph_transport": base.seismograph.transport,
            "aws_iot_transport": base.aws_iot.transport,
            "aws_emulator": base.aws.emulator,
        },
        "demo_start_s": demo_start_s,
        "times_s": watch.times_s,
        "systems": _systems(watch),
        "rss": {
            "total_mb": watch.rss_total_mb,
            "by_process": watch.rss_by_process,
            "pss_total_mb": watch.pss_total_mb,
        },
        "restarts": restarts,
        "stopped_processes": watch.stopped,
        "left_running_killed": killed,
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": [round(value, 2) for value in os.getloadavg()],
        },
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    conclude(results)
    print_table(results, report)
    json_path, png_path = write_files(results, config.out_dir / "bench-demo", write_plot, report)
    if not config.keep_state and not config.state_dir:
        shutil.rmtree(state_dir, ignore_errors=True)
    return results, json_path, png_path
