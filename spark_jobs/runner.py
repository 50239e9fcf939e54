"""Turns a system's table declarations into streaming queries, one per table.

Each query reads its upstream (a declared source, or the upstream Delta table as a stream of
new commits), applies the table's function, and in each micro-batch evaluates the table's
expectations, writes the kept rows to Delta exactly once (the batch id rides in the commit as
an application transaction) and appends the batch's counts to the system's `event_log`.
Spark does the distributed work; delta-rs does the storage; this module only wires them.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from iotlake.config import Settings
from spark_jobs import dp, event_log
from spark_jobs.io import delta_sink, delta_source
from spark_jobs.io.storage import is_local, local_path, storage_options, table_uri
from spark_jobs.quality import evaluate

PIPELINES_ROOT = Path(__file__).resolve().parent


def _discover_systems() -> tuple[str, ...]:
    """A system is a package `spark_jobs/<system>/` with a `bronze/` layer: adding a pipeline
    is adding such a package, nothing to register."""
    return tuple(
        sorted(
            path.parent.parent.name.replace("_", "-")
            for path in PIPELINES_ROOT.glob("*/bronze/__init__.py")
        )
    )


SYSTEMS = _discover_systems()


@dataclass(frozen=True)
class Flow:
    """A table's running query and where it writes."""

    spec: dp.TableSpec
    query: StreamingQuery
    table_uri: str


def load_system(system: str) -> list[dp.TableSpec]:
    """Import every table module of `system` and return its tables, upstream first."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    package = importlib.import_module(f"spark_jobs.{system.replace('-', '_')}")
    for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        importlib.import_module(module.name)
    tables = {name: spec for (owner, name), spec in dp.TABLES.items() if owner == system}
    return _upstream_first(tables, system)


def _upstream_first(tables: dict[str, dp.TableSpec], system: str) -> list[dp.TableSpec]:
    ordered: list[dp.TableSpec] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in path:
            raise ValueError(f"{system}: tables depend on each other in a cycle: {path}")
        for upstream in tables[name].upstream:
            if upstream in tables:
                visit(upstream, (*path, name))
        seen.add(name)
        ordered.append(tables[name])

    for name in sorted(tables):
        visit(name, ())
    return ordered


def location(settings: Settings, spec: dp.TableSpec) -> str:
    return table_uri(settings, spec.system, spec.name)


def checkpoint(settings: Settings, spec: dp.TableSpec) -> str:
    """Under the table root for a local lake; Spark cannot write checkpoints to s3:// here."""
    if is_local(settings.lake_root):
        return str(Path(local_path(location(settings, spec))) / "_checkpoint")
    root = settings.state_dir / "checkpoints" / settings.target / spec.system / spec.name
    return str(root.resolve())


def _inputs(spark: SparkSession, settings: Settings, spec: dp.TableSpec) -> dict[str, object]:
    """The arguments of a table function: upstream streams, and `settings` if it asks."""
    arguments: dict[str, object] = {}
    for name in spec.upstream:
        if name == "settings":
            arguments[name] = settings
        elif (spec.system, name) in dp.SOURCES:
            arguments[name] = dp.SOURCES[(spec.system, name)].function(spark, settings)
        elif (spec.system, name) in dp.TABLES:
            upstream = dp.TABLES[(spec.system, name)]
            arguments[name] = delta_source.read_stream(
                spark, location(settings, upstream), settings
            )
        else:
            raise ValueError(
                f"{spec.system}.{spec.name}: parameter '{name}' is neither a source nor a table "
                f"of {spec.system}"
            )
    return arguments


