"""The originals' notebook code runs unchanged as jobs (`iotlake job run`): the Arduino PIR
stream from Kafka and the AWS IoT stream from Kinesis, into their three-part table names.

Each job runs on its own thread, as `iotlake job run` runs it, until its tables hold every
record sent; then its queries are stopped, which ends the job's `awaitTermination()`.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pyspark.sql import SparkSession

from iotlake.config import Settings
from services.producers.aws_iot_producer import SensorConfig, generate_records, send_records
from spark_jobs.lakeflow.job import run_job
from spark_jobs.runner import SYSTEM_FOLDERS
from tests.support.lake import private_settings

TIMEOUT_S = 180


def _fresh_schema(spark: SparkSession, schema: str) -> None:
    """An empty schema for the job: the names earlier tests registered there (external
    tables of their own lakes, whose files stay) are forgotten first."""
    spark.conf.set(f"spark.sql.catalog.{schema.split('.')[0]}", "iotlake.catalog.LakeCatalog")
    spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    spark.sql(f"CREATE SCHEMA {schema}")


def _run_until(spark: SparkSession, settings: Settings, job: Path, conf: dict, done) -> None:
    """Run the job, as `iotlake job run` does, on this thread; a watcher stops its queries
    once `done()` holds (or after TIMEOUT_S), which ends the job's `awaitTermination()`."""
    finished = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not finished.is_set() and time.monotonic() < deadline:
            if done():
                break
            time.sleep(2)
        for query in spark.streams.active:
            query.stop()

    # Queries earlier tests stopped would end the job's awaitAnyTermination() at once.
    spark.streams.resetTerminated()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run_job(spark, settings, job, conf)
    finally:
        finished.set()
        watcher.join(timeout=60)


def _all_read(spark: SparkSession, queries: int, rows: int) -> bool:
    """Each of the job's queries has read `rows` records, by its own progress reports (the
    tables are only looked at after the job: reading a table by name while its query creates
    it races Spark's table cache)."""
    active = spark.streams.active
    read = [sum(p["numInputRows"] for p in query.recentProgress) for query in active]
    return len(active) == queries and all(count >= rows for count in read)


@pytest.mark.slow
def test_the_arduino_notebook_writes_each_pir_message_to_its_table(stack, spark, tmp_path):
    topic = f"pir-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap_servers, "acks": "all"})
    for value in ['{"msg": "1"}', "not json", '{"msg": "1"}']:
        producer.produce(topic, value.encode())
    assert producer.flush(30) == 0
    _fresh_schema(spark, "data_pipelines.kafka_table")
    table = "data_pipelines.kafka_table.pir_stream_test"
    conf = {
        "pir_topic": topic,
        "starting_offsets": "earliest",
        "checkpoint": str(tmp_path / "pir_checkpoint"),
    }

    job = SYSTEM_FOLDERS["arduino"] / "jobs" / "pir_stream.py"
    _run_until(spark, stack, job, conf, lambda: _all_read(spark, queries=1, rows=3))

    rows = spark.read.table(table).collect()
    assert len(rows) == 3  # every message is a detection, whatever its value
    assert {row.movement for row in rows} == {"new detection"}
    assert all(len(row.timestamp) == len("29/11/2026 15:00:00") for row in rows)


@pytest.mark.slow
def test_the_aws_notebook_writes_raw_and_processed_tables_from_kinesis(stack, spark, tmp_path):
    settings = private_settings(stack, tmp_path / "lake", "aws-iot", "kinesis", shards=1)
    readings = list(generate_records(SensorConfig(seed=4), 1_716_570_000_000, records=40))
    assert send_records(settings, readings).failed == 0
    _fresh_schema(spark, "workspace.data_staging")
    conf = {
        "stream": settings.aws_iot.stream,
        "initial_position": "trim_horizon",
        "trigger": "1 second",
        # The notebook's checkpoints sit in a volume: a folder of the lake here.
        "checkpoints": "/Volumes/workspace/data_staging/checkpoints",
    }
    processed = "workspace.data_staging.iot_sensor_processed"

    job = SYSTEM_FOLDERS["aws-iot"] / "jobs" / "iot_stream.py"
    _run_until(spark, settings, job, conf, lambda: _all_read(spark, 2, len(readings)))

    assert spark.read.table("workspace.data_staging.iot_sensor_raw").count() == len(readings)
    rows = spark.read.table(processed).collect()
    critical = sum(r["metrics"]["temperature_c"] > 28.0 for r in readings)
    assert sum(row.is_critical for row in rows) == critical
    assert {row.device_id for row in rows} == {r["device_id"] for r in readings}
    volume = Path(settings.lake_root) / "Volumes/workspace/data_staging/checkpoints"
    assert (volume / "raw_stream").is_dir() and (volume / "processed_stream").is_dir()
