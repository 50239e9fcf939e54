"""`sensor`: one row per phone event, parsed from the raw records (the original's table)."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp

EVENT_SCHEMA = "magnitude FLOAT, time TIMESTAMP, device STRING"


@dp.table(comment="Motion events: device, time and magnitude of acceleration")
@dp.expect_or_drop("device is set", "device IS NOT NULL")
@dp.expect("magnitude is not negative", "magn >= 0")
@dp.expect("time is set", "time IS NOT NULL")
def sensor(raw_stream: DataFrame) -> DataFrame:
    # A record holds one event, or an array of events when a producer packs several.
    events = F.coalesce(
        F.from_json("data", f"ARRAY<STRUCT<{EVENT_SCHEMA}>>"),
        F.array(F.from_json("data", EVENT_SCHEMA)),
    )
    return raw_stream.select(F.explode(events).alias("event")).select(
        "event.device", "event.time", F.col("event.magnitude").alias("magn")
    )