def _batch_writer(
    settings: Settings,
    spec: dp.TableSpec,
    uri: str,
    checkpoint_location: str,
    report: Callable[[str], None],
) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function: expectations, an exactly-once write, the event log."""
    options = storage_options(settings, uri)
    name = f"{spec.system}.{spec.name}"

    def process(batch: DataFrame, batch_id: int) -> None:
        began = time.monotonic()
        app_id = f"{name}@{delta_sink.checkpoint_query_id(checkpoint_location)}"
        batch = batch.persist()
        try:
            quality = evaluate(batch, spec.expectations, name)
            if spec.output_mode == "append":
                delta_sink.append_batch(
                    quality.kept,
                    uri,
                    options,
                    app_id=app_id,
                    batch_id=batch_id,
                    partition_by=spec.partition_by,
                )
            else:
                keys = spec.keys if spec.output_mode == "update" else ()
                delta_sink.merge_batch(
                    quality.kept.toArrow(),
                    uri,
                    options,
                    keys=keys,
                    app_id=app_id,
                    batch_id=batch_id,
                    partition_by=spec.partition_by,
                )
        finally:
            batch.unpersist()
        seconds = time.monotonic() - began
        rows_out = quality.rows_in - quality.rows_dropped
        event_log.record(settings, spec, app_id, batch_id, quality, rows_out, seconds)
        if quality.rows_in:
            dropped = f" ({quality.rows_dropped} dropped)" if quality.rows_dropped else ""
            report(
                f"{name} batch {batch_id}: {quality.rows_in} in, {rows_out} out{dropped} "
                f"in {seconds:.1f}s"
            )

    return process


def start_flow(
    spark: SparkSession,
    settings: Settings,
    spec: dp.TableSpec,
    once: bool,
    report: Callable[[str], None] = print,
) -> Flow:
    """Start the streaming query of one table; its Delta table exists when this returns."""
    uri = location(settings, spec)
    frame = spec.function(**_inputs(spark, settings, spec))
    delta_sink.ensure_table(uri, storage_options(settings, uri), frame.schema, spec.partition_by)
    checkpoint_location = checkpoint(settings, spec)
    writer = (
        frame.writeStream.foreachBatch(
            _batch_writer(settings, spec, uri, checkpoint_location, report)
        )
        .outputMode(spec.output_mode)
        .option("checkpointLocation", checkpoint_location)
        .queryName(f"{spec.system}.{spec.name}".replace("-", "_"))
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.pipelines.trigger_seconds} seconds")
    return Flow(spec, writer.start(), uri)


def run_once(
    spark: SparkSession, settings: Settings, system: str, report: Callable[[str], None] = print
) -> list[Flow]:
    """Process everything available, table by table, upstream first, then return."""
    flows = []
    for spec in load_system(system):
        flow = start_flow(spark, settings, spec, once=True, report=report)
        flow.query.awaitTermination()
        flows.append(flow)
    return flows


def run_continuous(
    spark: SparkSession,
    settings: Settings,
    systems: list[str],
    report: Callable[[str], None] = print,
) -> None:
    """Run every table of `systems` until Ctrl-C or until a query fails, then stop them all."""
    flows: list[Flow] = []
    try:
        for system in systems:
            for spec in load_system(system):
                flows.append(start_flow(spark, settings, spec, once=False, report=report))
                _wait_initialized(flows[-1].query)
        report(f"running {len(flows)} tables: " + ", ".join(f.query.name for f in flows))
        spark.streams.awaitAnyTermination()
    except StreamingQueryException:
        pass  # reported below, in one line, with the query it came from
    finally:
        for flow in flows:
            flow.query.stop()
    for flow in flows:
        error = flow.query.exception()
        if error is not None:
            raise RuntimeError(f"{flow.query.name} stopped: {error.desc.splitlines()[0]}")


def _wait_initialized(query: StreamingQuery, timeout: float = 180.0) -> None:
    """Let one query start its Python source before the next: on a small machine, starting
    a dozen source processes at once outlasts Spark's wait for them to connect back."""
    deadline = time.monotonic() + timeout
    while query.isActive and time.monotonic() < deadline:
        if not query.status["message"].startswith("Initializing"):
            return
        time.sleep(0.2)
