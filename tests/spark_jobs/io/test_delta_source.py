"""Spark reads Delta tables through delta-rs: snapshots, old versions and new commits as a stream.

Tables are written by delta-rs itself (as any other Delta writer would), on local disk and in
the embedded moto S3, and read with the shared local Spark session.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake
from pyspark.errors import StreamingQueryException
from pyspark.sql import types as T

from spark_jobs.io.delta_sink import write_stream
from spark_jobs.io.delta_source import read_stream, read_table
from tests.spark_jobs.io.test_delta_sink import AVAILABLE_NOW, Lake, lake, run_to_end

__all__ = ["lake"]  # the parametrised local/S3 fixture, shared with the sink's tests


def append(lake: Lake, uri: str, first_id: int, rows: int = 10, **kwargs) -> None:
    """One delta-rs commit of `rows` events with ids from `first_id`."""
    data = pa.table(
        {
            "id": pa.array(range(first_id, first_id + rows), pa.int64()),
            "device": [f"d{i % 2}" for i in range(rows)],
        }
    )
    write_deltalake(uri, data, mode="append", storage_options=lake.options(uri) or None, **kwargs)


def input_rows(progress: list[dict]) -> list[int]:
    return [report["numInputRows"] for report in progress if report["numInputRows"]]


def test_stream_after_restart_delivers_only_the_commits_added_since(spark, lake, tmp_path):
    bronze, silver, checkpoint = lake.uri("bronze"), lake.uri("silver"), tmp_path / "checkpoint"
    for commit in range(3):
        append(lake, bronze, first_id=commit * 10)

    def start():
        stream = read_stream(spark, bronze, lake.settings)
        return write_stream(stream, silver, checkpoint, lake.settings, trigger=AVAILABLE_NOW)

    first = run_to_end(start())
    for commit in range(3, 5):
        append(lake, bronze, first_id=commit * 10)
    second = run_to_end(start())

    assert sum(input_rows(first)) == 30
    assert sum(input_rows(second)) == 20
    ids = lake.table(silver).to_pyarrow_table().column("id")
    assert sorted(ids.to_pylist()) == list(range(50))


def test_max_files_per_trigger_caps_batches_at_whole_commits(spark, lake, tmp_path):
    bronze, silver, checkpoint = lake.uri("bronze"), lake.uri("silver"), tmp_path / "checkpoint"
    # Partitioned by device: a commit of ids from both devices adds two files.
    for first_id, rows in [(0, 1), (10, 1), (20, 2), (30, 1)]:
        append(lake, bronze, first_id=first_id, rows=rows, partition_by=["device"])
    files_per_commit = [len(lake.commit_adds(bronze, version)) for version in range(4)]
    stream = read_stream(spark, bronze, lake.settings, max_files_per_trigger=2)

    progress = run_to_end(
        write_stream(stream, silver, checkpoint, lake.settings, trigger=AVAILABLE_NOW)
    )

    assert files_per_commit == [1, 1, 2, 1]
    assert input_rows(progress) == [1 + 1, 2, 1]
    assert lake.table(silver).count() == 5


def test_batch_read_maps_delta_types_to_spark_and_reads_old_versions(spark, lake):
    uri = lake.uri("typed")
    first = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "reading": pa.array([21.5, None], pa.float64()),
            "count": pa.array([3, 4], pa.int32()),
            "ok": [True, False],
            "label": ["a", None],
            "price": pa.array([Decimal("1.25"), Decimal("2.50")], pa.decimal128(10, 2)),
            "at": pa.array(
                [dt.datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=dt.UTC)] * 2,
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array([dt.date(2024, 5, 1), dt.date(2024, 5, 2)]),
            "position": pa.array(
                [{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}],
                pa.struct([("x", pa.float64()), ("y", pa.float64())]),
            ),
            "tags": pa.array([["hot"], []], pa.list_(pa.string())),
        }
    )
    options = lake.options(uri) or None
    write_deltalake(uri, first, partition_by=["day"], storage_options=options)
    write_deltalake(uri, first.slice(0, 1), mode="append", storage_options=options)

    latest = read_table(spark, uri, lake.settings)
    original = read_table(spark, uri, lake.settings, version=0)

    assert latest.count() == 3
    assert {field.name: field.dataType for field in original.schema.fields} == {
        "id": T.LongType(),
        "reading": T.DoubleType(),
        "count": T.IntegerType(),
        "ok": T.BooleanType(),
        "label": T.StringType(),
        "price": T.DecimalType(10, 2),
        "at": T.TimestampType(),
        "day": T.DateType(),
        "position": T.StructType(
            [T.StructField("x", T.DoubleType()), T.StructField("y", T.DoubleType())]
        ),
        "tags": T.ArrayType(T.StringType()),
    }
    rows = sorted(original.collect(), key=lambda row: row["id"])
    assert [row.asDict(recursive=True) for row in rows] == [
        {
            "id": 1,
            "reading": 21.5,
            "count": 3,
            "ok": True,
            "label": "a",
            "price": Decimal("1.25"),
            "at": dt.datetime(2024, 5, 1, 12, 0, 0, 250_000),  # Spark returns UTC, naive
            "day": dt.date(2024, 5, 1),
            "position": {"x": 1.0, "y": 2.0},
            "tags": ["hot"],
        },
        {
            "id": 2,
            "reading": None,
            "count": 4,
            "ok": False,
            "label": None,
            "price": Decimal("2.50"),
            "at": dt.datetime(2024, 5, 1, 12, 0, 0, 250_000),
            "day": dt.date(2024, 5, 2),
            "position": {"x": 3.0, "y": 4.0},
            "tags": [],
        },
    ]


def test_stream_stops_at_a_commit_that_rewrites_data_unless_told_to_skip_it(spark, lake, tmp_path):
    bronze, silver = lake.uri("bronze"), lake.uri("silver")
    append(lake, bronze, first_id=0)
    lake.table(bronze).delete("id < 5")
    append(lake, bronze, first_id=100)

    strict = read_stream(spark, bronze, lake.settings)
    lenient = read_stream(spark, bronze, lake.settings, skip_change_commits=True)

    failed = write_stream(strict, silver, tmp_path / "strict", lake.settings, trigger=AVAILABLE_NOW)
    with pytest.raises(StreamingQueryException, match="skipChangeCommits=true"):
        failed.awaitTermination(300)
    run_to_end(
        write_stream(lenient, silver, tmp_path / "lenient", lake.settings, trigger=AVAILABLE_NOW)
    )

    ids = lake.table(silver).to_pyarrow_table().column("id")
    assert sorted(ids.to_pylist()) == [*range(10), *range(100, 110)]


def test_stream_started_before_the_table_exists_picks_it_up_once_created(spark, lake, tmp_path):
    bronze, silver, checkpoint = lake.uri("bronze"), lake.uri("silver"), tmp_path / "checkpoint"
    schema = T.StructType(
        [T.StructField("id", T.LongType()), T.StructField("device", T.StringType())]
    )

    def start():
        stream = read_stream(spark, bronze, lake.settings, schema=schema)
        return write_stream(stream, silver, checkpoint, lake.settings, trigger=AVAILABLE_NOW)

    before = run_to_end(start())
    append(lake, bronze, first_id=0)
    after = run_to_end(start())

    assert input_rows(before) == []
    assert input_rows(after) == [10]
    counts = pc.value_counts(lake.table(silver).to_pyarrow_table().column("device"))
    assert json.loads(json.dumps(counts.to_pylist())) == [
        {"values": "d0", "counts": 5},
        {"values": "d1", "counts": 5},
    ]


def test_date_and_timestamp_partition_values_come_back_typed(spark, lake, tmp_path):
    bronze, silver = lake.uri("bronze"), lake.uri("silver")
    hour = dt.datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=dt.UTC)
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "day": [dt.date(2024, 5, 1), dt.date(2024, 5, 1), dt.date(2024, 5, 2)],
            "hour": pa.array([hour, None, hour], pa.timestamp("us", tz="UTC")),
        }
    )
    write_deltalake(
        bronze, data, partition_by=["day", "hour"], storage_options=lake.options(bronze) or None
    )
    stream = read_stream(spark, bronze, lake.settings)

    run_to_end(
        write_stream(stream, silver, tmp_path / "checkpoint", lake.settings, trigger=AVAILABLE_NOW)
    )

    expected = sorted(data.to_pylist(), key=lambda row: row["id"])
    streamed = lake.table(silver).to_pyarrow_table().sort_by("id").to_pylist()
    assert streamed == expected
    batch = read_table(spark, bronze, lake.settings).orderBy("id").collect()
    naive = hour.replace(tzinfo=None)  # Spark returns timestamps in the session zone, UTC
    assert [tuple(row) for row in batch] == [
        (1, dt.date(2024, 5, 1), naive),
        (2, dt.date(2024, 5, 1), None),
        (3, dt.date(2024, 5, 2), naive),
    ]
