"""Runs a pipeline's flows as streaming queries: one per flow, less the tables computed inside
another flow's micro-batches (`flows.plan_chain`).

A pipeline (`lakeflow.loader`) is loaded and its graph resolved first; each query then runs
its flow's function, which reads a source or an upstream table by name through Delta Lake's
streaming source, and writes each micro-batch with Delta Lake for Spark, exactly once
(`batches`). A materialized view is recomputed whole from the current
snapshots of its upstream tables and overwrites its table; `run_continuous` refreshes it
when an upstream table has changed, at most every `pipelines.refresh_seconds`.

When an Auto Loader source finds new columns, it records the evolved schema and stops its
query; the runner then restarts that query, whose table gains the new columns. A query whose
Python worker did not start in time, or whose upstream table gained columns, is restarted the
same way (see `restart_reason`). Spark and Delta Lake do the work; this module only wires
them.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from iotlake.config import Settings
from spark_jobs import JavaObject, catalog, event_log, late_rows
from spark_jobs.batches import batch_writer, write_batch
from spark_jobs.flows import Link, plan_chain, write_mode
from spark_jobs.io.autoloader import SchemaEvolutionError
from spark_jobs.io.storage import is_local, local_path
from spark_jobs.lakeflow.api import TableSpec
from spark_jobs.lakeflow.loader import Pipeline, declared_or, load_pipeline
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
UPSTREAM_GAINED_COLUMNS = "its upstream table gained columns"


def _discover_systems() -> dict[str, Path]:
    """A system is a pipeline folder `spark_jobs/<system>/` with its `databricks.yml`:
    adding one is adding such a folder, nothing to register."""
    return {
        path.parent.name.replace("_", "-"): path.parent
        for path in sorted(PIPELINES_ROOT.glob("*/databricks.yml"))
    }


SYSTEM_FOLDERS = _discover_systems()
SYSTEMS = tuple(SYSTEM_FOLDERS)


@dataclass(frozen=True)
class Flow:
    """A table's running query, where it writes, and the tables its batches also write."""

    pipeline: Pipeline
    spec: TableSpec
    query: StreamingQuery
    table_uri: str
    links: tuple[Link, ...] = ()

    @property
    def chained(self) -> tuple[TableSpec, ...]:
        return tuple(link.spec for link in self.links)


def load(
    system: str | Path,
    settings: Settings,
    spark: SparkSession | None = None,
    target: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> Pipeline:
    """One of the five systems by name, or any pipeline folder; with `spark`, resolved."""
    if isinstance(system, str) and system in SYSTEM_FOLDERS:
        path = SYSTEM_FOLDERS[system]
    elif isinstance(system, Path) or "/" in system or Path(system).exists():
        path = Path(system)
    else:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    return load_pipeline(
        path,
        settings,
        spark,
        target=target or _same_target(path, settings.target),
        variables=variables,
    )


def _same_target(path: Path, target: str) -> str | None:
    """iotlake's own target (dev, prod) picks the bundle's target of that name when it has
    one; otherwise the bundle's default applies. Spark's pipeline spec has no targets."""
    import yaml

    for name in ("databricks.yml", "databricks.yaml"):
        if (path / name).is_file():
            document = yaml.safe_load((path / name).read_text()) or {}
            return target if target in (document.get("targets") or {}) else None
    return None


def load_system(system: str, settings: Settings) -> list[TableSpec]:
    """The tables of a system as declared, without Spark (names, layers, expectations)."""
    return [spec for spec in load(system, settings).specs.values() if not spec.is_view]


def location(settings: Settings, spec: TableSpec) -> str:
    return catalog.location(settings, spec)


def checkpoint(settings: Settings, spec: TableSpec) -> str:
    """Under the table root for a local lake; Spark cannot write checkpoints to s3:// here.
    An `append_flow` keeps its own beside its table's."""
    folder = "_checkpoint" if not spec.is_flow else f"_checkpoint_{spec.name}"
    if is_local(location(settings, spec)):
        return str(Path(local_path(location(settings, spec))) / folder)
    root = settings.state_dir / "checkpoints" / settings.target / spec.system / spec.target
    return str((root / folder).resolve())


@contextlib.contextmanager
def _spark_conf(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """A flow's `spark_conf` while its query starts (the query keeps its own copy)."""
    saved = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, saved_value in saved.items():
            if saved_value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, saved_value)


def start_flow(
    spark: SparkSession,
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    once: bool,
    report: Callable[[str], None] = print,
) -> Flow:
    """Start the streaming query of one flow with the tables its batches also compute (see
    `flows.plan_chain`); every table it writes exists when this returns."""
    frame = pipeline.frame(spec)
    table = pipeline.specs[spec.target]
    catalog.ensure_table(spark, settings, table, declared_or(table, frame))
    write = write_mode(frame)
    links = plan_chain(pipeline, spec, frame)
    for link in links:
        declared = None if link.spec.schema is not None else link.schema
        catalog.ensure_table(spark, settings, link.spec, declared)
    checkpoint_location = checkpoint(settings, spec)
    process = batch_writer(settings, pipeline, spec, write, checkpoint_location, report, links)
    writer = (
        frame.writeStream.foreachBatch(process)
        .outputMode(write.mode)
        .option("checkpointLocation", checkpoint_location)
        .queryName(f"{spec.system}.{spec.name}".replace("-", "_"))
    )
    if once or spec.once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.pipelines.trigger_seconds} seconds")
    with _spark_conf(spark, spec.spark_conf):
        query = writer.start()
    return Flow(pipeline, spec, query, location(settings, spec), links)


