"""Writes one micro-batch of a flow: its own table and the tables computed inside the same
batch (`flows.plan_chain`), each as its own Delta transaction, exactly once.

A chained table is computed from the rows its upstream's expectations kept, after that
upstream's write. Appends and overwrites are idempotent writes (`txnAppId` = the table's
writer id, `txnVersion` = the batch id); an aggregate is a MERGE on its keys under the same
ids, which Delta Lake reads from the session's conf. The counts of every table the batch
wrote go to the system's event log in one commit.

The writes run one after another: run side by side (each MERGE in a session of its own) they
took as long in all on two cores, the merges waiting on the CPU the appends held.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame

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
    """The foreachBatch function: the table's batch, then each chained table's from the rows
    its upstream kept, each checked and written exactly once; one event-log commit for all."""

    def process(batch: DataFrame, batch_id: int) -> None:
        query_id = checkpoint_query_id(checkpoint_location)
        app_id = f"{spec.system}.{spec.name}@{query_id}"
        if links:
            batch = batch.persist()  # read once from the source, written several times
        try:
            root = _table_write(settings, spec, write, batch)
            kept, log = {spec.target: root.checked.kept}, [_write_once(root, query_id, batch_id)]
            for link in links:
                frame = pipeline.call(link.spec, rows={link.upstream: kept[link.upstream]})
                table = _table_write(settings, link.spec, link.write, frame)
                log.append(_write_once(table, query_id, batch_id))
                kept[link.spec.target] = table.checked.kept
            event_log.record_batch(batch.sparkSession, settings, app_id, batch_id, log)
        finally:
            if links:
                batch.unpersist()
        for table_spec, quality, seconds in log:
            if quality.rows_in:
                dropped = f" ({quality.rows_dropped} dropped)" if quality.rows_dropped else ""
                report(
                    f"{table_spec.system}.{table_spec.name} batch {batch_id}: "
                    f"{quality.rows_in} in, {quality.rows_out} out{dropped} in {seconds:.1f}s"
                )

    return process


def _table_write(
    settings: Settings, spec: TableSpec, write: WriteMode, rows: DataFrame
) -> TableWrite:
    """A table's rows for this batch with its expectations applied; nothing runs yet."""
    checked = check(rows, spec.expectations, f"{spec.system}.{spec.name}")
    return TableWrite(spec, write, checked, catalog.location(settings, spec))


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
    session = rows.sparkSession
    # MERGE takes Delta's idempotent-write ids from the session (this query's own clone).
    session.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    session.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
    try:
        merge = (
            DeltaTable.forPath(session, uri)
            .alias("target")
            .merge(source.alias("source"), condition)
        )
        matched = (
            merge.whenMatchedUpdate(set=dict(combine)) if combine else merge.whenMatchedUpdateAll()
        )
        matched.whenNotMatchedInsertAll().execute()
    finally:
        session.conf.unset("spark.databricks.delta.write.txnAppId")
        session.conf.unset("spark.databricks.delta.write.txnVersion")
