"""The Kinesis source reads moto's Kinesis into Spark: every record once, in every shard.

Each test makes its own stream, so tests never see each other's records.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from iotlake.config import Settings
from spark_jobs.io.kinesis import KinesisDataSource, kinesis_options
from spark_jobs.io.kinesis.source import SCHEMA
from spark_jobs.runner import stop_reason

QUERY_TIMEOUT = 180
# The columns of Databricks' Kinesis source, in its order, with their Spark types.
DATABRICKS_COLUMNS = (
    "struct<partitionKey:string,data:binary,stream:string,shardId:string,"
    "sequenceNumber:string,approximateArrivalTimestamp:timestamp>"
)


@pytest.fixture(scope="module")
def kinesis(stack: Settings):
    return boto3.client("kinesis", **stack.aws.boto3_kwargs())


@pytest.fixture(scope="module")
def source(spark):
    """The SparkSession with `format("kinesis")` registered."""
    spark.dataSource.register(KinesisDataSource)
    return spark


def new_stream(kinesis, shards: int) -> str:
    name = f"kinesis-source-{uuid.uuid4().hex[:10]}"
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    return name


def put(kinesis, stream: str, records: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """Put (partitionKey, data) records; return where each landed as (shardId, sequenceNumber)."""
    placed = []
    for begin in range(0, len(records), 500):
        chunk = records[begin : begin + 500]
        response = kinesis.put_records(
            StreamName=stream,
            Records=[{"PartitionKey": key, "Data": data} for key, data in chunk],
        )
        assert response["FailedRecordCount"] == 0
        placed += [(entry["ShardId"], entry["SequenceNumber"]) for entry in response["Records"]]
    return placed


def events(count: int, first: int = 0) -> list[tuple[str, bytes]]:
    return [(f"device-{i % 37}", f"event-{i}".encode()) for i in range(first, first + count)]


class Collected:
    """Rows a query delivered, batch by batch, through foreachBatch."""

    def __init__(self, fail_first_batch: bool = False):
        self.batches: list[tuple[int, list[Any]]] = []
        self.fail_first_batch = fail_first_batch
        self.end_offset: dict[str, Any] | None = None

    def __call__(self, frame, batch_id: int) -> None:
        rows = frame.collect()
        if self.fail_first_batch:
            self.fail_first_batch = False
            raise RuntimeError("sink failed on purpose")
        self.batches.append((batch_id, rows))

    @property
    def rows(self) -> list[Any]:
        return [row for _, rows in self.batches for row in rows]


def start_query(source, settings: Settings, stream: str, checkpoint: Path, sink, **options):
    reader = source.readStream.format("kinesis").options(**kinesis_options(settings, stream))
    writer = (
        reader.options(**options)
        .load()
        .writeStream.foreachBatch(sink)
        .option("checkpointLocation", str(checkpoint))
    )
    return writer


def run_available_now(source, settings, stream, checkpoint, **options) -> Collected:
    """Run one AvailableNow query to its end and return what it delivered."""
    sink = Collected()
    query = start_query(source, settings, stream, checkpoint, sink, **options)
    running = query.trigger(availableNow=True).start()
    assert running.awaitTermination(QUERY_TIMEOUT), "AvailableNow query did not finish"
    assert running.exception() is None
    if running.lastProgress:
        sink.end_offset = json.loads(running.lastProgress["sources"][0]["endOffset"])
    return sink


def delivered(collected: Collected) -> list[tuple[str, str]]:
    return [(row.shardId, row.sequenceNumber) for row in collected.rows]


def test_available_now_reads_every_record_of_four_shards_exactly_once(
    source, stack, kinesis, tmp_path
):
    stream = new_stream(kinesis, 4)
    placed = put(kinesis, stream, events(2000))

    got = run_available_now(source, stack, stream, tmp_path / "ckpt", initialPosition="earliest")

    assert Counter(delivered(got)) == Counter(placed)
    per_shard = Counter(shard for shard, _ in delivered(got))
    assert per_shard == Counter(shard for shard, _ in placed)
    assert len(per_shard) == 4
    assert sorted(row.data for row in got.rows) == sorted(data for _, data in events(2000))


def test_columns_types_and_bytes_match_what_was_put(source, stack, kinesis, tmp_path):
    stream = new_stream(kinesis, 2)
    records = [
        ("clé-ü-🙂", bytes(range(256))),
        ("a", b"\x00"),
        ("b" * 256, b"\xff" * 1000 + b"\x00tail"),
        ("json", json.dumps({"client_id": "c1", "magn": 1.5}).encode()),
    ]
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
    put(kinesis, stream, records)
    after = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=5)

    frame = source.readStream.format("kinesis").options(**kinesis_options(stack, stream)).load()
    got = run_available_now(source, stack, stream, tmp_path / "ckpt", initialPosition="earliest")

    assert frame.schema == SCHEMA
    assert frame.schema.simpleString() == DATABRICKS_COLUMNS
    assert sorted((row.partitionKey, row.data) for row in got.rows) == sorted(records)
    assert {row.stream for row in got.rows} == {stream}
    assert all(before <= row.approximateArrivalTimestamp <= after for row in got.rows)
    assert all(row.sequenceNumber.isdigit() for row in got.rows)


def test_initial_position_selects_trim_horizon_timestamp_or_latest(
    source, stack, kinesis, tmp_path
):
    stream = new_stream(kinesis, 2)
    early = events(40)
    put(kinesis, stream, early)
    time.sleep(1.0)
    boundary = datetime.now(UTC)
    time.sleep(1.0)
    late = events(30, first=100)
    put(kinesis, stream, late)
    data = sorted(d for _, d in early + late)

    everything = run_available_now(
        source, stack, stream, tmp_path / "horizon", initialPosition="trim_horizon"
    )
    stamp = boundary.strftime("%Y-%m-%dT%H:%M:%S.%f")
    since_json = run_available_now(
        source,
        stack,
        stream,
        tmp_path / "json",
        initialPosition=json.dumps({"at_timestamp": stamp, "format": "%Y-%m-%dT%H:%M:%S.%f"}),
    )
    since_iso = run_available_now(
        source, stack, stream, tmp_path / "iso", initialPosition=boundary.isoformat()
    )

    assert sorted(row.data for row in everything.rows) == data
    assert sorted(row.data for row in since_json.rows) == sorted(d for _, d in late)
    assert sorted(row.data for row in since_iso.rows) == sorted(d for _, d in late)

    newest = events(25, first=500)
    sink = Collected()
    query = start_query(
        source, stack, stream, tmp_path / "latest", sink, initialPosition="latest"
    ).start()
    try:
        _wait_for(lambda: query.status["message"] == "Waiting for data to arrive", query)
        put(kinesis, stream, newest)
        _wait_for(lambda: len(sink.rows) >= len(newest), query)
        time.sleep(1.0)  # a late duplicate would show up here
    finally:
        query.stop()
    assert sorted(row.data for row in sink.rows) == sorted(d for _, d in newest)


def _wait_for(condition, query, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert query.exception() is None
        assert time.monotonic() < deadline, f"timed out; query status {query.status}"
        time.sleep(0.1)


def test_restart_from_checkpoint_continues_without_gaps_or_duplicates(
    source, stack, kinesis, tmp_path
):
    stream = new_stream(kinesis, 4)
    checkpoint = tmp_path / "ckpt"
    first = put(kinesis, stream, events(300))
    run_one = run_available_now(source, stack, stream, checkpoint, initialPosition="earliest")
    second = put(kinesis, stream, events(200, first=300))
    run_two = run_available_now(source, stack, stream, checkpoint, initialPosition="earliest")
    run_three = run_available_now(source, stack, stream, checkpoint, initialPosition="earliest")

    assert Counter(delivered(run_one)) == Counter(first)
    assert Counter(delivered(run_two)) == Counter(second)
    assert run_three.rows == []


def test_batch_replayed_after_a_failure_delivers_the_same_records(source, stack, kinesis, tmp_path):
    stream = new_stream(kinesis, 4)
    checkpoint = tmp_path / "ckpt"
    placed = put(kinesis, stream, events(400))

    failing = Collected(fail_first_batch=True)
    query = start_query(
        source, stack, stream, checkpoint, failing, initialPosition="earliest"
    ).trigger(availableNow=True)
    running = query.start()
    with pytest.raises(Exception, match="sink failed on purpose"):
        running.awaitTermination(QUERY_TIMEOUT)
    put_later = put(kinesis, stream, events(100, first=400))

    # The failed batch is in the offset log but not committed: the new run replays its exact
    # range (read again from Kinesis by the executors), then reads what came later.
    replayed = run_available_now(source, stack, stream, checkpoint, initialPosition="earliest")

    assert failing.batches == []
    assert replayed.batches[0][0] == 0
    assert Counter(delivered(replayed)) == Counter(placed + put_later)
    assert Counter((r.shardId, r.sequenceNumber) for r in replayed.batches[0][1]) == Counter(placed)


def test_reshard_midstream_loses_and_doubles_nothing(source, stack, kinesis, tmp_path):
    stream = new_stream(kinesis, 2)
    checkpoint = tmp_path / "ckpt"
    before = put(kinesis, stream, events(200))
    run_one = run_available_now(source, stack, stream, checkpoint, initialPosition="earliest")

    kinesis.update_shard_count(StreamName=stream, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    listed = kinesis.list_shards(StreamName=stream)["Shards"]
    children = {shard["ShardId"] for shard in listed if shard.get("ParentShardId")}
    after = put(kinesis, stream, events(200, first=200))
    run_two = run_available_now(source, stack, stream, checkpoint, initialPosition="earliest")
    later = put(kinesis, stream, events(100, first=400))
    run_three = run_available_now(source, stack, stream, checkpoint, initialPosition="earliest")

    assert len(children) == 4
    assert Counter(delivered(run_one)) == Counter(before)
    assert Counter(delivered(run_two)) == Counter(after)
    assert Counter(delivered(run_three)) == Counter(later)
    # Wherever the emulator put the new records (moto keeps using the closed parents), the
    # source tracks every shard, children included.
    tracked = set(run_three.end_offset["shards"])
    assert children <= tracked
    assert len(tracked) == 6


def test_max_records_per_trigger_bounds_every_batch(source, stack, kinesis, tmp_path):
    stream = new_stream(kinesis, 4)
    placed = put(kinesis, stream, events(1000))

    got = run_available_now(
        source,
        stack,
        stream,
        tmp_path / "ckpt",
        initialPosition="earliest",
        maxRecordsPerTrigger="300",
        maxRecordsPerFetch="70",
    )

    assert all(len(rows) <= 300 for _, rows in got.batches)
    assert len(got.batches) >= 4
    assert Counter(delivered(got)) == Counter(placed)


def test_bad_option_fails_when_the_stream_is_loaded(source):
    with pytest.raises(Exception, match="option 'streamName' is required"):
        source.readStream.format("kinesis").option("region", "us-east-1").load()
    with pytest.raises(Exception, match="option 'initialPosition'"):
        (
            source.readStream.format("kinesis")
            .option("streamName", "s")
            .option("initialPosition", "yesterday")
            .load()
        )


def test_missing_stream_fails_naming_the_stream(source, stack, tmp_path):
    sink = Collected()
    query = start_query(source, stack, "no-such-stream", tmp_path / "ckpt", sink)
    running = query.trigger(availableNow=True).start()
    with pytest.raises(Exception, match="option 'streamName' names 'no-such-stream'") as stopped:
        running.awaitTermination(QUERY_TIMEOUT)

    # The runner reports it in one line, out of Spark's many.
    assert stop_reason(stopped.value) == (
        f"kinesis source: option 'streamName' names 'no-such-stream', which "
        f"{stack.aws.endpoint_url} ({stack.aws.region}) does not have"
    )


def test_kinesis_options_come_from_settings(stack):
    options = kinesis_options(stack, "dais2023")
    assert options == {
        "streamName": "dais2023",
        "region": stack.aws.region,
        "endpointUrl": stack.aws.endpoint_url,
        "awsAccessKey": stack.aws.access_key_id.get_secret_value(),
        "awsSecretKey": stack.aws.secret_access_key.get_secret_value(),
    }
    real_aws = stack.model_copy(update={"aws": stack.aws.model_copy(update={"emulator": "aws"})})
    # On real AWS the placeholder keys stay out, so boto3's own credential chain applies.
    region = stack.aws.region
    assert kinesis_options(real_aws, "dais2023") == {"streamName": "dais2023", "region": region}
