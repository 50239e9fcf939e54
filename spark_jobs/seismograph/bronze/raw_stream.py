"""`raw_stream`: phone records exactly as the broker delivered them, before any parsing.

The original read Kinesis stream `dais2023` into a view; keeping it as a table means a record
that does not parse is still there to look at. Over Kafka (`motion.transport: kafka`) the
record's columns take the Kinesis names: key -> partitionKey, value -> data,
"<topic>-<partition>" -> shardId, offset -> sequenceNumber, timestamp ->
approximateArrivalTimestamp.
"""

import dlt
from pyspark.sql import functions as F


def kinesis_records():
    return (
        spark.readStream.format("kinesis")
        .option("streamName", spark.conf.get("motion.stream"))
        .option("region", spark.conf.get("motion.region"))
        .option("initialPosition", spark.conf.get("motion.initialPosition", "latest"))
        .load()
        .select(
            "partitionKey",
            F.make_valid_utf8(F.col("data").cast("string")).alias("data"),
            F.lit("kinesis").alias("source"),
            "shardId",
            "sequenceNumber",
            "approximateArrivalTimestamp",
        )
    )


def kafka_records():
    starting = spark.conf.get("motion.initialPosition", "latest")
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", spark.conf.get("motion.kafka.bootstrap.servers"))
        .option("subscribe", spark.conf.get("motion.stream"))
        .option("startingOffsets", "earliest" if starting == "trim_horizon" else starting)
        .load()
        .select(
            F.make_valid_utf8(F.col("key").cast("string")).alias("partitionKey"),
            F.make_valid_utf8(F.col("value").cast("string")).alias("data"),
            F.lit("kafka").alias("source"),
            F.concat_ws("-", "topic", F.col("partition").cast("string")).alias("shardId"),
            F.col("offset").cast("string").alias("sequenceNumber"),
            F.col("timestamp").alias("approximateArrivalTimestamp"),
        )
    )


@dlt.table(comment="Accelerometer records from the phones, as received from the broker")
@dlt.expect("record has data", "data IS NOT NULL")
@dlt.expect("record within 64 KiB", "data IS NULL OR octet_length(data) <= 65536")
def raw_stream():
    if spark.conf.get("motion.transport", "kinesis") == "kafka":
        return kafka_records()
    return kinesis_records()
