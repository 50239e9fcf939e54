"""Turns a system's table declarations into streaming queries, one per table.

Each query reads its upstream (a declared source, or the upstream table by name through Delta
Lake's streaming source), applies the table's function, and in each micro-batch writes the
rows its expectations keep with Delta Lake for Spark, exactly once: appends and overwrites as
idempotent writes (`txnAppId` = the flow's writer id, `txnVersion` = the batch id), update-mode
aggregates as a MERGE on their keys under the same transaction ids. The expectations are
counted in the same pass as the write (`quality.check`) and the batch's counts appended to the
system's `event_log`. A materialized view is recomputed whole from the current snapshots of its
upstream tables and overwrites its table; `run_continuous` refreshes it when an upstream table
has changed, at most every `pipelines.refresh_seconds`.

When an Auto Loader source finds new columns, it records the evolved schema and stops its
query; the runner then restarts that query, whose table gains the new columns. A query whose
Python worker did not start in time, or whose upstream table gained columns, is restarted the
same way (see `restart_reason`). Spark and Delta Lake do the work; this module only wires
them.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import pkgutil
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from iotlake.config import Settings
from spark_jobs import catalog, dp, event_log, late_rows
from spark_jobs.io.autoloader_source import SchemaEvolutionError
from spark_jobs.io.storage import is_local, local_path, table_uri
from spark_jobs.quality import ExpectationFailed, check, failure_message

PIPELINES_ROOT = Path(__file__).resolve().parent
# Restarts allowed per table and run: a query that keeps stopping has a real problem.
MAX_RESTARTS = 10
WORKER_START_FAILURES = (
    "Python worker failed to connect back",
    "Timed out while waiting for the Python worker to connect back",
)
# Delta Lake's streaming source stops when the table it reads gains columns; a restarted
# query reads the new schema.
UPSTREAM_SCHEMA_CHANGES = ("DELTA_SCHEMA_CHANGED",)


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
    """A table's running query, where it writes, and the tables its batches also write."""

    spec: dp.TableSpec
    query: StreamingQuery
    table_uri: str
    chained: tuple[dp.TableSpec, ...] = ()


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
    """The arguments of a table function: upstream streams (snapshots for a materialized
    view), and `settings` if it asks."""
    arguments: dict[str, object] = {}
    for name in spec.upstream:
        if name == "settings":
            arguments[name] = settings
        elif (spec.system, name) in dp.SOURCES and not spec.materialized:
            arguments[name] = dp.SOURCES[(spec.system, name)].function(spark, settings)
        elif (spec.system, name) in dp.TABLES:
            catalog.register(spark, settings, spec.system, name)
            upstream = catalog.table_name(spec.system, name)
            if spec.materialized:
                arguments[name] = spark.read.table(upstream)
            else:
                arguments[name] = spark.readStream.table(upstream)
        else:
            raise ValueError(
                f"{spec.system}.{spec.name}: parameter '{name}' is neither a source nor a table "
                f"of {spec.system}"
            )
    return arguments


def checkpoint_query_id(checkpoint_location: str) -> str | None:
    """The streaming query id Spark keeps in `<checkpoint>/metadata`, if it is there: the
    flow's writer id for Delta's idempotent writes, stable across restarts."""
    location = checkpoint_location.removeprefix("file://").removeprefix("file:")
    try:
        return json.loads((Path(location) / "metadata").read_text().splitlines()[0])["id"]
    except (FileNotFoundError, IndexError, KeyError, json.JSONDecodeError):
        return None


def write_batch(
    rows: DataFrame,
    spec: dp.TableSpec,
    uri: str,
    app_id: str,
    batch_id: int,
) -> None:
    """Write one batch as the table's output mode asks, as Delta transaction `batch_id` of
    writer `app_id`: appended, merged on the table's keys, or replacing the table."""
    if spec.output_mode == "update" and spec.keys:
        _merge(rows, spec.keys, uri, app_id, batch_id)
        return
    mode = "append" if spec.output_mode == "append" else "overwrite"
    writer = (
        rows.write.format("delta")
        .mode(mode)
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
    )
    if spec.materialized:
        writer = writer.option("overwriteSchema", "true")
    writer.save(uri)


