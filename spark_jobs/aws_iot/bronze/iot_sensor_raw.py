"""`iot_sensor_raw`: the device JSON as it arrived, with the Kinesis arrival time.

The whole payload is kept, so pressure and humidity survive here even though the processed
table, like the original, only carries temperature.
"""

import dlt
from pyspark.sql import functions as F


def kinesis_records():
    return (
        spark.readStream.format("kinesis")
        .option("streamName", spark.conf.get("iot.stream"))
        .option("region", spark.conf.get("iot.region"))
        .option("initialPosition", spark.conf.get("iot.initialPosition", "latest"))
        .load()
        .select("data", "approximateArrivalTimestamp")
    )


def kafka_records():
    starting = spark.conf.get("iot.initialPosition", "latest")
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", spark.conf.get("iot.kafka.bootstrap.servers"))
        .option("subscribe", spark.conf.get("iot.stream"))
        .option("startingOffsets", "earliest" if starting == "trim_horizon" else starting)
        .load()
        .select(
            F.col("value").alias("data"), F.col("timestamp").alias("approximateArrivalTimestamp")
        )
    )


@dlt.table(comment="Raw device payloads from Kinesis")
@dlt.expect("payload present", "json_payload IS NOT NULL")
@dlt.expect("record within 64 KiB", "json_payload IS NULL OR octet_length(json_payload) <= 65536")
def iot_sensor_raw():
    records = kafka_records() if spark.conf.get("iot.transport") == "kafka" else kinesis_records()
    return records.select(
        F.make_valid_utf8(F.col("data").cast("string")).alias("json_payload"),
        F.col("approximateArrivalTimestamp").alias("kinesis_time"),
    )
