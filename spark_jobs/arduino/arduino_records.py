"""A Kafka topic's records in the shape of every iotlake bronze table (helper module of the
pipeline's table files; the pipeline's root folder is on `sys.path`, as on Databricks).

Kafka's columns keep the Kinesis source's names: key -> partitionKey, value -> data,
"<topic>-<partition>" -> shardId, offset -> sequenceNumber, timestamp ->
approximateArrivalTimestamp. A sensor kind's topic comes from `arduino.topic.<kind>`.
"""

from pyspark.sql import functions as F


def records(spark, kind):
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", spark.conf.get("arduino.kafka.bootstrap.servers"))
        .option("subscribe", spark.conf.get(f"arduino.topic.{kind}"))
        .option("startingOffsets", spark.conf.get("arduino.startingOffsets", "latest"))
        .load()
    )
    return raw.select(
        F.make_valid_utf8(F.col("key").cast("string")).alias("partitionKey"),
        F.make_valid_utf8(F.col("value").cast("string")).alias("data"),
        F.lit("kafka").alias("source"),
        F.concat_ws("-", "topic", F.col("partition").cast("string")).alias("shardId"),
        F.col("offset").cast("string").alias("sequenceNumber"),
        F.col("timestamp").alias("approximateArrivalTimestamp"),
    )