def refresh_view(
    spark: SparkSession,
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    report: Callable[[str], None],
) -> int:
    """Recompute a materialized view and overwrite its table; returns the rows written.

    Each refresh is one numbered batch of the view's own writer, logged like a stream's batch.
    """
    began = time.monotonic()
    uri = location(settings, spec)
    name = f"{spec.system}.{spec.name}"
    app_id = f"{name}@view"
    frame = pipeline.frame(spec)
    catalog.ensure_table(spark, settings, spec, declared_or(spec, frame))
    committed = catalog.committed_batch(spark, uri, app_id)
    batch_id = 0 if committed is None else committed + 1
    checked = check(frame, spec.expectations, name)
    write_batch(checked.kept, uri, app_id, batch_id, "complete", replace_schema=True)
    quality = checked.quality()
    seconds = time.monotonic() - began
    event_log.record(spark, settings, spec, app_id, batch_id, quality, seconds)
    report(f"{name} refresh {batch_id}: {quality.rows_out} rows in {seconds:.1f}s")
    return quality.rows_out


def _upstream_versions(
    spark: SparkSession, settings: Settings, pipeline: Pipeline, spec: TableSpec
) -> tuple[int | None, ...]:
    """The current version of each upstream table of a view: a refresh is due when it moves."""
    return tuple(
        catalog.version(spark, location(settings, pipeline.specs[name]))
        for name in spec.upstream
        if name in pipeline.specs
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
        return UPSTREAM_GAINED_COLUMNS
    return None


# The errors iotlake's own sources raise for a bad option or a stream they cannot read: their
# message is the line a user needs, deep inside Spark's report of the stopped query.
SOURCE_ERROR = re.compile(r"^\s*[\w.]*\.(?:\w+OptionError|KinesisReadError): (.+)$", re.MULTILINE)


def stop_reason(error: BaseException) -> str:
    """One line for a query that stopped: the message of the error an iotlake source raised
    (`kinesis source: option 'streamName' names ...`), else the first line of Spark's."""
    text = str(error)
    found = SOURCE_ERROR.findall(text)
    if found:
        return str(found[-1]).split(" SQLSTATE")[0].strip()
    return text.splitlines()[0] if text else type(error).__name__


def run_table(
    spark: SparkSession,
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    report: Callable[[str], None],
) -> Flow:
    """Run one flow's query with AvailableNow until its input is drained (see `_finish`)."""
    return _finish(
        spark, settings, start_flow(spark, settings, pipeline, spec, True, report), report
    )


def _finish(
    spark: SparkSession, settings: Settings, flow: Flow, report: Callable[[str], None]
) -> Flow:
    """Wait for an AvailableNow query to drain its input, starting it again when its
    source's schema evolved (the restart reads the batch that found the new columns) or a
    Python worker failed to start."""
    spec = flow.spec
    for _ in range(MAX_RESTARTS + 1):
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
                raise RuntimeError(f"{spec.system}.{spec.name}: {stop_reason(error)}") from None
            report(f"{spec.system}.{spec.name}: {reason}; restarting")
            flow = start_flow(spark, settings, flow.pipeline, spec, True, report)
    raise RuntimeError(f"{spec.system}.{spec.name}: stopped {MAX_RESTARTS} times in one run")


def run_once(
    spark: SparkSession,
    settings: Settings,
    system: str | Path | Pipeline,
    report: Callable[[str], None] = print,
    full_refresh: bool = False,
) -> list[Flow]:
    """Process everything available, then return: in waves, each flow as soon as the tables
    it reads are written, the flows of a wave side by side (a small machine spends much of a
    short query's time waiting on the driver, which another query fills). Materialized views
    are refreshed once their upstream tables have caught up."""
    pipeline = system if isinstance(system, Pipeline) else load(system, settings, spark)
    if full_refresh:
        reset(spark, settings, pipeline)
    pending = pipeline.resolve_all()
    event_log.ensure(spark, settings, pipeline)
    flows: list[Flow] = []
    while pending:
        writing = {spec.target for spec in pending}
        ready = [spec for spec in pending if not writing & _tables_read(pipeline, spec)]
        if not ready:
            names = ", ".join(spec.name for spec in pending)
            raise RuntimeError(f"{pipeline.name}: no flow can start among {names}")
        wave: list[Flow] = []
        try:
            for spec in ready:
                if spec.materialized:
                    refresh_view(spark, settings, pipeline, spec, report)
                else:
                    wave.append(start_flow(spark, settings, pipeline, spec, True, report))
            wave = [_finish(spark, settings, flow, report) for flow in wave]
        finally:
            for flow in wave:
                flow.query.stop()
        flows += wave
        done = {spec.name for spec in ready} | {s.name for f in wave for s in f.chained}
        pending = [spec for spec in pending if spec.name not in done]
    return flows


def _tables_read(pipeline: Pipeline, spec: TableSpec) -> set[str]:
    """The tables a flow reads, through the temporary views it reads (computed in place)."""
    found: set[str] = set()
    for name in spec.upstream:
        upstream = pipeline.specs.get(name)
        if upstream is not None and upstream.is_view and upstream is not spec:
            found |= _tables_read(pipeline, upstream)
        elif name != spec.target:
            found.add(name)
    return found


def reset(spark: SparkSession, settings: Settings, pipeline: Pipeline) -> None:
    """`--full-refresh`: empty every table of the pipeline and forget its checkpoints, so
    the next run reprocesses its sources from the start (Lakeflow's full refresh)."""
    import shutil

    for spec in pipeline.specs.values():
        if spec.is_view:
            continue
        uri = location(settings, spec)
        if is_local(uri):
            shutil.rmtree(local_path(uri), ignore_errors=True)
        else:
            jvm: JavaObject = spark.sparkContext._jvm
            path = jvm.org.apache.hadoop.fs.Path(uri)
            path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)
            shutil.rmtree(checkpoint(settings, spec), ignore_errors=True)


