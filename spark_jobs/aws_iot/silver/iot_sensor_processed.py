"""`iot_sensor_processed`: parsed readings with the original's single anomaly flag."""

import dlt
from pyspark.sql import functions as F

PAYLOAD_SCHEMA = (
    "device_id STRING, timestamp BIGINT, status STRING, region STRING, "
    "metrics STRUCT<temperature_c: FLOAT, pressure_hpa: FLOAT, humidity_percent: FLOAT>"
)


@dlt.table(comment="Parsed device readings, flagged critical above the temperature limit")
@dlt.expect_or_drop("payload parses", "device_id IS NOT NULL AND timestamp IS NOT NULL")
@dlt.expect("temperature present", "temperature_c IS NOT NULL")
def iot_sensor_processed():
    limit = float(spark.conf.get("iot.critical_temperature_c", "28.0"))
    parsed = spark.readStream.table("iot_sensor_raw").select(
        F.from_json("json_payload", PAYLOAD_SCHEMA).alias("p"), "kinesis_time"
    )
    temperature = F.col("p.metrics.temperature_c")
    return parsed.select(
        "p.device_id",
        "p.timestamp",
        "p.status",
        "p.region",
        "kinesis_time",
        (F.col("p.timestamp") / 1000).cast("timestamp").alias("event_timestamp"),
        temperature.alias("temperature_c"),
        (temperature > limit).alias("is_critical"),
    )
