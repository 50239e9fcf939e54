"""Rows a windowed aggregation dropped for arriving behind its watermark, in the event log.

A streaming aggregation with a watermark (`magn_live`: 1-second windows, 3-second
watermark) ignores rows whose window the watermark has already closed. Spark drops them
without an error; it only counts them, per micro-batch, in the query's progress
(`numRowsDroppedByWatermark` of each stateful operator). This module copies that count into
the system's `event_log` as an expectation row, so the data-quality page shows late rows
beside the other rules:

    expectation "within watermark", action "drop", failed = rows dropped,
    passed = the batch's input rows minus those.

What Spark counts: rows dropped at the stateful operator, which for an aggregation comes
after the partial (per input partition) aggregation. Several late events of one window in
one partition are therefore counted once: the count is at least 1 whenever anything was
dropped, and at most the number of late events. The late events themselves are not lost:
they stay in the upstream tables (`sensor`, `raw_stream`); only the aggregate skips them.

Only batches that read rows are looked at (a batch without input drops nothing), and each
batch is logged once: the row rides in an application transaction of its own writer id.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql.streaming.listener import StreamingQueryProgress
from pyspark.sql.streaming.query import StreamingQuery

from iotlake.config import Settings
from spark_jobs import event_log
from spark_jobs.lakeflow.api import Expectation, TableSpec

EXPECTATION = Expectation("within watermark", "event time not behind the query's watermark", "drop")
# Per query run (a restarted query has a new run id): the time of the last progress update
# looked at, and the newest batch with input rows logged.
_SEEN: dict[str, tuple[str, int]] = {}


@dataclass(frozen=True)
class WatermarkDrops:
    """One micro-batch of a watermarked stateful query: rows read and rows dropped late."""

    batch_id: int
    rows_in: int
    dropped: int


def watermark_drops(progress: StreamingQueryProgress) -> WatermarkDrops | None:
    """The drops reported by one progress update; None for queries without a watermark
    or batches that read nothing."""
    event_time = getattr(progress, "eventTime", None) or {}
    operators = getattr(progress, "stateOperators", None) or []
    rows_in = int(getattr(progress, "numInputRows", 0) or 0)
    if "watermark" not in event_time or not operators or rows_in == 0:
        return None
    dropped = sum(int(op.numRowsDroppedByWatermark or 0) for op in operators)
    return WatermarkDrops(int(progress.batchId), rows_in, dropped)


def record(spark: SparkSession, settings: Settings, spec: TableSpec, query: StreamingQuery) -> int:
    """Log the watermark drops of the batches `query` finished since the last call.

    Cheap when nothing is new (one look at the last progress), so the runner can call it
    every time it checks on its queries. Returns the rows dropped in the newly logged batches.
    """
    last = query.lastProgress
    if last is None:
        return 0
    run = str(query.runId)
    looked_at, logged = _SEEN.get(run, ("", -1))
    if last.timestamp == looked_at:
        return 0
    # An idle query repeats progress updates under one batch id, so a batch counts as done
    # once a progress update says it read rows.
    batches = {
        found.batch_id: found
        for found in map(watermark_drops, query.recentProgress)
        if found is not None and found.batch_id > logged
    }
    app_id = f"{spec.system}.{spec.name}@{query.id}/watermark"
    for batch in sorted(batches.values(), key=lambda b: b.batch_id):
        event_log.record_expectation(
            spark,
            settings,
            spec,
            app_id,
            batch.batch_id,
            EXPECTATION,
            passed=max(batch.rows_in - batch.dropped, 0),
            failed=batch.dropped,
            rows_in=batch.rows_in,
        )
    _SEEN[run] = (last.timestamp, max([logged, *batches]))
    return sum(batch.dropped for batch in batches.values())
