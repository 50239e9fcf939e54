"""`iotlake bench ...`: benchmarks that print figures measured in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iotlake.commands.common import KeepState, OutDir, fail, settings

bench = typer.Typer(help="Benchmarks that print figures measured in one run")


def _numbers(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        message = f"{option} {text!r}: give numbers separated by commas, e.g. 1,10,100"
        raise fail(message, 2) from None


@bench.callback(invoke_without_command=True)
def bench_run(
    ctx: typer.Context,
    loads: Annotated[str, typer.Option(help="multiples of the DAIS load (650 events/s)")] = (
        "1,10,100"
    ),
    transports: Annotated[str, typer.Option(help="kafka, kinesis or both")] = "kafka,kinesis",
    seconds: Annotated[float, typer.Option(help="seconds of load per level")] = 60.0,
    pack: Annotated[
        int | None, typer.Option(help="events per record (default: 1 at 1x, more above)")
    ] = None,
    drain_seconds: Annotated[
        float, typer.Option(help="longest wait for the pipeline to catch up after a level")
    ] = 30.0,
    out: OutDir = Path("bench-results"),
    skip_cold_start: Annotated[
        bool, typer.Option("--skip-cold-start", help="do not time `iotlake demo`")
    ] = False,
    keep_state: KeepState = False,
) -> None:
    """Without a subcommand: the seismograph flow at 1x/10x/100x on Kafka and Kinesis
    (throughput, lag, event -> gold latency, RSS), the bare-client ratio and the cold start."""
    if ctx.invoked_subcommand is not None:
        return
    from iotlake.bench import BenchConfig, BenchError, Timing, run_bench

    try:
        config = BenchConfig(
            loads=_numbers(loads, "--loads"),
            transports=tuple(name.strip() for name in transports.split(",") if name.strip()),
            pack=pack,
            timing=Timing(seconds=seconds, drain_seconds=drain_seconds),
            out_dir=out,
            cold_start=not skip_cold_start,
            keep_state=keep_state,
        )
        run_bench(settings(), config, report=typer.echo)
    except BenchError as error:
        raise fail(str(error)) from None


@bench.command("io")
def bench_io_command(
    kafka_rows: Annotated[int, typer.Option(help="records through the Kafka paths")] = 200_000,
    kinesis_rows: Annotated[int, typer.Option(help="records through the Kinesis paths")] = 5_000,
) -> None:
    """Broker -> Delta rows/s through Spark against bare client -> delta-rs loops."""
    from spark_jobs.io.bench import bench_io
    from spark_jobs.session import spark_session

    spark = spark_session(settings(), "iotlake-bench-io")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        bench_io(spark, settings(), kafka_rows, kinesis_rows, report=typer.echo)
    finally:
        spark.stop()


@bench.command("demo")
def bench_demo_command(
    minutes: Annotated[float, typer.Option(help="how long to watch the demo")] = 30.0,
    sample_seconds: Annotated[float, typer.Option(help="seconds between samples")] = 10.0,
    out: OutDir = Path("bench-results"),
    keep_state: KeepState = False,
) -> None:
    """Everything `iotlake demo` runs, for --minutes on a private stack: backlog per table,
    RSS per process, event -> table latency, and whether the five systems keep up."""
    from iotlake.bench.demo import DemoBenchConfig, run_demo_bench
    from iotlake.bench.processes import BenchError

    try:
        config = DemoBenchConfig(
            minutes=minutes, sample_seconds=sample_seconds, out_dir=out, keep_state=keep_state
        )
        run_demo_bench(settings(), config, report=typer.echo)
    except BenchError as error:
        raise fail(str(error)) from None
