"""The Kafka source reads every record exactly once from the embedded broker, as Spark's does."""

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
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic, OffsetSpec
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from iotlake.config import Settings
from services.embedded import stack as embedded
from spark_jobs.io.kafka_source import KAFKA_FORMAT, KafkaDataSource, fair_shares
from tests.conftest import settings_env

REPO = Path(__file__).resolve().parents[3]
QUERY_TIMEOUT_S = 240
Position = tuple[str, int, int]

# The columns of Spark's built-in Kafka source (KafkaRecordToRowConverter), all nullable.
BUILTIN_KAFKA_COLUMNS = StructType(
    [
        StructField("key", BinaryType(), True),
        StructField("value", BinaryType(), True),
        StructField("topic", StringType(), True),
        StructField("partition", IntegerType(), True),
        StructField("offset", LongType(), True),
        StructField("timestamp", TimestampType(), True),
        StructField("timestampType", IntegerType(), True),
    ]
)
BUILTIN_HEADERS_COLUMN = StructField(
    "headers",
    ArrayType(
        StructType([StructField("key", StringType(), True), StructField("value", BinaryType())]),
        True,
    ),
    True,
)


@pytest.fixture(scope="module")
def kafka_spark(spark: SparkSession) -> SparkSession:
    spark.dataSource.register(KafkaDataSource)
    return spark


@pytest.fixture()
def bootstrap(stack: Settings) -> str:
    return stack.kafka.bootstrap_servers


def create_topic(bootstrap: str, partitions: int = 1, name: str | None = None) -> str:
    topic = name or f"ks-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    return topic


