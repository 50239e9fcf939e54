"""The cloudFiles source reads newly landed CSV and JSON-lines files as Auto Loader does.

Files land in a temporary directory (and, in one test, in the embedded moto S3 bucket
`iotlake-landing`) and are read by AvailableNow runs (`landing.Landing.run`); a few tests
drive the stream reader directly, as Spark's driver would, to see its offsets and plans.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import boto3
import pytest
from pyspark.sql import types as T
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxFiles

from spark_jobs.io.autoloader import (
    FORMAT,
    AutoloaderOptionError,
    AutoloaderOptions,
    AutoloaderStreamReader,
    autoloader_options,
    autoloader_stream,
    register,
)
from spark_jobs.io.autoloader.discovery import Landed
from spark_jobs.io.autoloader.schema import data_columns, output_schema
from spark_jobs.io.autoloader.source import MIN_PARTITIONS, plan_groups
from tests.support.landing import BASE_TIME, Batch, Landing, rows_of


def sensor_csv(first_id: int, rows: int = 10) -> str:
    lines = ["id,device_id,temperature"]
    lines += [f"{i},{i % 3},{20.5 + i}" for i in range(first_id, first_id + rows)]
    return "\n".join(lines) + "\n"


def last_offset(checkpoint: Path) -> dict:
    offsets = sorted(
        (p for p in (checkpoint / "offsets").iterdir() if p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    return json.loads(offsets[-1].read_text().strip().splitlines()[-1])


def test_only_new_files_are_read_across_runs_and_restarts(spark, landing):
    for index in range(3):
        landing.land(f"sensors-{index}.csv", sensor_csv(index * 10))

    first = landing.run(spark)
    for index in range(3, 5):
        landing.land(f"sensors-{index}.csv", sensor_csv(index * 10))
    second = landing.run(spark)
    third = landing.run(spark)

    assert len(rows_of(first)) == 30
    assert [batch.partitions for batch in first] == [3]  # one task per file
    assert len(rows_of(second)) == 20
    assert rows_of(third) == []
    ids = [row["id"] for row in rows_of(landing.batches)]
    assert sorted(ids) == list(range(50))
    # The checkpoint names only the files at the latest modification time.
    offset = last_offset(landing.checkpoint)
    assert offset == {"v": 1, "before": (BASE_TIME + 5) * 1000, "seen": ["sensors-4.csv"]}


def test_a_replayed_batch_plans_the_same_files_from_its_offsets(landing):
    for index in range(4):
        landing.land(f"sensors-{index}.csv", sensor_csv(index * 10))
    options = AutoloaderOptions.parse(
        autoloader_options(landing.settings, str(landing.path), "csv", str(landing.schema_location))
    )
    schema = output_schema(options, data_columns(options))
    planner = AutoloaderStreamReader(options, schema)
    start = planner.initialOffset()
    end = planner.latestOffset(start, ReadMaxFiles(3))
    planned = [part.names for part in planner.partitions(start, end)]
    landing.land("sensors-4.csv", sensor_csv(40))  # lands after the batch was planned

    # A fresh process (a restart replaying the batch) has no plan: it lists the files again.
    replayed = [
        part.names for part in AutoloaderStreamReader(options, schema).partitions(start, end)
    ]

    assert planned == [["sensors-0.csv"], ["sensors-1.csv"], ["sensors-2.csv"]]
    assert replayed == planned
    assert end == {"v": 1, "before": (BASE_TIME + 3) * 1000, "seen": ["sensors-2.csv"]}


@pytest.mark.parametrize(("window", "late_read"), [(0, False), (60, True)])
def test_late_file_is_found_only_within_the_late_file_window(landing, window, late_read):
    landing.land("a.csv", sensor_csv(0))
    landing.land("b.csv", sensor_csv(10))
    options = AutoloaderOptions.parse(
        autoloader_options(
            landing.settings, str(landing.path), "csv", str(landing.schema_location),
            lateFileSeconds=window,
        )
    )  # fmt: skip
    reader = AutoloaderStreamReader(options, output_schema(options, data_columns(options)))
    first = reader.latestOffset(reader.initialOffset(), ReadAllAvailable())
    late = landing.land("late.csv", sensor_csv(20))  # renamed into place, written earlier
    os.utime(late, (BASE_TIME + 1.5, BASE_TIME + 1.5))

    second = reader.latestOffset(first, ReadAllAvailable())

    assert sorted(first["seen"]) == (["a.csv", "b.csv"] if window else ["b.csv"])
    if late_read:
        (part,) = reader.partitions(first, second)
        assert part.names == ["late.csv"]
    else:
        assert second == first


def test_files_landing_while_the_query_runs_are_read_by_the_next_trigger(spark, landing):
    landing.land("a.json", '{"id": 1}\n')
    stream = autoloader_stream(
        spark, landing.settings, str(landing.path), "json", str(landing.schema_location)
    )
    seen: list[int] = []
    query = (
        stream.writeStream.foreachBatch(
            lambda frame, _: seen.extend(row.id for row in frame.collect())
        )
        .option("checkpointLocation", str(landing.checkpoint))
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    try:
        query.processAllAvailable()
        landing.land("b.json", '{"id": 2}\n{"id": 3}\n')
        query.processAllAvailable()
    finally:
        query.stop()

    assert sorted(seen) == [1, 2, 3]


def test_schema_is_inferred_from_the_first_files_and_hints_override_it(spark, landing):
    landing.land(
        "inspection.csv",
        "device_id,counter,defect,temperature,timestamp,factory_id,ok\n"
        "1,3000000000,0,21.5,2024-01-01 10:00:00,A06,true\n"
        "2,3000000001,1,22,2024-01-01T10:00:05Z,D18,false\n",
    )

    batches = landing.run(spark, hints="defect float, device_id bigint, extra date")
    landing.land(
        "later.csv",
        "device_id,counter,defect,temperature,timestamp,factory_id,ok\n"
        "3,4,1,hot,2024-01-02 00:00:00,A06,true\n",
    )
    later = landing.run(spark, hints="defect float, device_id bigint, extra date")

    stored = json.loads((landing.schema_location / "_schemas" / "0").read_text())
    stored_types = {f["name"]: f["type"] for f in stored["schema"]["fields"]}
    assert stored_types == {
        "device_id": "integer",
        "counter": "long",
        "defect": "integer",
        "temperature": "double",
        "timestamp": "timestamp",
        "factory_id": "string",
        "ok": "boolean",
    }
    schema = autoloader_stream(
        spark,
        landing.settings,
        str(landing.path),
        "csv",
        str(landing.schema_location),
        schema_hints="defect float, device_id bigint, extra date",
    ).schema
    assert [(f.name, f.dataType) for f in schema.fields] == [
        ("device_id", T.LongType()),
        ("counter", T.LongType()),
        ("defect", T.FloatType()),
        ("temperature", T.DoubleType()),
        ("timestamp", T.TimestampType()),
        ("factory_id", T.StringType()),
        ("ok", T.BooleanType()),
        ("extra", T.DateType()),
        ("_rescued_data", T.StringType()),
        ("_file_path", T.StringType()),
    ]
    first = sorted(rows_of(batches), key=lambda row: row["device_id"])
    assert first[0]["counter"] == 3_000_000_000
    assert first[1]["defect"] == 1.0
    assert first[1]["timestamp"].isoformat().startswith("2024-01-01T10:00:05")
    assert all(row["_rescued_data"] is None for row in first)
    assert first[0]["_file_path"] == str(landing.path / "inspection.csv")
    # The restart keeps the stored schema: "hot" does not make temperature a string.
    (row,) = rows_of(later)
    assert row["temperature"] is None
    assert json.loads(row["_rescued_data"])["temperature"] == "hot"


def test_without_type_inference_every_column_is_a_string(spark, landing):
    landing.land("posts.json", '{"id": 7, "text": "hello", "score": 0.5}\n')

    (batch,) = landing.run(spark, fmt="json", inferColumnTypes=False)

    assert batch.rows == [
        {"id": "7", "text": "hello", "score": "0.5", "_rescued_data": None,
         "_file_path": str(landing.path / "posts.json")}
    ]  # fmt: skip


def test_new_column_stops_the_stream_and_a_restart_reads_it_with_old_rows_null(spark, landing):
    landing.land("one.csv", "id,device_id\n1,10\n")
    landing.run(spark)
    landing.land("two.csv", "id,device_id,air_pressure\n2,11,1013.5\n")
    landing.land("three.csv", "id,device_id\n3,12\n")

    with pytest.raises(RuntimeError) as raised:
        landing.run(spark)
    restarted = landing.run(spark)

    message = next(line for line in str(raised.value).splitlines() if "new column(s)" in line)
    assert "new column(s) air_pressure found in" in message
    assert str(landing.path / "two.csv") in message
    assert (landing.schema_location / "_schemas" / "1").exists()
    assert restarted[0].columns == [
        "id", "device_id", "air_pressure", "_rescued_data", "_file_path"
    ]  # fmt: skip
    rows = {row["id"]: row for row in rows_of(restarted)}
    assert rows[2]["air_pressure"] == 1013.5
    assert rows[3]["air_pressure"] is None
    assert sorted(row["id"] for row in rows_of(landing.batches)) == [1, 2, 3]


@pytest.mark.parametrize(
    ("mode", "rescued"),
    [("rescue", {"air_pressure": "1013.5"}), ("none", None)],
)
def test_without_evolution_new_columns_are_rescued_or_ignored(spark, landing, mode, rescued):
    landing.land("one.csv", "id,device_id\n1,10\n")
    landing.run(spark, schemaEvolutionMode=mode)
    landing.land("two.csv", "id,device_id,air_pressure\n2,11,1013.5\n")

    (batch,) = landing.run(spark, schemaEvolutionMode=mode)

    (row,) = batch.rows
    assert batch.columns == ["id", "device_id", "_rescued_data", "_file_path"]
    assert (row["id"], row["device_id"]) == (2, 11)
    if rescued is None:
        assert row["_rescued_data"] is None
    else:
        assert json.loads(row["_rescued_data"]) == {
            **rescued,
            "_file_path": str(landing.path / "two.csv"),
        }
    assert not (landing.schema_location / "_schemas" / "1").exists()


def test_values_that_do_not_fit_their_type_are_rescued_with_the_file_path(spark, landing):
    path = landing.land(
        "inspection.csv",
        "device_id,defect,timestamp\n"
        "1,0.5,2024-01-01 10:00:00\n"
        "2,abc,2024-01-01 10:00:01\n"
        "3,1,yesterday\n"
        "4,1,2024-01-01 10:00:03,surplus\n",
    )

    (batch,) = landing.run(spark, hints="defect float, timestamp timestamp, device_id integer")

    rows = {row["device_id"]: row for row in batch.rows}
    assert rows[1]["_rescued_data"] is None
    assert rows[2]["defect"] is None
    assert json.loads(rows[2]["_rescued_data"]) == {"defect": "abc", "_file_path": str(path)}
    assert rows[3]["timestamp"] is None
    assert rows[3]["defect"] == 1.0
    assert json.loads(rows[3]["_rescued_data"]) == {
        "timestamp": "yesterday",
        "_file_path": str(path),
    }
    assert json.loads(rows[4]["_rescued_data"]) == {"_c3": "surplus", "_file_path": str(path)}


def test_empty_binary_and_malformed_files_lose_nothing_and_stop_nothing(spark, landing):
    landing.land("good.json", '{"id": 1, "text": "fine"}\n')
    landing.land("empty.json", "")
    binary = landing.land("photo.json", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    broken = landing.land("broken.json", '{"id": 2, "text": "ok"}\n{"id": 3, "text": \n[1, 2]\n')

    rows = rows_of(landing.run(spark, fmt="json"))

    assert len(rows) == 5
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(row["_file_path"], []).append(row)
    assert str(landing.path / "empty.json") not in by_file
    (unreadable,) = by_file[str(binary)]
    assert (unreadable["id"], unreadable["text"]) == (None, None)
    reason = json.loads(unreadable["_rescued_data"])
    assert reason["_error"].startswith("file is not UTF-8 text")
    assert reason["_file_path"] == str(binary)
    corrupt = [json.loads(r["_rescued_data"]) for r in by_file[str(broken)] if r["id"] is None]
    assert [record["_corrupt_record"] for record in corrupt] == ['{"id": 3, "text": ', "[1, 2]"]
    assert all(record["_file_path"] == str(broken) for record in corrupt)


def test_max_files_per_trigger_bounds_the_files_of_each_batch(spark, landing):
    for index in range(5):
        landing.land(f"sensors-{index}.csv", sensor_csv(index * 10, rows=index + 1))

    batches = landing.run(spark, maxFilesPerTrigger=2)

    assert [len(batch.rows) for batch in batches] == [1 + 2, 3 + 4, 5]
    assert [batch.partitions for batch in batches] == [2, 2, 1]


def test_many_small_files_share_tasks_and_large_files_get_their_own():
    small = [Landed(i, f"s{i:02d}.csv", 1_000) for i in range(20)]
    large = [Landed(100 + i, f"l{i}.csv", 200 << 20) for i in range(3)]

    small_groups = plan_groups(small)
    mixed_groups = plan_groups(small + large)

    assert len(small_groups) == MIN_PARTITIONS
    assert sorted(name for group in small_groups for name in group) == [f.name for f in small]
    assert all(group == sorted(group) for group in small_groups)  # landing order kept
    assert len(mixed_groups) == 10  # about 620 MiB in tasks of about 64 MiB
    assert [group for group in mixed_groups if any(n.startswith("l") for n in group)] == [
        ["l0.csv"],
        ["l1.csv"],
        ["l2.csv"],
    ]


def test_landing_path_on_s3_reads_only_new_files(spark, stack, tmp_path):
    bucket, prefix = stack.lake.landing_bucket, f"tests/{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", **stack.aws.boto3_kwargs())
    landing = Landing(tmp_path, stack)
    path = f"s3://{bucket}/{prefix}"

    def put(index: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/posts-{index}.json", Body=json.dumps(
            {"id": index, "text": f"post {index}"}).encode())  # fmt: skip

    def run() -> list[Batch]:
        stream = autoloader_stream(
            spark, stack, path, "json", str(landing.schema_location), "id bigint"
        )
        delivered: list[Batch] = []
        query = (
            stream.writeStream.foreachBatch(
                lambda frame, _: delivered.append(
                    Batch([r.asDict() for r in frame.collect()], 0, frame.columns)
                )
            )
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination(300)
        assert query.exception() is None, query.exception()
        return delivered

    for index in range(3):
        put(index)
    first = run()
    for index in range(3, 5):
        put(index)
    second = run()

    assert sorted(row["id"] for row in rows_of(first)) == [0, 1, 2]
    assert sorted(row["id"] for row in rows_of(second)) == [3, 4]
    assert rows_of(second)[0]["_file_path"].startswith(f"{path}/posts-")


def test_bad_option_fails_when_the_stream_is_loaded(spark, landing):
    landing.land("a.csv", "id\n1\n")
    register(spark)
    reader = (
        spark.readStream.format(FORMAT)
        .option("path", str(landing.path))
        .option("cloudFiles.schemaLocation", str(landing.schema_location))
    )
    with pytest.raises(Exception, match="option 'cloudFiles.format' must be csv or json"):
        reader.option("cloudFiles.format", "xml").load()
    with pytest.raises(AutoloaderOptionError, match="option 'cloudFiles.maxFilesPerTrigger'"):
        autoloader_stream(
            spark, landing.settings, str(landing.path), "csv", str(landing.schema_location),
            maxFilesPerTrigger="many",
        )  # fmt: skip


def test_no_files_and_no_hints_fails_naming_the_path(spark, landing):
    landing.path.mkdir(parents=True)
    with pytest.raises(Exception, match="option 'path' has no files to infer a schema from"):
        autoloader_stream(
            spark, landing.settings, str(landing.path), "csv", str(landing.schema_location)
        )
