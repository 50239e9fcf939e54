"""The AWS IoT original's notebook: device readings from Kinesis into a raw and a processed
Delta table, as a streaming job with the original's 10-second trigger.

Run it with `iotlake job run spark_jobs/aws_iot/jobs/iot_stream.py`; on Databricks, paste it
into a notebook. The Kinesis source needs no endpoint or keys here: iotlake points
`format("kinesis")` at its emulator, as a Databricks cluster's instance profile would.
"""

from pyspark.sql.functions import col, from_json
from pyspark.sql.types import FloatType, LongType, StringType, StructField, StructType

checkpoints = spark.conf.get("checkpoints", "/Volumes/workspace/data_staging/checkpoints")

metrics = StructType(
    [
        StructField("temperature_c", FloatType()),
        StructField("pressure_hpa", FloatType()),
        StructField("humidity_percent", FloatType()),
    ]
)
payload = StructType(
    [
        StructField("device_id", StringType()),
        StructField("timestamp", LongType()),
        StructField("metrics", metrics),
        StructField("status", StringType()),
        StructField("region", StringType()),
    ]
)

records = (
    spark.readStream.format("kinesis")
    .option("streamName", spark.conf.get("stream", "iot-sensor-data-stream"))
    .option("region", "us-east-1")
    .option("initialPosition", spark.conf.get("initial_position", "latest"))
    .load()
)

raw = records.select(
    col("data").cast("string").alias("json_payload"),
    col("approximateArrivalTimestamp").alias("kinesis_time"),
)

processed = (
    raw.withColumn("data", from_json(col("json_payload"), payload))
    .select("data.*", "kinesis_time")
    .withColumn("event_timestamp", (col("timestamp") / 1000).cast("timestamp"))
    .withColumn("temperature_c", col("metrics.temperature_c"))
    .withColumn("is_critical", col("temperature_c") > 28.0)
    .drop("metrics")
)

trigger = spark.conf.get("trigger", "10 seconds")


def append_to(frame, table, checkpoint):
    """Start appending `frame` to a Delta table on the job's trigger."""
    return (
        frame.writeStream.format("delta")
        .outputMode("append")
        .option("checkpointLocation", f"{checkpoints}/{checkpoint}/")
        .trigger(processingTime=trigger)
        .toTable(table)
    )


raw_query = append_to(raw, "workspace.data_staging.iot_sensor_raw", "raw_stream")
processed_query = append_to(
    processed, "workspace.data_staging.iot_sensor_processed", "processed_stream"
)
spark.streams.awaitAnyTermination()
