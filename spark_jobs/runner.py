"""Runs a pipeline's flows as streaming queries, one per table (or `append_flow`).

A pipeline (`lakeflow.loader`) is loaded and its graph resolved first; each query then runs
its flow's function, which reads a source or an upstream table by name through Delta Lake's
streaming source, and in each micro-batch writes the
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
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from iotlake.config import Settings
from spark_jobs import catalog, event_log, late_rows
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


OutputMode = Literal["append", "update", "complete"]


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
    chained: tuple[TableSpec, ...] = ()


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
    uri: str,
    app_id: str,
    batch_id: int,
    mode: OutputMode = "append",
    keys: tuple[str, ...] = (),
    replace_schema: bool = False,
) -> None:
    """Write one batch as Delta transaction `batch_id` of writer `app_id`: appended, merged
    on `keys` (an aggregate's groups), or replacing the table (`complete`)."""
    if mode == "update" and keys:
        _merge(rows, keys, uri, app_id, batch_id)
        return
    writer = (
        rows.write.format("delta")
        .mode("append" if mode == "append" else "overwrite")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
    )
    if replace_schema:
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


@dataclass(frozen=True)
class WriteMode:
    """How a streaming flow's batches reach its table, read off its plan: rows appended;
    an aggregate's changed groups merged on its grouping columns; or, for a global aggregate
    or a sorted one, the whole result replacing the table."""

    mode: OutputMode
    keys: tuple[str, ...] = ()


def write_mode(frame: DataFrame) -> WriteMode:
    """The write a flow's plan needs; Lakeflow decides it the same way, unasked."""
    plan = frame._jdf.queryExecution().analyzed()  # type: ignore[operator]
    text = plan.toString()
    if not _AGGREGATE.search(text):
        return WriteMode("append")
    if _SORT.search(text):
        return WriteMode("complete")
    keys = _grouping_columns(plan)
    return WriteMode("update", keys) if keys else WriteMode("complete")


_AGGREGATE = re.compile(r"^[\s+:|~-]*Aggregate\b", re.MULTILINE)
_SORT = re.compile(r"^[\s+:|~-]*Sort\b", re.MULTILINE)


def _seq(scala_seq) -> list:
    return [scala_seq.apply(index) for index in range(scala_seq.size())]


def _ids(expression) -> set[int]:
    return {attribute.exprId().id() for attribute in _seq(expression.references().toSeq())}


def _derived(expression, keys: set[int]) -> bool:
    """Computed from key columns alone (a constant, referencing nothing, is not a key)."""
    references = _ids(expression)
    return bool(references) and references <= keys


def _grouping_columns(plan) -> tuple[str, ...]:
    """Output columns computed from the aggregate's grouping expressions alone: the keys a
    changed group's row replaces its earlier row by. Empty when the plan is not a chain of
    single-input nodes over one aggregate."""
    above = []
    node = plan
    while node.getClass().getSimpleName() != "Aggregate":
        children = _seq(node.children())
        if len(children) != 1:
            return ()
        above.append(node)
        node = children[0]
    grouped = set().union(*(_ids(e) for e in _seq(node.groupingExpressions())))
    keys = {e.exprId().id() for e in _seq(node.aggregateExpressions()) if _derived(e, grouped)}
    for parent in reversed(above):
        # A projection keeps a key column (it references itself) and derives new ones.
        if parent.getClass().getSimpleName() == "Project":
            keys = {e.exprId().id() for e in _seq(parent.projectList()) if _derived(e, keys)}
    return tuple(a.name() for a in _seq(plan.output()) if a.exprId().id() in keys)


def _batch_writer(
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    write: WriteMode,
    checkpoint_location: str,
    report: Callable[[str], None],
    chained: tuple[TableSpec, ...] = (),
) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function: the table's batch, then each chained table's, each with
    its expectations, an exactly-once write and its event-log rows."""
    uri = location(settings, spec)

    def process(batch: DataFrame, batch_id: int) -> None:
        query_id = checkpoint_query_id(checkpoint_location)
        if chained:
            batch = batch.persist()  # read once from the source, written several times
        try:
            kept = _write_once(settings, spec, write, batch, uri, query_id, batch_id, report)
            for child in chained:
                rows = pipeline.call(child, rows={spec.target: kept})
                child_uri = location(settings, child)
                append = WriteMode("append")
                _write_once(settings, child, append, rows, child_uri, query_id, batch_id, report)
        finally:
            if chained:
                batch.unpersist()

    return process


def _write_once(
    settings: Settings,
    spec: TableSpec,
    write: WriteMode,
    batch: DataFrame,
    uri: str,
    query_id: str | None,
    batch_id: int,
    report: Callable[[str], None],
) -> DataFrame:
    """Check, write and log one batch of one flow as Delta transaction `batch_id` of the
    writer `<flow>@<query id>`; returns the rows its expectations kept."""
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
        write_batch(checked.kept, uri, app_id, batch_id, write.mode, write.keys)
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


def chains(specs: list[TableSpec]) -> dict[str, tuple[TableSpec, ...]]:
    """Candidate tables computed inside their upstream's micro-batch, by upstream flow name.

    A streaming table whose only upstream is another streaming table of the pipeline, written
    by one flow, needs no query of its own when neither keeps state (checked on their plans
    when the upstream's flow starts): the upstream's writer applies it to the rows it just
    wrote, one hop and one Delta read fewer between an event and the gold tables.
    """
    by_target: dict[str, list[TableSpec]] = {}
    for spec in specs:
        by_target.setdefault(spec.target, []).append(spec)
    found: dict[str, list[TableSpec]] = {}
    for spec in specs:
        if spec.materialized or spec.is_flow or len(by_target[spec.target]) != 1:
            continue
        if len(spec.upstream) != 1 or len(by_target.get(spec.upstream[0], [])) != 1:
            continue
        parent = by_target[spec.upstream[0]][0]
        if parent.materialized:
            continue
        if parent.name in {child.name for children in found.values() for child in children}:
            continue  # one hop: a chained table's own children run as queries
        found.setdefault(parent.name, []).append(spec)
    return {name: tuple(children) for name, children in found.items()}


def _stateless(frame: DataFrame) -> bool:
    plan = frame._jdf.queryExecution().analyzed().toString()  # type: ignore[operator]
    return _STATEFUL_NODES.search(plan) is None


@contextlib.contextmanager
def _spark_conf(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """A flow's `spark_conf` while its query starts (the query keeps its own copy)."""
    saved = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def start_flow(
    spark: SparkSession,
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    once: bool,
    report: Callable[[str], None] = print,
    candidates: tuple[TableSpec, ...] = (),
) -> Flow:
    """Start the streaming query of one flow, and chain to it the `candidates` (see
    `chains`) whose plan keeps no state; their Delta tables exist when this returns."""
    frame = pipeline.frame(spec)
    table = pipeline.specs[spec.target]
    catalog.ensure_table(spark, settings, table, declared_or(table, frame))
    write = write_mode(frame)
    chained = []
    for child in candidates if write.mode == "append" and _stateless(frame) else ():
        rows = pipeline.call(child, rows={spec.target: frame})
        if pipeline.consumed_rows() and _stateless(rows):
            catalog.ensure_table(spark, settings, child, rows.schema)
            chained.append(child)
    checkpoint_location = checkpoint(settings, spec)
    process = _batch_writer(
        settings, pipeline, spec, write, checkpoint_location, report, tuple(chained)
    )
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
    return Flow(pipeline, spec, query, location(settings, spec), tuple(chained))


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
        return "its upstream table gained columns"
    return None


def run_table(
    spark: SparkSession,
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    report: Callable[[str], None],
    candidates: tuple[TableSpec, ...] = (),
) -> Flow:
    """Run one flow's query with AvailableNow until its input is drained, restarting it when
    its source's schema evolves (the restart reads the batch that found the new columns) or
    a Python worker failed to start."""
    for _ in range(MAX_RESTARTS + 1):
        flow = start_flow(spark, settings, pipeline, spec, True, report, candidates)
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
    spark: SparkSession,
    settings: Settings,
    system: str | Path | Pipeline,
    report: Callable[[str], None] = print,
    full_refresh: bool = False,
) -> list[Flow]:
    """Process everything available, flow by flow, upstream first, then return.

    Materialized views are refreshed once their upstream tables have caught up.
    """
    pipeline = system if isinstance(system, Pipeline) else load(system, settings, spark)
    if full_refresh:
        reset(spark, settings, pipeline)
    flows: list[Flow] = []
    specs = pipeline.resolve_all()
    event_log.ensure(spark, settings, pipeline)
    candidates = chains(specs)
    for spec in specs:
        if any(spec in flow.chained for flow in flows):
            continue  # written by its upstream's flow
        if spec.materialized:
            refresh_view(spark, settings, pipeline, spec, report)
        else:
            flows.append(
                run_table(spark, settings, pipeline, spec, report, candidates.get(spec.name, ()))
            )
    return flows


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
            jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
            path = jvm.org.apache.hadoop.fs.Path(uri)
            path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)  # type: ignore[attr-defined]
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
            candidates = chains(specs)
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
            raise RuntimeError(f"{flow.query.name} stopped: {str(error).splitlines()[0]}")


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
                spark, settings, flow.pipeline, flow.spec, False, report, flow.chained
            )
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
