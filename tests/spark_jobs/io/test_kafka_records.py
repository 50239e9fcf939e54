"""Kafka records reach Spark through its own `format("kafka")`: every record once, in the
bronze shape, across query restarts, added partitions, binary payloads and broker kills.

Each test makes its own topic, so tests never see each other's records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StringType, StructField, TimestampType

from iotlake.config import Settings
from services.embedded import stack as embedded
from spark_jobs.io.records import RECORD_COLUMNS, kafka_records
from tests.support.settings import settings_env

REPO = Path(__file__).resolve().parents[3]
QUERY_TIMEOUT_S = 240
# (shardId, sequenceNumber): where a record sits, as bronze tables keep it.
Position = tuple[str, str]


def create_topic(settings: Settings, partitions: int = 1) -> str:
    topic = f"kr-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    return topic


def produce(
    settings: Settings,
    topic: str,
    count: int,
    partitions: int = 1,
    prefix: str = "reading",
    first_partition: int = 0,
) -> None:
    """`count` acknowledged records round-robin over the partitions, values `<prefix>-<i>`."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "linger.ms": 5,
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    for i in range(count):
        partition = first_partition + i % partitions
        producer.produce(topic, key=f"dev-{i % 7}", value=f"{prefix}-{i}", partition=partition)
    assert producer.flush(30) == 0


def expected(topic: str, ends: dict[int, int]) -> set[Position]:
    return {(f"{topic}-{p}", str(o)) for p, end in ends.items() for o in range(end)}


def run_available_now(frame: DataFrame, sink: Path, checkpoint: Path) -> StreamingQuery:
    """Read everything available into a parquet sink and wait for the query to end."""
    query = (
        frame.writeStream.format("parquet")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start(str(sink))
    )
    finished = query.awaitTermination(QUERY_TIMEOUT_S)
    if not finished:
        query.stop()
    assert finished, "AvailableNow query did not finish"
    return query


def start_parquet(frame: DataFrame, sink: Path, checkpoint: Path) -> StreamingQuery:
    """A query that keeps polling the broker, one micro-batch every 200 ms."""
    return (
        frame.writeStream.format("parquet")
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="200 milliseconds")
        .start(str(sink))
    )


def positions(spark: SparkSession, sink: Path) -> list[Position]:
    rows = spark.read.parquet(str(sink)).select("shardId", "sequenceNumber").collect()
    return [(r.shardId, r.sequenceNumber) for r in rows]


def wait_until(check: Callable[[], bool], what: str, timeout: float = QUERY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def read_rows(query: StreamingQuery) -> int:
    return sum(p["numInputRows"] for p in query.recentProgress)


def read_across(
    query: StreamingQuery, before: int, meanwhile: Callable[[], None], after: int
) -> None:
    """Let the running query read `before` records, do `meanwhile`, and let it read `after` in
    all without failing; the query is stopped however that ends."""
    try:
        wait_until(lambda: read_rows(query) >= before, f"the first {before} records")
        meanwhile()
        wait_until(lambda: read_rows(query) >= after, f"all {after} records")
        assert query.exception() is None
    finally:
        query.stop()


def check_each_record_once(
    spark: SparkSession, sink: Path, topic: str, ends: dict[int, int]
) -> None:
    """The sink holds every record of each partition up to its end offset, each exactly once."""
    read = positions(spark, sink)
    assert len(read) == sum(ends.values())
    assert set(read) == expected(topic, ends)


def test_every_record_arrives_once_in_the_bronze_shape(spark, stack, tmp_path):
    topic = create_topic(stack, 3)
    produce(stack, topic, 300, partitions=3)

    frame = kafka_records(spark, stack, topic)
    run_available_now(frame, tmp_path / "sink", tmp_path / "checkpoint")

    assert tuple(frame.columns) == RECORD_COLUMNS
    assert frame.schema["sequenceNumber"] == StructField("sequenceNumber", StringType(), True)
    assert frame.schema["approximateArrivalTimestamp"].dataType == TimestampType()
    check_each_record_once(spark, tmp_path / "sink", topic, {0: 100, 1: 100, 2: 100})
    rows = spark.read.parquet(str(tmp_path / "sink")).collect()
    assert {r.data for r in rows} == {f"reading-{i}" for i in range(300)}
    assert {r.source for r in rows} == {"kafka"}
    assert {r.partitionKey for r in rows} == {f"dev-{i}" for i in range(7)}
    assert all(r.approximateArrivalTimestamp is not None for r in rows)


def test_binary_payloads_are_kept_as_text_and_break_nothing(spark, stack, tmp_path):
    topic = create_topic(stack)
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap_servers, "acks": "all"})
    producer.produce(topic, value=b"\xff\xfe\x00binary")
    producer.produce(topic, key=b"\xc3", value=b'{"magnitude": 1.5}')
    producer.produce(topic, value=None)
    assert producer.flush(30) == 0

    run_available_now(kafka_records(spark, stack, topic), tmp_path / "sink", tmp_path / "cp")

    rows = spark.read.parquet(str(tmp_path / "sink")).orderBy("sequenceNumber").collect()
    assert [r.sequenceNumber for r in rows] == ["0", "1", "2"]
    assert rows[0].data.startswith("\ufffd") and rows[0].data.endswith("\x00binary")
    assert rows[0].partitionKey is None
    assert (rows[1].partitionKey, rows[1].data) == ("\ufffd", '{"magnitude": 1.5}')
    assert rows[2].data is None


