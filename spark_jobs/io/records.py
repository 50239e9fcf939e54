"""Broker records in one shape, whichever transport carried them.

Bronze tables keep what arrived: the record's key, its payload as text, and where it came
from. Kinesis columns keep their names (as the Databricks Kinesis source has them); Kafka's
map onto them: key -> partitionKey, value -> data, "<topic>-<partition>" -> shardId,
offset -> sequenceNumber, broker timestamp -> approximateArrivalTimestamp.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.config import Settings
from spark_jobs.io.kinesis import KinesisDataSource, kinesis_options


def as_text(column: str) -> Column:
    """Payload bytes as text. Bytes that are not UTF-8 (a binary record) become U+FFFD
    rather than a string no Delta or Arrow reader can decode downstream."""
    return F.make_valid_utf8(F.col(column).cast("string"))


RECORD_COLUMNS = (
    "partitionKey",
    "data",
    "source",
    "shardId",
    "sequenceNumber",
    "approximateArrivalTimestamp",
)


def kinesis_records(spark: SparkSession, settings: Settings, stream: str) -> DataFrame:
    """A stream's records from TRIM_HORIZON, positions kept in the query's checkpoint."""
    spark.dataSource.register(KinesisDataSource)
    options = kinesis_options(settings, stream) | {"initialPosition": "TRIM_HORIZON"}
    raw = spark.readStream.format("kinesis").options(**options).load()
    return raw.select(
        "partitionKey",
        as_text("data").alias("data"),
        F.lit("kinesis").alias("source"),
        "shardId",
        "sequenceNumber",
        "approximateArrivalTimestamp",
    )


def kafka_records(spark: SparkSession, settings: Settings, topic: str) -> DataFrame:
    """A topic's records from the earliest offset, offsets kept in the query's checkpoint.

    Spark's own Kafka source (`spark-sql-kafka-0-10`, on every session's classpath), as a
    Databricks notebook reads Kafka; partitions added to the topic later are read too.
    """
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    return raw.select(
        as_text("key").alias("partitionKey"),
        as_text("value").alias("data"),
        F.lit("kafka").alias("source"),
        F.concat_ws("-", "topic", F.col("partition").cast("string")).alias("shardId"),
        F.col("offset").cast("string").alias("sequenceNumber"),
        F.col("timestamp").alias("approximateArrivalTimestamp"),
    )
