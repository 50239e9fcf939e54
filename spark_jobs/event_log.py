"""The `event_log` Delta table of each system: per table and batch, rows and expectation counts.

Like a Lakeflow pipeline's event log, it is what the data-quality page reads. Each batch's
rows are committed with the same application transaction as the data, so a batch replayed
after a crash is logged once.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from deltalake import write_deltalake

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.io.delta_sink import already_applied, batch_commit_properties
from spark_jobs.io.delta_source import open_table
from spark_jobs.io.storage import storage_options, table_uri
from spark_jobs.quality import BatchQuality

SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("system", pa.string()),
        ("table", pa.string()),
        ("batch_id", pa.int64()),
        ("expectation", pa.string()),
        ("action", pa.string()),
        ("passed", pa.int64()),
        ("failed", pa.int64()),
        ("rows_in", pa.int64()),
        ("rows_out", pa.int64()),
        ("duration_ms", pa.int64()),
    ]
)


def location(settings: Settings, system: str) -> str:
    return table_uri(settings, system, "event_log")


def rows(
    spec: dp.TableSpec, batch_id: int, quality: BatchQuality, rows_out: int, seconds: float
) -> list[dict]:
    """One flow row for the batch, then one row per expectation."""
    now = dt.datetime.now(dt.UTC)
    common = {
        "timestamp": now,
        "system": spec.system,
        "table": spec.name,
        "batch_id": batch_id,
        "rows_in": quality.rows_in,
        "rows_out": rows_out,
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
    settings: Settings,
    spec: dp.TableSpec,
    app_id: str,
    batch_id: int,
    quality: BatchQuality,
    rows_out: int,
    seconds: float,
) -> None:
    """Append the batch's rows unless this batch of this writer is logged already."""
    logged = rows(spec, batch_id, quality, rows_out, seconds)
    _append(settings, spec.system, app_id, batch_id, logged)


def record_expectation(
    settings: Settings,
    spec: dp.TableSpec,
    app_id: str,
    batch_id: int,
    expectation: dp.Expectation,
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
    _append(settings, spec.system, app_id, batch_id, [row])


def _append(settings: Settings, system: str, app_id: str, batch_id: int, log_rows: list) -> None:
    uri = location(settings, system)
    options = storage_options(settings, uri)
    if already_applied(open_table(uri, options), app_id, batch_id):
        return
    write_deltalake(
        uri,
        pa.Table.from_pylist(log_rows, schema=SCHEMA),
        mode="append",
        storage_options=options or None,
        commit_properties=batch_commit_properties(app_id, batch_id),
    )
