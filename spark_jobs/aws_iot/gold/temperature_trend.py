"""`temperature_trend`: the fleet's average temperature per minute."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp


@dp.table(
    comment="Average fleet temperature per minute (query_for_temperature_trend)",
    output_mode="update",
    keys=("time_window",),
)
@dp.expect("plausible fleet temperature", "average_fleet_temp BETWEEN -50 AND 100")
def temperature_trend(iot_sensor_processed: DataFrame) -> DataFrame:
    return iot_sensor_processed.groupBy(
        F.date_trunc("minute", "event_timestamp").alias("time_window")
    ).agg(F.avg("temperature_c").alias("average_fleet_temp"))
