"""`iotlake bench io`: broker -> Delta throughput through Spark against bare-client baselines.

Each figure comes from the same run on the same machine, so ratios mean something:
- Kafka -> Delta through Spark (Spark's Kafka source and Delta sink, AvailableNow) against a
  bare loop that consumes with confluent-kafka and appends with delta-rs;
- Kinesis -> Delta through Spark against the emulator's own bare put_records / get_records
  rates and a bare get_records -> delta-rs loop.
Every path is checked to deliver all rows, so a fast wrong answer cannot pass as a figure.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
from confluent_kafka import Consumer, Producer, TopicPartition

# NewTopic is public here (confluent-kafka's docs import it so) but its stubs lack the re-export.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from iotlake.config import Settings
from spark_jobs.io.kinesis.fetch import every_record
from spark_jobs.io.records import kafka_records, kinesis_records

PARTITIONS = 4
RECORD = '{{"magnitude": {m}, "time": "2023-05-24T18:56:56.800Z", "device": "client-{d:012x}"}}'
BARE_BATCH_ROWS = 50_000


def _payload(i: int) -> bytes:
    return RECORD.format(m=i % 230, d=i % 130).encode()


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("inf")


def _spark_to_delta(frame: DataFrame, work: Path) -> tuple[float, int, float]:
    """Seconds for an AvailableNow query to land every record, rows landed, and the rate
    inside its batches (without the query's start-up, which dominates short runs).

    The same query runs once before the measured run, into a table of its own: the first
    query of a JVM also loads classes and compiles code, which says nothing about the rate
    a running pipeline reads at.
    """
    _land(frame, work)
    began = time.perf_counter()
    query, table = _land(frame, work)
    seconds = time.perf_counter() - began
    batches = [p for p in query.recentProgress if p["numInputRows"]]
    batch_ms = sum(p["durationMs"]["triggerExecution"] for p in batches)
    in_batches = _rate(sum(p["numInputRows"] for p in batches), batch_ms / 1000)
    return seconds, len(DeltaTable(table).to_pyarrow_table()), in_batches


def _land(frame: DataFrame, work: Path) -> tuple[StreamingQuery, str]:
    """Every record of `frame` into a new Delta table with a new checkpoint."""
    table = str(work / f"delta-{uuid.uuid4().hex[:6]}")
    query = (
        frame.writeStream.format("delta")
        .option("checkpointLocation", str(work / f"cp-{uuid.uuid4().hex[:6]}"))
        .trigger(availableNow=True)
        .start(table)
    )
    query.awaitTermination()
    return query, table


def _bare_to_delta(batches: Iterable[bytes | None], table: str) -> None:
    """Write what a bare client read to Delta, in batches like a consumer loop would."""
    rows = []
    for payload in batches:
        rows.append(payload)
        if len(rows) >= BARE_BATCH_ROWS:
            write_deltalake(table, pa.table({"data": rows}), mode="append")
            rows = []
    if rows:
        write_deltalake(table, pa.table({"data": rows}), mode="append")


def _against_spark(
    rows: int, bare_table: str, bare_seconds: float, frame: DataFrame, work: Path
) -> dict[str, Any]:
    """The figures both paths report: the bare client's rate into Delta (what it landed in
    `bare_table` over `bare_seconds`), Spark's rate reading `frame`, their ratio, and whether
    both delivered all `rows`."""
    bare_rows = len(DeltaTable(bare_table).to_pyarrow_table())
    spark_seconds, spark_rows, in_batches = _spark_to_delta(frame, work)
    bare_rate, spark_rate = _rate(bare_rows, bare_seconds), _rate(spark_rows, spark_seconds)
    return {
        "bare_client_to_delta_rows_per_s": bare_rate,
        "spark_to_delta_rows_per_s": spark_rate,
        "spark_to_delta_rows_per_s_in_batches": in_batches,
        "ratio_spark_to_bare": spark_rate / bare_rate,
        "complete": bare_rows == rows and spark_rows == rows,
    }


def bench_kafka(spark: SparkSession, settings: Settings, rows: int, work: Path) -> dict[str, Any]:
    bootstrap = settings.kafka.bootstrap_servers
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    began = time.perf_counter()
    for i in range(rows):
        while True:
            try:
                producer.produce(
                    topic,
                    key=f"partition-client-{i % 130}",
                    value=_payload(i),
                    partition=i % PARTITIONS,
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    produce_seconds = time.perf_counter() - began

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "iotlake-bench",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    began = time.perf_counter()

    def consumed() -> Iterator[bytes | None]:
        seen, deadline = 0, time.monotonic() + 300
        while seen < rows and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1):
                if message.error() is None:
                    seen += 1
                    yield message.value()

    bare_table = str(work / "bare-kafka")
    _bare_to_delta(consumed(), bare_table)
    bare_seconds = time.perf_counter() - began
    consumer.close()
    return {
        "rows": rows,
        "produce_rows_per_s": _rate(rows, produce_seconds),
        **_against_spark(
            rows, bare_table, bare_seconds, kafka_records(spark, settings, topic), work
        ),
    }


def bench_kinesis(spark: SparkSession, settings: Settings, rows: int, work: Path) -> dict[str, Any]:
    kinesis = boto3.client("kinesis", **settings.aws.boto3_kwargs())
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=PARTITIONS)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    began = time.perf_counter()
    for start in range(0, rows, 500):
        batch = [
            {"Data": _payload(i), "PartitionKey": f"partition-client-{i % 130}"}
            for i in range(start, min(start + 500, rows))
        ]
        assert kinesis.put_records(StreamName=stream, Records=batch)["FailedRecordCount"] == 0
    put_seconds = time.perf_counter() - began

    began = time.perf_counter()
    payloads = [record["Data"] for _, record in every_record(kinesis, stream)]
    get_seconds = time.perf_counter() - began
    bare_table = str(work / "bare-kinesis")
    _bare_to_delta(iter(payloads), bare_table)
    bare_seconds = time.perf_counter() - began
    return {
        "rows": rows,
        "emulator_put_rows_per_s": _rate(rows, put_seconds),
        "emulator_get_rows_per_s": _rate(len(payloads), get_seconds),
        **_against_spark(
            rows, bare_table, bare_seconds, kinesis_records(spark, settings, stream), work
        ),
    }


def bench_io(
    spark: SparkSession,
    settings: Settings,
    kafka_rows: int = 200_000,
    kinesis_rows: int = 5_000,
    report: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run both benchmarks, print a table, write JSON under the state directory."""
    with tempfile.TemporaryDirectory(prefix="iotlake-bench-") as scratch:
        work = Path(scratch)
        results = {
            "kafka": bench_kafka(spark, settings, kafka_rows, work),
            "kinesis": bench_kinesis(spark, settings, kinesis_rows, work),
        }
    report(
        f"{'path':<8} {'rows':>8} {'spark->delta/s':>15} {'in batches/s':>13} "
        f"{'bare->delta/s':>14} {'ratio':>6}"
    )
    for name, figures in results.items():
        report(
            f"{name:<8} {figures['rows']:>8} {figures['spark_to_delta_rows_per_s']:>15,.0f} "
            f"{figures['spark_to_delta_rows_per_s_in_batches']:>13,.0f} "
            f"{figures['bare_client_to_delta_rows_per_s']:>14,.0f} "
            f"{figures['ratio_spark_to_bare']:>6.2f}"
        )
    kinesis = results["kinesis"]
    report(
        f"kinesis emulator alone: put {kinesis['emulator_put_rows_per_s']:,.0f}/s, "
        f"get {kinesis['emulator_get_rows_per_s']:,.0f}/s"
    )
    out = settings.state_dir / "bench" / "io.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    report(f"wrote {out}")
    return results