def _merge(rows: DataFrame, keys: tuple[str, ...], uri: str, app_id: str, batch_id: int) -> None:
    """Upsert aggregate rows on `keys` (null-safe: a group whose key is null stays one row).

    The rows are materialized first: that one pass runs the batch's plan (and its expectation
    counts) once, however often MERGE reads its source.
    """
    from delta.tables import DeltaTable

    source = rows.localCheckpoint(eager=True)
    condition = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in keys)
    session = rows.sparkSession
    # MERGE takes Delta's idempotent-write ids from the session (this query's own clone).
    session.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    session.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
    try:
        (
            DeltaTable.forPath(session, uri)
            .alias("target")
            .merge(source.alias("source"), condition)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    finally:
        session.conf.unset("spark.databricks.delta.write.txnAppId")
        session.conf.unset("spark.databricks.delta.write.txnVersion")


def _batch_writer(
    settings: Settings,
    spec: dp.TableSpec,
    uri: str,
    checkpoint_location: str,
    report: Callable[[str], None],
    chained: tuple[dp.TableSpec, ...] = (),
) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function: the table's batch, then each chained table's, each with
    its expectations, an exactly-once write and its event-log rows."""

    def process(batch: DataFrame, batch_id: int) -> None:
        query_id = checkpoint_query_id(checkpoint_location)
        if chained:
            batch = batch.persist()  # read once from the source, written several times
        try:
            kept = _write_once(settings, spec, batch, uri, query_id, batch_id, report)
            for child in chained:
                rows = child.function(**_chained_inputs(settings, child, spec, kept))
                child_uri = location(settings, child)
                _write_once(settings, child, rows, child_uri, query_id, batch_id, report)
        finally:
            if chained:
                batch.unpersist()

    return process


def _write_once(
    settings: Settings,
    spec: dp.TableSpec,
    batch: DataFrame,
    uri: str,
    query_id: str | None,
    batch_id: int,
    report: Callable[[str], None],
) -> DataFrame:
    """Check, write and log one batch of one table as Delta transaction `batch_id` of the
    writer `<table>@<query id>`; returns the rows its expectations kept."""
    began = time.monotonic()
    spark = batch.sparkSession
    name = f"{spec.system}.{spec.name}"
    app_id = f"{name}@{query_id}"
    committed = catalog.committed_batch(spark, uri, app_id)
    checked = check(batch, spec.expectations, name)
    if committed is not None and committed >= batch_id:
        # Written before a crash, perhaps not logged: Spark replays the batch. Its plan
        # runs to the end unwritten, which counts the expectations for the event log
        # (itself written once per batch) and commits a stateful query's state.
        checked.kept.write.format("noop").mode("overwrite").save()
    else:
        write_batch(checked.kept, spec, uri, app_id, batch_id)
    quality = checked.quality()
    seconds = time.monotonic() - began
    event_log.record(spark, settings, spec, app_id, batch_id, quality, seconds)
    if quality.rows_in:
        dropped = f" ({quality.rows_dropped} dropped)" if quality.rows_dropped else ""
        report(
            f"{name} batch {batch_id}: {quality.rows_in} in, {quality.rows_out} out"
            f"{dropped} in {seconds:.1f}s"
        )
    return checked.kept


# Plan nodes that keep state across micro-batches or need the whole stream: a table whose
# plan has one cannot be computed from its upstream's micro-batch alone (a streaming plan
# prints its nodes with a leading `~`).
_STATEFUL_NODES = re.compile(
    r"^[\s+:|~-]*(Aggregate|Deduplicate\w*|Join|\w*GroupsWithState|TransformWithState\w*|"
    r"Window|GlobalLimit|LocalLimit|Sort|Distinct)\b",
    re.MULTILINE,
)


def chains(specs: list[dp.TableSpec]) -> dict[str, tuple[dp.TableSpec, ...]]:
    """Tables computed inside their upstream's micro-batch, by upstream name.

    A streaming append table whose only upstream is another streaming append table of the
    system (not a source) and whose function keeps no state (checked on its plan when its
    flow starts) needs no query of its own: its upstream's writer applies it to the rows
    it just wrote, one hop and one Delta read fewer between an event and the gold tables.
    """
    by_name = {spec.name: spec for spec in specs}
    found: dict[str, list[dp.TableSpec]] = {}
    for spec in specs:
        upstream = [name for name in spec.upstream if name != "settings"]
        if spec.materialized or spec.output_mode != "append" or len(upstream) != 1:
            continue
        parent = by_name.get(upstream[0])
        if parent is None or parent.materialized or parent.output_mode != "append":
            continue
        if parent.name in {child.name for children in found.values() for child in children}:
            continue  # one hop: a chained table's own children run as queries
        found.setdefault(parent.name, []).append(spec)
    return {name: tuple(children) for name, children in found.items()}


def _chained_inputs(
    settings: Settings, child: dp.TableSpec, parent: dp.TableSpec, rows: DataFrame
) -> dict[str, object]:
    return {
        name: settings if name == "settings" else rows
        for name in child.upstream
        if name in ("settings", parent.name)
    }


def _stateless(frame: DataFrame) -> bool:
    plan = frame._jdf.queryExecution().analyzed().toString()  # type: ignore[operator]
    return _STATEFUL_NODES.search(plan) is None


def start_flow(
    spark: SparkSession,
    settings: Settings,
    spec: dp.TableSpec,
    once: bool,
    report: Callable[[str], None] = print,
    candidates: tuple[dp.TableSpec, ...] = (),
) -> Flow:
    """Start the streaming query of one table, and chain to it the `candidates` (see
    `chains`) whose plan keeps no state; their Delta tables exist when this returns."""
    uri = location(settings, spec)
    frame = spec.function(**_inputs(spark, settings, spec))
    catalog.ensure_table(spark, settings, spec.system, spec.name, frame.schema, spec.partition_by)
    chained = []
    for child in candidates:
        rows = child.function(**_chained_inputs(settings, child, spec, frame))
        if _stateless(rows):
            catalog.ensure_table(
                spark, settings, child.system, child.name, rows.schema, child.partition_by
            )
            chained.append(child)
    checkpoint_location = checkpoint(settings, spec)
    writer = (
        frame.writeStream.foreachBatch(
            _batch_writer(settings, spec, uri, checkpoint_location, report, tuple(chained))
        )
        .outputMode(spec.output_mode)
        .option("checkpointLocation", checkpoint_location)
        .queryName(f"{spec.system}.{spec.name}".replace("-", "_"))
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.pipelines.trigger_seconds} seconds")
    return Flow(spec, writer.start(), uri, tuple(chained))


def refresh_view(
    spark: SparkSession, settings: Settings, spec: dp.TableSpec, report: Callable[[str], None]
) -> int:
    """Recompute a materialized view and overwrite its table; returns the rows written.

    Each refresh is one numbered batch of the view's own writer, logged like a stream's batch.
    """
    began = time.monotonic()
    uri = location(settings, spec)
    name = f"{spec.system}.{spec.name}"
    app_id = f"{name}@view"
    frame = spec.function(**_inputs(spark, settings, spec))
    catalog.ensure_table(spark, settings, spec.system, spec.name, frame.schema)
    committed = catalog.committed_batch(spark, uri, app_id)
    batch_id = 0 if committed is None else committed + 1
    checked = check(frame, spec.expectations, name)
    write_batch(checked.kept, spec, uri, app_id, batch_id)
    quality = checked.quality()
    seconds = time.monotonic() - began
    event_log.record(spark, settings, spec, app_id, batch_id, quality, seconds)
    report(f"{name} refresh {batch_id}: {quality.rows_out} rows in {seconds:.1f}s")
    return quality.rows_out


def _upstream_versions(
    spark: SparkSession, settings: Settings, spec: dp.TableSpec
) -> tuple[int | None, ...]:
    """The current version of each upstream table of a view: a refresh is due when it moves."""
    return tuple(
        catalog.version(spark, location(settings, dp.TABLES[(spec.system, name)]))
        for name in spec.upstream
        if (spec.system, name) in dp.TABLES
    )


def restart_reason(query: StreamingQuery) -> str | None:
    """Why a stopped query may simply start again from its checkpoint; None if it may not.

    Two stops are expected: an Auto Loader source that recorded new columns (the restarted
    query reads them), and a Python worker that did not connect back within the 10 seconds
    Spark allows (a fixed limit a busy laptop can miss; the next start usually succeeds).
    Lakeflow retries such flows too. Any other error stops the pipeline.
    """
    error = query.exception()
    if error is None:
        return None
    text = str(error)
    if SchemaEvolutionError.__name__ in text:
        notes = [line.strip() for line in text.splitlines() if "new column" in line]
        return notes[0] if notes else "new columns found"
    if any(symptom in text for symptom in WORKER_START_FAILURES):
        return "a Python worker did not connect back in time (machine busy)"
    if any(symptom in text for symptom in UPSTREAM_SCHEMA_CHANGES):
        return "its upstream table gained columns"
    return None


def run_table(
    spark: SparkSession,
    settings: Settings,
    spec: dp.TableSpec,
    report: Callable[[str], None],
    candidates: tuple[dp.TableSpec, ...] = (),
) -> Flow:
    """Run one table's query with AvailableNow until its input is drained, restarting it when
    its source's schema evolves (the restart reads the batch that found the new columns) or
    a Python worker failed to start."""
    for _ in range(MAX_RESTARTS + 1):
        flow = start_flow(spark, settings, spec, once=True, report=report, candidates=candidates)
        try:
            flow.query.awaitTermination()
            late_rows.record(spark, settings, spec, flow.query)
            return flow
        except StreamingQueryException as error:
            failed = failure_message(error)
            if failed is not None:
                raise ExpectationFailed(failed) from None
            reason = restart_reason(flow.query)
            if reason is None:
                raise
            report(f"{spec.system}.{spec.name}: {reason}; restarting")
    raise RuntimeError(f"{spec.system}.{spec.name}: stopped {MAX_RESTARTS} times in one run")


def run_once(
    spark: SparkSession, settings: Settings, system: str, report: Callable[[str], None] = print
) -> list[Flow]:
    """Process everything available, table by table, upstream first, then return.

    Materialized views are refreshed once their upstream tables have caught up.
    """
    return run_tables(spark, settings, system, load_system(system), report)


def run_tables(
    spark: SparkSession,
    settings: Settings,
    system: str,
    specs: list[dp.TableSpec],
    report: Callable[[str], None] = print,
) -> list[Flow]:
    """`run_once` over `specs` (upstream first) of `system`."""
    flows: list[Flow] = []
    event_log.ensure(spark, settings, system)
    candidates = chains(specs)
    for spec in specs:
        if any(spec in flow.chained for flow in flows):
            continue  # written by its upstream's flow
        if spec.materialized:
            refresh_view(spark, settings, spec, report)
        else:
            flows.append(run_table(spark, settings, spec, report, candidates.get(spec.name, ())))
    return flows


def run_continuous(
    spark: SparkSession,
    settings: Settings,
    systems: list[str],
    report: Callable[[str], None] = print,
) -> None:
    """Run every table of `systems` until Ctrl-C or until a query fails, then stop them all."""
    flows: list[Flow] = []
    views: dict[dp.TableSpec, tuple[int | None, ...] | None] = {}
    try:
        for system in systems:
            event_log.ensure(spark, settings, system)
            specs = load_system(system)
            candidates = chains(specs)
            for spec in specs:
                if spec.materialized:
                    views[spec] = None
                    continue
                if any(spec in flow.chained for flow in flows):
                    continue  # written by its upstream's flow
                flows.append(
                    start_flow(
                        spark,
                        settings,
                        spec,
                        once=False,
                        report=report,
                        candidates=candidates.get(spec.name, ()),
                    )
                )
                _wait_initialized(flows[-1].query)
        report(f"running {len(flows)} queries: " + ", ".join(f.query.name for f in flows))
        for flow in flows:
            if flow.chained:
                names = ", ".join(child.name for child in flow.chained)
                report(f"{flow.query.name} also writes {names} from each of its batches")
        if views:
            report(f"refreshing {len(views)} views: " + ", ".join(v.name for v in views))
        _supervise(spark, settings, flows, views, report)
    finally:
        for flow in flows:
            flow.query.stop()
    for flow in flows:
        error = flow.query.exception()
        if error is not None:
            failed = failure_message(error)
            if failed is not None:
                raise ExpectationFailed(failed)
            raise RuntimeError(f"{flow.query.name} stopped: {str(error).splitlines()[0]}")


def _supervise(
    spark: SparkSession,
    settings: Settings,
    flows: list[Flow],
    views: dict[dp.TableSpec, tuple[int | None, ...] | None],
    report: Callable[[str], None],
) -> None:
    """Wait on the queries, restart those `restart_reason` allows, refresh due views.

    Returns when a query stopped for any other reason, or too often (the caller reports it).
    """
    next_refresh = time.monotonic()
    restarts: dict[str, int] = {}
    while True:
        # A failed query is inspected below, query by query.
        with contextlib.suppress(StreamingQueryException):
            spark.streams.awaitAnyTermination(timeout=1.0)
        for index, flow in enumerate(flows):
            # Spark drops rows behind a watermark silently; the event log counts them.
            late_rows.record(spark, settings, flow.spec, flow.query)
            if flow.query.isActive:
                continue
            reason = restart_reason(flow.query)
            restarts[flow.query.name] = restarts.get(flow.query.name, 0) + 1
            if reason is None or restarts[flow.query.name] > MAX_RESTARTS:
                return
            report(f"{flow.query.name}: {reason}; restarting")
            flows[index] = start_flow(
                spark, settings, flow.spec, once=False, report=report, candidates=flow.chained
            )
        spark.streams.resetTerminated()
        if views and time.monotonic() >= next_refresh:
            for spec, seen in views.items():
                versions = _upstream_versions(spark, settings, spec)
                if versions != seen:
                    refresh_view(spark, settings, spec, report)
                    views[spec] = versions
            next_refresh = time.monotonic() + settings.pipelines.refresh_seconds


def _wait_initialized(query: StreamingQuery, timeout: float = 180.0) -> None:
    """Let one query start its Python source before the next: on a small machine, starting
    a dozen source processes at once outlasts Spark's wait for them to connect back."""
    deadline = time.monotonic() + timeout
    while query.isActive and time.monotonic() < deadline:
        if not query.status["message"].startswith("Initializing"):
            return
        time.sleep(0.2)
