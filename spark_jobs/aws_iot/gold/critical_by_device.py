"""`critical_by_device`: critical readings per device per minute, for the anomaly bar chart."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import dp


@dp.table(
    comment="Critical readings per device and minute (query_for_anomaly_bar_chart)",
    output_mode="update",
    keys=("device_id", "time_window"),
)
@dp.expect("count is positive", "critical_count > 0")
def critical_by_device(iot_sensor_processed: DataFrame) -> DataFrame:
    return (
        iot_sensor_processed.where("is_critical")
        .groupBy("device_id", F.date_trunc("minute", "event_timestamp").alias("time_window"))
        .agg(F.count(F.lit(1)).alias("critical_count"))
    )
