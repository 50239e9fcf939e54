"""`sensor`: one row per phone event, parsed from the raw records (the original's table)."""

import dlt
from pyspark.sql import functions as F

EVENT_SCHEMA = "magnitude FLOAT, time TIMESTAMP, device STRING"


@dlt.table(
    comment="Motion events: device, time and magnitude of acceleration",
    table_properties={"pipelines.reset.allowed": "true"},
)
@dlt.expect_or_drop("device is set", "device IS NOT NULL")
@dlt.expect("magnitude is not negative", "magn >= 0")
@dlt.expect("time is set", "time IS NOT NULL")
def sensor():
    # A record holds one event, or an array of events when a producer packs several.
    events = F.coalesce(
        F.from_json("data", f"ARRAY<STRUCT<{EVENT_SCHEMA}>>"),
        F.array(F.from_json("data", EVENT_SCHEMA)),
    )
    return (
        dlt.read_stream("raw_stream")
        .select(F.explode(events).alias("event"))
        .select("event.device", "event.time", F.col("event.magnitude").alias("magn"))
    )