def produce(
    bootstrap: str,
    topic: str,
    count: int,
    partitions: int = 1,
    prefix: str = "reading",
    linger_ms: int = 5,
    first_partition: int = 0,
) -> None:
    """`count` records spread round-robin over the partitions, values `<prefix>-<i>`."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "batch.num.messages": 10_000}
    )
    for i in range(count):
        partition = first_partition + i % partitions
        producer.produce(topic, key=f"dev-{i % 7}", value=f"{prefix}-{i}", partition=partition)
    assert producer.flush(30) == 0


def kafka_stream(spark: SparkSession, bootstrap: str, **options: str | int) -> DataFrame:
    reader = spark.readStream.format(KAFKA_FORMAT).option("kafka.bootstrap.servers", bootstrap)
    return reader.options(**{name: str(value) for name, value in options.items()}).load()


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


def start_running(frame: DataFrame, name: str) -> StreamingQuery:
    """A query that keeps polling the broker, writing into an in-memory table `name`."""
    writer = frame.writeStream.format("memory").queryName(name)
    return writer.trigger(processingTime="500 milliseconds").start()


def positions(spark: SparkSession, path: Path | str, table: bool = False) -> list[Position]:
    frame = spark.table(str(path)) if table else spark.read.parquet(str(path))
    return [
        (r.topic, r.partition, r.offset)
        for r in frame.select("topic", "partition", "offset").collect()
    ]


def wait_until(check: Callable[[], bool], what: str, timeout: float = QUERY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def expected(topic: str, ends: dict[int, int], starts: dict[int, int] | None = None) -> set:
    starts = starts or {}
    return {(topic, p, o) for p, end in ends.items() for o in range(starts.get(p, 0), end)}


def test_columns_match_spark_builtin_kafka_source(kafka_spark, bootstrap):
    plain = kafka_stream(kafka_spark, bootstrap, subscribe="any")
    with_headers = kafka_stream(kafka_spark, bootstrap, subscribe="any", includeHeaders="true")

    assert plain.schema == BUILTIN_KAFKA_COLUMNS
    assert with_headers.schema == StructType([*BUILTIN_KAFKA_COLUMNS, BUILTIN_HEADERS_COLUMN])


def test_available_now_reads_every_record_of_several_topics_exactly_once(
    kafka_spark, bootstrap, tmp_path
):
    first, second = create_topic(bootstrap, 3), create_topic(bootstrap, 2)
    produce(bootstrap, first, 300, partitions=3)
    produce(bootstrap, second, 120, partitions=2, prefix="other")

    frame = kafka_stream(
        kafka_spark, bootstrap, subscribe=f"{first},{second}", startingOffsets="earliest"
    )
    run_available_now(frame, tmp_path / "sink", tmp_path / "checkpoint")

    read = positions(kafka_spark, tmp_path / "sink")
    assert len(read) == 420
    assert set(read) == expected(first, {0: 100, 1: 100, 2: 100}) | expected(second, {0: 60, 1: 60})
    rows = kafka_spark.read.parquet(str(tmp_path / "sink")).where(f"topic = '{first}'")
    values = {r.value.decode() for r in rows.select("value").collect()}
    assert values == {f"reading-{i}" for i in range(300)}
    assert {r.timestampType for r in rows.select("timestampType").distinct().collect()} == {0}


def test_include_headers_returns_each_record_headers(kafka_spark, bootstrap, tmp_path):
    topic = create_topic(bootstrap)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value=b"with", headers=[("device", b"dht11"), ("unit", b"C")])
    producer.produce(topic, value=b"without")
    assert producer.flush(30) == 0

    frame = kafka_stream(
        kafka_spark, bootstrap, subscribe=topic, startingOffsets="earliest", includeHeaders="true"
    )
    run_available_now(frame, tmp_path / "sink", tmp_path / "checkpoint")

    rows = {r.value: r.headers for r in kafka_spark.read.parquet(str(tmp_path / "sink")).collect()}
    assert [(h.key, h.value) for h in rows[b"with"]] == [("device", b"dht11"), ("unit", b"C")]
    assert not rows[b"without"]


def test_tail_of_a_multi_record_batch_arrives_without_further_produce(
    kafka_spark, bootstrap, tmp_path
):
    topic = create_topic(bootstrap)
    # One lingering producer: all 500 records travel, and are stored, as one record batch.
    produce(bootstrap, topic, 500, linger_ms=2000)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    latest = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest()})
    reported = next(iter(latest.values())).result().offset
    assert reported < 500, "the broker no longer hides the batch tail: the probe is optional"

    probed = kafka_stream(kafka_spark, bootstrap, subscribe=topic, startingOffsets="earliest")
    run_available_now(probed, tmp_path / "probed", tmp_path / "probed-checkpoint")
    trusting = kafka_stream(
        kafka_spark,
        bootstrap,
        subscribe=topic,
        startingOffsets="earliest",
        **{"iotlake.probeHighWatermark": "false"},
    )
    run_available_now(trusting, tmp_path / "trusting", tmp_path / "trusting-checkpoint")

    assert sorted(positions(kafka_spark, tmp_path / "probed")) == sorted(expected(topic, {0: 500}))
    assert len(positions(kafka_spark, tmp_path / "trusting")) == reported


def test_starting_offsets_latest_skips_records_already_in_the_topic(kafka_spark, bootstrap):
    topic = create_topic(bootstrap, 2)
    produce(bootstrap, topic, 50, partitions=2, prefix="old")
    name = f"latest_{uuid.uuid4().hex[:8]}"
    query = start_running(kafka_stream(kafka_spark, bootstrap, subscribe=topic), name)
    try:
        wait_until(lambda: query.lastProgress is not None, "the first trigger")
        produce(bootstrap, topic, 20, partitions=2, prefix="new")
        wait_until(lambda: kafka_spark.table(name).count() >= 20, "the new records")
        values = {r.value.decode() for r in kafka_spark.table(name).select("value").collect()}
    finally:
        query.stop()

    assert values == {f"new-{i}" for i in range(20)}


def test_json_starting_offsets_choose_the_first_offset_of_each_partition(
    kafka_spark, bootstrap, tmp_path
):
    topic = create_topic(bootstrap, 3)
    produce(bootstrap, topic, 90, partitions=3)
    starting = f'{{"{topic}": {{"0": 25, "1": -2, "2": -1}}}}'

    frame = kafka_stream(kafka_spark, bootstrap, subscribe=topic, startingOffsets=starting)
    run_available_now(frame, tmp_path / "sink", tmp_path / "checkpoint")

    read = positions(kafka_spark, tmp_path / "sink")
    assert sorted(read) == sorted(expected(topic, {0: 30, 1: 30}, starts={0: 25}))


def test_json_starting_offsets_must_name_every_partition(kafka_spark, bootstrap, tmp_path):
    topic = create_topic(bootstrap, 2)
    frame = kafka_stream(
        kafka_spark, bootstrap, subscribe=topic, startingOffsets=f'{{"{topic}": {{"0": 0}}}}'
    )

    with pytest.raises(Exception, match=f"no offset for partitions {topic}-1"):
        run_available_now(frame, tmp_path / "sink", tmp_path / "checkpoint")


def test_bad_options_fail_at_load_naming_the_option(kafka_spark, bootstrap):
    with pytest.raises(Exception, match="exactly one of the options 'subscribe'"):
        kafka_stream(kafka_spark, bootstrap)
    with pytest.raises(Exception, match="'kafka.auto.offset.reset' is not supported"):
        kafka_stream(kafka_spark, bootstrap, subscribe="t", **{"kafka.auto.offset.reset": "x"})


def test_partition_ending_before_the_query_position_is_data_loss(kafka_spark, bootstrap):
    topic = create_topic(bootstrap)
    produce(bootstrap, topic, 10)
    # What a checkpoint looks like after the broker's storage was wiped and refilled.
    beyond = f'{{"{topic}": {{"0": 500}}}}'
    strict = start_running(
        kafka_stream(kafka_spark, bootstrap, subscribe=topic, startingOffsets=beyond),
        f"strict_{uuid.uuid4().hex[:8]}",
    )
    try:
        with pytest.raises(StreamingQueryException, match="records were lost: .*-0 ends at 10 <"):
            strict.awaitTermination(QUERY_TIMEOUT_S)
    finally:
        strict.stop()

    name = f"tolerant_{uuid.uuid4().hex[:8]}"
    tolerant = start_running(
        kafka_stream(
            kafka_spark, bootstrap, subscribe=topic, startingOffsets=beyond, failOnDataLoss="false"
        ),
        name,
    )
    try:
        wait_until(lambda: kafka_spark.table(name).count() >= 10, "the refilled partition")
        read = positions(kafka_spark, name, table=True)
    finally:
        tolerant.stop()
    assert sorted(read) == sorted(expected(topic, {0: 10}))


def test_max_offsets_per_trigger_bounds_every_micro_batch(kafka_spark, bootstrap, tmp_path):
    topic = create_topic(bootstrap, 3)
    produce(bootstrap, topic, 300, partitions=3)

    frame = kafka_stream(
        kafka_spark, bootstrap, subscribe=topic, startingOffsets="earliest", maxOffsetsPerTrigger=70
    )
    query = run_available_now(frame, tmp_path / "sink", tmp_path / "checkpoint")

    per_batch = [p["numInputRows"] for p in query.recentProgress if p["numInputRows"]]
    assert per_batch == [70, 70, 70, 70, 20]
    assert sorted(positions(kafka_spark, tmp_path / "sink")) == sorted(
        expected(topic, {0: 100, 1: 100, 2: 100})
    )


def test_read_limit_is_shared_fairly_between_partitions():
    lags = {("t", 0): 100, ("t", 1): 5, ("t", 2): 100, ("t", 3): 0}

    shares = fair_shares(lags, 61)

    assert shares == {("t", 0): 28, ("t", 1): 5, ("t", 2): 28, ("t", 3): 0}
    assert sum(fair_shares(lags, 2).values()) == 2
    assert fair_shares(lags, 1000) == lags


def test_restart_from_checkpoint_continues_without_duplicates_or_gaps(
    kafka_spark, bootstrap, tmp_path
):
    topic = create_topic(bootstrap, 2)
    produce(bootstrap, topic, 600, partitions=2)
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"
    limited = kafka_stream(
        kafka_spark,
        bootstrap,
        subscribe=topic,
        startingOffsets="earliest",
        maxOffsetsPerTrigger=100,
    )
    first = (
        limited.writeStream.format("parquet")
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="200 milliseconds")
        .start(str(sink))
    )
    try:
        wait_until(
            lambda: len([p for p in first.recentProgress if p["numInputRows"]]) >= 2, "two batches"
        )
    finally:
        first.stop()
    read_before = len(positions(kafka_spark, sink))
    produce(bootstrap, topic, 200, partitions=2, prefix="later")

    # startingOffsets only applies to a new query: this one resumes from its checkpoint.
    resumed = kafka_stream(kafka_spark, bootstrap, subscribe=topic, startingOffsets="latest")
    run_available_now(resumed, sink, checkpoint)

    read = positions(kafka_spark, sink)
    assert 200 <= read_before < 800
    assert len(read) == 800
    assert set(read) == expected(topic, {0: 400, 1: 400})


@pytest.mark.slow
def test_restart_after_kill_loses_nothing(kafka_spark, stack, bootstrap, tmp_path):
    topic = create_topic(bootstrap, 2)
    produce(bootstrap, topic, 1000, partitions=2)
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"
    driver = textwrap.dedent(
        """
        import sys
        from iotlake.config import load_settings
        from spark_jobs.io.kafka_source import KAFKA_FORMAT, KafkaDataSource
        from spark_jobs.session import spark_session

        topic, sink, checkpoint = sys.argv[1:4]
        settings = load_settings()
        spark = spark_session(settings, "kafka-source-killed")
        spark.dataSource.register(KafkaDataSource)
        (
            spark.readStream.format(KAFKA_FORMAT)
            .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", 60)
            .load()
            .writeStream.format("parquet")
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime="100 milliseconds")
            .start(sink)
            .awaitTermination()
        )
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", driver, topic, str(sink), str(checkpoint)],
        env={**os.environ, **settings_env(stack)},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        committed = checkpoint / "commits"
        wait_until(lambda: len(list(committed.glob("[0-9]*"))) >= 3, "3 committed batches")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)

    resumed = kafka_stream(kafka_spark, bootstrap, subscribe=topic, startingOffsets="earliest")
    run_available_now(resumed, sink, checkpoint)

    read = positions(kafka_spark, sink)
    assert len(read) == 1000
    assert set(read) == expected(topic, {0: 500, 1: 500})


