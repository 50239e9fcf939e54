"""Writes one micro-batch of a flow: its own table and the tables computed inside the same
batch (`flows.plan_chain`), each as its own Delta transaction, exactly once.

Every table's rows are planned first, on the driver, from its upstream's kept rows (the
expectations' filters included); the writes then run side by side, since none waits on
another's commit, only on the batch they all read (persisted once). Appends and overwrites
are idempotent writes (`txnAppId` = the table's writer id, `txnVersion` = the batch id); an
aggregate is a MERGE on its keys under the same ids, which Delta Lake reads from the session:
each merged table has a session of its own, so two merges of one batch never share them. The
counts of every table the batch wrote go to the system's event log in one commit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings
from spark_jobs import catalog, event_log
from spark_jobs.flows import Link, OutputMode, WriteMode
from spark_jobs.lakeflow.api import TableSpec
from spark_jobs.lakeflow.loader import Pipeline
from spark_jobs.quality import BatchQuality, CheckedBatch, check

Logged = tuple[TableSpec, BatchQuality, float]


@dataclass(frozen=True)
class TableWrite:
    """One table's share of a micro-batch: its checked rows and how they reach its table."""

    spec: TableSpec
    write: WriteMode
    checked: CheckedBatch
    uri: str


def checkpoint_query_id(checkpoint_location: str) -> str | None:
    """The streaming query id Spark keeps in `<checkpoint>/metadata`, if it is there: the
    flow's writer id for Delta's idempotent writes, stable across restarts."""
    location = checkpoint_location.removeprefix("file://").removeprefix("file:")
    try:
        query_id: str = json.loads((Path(location) / "metadata").read_text().splitlines()[0])["id"]
        return query_id
    except (FileNotFoundError, IndexError, KeyError, json.JSONDecodeError):
        return None


def batch_writer(
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    write: WriteMode,
    checkpoint_location: str,
    report: Callable[[str], None],
    links: tuple[Link, ...] = (),
) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function: the table's batch and each chained table's, checked and
    written exactly once, side by side; one event-log commit for all."""

    def process(batch: DataFrame, batch_id: int) -> None:
        query_id = checkpoint_query_id(checkpoint_location)
        if links:
            batch = batch.persist()  # read once from the source, written several times
        try:
            writes = _plan(settings, pipeline, spec, write, links, batch)
            log = _write_all(writes, query_id, batch_id)
            app_id = f"{spec.system}.{spec.name}@{query_id}"
            event_log.record_batch(batch.sparkSession, settings, app_id, batch_id, log)
        finally:
            if links:
                batch.unpersist()
        for table, quality, seconds in log:
            if quality.rows_in:
                dropped = f" ({quality.rows_dropped} dropped)" if quality.rows_dropped else ""
                report(
                    f"{table.system}.{table.name} batch {batch_id}: {quality.rows_in} in, "
                    f"{quality.rows_out} out{dropped} in {seconds:.1f}s"
                )

    return process


def _plan(
    settings: Settings,
    pipeline: Pipeline,
    spec: TableSpec,
    write: WriteMode,
    links: tuple[Link, ...],
    batch: DataFrame,
) -> list[TableWrite]:
    """Every table's checked rows for this batch, upstream first: a chained table is computed
    from the rows its upstream's expectations keep. Nothing runs yet."""
    root = check(batch, spec.expectations, f"{spec.system}.{spec.name}")
    writes = [TableWrite(spec, write, root, catalog.location(settings, spec))]
    kept = {spec.target: root.kept}
    for link in links:
        frame = pipeline.call(link.spec, rows={link.upstream: kept[link.upstream]})
        checked = check(frame, link.spec.expectations, f"{link.spec.system}.{link.spec.name}")
        kept[link.spec.target] = checked.kept
        writes.append(
            TableWrite(link.spec, link.write, checked, catalog.location(settings, link.spec))
        )
    return writes


def _write_all(writes: list[TableWrite], query_id: str | None, batch_id: int) -> list[Logged]:
    """Write every table of the batch side by side; when one fails, the others still finish
    (each is its own transaction, replayed or skipped with the batch) before it is raised."""
    if len(writes) == 1:
        return [_write_once(writes[0], query_id, batch_id)]
    with ThreadPoolExecutor(len(writes), thread_name_prefix="table-write") as pool:
        futures: list[Future[Logged]] = [
            pool.submit(_write_once, table, query_id, batch_id) for table in writes
        ]
        wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]


