"""The `event_log` Delta table of each system: per table and batch, rows and expectation counts.

Like a Lakeflow pipeline's event log, it is what the data-quality page reads. Each batch's
rows are appended as an idempotent Delta write under the same writer id and batch number as
the data (`txnAppId` / `txnVersion`), so a batch replayed after a crash is logged once; the
tables one micro-batch writes are logged in one commit.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pyspark.sql import SparkSession
from pyspark.sql.types import (
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from iotlake.config import Settings
from spark_jobs import catalog
from spark_jobs.io.storage import table_uri
from spark_jobs.lakeflow.api import Expectation, TableSpec
from spark_jobs.quality import BatchQuality

if TYPE_CHECKING:
    from spark_jobs.lakeflow.loader import Pipeline

TABLE = "event_log"
SCHEMA = StructType(
    [
        StructField("timestamp", TimestampType()),
        StructField("system", StringType()),
        StructField("table", StringType()),
        StructField("batch_id", LongType()),
        StructField("expectation", StringType()),
        StructField("action", StringType()),
        StructField("passed", LongType()),
        StructField("failed", LongType()),
        StructField("rows_in", LongType()),
        StructField("rows_out", LongType()),
        StructField("duration_ms", LongType()),
    ]
)


def location(settings: Settings, system: str) -> str:
    return table_uri(settings, system, TABLE)


def ensure(spark: SparkSession, settings: Settings, pipeline: Pipeline) -> str:
    """Create the pipeline's event log before its flows run: they append to it concurrently.
    It is named in the pipeline's catalog and schema like its tables."""
    spec = TableSpec(
        name=TABLE,
        system=pipeline.name,
        kind="streaming",
        function=None,
        catalog=pipeline.catalog,
        schema_name=pipeline.schema,
        comment="Rows and expectation counts of each batch of each flow of the pipeline",
    )
    return catalog.ensure_table(spark, settings, spec, SCHEMA)


def rows(
    spec: TableSpec, batch_id: int, quality: BatchQuality, seconds: float
) -> list[dict[str, Any]]:
    """One flow row for the batch, then one row per expectation."""
    common = {
        "timestamp": dt.datetime.now(dt.UTC),
        "system": spec.system,
        "table": spec.name,
        "batch_id": batch_id,
        "rows_in": quality.rows_in,
        "rows_out": quality.rows_out,
        "duration_ms": int(seconds * 1000),
    }
    flow = {**common, "expectation": None, "action": None, "passed": None, "failed": None}
    return [flow] + [
        {
            **common,
            "expectation": r.expectation.name,
            "action": r.expectation.action,
            "passed": r.passed,
            "failed": r.failed,
        }
        for r in quality.results
    ]


def record(
    spark: SparkSession,
    settings: Settings,
    spec: TableSpec,
    app_id: str,
    batch_id: int,
    quality: BatchQuality,
    seconds: float,
) -> None:
    """Append the batch's rows, once per writer and batch."""
    record_batch(spark, settings, app_id, batch_id, [(spec, quality, seconds)])


def record_batch(
    spark: SparkSession,
    settings: Settings,
    app_id: str,
    batch_id: int,
    tables: list[tuple[TableSpec, BatchQuality, float]],
) -> None:
    """Append the rows of every table one micro-batch wrote (a flow and the tables computed
    inside its batches) in one commit, once per writer and batch: one commit instead of one
    per table keeps the log off the batch's critical path."""
    log_rows = [
        row for spec, quality, seconds in tables for row in rows(spec, batch_id, quality, seconds)
    ]
    _append(spark, settings, tables[0][0].system, app_id, batch_id, log_rows)


def record_expectation(
    spark: SparkSession,
    settings: Settings,
    spec: TableSpec,
    app_id: str,
    batch_id: int,
    expectation: Expectation,
    passed: int,
    failed: int,
    rows_in: int,
) -> None:
    """One expectation row measured outside the batch function (e.g. rows Spark dropped
    behind a watermark, see `late_rows`), logged once per writer and batch."""
    row = {
        "timestamp": dt.datetime.now(dt.UTC),
        "system": spec.system,
        "table": spec.name,
        "batch_id": batch_id,
        "expectation": expectation.name,
        "action": expectation.action,
        "passed": passed,
        "failed": failed,
        "rows_in": rows_in,
        "rows_out": None,
        "duration_ms": None,
    }
    _append(spark, settings, spec.system, app_id, batch_id, [row])


def _append(
    spark: SparkSession,
    settings: Settings,
    system: str,
    app_id: str,
    batch_id: int,
    log_rows: list[dict[str, Any]],
) -> None:
    (
        spark.createDataFrame(log_rows, SCHEMA)
        .coalesce(1)
        .write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .save(location(settings, system))
    )