def test_restart_from_checkpoint_continues_without_duplicates_or_gaps(spark, stack, tmp_path):
    topic = create_topic(stack, 2)
    produce(stack, topic, 200, partitions=2)
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"
    first = start_parquet(kafka_records(spark, stack, topic), sink, checkpoint)
    read_across(first, 200, lambda: produce(stack, topic, 200, partitions=2, prefix="second"), 400)
    produce(stack, topic, 200, partitions=2, prefix="later")

    # The query resumes from its checkpoint: startingOffsets=earliest applies to new ones only.
    run_available_now(kafka_records(spark, stack, topic), sink, checkpoint)

    check_each_record_once(spark, sink, topic, {0: 300, 1: 300})


def test_partitions_added_while_the_query_runs_are_read_from_their_start(spark, stack, tmp_path):
    topic = create_topic(stack, 1)
    produce(stack, topic, 30)
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"
    query = start_parquet(kafka_records(spark, stack, topic), sink, checkpoint)

    def add_two_partitions_and_fill_them() -> None:
        admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
        produce(stack, topic, 40, partitions=2, first_partition=1)

    read_across(query, 30, add_two_partitions_and_fill_them, 70)

    check_each_record_once(spark, sink, topic, {0: 30, 1: 20, 2: 20})


_KILLED_DRIVER = textwrap.dedent(
    """
    import sys
    from iotlake.config import load_settings
    from spark_jobs.io.records import kafka_records
    from spark_jobs.session import spark_session

    topic, sink, checkpoint = sys.argv[1:4]
    settings = load_settings()
    spark = spark_session(settings, "kafka-records-killed")
    (
        kafka_records(spark, settings, topic)
        .writeStream.format("parquet")
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime="100 milliseconds")
        .start(sink)
        .awaitTermination()
    )
    """
)


@pytest.mark.slow
def test_driver_killed_mid_stream_resumes_from_its_checkpoint_losing_nothing(
    spark, stack, tmp_path
):
    topic = create_topic(stack, 2)
    produce(stack, topic, 300, partitions=2, prefix="first")
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_DRIVER, topic, str(sink), str(checkpoint)],
        env={**os.environ, **settings_env(stack)},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    committed = checkpoint / "commits"
    try:
        wait_until(lambda: len(list(committed.glob("[0-9]*"))) >= 1, "a committed batch")
        for wave in range(3):  # records keep arriving while the driver runs and dies
            produce(stack, topic, 100, partitions=2, prefix=f"wave{wave}")
            time.sleep(0.3)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    produce(stack, topic, 100, partitions=2, prefix="after")

    run_available_now(kafka_records(spark, stack, topic), sink, checkpoint)

    check_each_record_once(spark, sink, topic, {0: 350, 1: 350})


@pytest.mark.slow
def test_running_query_survives_a_broker_kill(spark, stack, tmp_path):
    topic = create_topic(stack, 2)
    produce(stack, topic, 40, partitions=2, prefix="before")
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"
    query = start_parquet(kafka_records(spark, stack, topic), sink, checkpoint)

    def kill_the_broker_and_produce_again() -> None:
        embedded.restart(stack, "kafka", hard=True)
        produce(stack, topic, 40, partitions=2, prefix="after")

    read_across(query, 40, kill_the_broker_and_produce_again, 80)

    check_each_record_once(spark, sink, topic, {0: 40, 1: 40})