def test_topic_created_mid_stream_is_read_from_its_earliest_offset(kafka_spark, bootstrap):
    present, later = f"ks-{uuid.uuid4().hex[:10]}", f"ks-{uuid.uuid4().hex[:10]}"
    create_topic(bootstrap, 1, present)
    produce(bootstrap, present, 30)
    name = f"later_{uuid.uuid4().hex[:8]}"
    frame = kafka_stream(
        kafka_spark, bootstrap, subscribe=f"{present},{later}", startingOffsets="earliest"
    )
    query = start_running(frame, name)
    try:
        wait_until(lambda: kafka_spark.table(name).count() >= 30, "the first topic")
        create_topic(bootstrap, 2, later)
        produce(bootstrap, later, 40, partitions=2)
        wait_until(lambda: kafka_spark.table(name).count() >= 70, "the topic created later")
        read = positions(kafka_spark, name, table=True)
    finally:
        query.stop()

    assert sorted(read) == sorted(expected(present, {0: 30}) | expected(later, {0: 20, 1: 20}))


def test_partition_added_mid_stream_is_read_from_its_earliest_offset(kafka_spark, bootstrap):
    topic = create_topic(bootstrap, 1)
    produce(bootstrap, topic, 30)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    name = f"grown_{uuid.uuid4().hex[:8]}"
    frame = kafka_stream(kafka_spark, bootstrap, subscribe=topic, startingOffsets="earliest")
    query = start_running(frame, name)
    try:
        wait_until(lambda: kafka_spark.table(name).count() >= 30, "the first partition")
        try:
            admin.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
        except KafkaException as error:
            if error.args[0].code() == KafkaError._UNSUPPORTED_FEATURE:
                pytest.skip(f"the broker cannot add partitions: {error.args[0].str()}")
            raise
        produce(bootstrap, topic, 40, partitions=2, first_partition=1)
        wait_until(lambda: kafka_spark.table(name).count() >= 70, "the added partitions")
        read = positions(kafka_spark, name, table=True)
    finally:
        query.stop()

    assert sorted(read) == sorted(expected(topic, {0: 30, 1: 20, 2: 20}))


