"""Where phone events arrive: Kinesis stream `dais2023`, or the Kafka topic of that name."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from iotlake.config import Settings
from spark_jobs import dp
from spark_jobs.io.records import kafka_records, kinesis_records


@dp.source()
def dais2023(spark: SparkSession, settings: Settings) -> DataFrame:
    """Raw records in one shape whichever transport carries them (see `io.records`)."""
    stream = settings.seismograph.stream
    if settings.seismograph.transport == "kafka":
        return kafka_records(spark, settings, stream)
    return kinesis_records(spark, settings, stream)
