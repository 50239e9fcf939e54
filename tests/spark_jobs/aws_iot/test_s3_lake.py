"""The pipeline on an S3 lake (as the compose profile runs it): Spark writes through S3A to the
embedded emulator, delta-rs and Spark's catalog read the tables back."""

from __future__ import annotations

import uuid

import pytest

from services.producers.aws_iot_producer import SensorConfig, generate_records, send_records
from spark_jobs.runner import run_once
from tests.support.lake import private_settings, read_table

SYSTEM = "aws-iot"


@pytest.mark.slow
def test_tables_land_in_the_s3_lake_through_s3a(stack, spark):
    lake = f"s3://{stack.lake.bucket}/s3a-{uuid.uuid4().hex[:8]}"
    settings = private_settings(stack, lake, SYSTEM, "kinesis", shards=1)
    assert settings.lake_root.startswith("s3://")
    readings = list(generate_records(SensorConfig(seed=9), 1_716_570_000_000, records=120))
    assert send_records(settings, readings).failed == 0

    run_once(spark, settings, SYSTEM, report=print)

    processed = read_table(settings, SYSTEM, "iot_sensor_processed")  # delta-rs, no Spark
    assert len(processed) == len(readings)
    assert len(read_table(settings, SYSTEM, "iot_sensor_raw")) == len(readings)
    # The original's name for it, through the catalog plugin.
    named = spark.read.table("workspace.data_staging.iot_sensor_processed")
    assert named.count() == len(readings)
    location = spark.sql("DESCRIBE DETAIL workspace.data_staging.iot_sensor_processed")
    assert location.first()["location"].startswith(("s3://", "s3a://"))
