"""`iotlake bench`: the seismograph flow under 1x, 10x and 100x the DAIS load, end to end.

One run, on one machine, on a private embedded stack (free ports, a temporary state
directory), in this order: the bare client -> delta-rs baselines (`iotlake bench io`), then
for each transport a fresh stream and one `iotlake run seismograph --continuous` driver that
takes every load level in turn, then the cold start of `iotlake demo`. Every process is
started through PID files and stopped by PID; every wait has a bound, so a load the machine
cannot take shows up as growing lag and late probes, never as a hang.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from iotlake.bench.cold_start import measure_cold_start
from iotlake.bench.load import TransportPlan, run_transport
from iotlake.bench.load_level import Timing
from iotlake.bench.processes import (
    BenchError,
    descendants,
    kill_survivors,
    private_settings,
    start_child,
)
from iotlake.bench.report import print_table, write_files, write_plot
from iotlake.config import Settings
from services.producers.transport import Target

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Report = Callable[[str], None]
TRANSPORTS = ("kafka", "kinesis")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. The defaults take about 10-15 minutes on two cores."""

    loads: tuple[float, ...] = (1.0, 10.0, 100.0)
    transports: tuple[str, ...] = TRANSPORTS
    # Events per record at every load; None: one at 1x, about 5 more per further 10x.
    pack: int | None = None
    timing: Timing = field(default_factory=Timing)
    out_dir: Path = Path("bench-results")
    cold_start: bool = True
    cold_start_timeout: float = 600.0
    baseline_kafka_rows: int = 200_000
    baseline_kinesis_rows: int = 3_000
    state_dir: Path | None = None
    keep_state: bool = False

    def __post_init__(self) -> None:
        unknown = [name for name in self.transports if name not in TRANSPORTS]
        if unknown:
            raise BenchError(f"transport {unknown[0]!r} is unknown; use kafka, kinesis or both")
        if not self.transports:
            raise BenchError("no transport chosen; use kafka, kinesis or both")
        if not self.loads or any(load <= 0 for load in self.loads):
            raise BenchError("loads must be positive multiples of the DAIS load, e.g. 1,10,100")
        if self.pack is not None and self.pack < 1:
            raise BenchError("pack must be at least 1 event per record")
        if self.timing.seconds < 4:
            raise BenchError("seconds per level must be at least 4 to have a second half")


def measure_baseline(
    settings: Settings,
    config: BenchConfig,
    spark: SparkSession | None = None,
    report: Report = print,
) -> dict[str, Any]:
    """Bare client -> delta-rs rows/s (and Spark's source -> Delta) from `iotlake bench io`.

    With a SparkSession the baselines run in this process; without one, `iotlake bench io`
    runs as a child on the private stack, so this process never holds a JVM while the
    pipelines run.
    """
    if spark is not None:
        from spark_jobs.io.bench import bench_io

        return bench_io(
            spark,
            settings,
            config.baseline_kafka_rows,
            config.baseline_kinesis_rows,
            report=lambda line: None,
        )
    child = start_child(
        settings,
        "bench-io",
        [
            "-m",
            "iotlake",
            "bench",
            "io",
            "--kafka-rows",
            str(config.baseline_kafka_rows),
            "--kinesis-rows",
            str(config.baseline_kinesis_rows),
        ],
    )
    try:
        child.popen.wait(timeout=900)
    except Exception as error:
        raise BenchError(f"iotlake bench io did not finish in 900s; see {child.log}") from error
    finally:
        child.stop()
    if child.exit_code() != 0:
        raise BenchError(f"iotlake bench io failed: {child.last_line()}")
    results: dict[str, Any] = json.loads((settings.state_dir / "bench" / "io.json").read_text())
    return results


def _ratios(transports: list[dict[str, Any]], baseline: dict[str, Any] | None) -> None:
    """Pipeline events/s into gold over the bare loop's rows/s (one event per row there)."""
    for transport in transports:
        bare = (baseline or {}).get(transport["transport"], {})
        rate = bare.get("bare_client_to_delta_rows_per_s")
        for level in transport["levels"]:
            level["ratio_to_bare"] = level["gold_events_per_s"] / rate if rate else None


def _run_loads(
    settings: Settings, config: BenchConfig, spark: SparkSession | None, report: Report
) -> dict[str, Any]:
    """Stack up, baselines, each transport's levels; the stack always comes down after."""
    from services.embedded.stack import StackError
    from services.embedded.stack import down as stack_down
    from services.embedded.stack import up as stack_up

    results: dict[str, Any] = {"baseline": None, "transports": []}
    try:
        stack_up(settings, report=report)
    except StackError as error:
        raise BenchError(f"the private stack did not start: {error}") from None
    started = descendants(settings)
    try:
        try:
            report("baseline: iotlake bench io (bare client -> delta-rs)")
            results["baseline"] = measure_baseline(settings, config, spark, report)
        except BenchError as error:
            report(f"baseline failed: {error}")
            results["baseline_error"] = str(error)
        for transport in config.transports:
            packs = {load: config.pack for load in config.loads} if config.pack else {}
            # BenchConfig refused any name but kafka and kinesis.
            plan = TransportPlan(cast(Target, transport), config.loads, config.timing, packs)
            results["transports"].append(run_transport(settings, plan, report))
    finally:
        started += descendants(settings)
        stack_down(settings, report=lambda line: None)
        results["left_running_killed"] = kill_survivors(started)
    return results


def run_bench(
    base: Settings, config: BenchConfig, spark: SparkSession | None = None, report: Report = print
) -> tuple[dict[str, Any], Path, Path]:
    """Run everything `config` asks for; print the table; return the results and the paths
    of the JSON file and the PNG plot written under `config.out_dir`."""
    began = time.monotonic()
    load_before = [round(value, 2) for value in os.getloadavg()]
    state_dir = config.state_dir or Path(tempfile.mkdtemp(prefix="iotlake-bench-"))
    state_dir = state_dir.resolve()
    settings = private_settings(base, state_dir / "stack")
    report(f"iotlake bench: private stack under {state_dir}")
    results = _run_loads(settings, config, spark, report)
    _ratios(results["transports"], results["baseline"])
    results["cold_start"] = (
        measure_cold_start(base, state_dir / "demo", config.cold_start_timeout, report)
        if config.cold_start
        else None
    )
    results["config"] = {
        "loads": list(config.loads),
        "transports": list(config.transports),
        "pack": config.pack,
        "seconds_per_level": config.timing.seconds,
        "drain_seconds": config.timing.drain_seconds,
        "trigger_seconds": base.pipelines.trigger_seconds,
        "spark_master": base.spark.master,
        "aws_emulator": base.aws.emulator,
    }
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": [round(value, 2) for value in os.getloadavg()],
    }
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    print_table(results, report)
    json_path, png_path = write_files(results, config.out_dir / "bench", write_plot, report)
    if not config.keep_state and not config.state_dir:
        shutil.rmtree(state_dir, ignore_errors=True)
    return results, json_path, png_path