# The last batch each writer committed in this process: a batch is replayed only when its
# query starts again, so the Delta log is read once per writer, not at every batch.
_COMMITTED: dict[str, int] = {}
_COMMITTED_LOCK = threading.Lock()


def _write_once(table: TableWrite, query_id: str | None, batch_id: int) -> Logged:
    """Write one table's rows as Delta transaction `batch_id` of the writer `<table>@<query
    id>`, unless that writer committed the batch already; returns what to log."""
    began = time.monotonic()
    spec, kept = table.spec, table.checked.kept
    app_id = f"{spec.system}.{spec.name}@{query_id}"
    with _COMMITTED_LOCK:
        committed = _COMMITTED.get(app_id)
    if committed is None:
        committed = catalog.committed_batch(kept.sparkSession, table.uri, app_id)
    if committed is not None and committed >= batch_id:
        # Written before a crash, perhaps not logged: Spark replays the batch. Its plan
        # runs to the end unwritten, which counts the expectations for the event log
        # (itself written once per batch) and commits a stateful query's state.
        kept.write.format("noop").mode("overwrite").save()
        with _COMMITTED_LOCK:
            _COMMITTED[app_id] = committed
    else:
        write = table.write
        try:
            write_batch(kept, table.uri, app_id, batch_id, write.mode, write.keys, write.combine)
        except BaseException:
            with _COMMITTED_LOCK:  # it may have committed: read the Delta log next time
                _COMMITTED.pop(app_id, None)
            raise
        with _COMMITTED_LOCK:
            _COMMITTED[app_id] = batch_id
    return spec, table.checked.quality(), time.monotonic() - began


def write_batch(
    rows: DataFrame,
    uri: str,
    app_id: str,
    batch_id: int,
    mode: OutputMode = "append",
    keys: tuple[str, ...] = (),
    combine: tuple[tuple[str, str], ...] = (),
    replace_schema: bool = False,
) -> None:
    """Write one batch as Delta transaction `batch_id` of writer `app_id`: appended, merged
    on `keys` (an aggregate's groups; `combine` folds partial aggregates into the table's
    values), or replacing the table (`complete`)."""
    if mode == "update" and keys:
        _merge(rows, keys, uri, app_id, batch_id, combine)
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


# A session per merged table: MERGE takes its idempotent-write ids from the session's conf,
# and the merges of one batch run at the same time.
_MERGE_SESSIONS: dict[str, SparkSession] = {}
_MERGE_SESSIONS_LOCK = threading.Lock()


def _merge_session(rows: DataFrame, uri: str) -> SparkSession:
    """The session the merges into `uri` run in (the catalog and settings of `rows`')."""
    with _MERGE_SESSIONS_LOCK:
        session = _MERGE_SESSIONS.get(uri)
        if session is None or session.sparkContext is not rows.sparkSession.sparkContext:
            session = _MERGE_SESSIONS[uri] = rows.sparkSession.newSession()
        return session


def _merge(
    rows: DataFrame,
    keys: tuple[str, ...],
    uri: str,
    app_id: str,
    batch_id: int,
    combine: tuple[tuple[str, str], ...] = (),
) -> None:
    """Upsert aggregate rows on `keys` (null-safe: a group whose key is null stays one row).

    The rows are materialized first: that one pass runs the batch's plan (and its expectation
    counts) once, however often MERGE reads its source.
    """
    from delta.tables import DeltaTable

    source = rows.localCheckpoint(eager=True)
    condition = " AND ".join(f"target.`{key}` <=> source.`{key}`" for key in keys)
    session = _merge_session(rows, uri)
    session.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    session.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
    merge = (
        DeltaTable.forPath(session, uri).alias("target").merge(source.alias("source"), condition)
    )
    matched = (
        merge.whenMatchedUpdate(set=dict(combine)) if combine else merge.whenMatchedUpdateAll()
    )
    matched.whenNotMatchedInsertAll().execute()