def test_subscribe_pattern_picks_up_new_matching_topics(kafka_spark, bootstrap):
    prefix = f"kp-{uuid.uuid4().hex[:8]}"
    first = create_topic(bootstrap, 2, f"{prefix}-a")
    unrelated = create_topic(bootstrap, 1)
    produce(bootstrap, first, 20, partitions=2)
    produce(bootstrap, unrelated, 10)
    name = f"pattern_{uuid.uuid4().hex[:8]}"
    frame = kafka_stream(
        kafka_spark, bootstrap, subscribePattern=f"{prefix}-.*", startingOffsets="earliest"
    )
    query = start_running(frame, name)
    try:
        wait_until(lambda: kafka_spark.table(name).count() >= 20, "the first matching topic")
        second = create_topic(bootstrap, 1, f"{prefix}-b")
        produce(bootstrap, second, 15)
        wait_until(lambda: kafka_spark.table(name).count() >= 35, "the new matching topic")
        read = positions(kafka_spark, name, table=True)
    finally:
        query.stop()

    assert sorted(read) == sorted(expected(first, {0: 10, 1: 10}) | expected(second, {0: 15}))


@pytest.mark.slow
def test_running_query_survives_a_broker_restart(kafka_spark, stack, bootstrap, tmp_path):
    topic = create_topic(bootstrap, 2)
    produce(bootstrap, topic, 40, partitions=2, prefix="before")
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"
    query = (
        kafka_stream(kafka_spark, bootstrap, subscribe=topic, startingOffsets="earliest")
        .writeStream.format("parquet")
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="500 milliseconds")
        .start(str(sink))
    )
    try:
        wait_until(lambda: sum(p["numInputRows"] for p in query.recentProgress) >= 40, "before")
        embedded.restart(stack, "kafka", hard=True)
        produce(bootstrap, topic, 40, partitions=2, prefix="after")
        wait_until(lambda: sum(p["numInputRows"] for p in query.recentProgress) >= 80, "after")
        assert query.exception() is None
    finally:
        query.stop()

    read = positions(kafka_spark, sink)
    assert len(read) == 80
    assert set(read) == expected(topic, {0: 40, 1: 40})
