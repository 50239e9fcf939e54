"""Device readings arrive on Kinesis `iot-sensor-data-stream` (or the Kafka topic of that name)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.io.records import kafka_records, kinesis_records


@dp.source()
def iot_sensor_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    stream = settings.aws_iot.stream
    if settings.aws_iot.transport == "kafka":
        return kafka_records(spark, settings, stream)
    return kinesis_records(spark, settings, stream)