def run_continuous(
    spark: SparkSession,
    settings: Settings,
    pipelines: list[Pipeline],
    report: Callable[[str], None] = print,
) -> None:
    """Run every flow of `pipelines` until Ctrl-C or until a query fails, then stop them all."""
    flows: list[Flow] = []
    views: dict[TableSpec, tuple[int | None, ...] | None] = {}
    owners: dict[TableSpec, Pipeline] = {}
    try:
        for pipeline in pipelines:
            specs = pipeline.resolve_all()
            event_log.ensure(spark, settings, pipeline)
            for spec in specs:
                if spec.materialized:
                    views[spec], owners[spec] = None, pipeline
                    continue
                if any(spec in flow.chained for flow in flows):
                    continue  # written by its upstream's flow
                flows.append(
                    start_flow(
                        spark,
                        settings,
                        pipeline,
                        spec,
                        once=False,
                        report=report,
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
        _supervise(spark, settings, flows, views, owners, report)
    finally:
        for flow in flows:
            flow.query.stop()
    for flow in flows:
        error = flow.query.exception()
        if error is not None:
            failed = failure_message(error)
            if failed is not None:
                raise ExpectationFailed(failed)
            raise RuntimeError(f"{flow.query.name} stopped: {stop_reason(error)}")


def _supervise(
    spark: SparkSession,
    settings: Settings,
    flows: list[Flow],
    views: dict[TableSpec, tuple[int | None, ...] | None],
    owners: dict[TableSpec, Pipeline],
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
            spark.streams.awaitAnyTermination(timeout=1)
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
            flows[index] = start_flow(spark, settings, flow.pipeline, flow.spec, False, report)
        spark.streams.resetTerminated()
        if views and time.monotonic() >= next_refresh:
            for spec, seen in views.items():
                versions = _upstream_versions(spark, settings, owners[spec], spec)
                if versions != seen:
                    refresh_view(spark, settings, owners[spec], spec, report)
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
