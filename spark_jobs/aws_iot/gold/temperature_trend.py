"""`temperature_trend`: the fleet's average temperature per minute."""

import dlt
from pyspark.sql import functions as F


@dlt.table(comment="Average fleet temperature per minute (query_for_temperature_trend)")
@dlt.expect("plausible fleet temperature", "average_fleet_temp BETWEEN -50 AND 100")
def temperature_trend():
    return (
        dlt.read_stream("iot_sensor_processed")
        .groupBy(F.date_trunc("minute", "event_timestamp").alias("time_window"))
        .agg(F.avg("temperature_c").alias("average_fleet_temp"))
    )
